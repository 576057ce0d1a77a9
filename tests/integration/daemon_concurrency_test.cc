// 32 clients at once creating, attaching, moving a message and deleting for a while:
// every call answers, and afterwards no object file and no descriptor has leaked.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/daemon.h"
#include "common/test_dir.h"
#include "shmd/client/client.h"

namespace shmd {
namespace {

using shmd::testing::Daemon;
using Clock = std::chrono::steady_clock;

TEST(DaemonConcurrencyTest, ThirtyTwoClientsLeakNothing) {
  Daemon daemon;
  std::string why;
  ASSERT_TRUE(daemon.Start(&why)) << why;
  ClientOptions options;
  options.target = daemon.target();
  {
    // Also attach once: the daemon then watches this process (a pidfd it keeps while the
    // process lives, which is not a leak), before the baseline is taken.
    Client warm = Client::Connect(options).value();
    v1::Region region;
    region.set_size_bytes(64);
    ASSERT_TRUE(warm.CreateRegion("warm", region).ok());
    ASSERT_TRUE(warm.Open<Segment>("warm").ok());
    ASSERT_TRUE(warm.DeleteRegion("warm").ok());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int fds_before = daemon.CountOpenFds();

  constexpr int kClients = 32;
  const auto run_for = std::chrono::milliseconds(shmd::testing::Scaled(3000));
  std::atomic<int> rounds{0};
  std::vector<std::string> failures(kClients);
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      Result<Client> connected = Client::Connect(options);
      if (!connected.ok()) {
        failures[t] = connected.error().message();
        return;
      }
      Client& client = connected.value();
      const auto end = Clock::now() + run_for;
      for (int n = 0; Clock::now() < end; ++n) {
        const std::string id = "c" + std::to_string(t) + "-" + std::to_string(n);
        v1::Ring ring;
        ring.set_kind(v1::RING_KIND_SPSC);
        ring.set_capacity_bytes(4096);
        if (auto r = client.CreateRing(id, ring); !r.ok()) {
          failures[t] = "create " + id + ": " + r.error().message();
          return;
        }
        {
          auto producer = client.Open<SpscProducer>(id);
          auto consumer = client.Open<SpscConsumer>(id);
          if (!producer.ok() || !consumer.ok()) {
            failures[t] = "open " + id + ": " +
                          (producer.ok() ? consumer.error() : producer.error()).message();
            return;
          }
          std::byte message[8] = {std::byte{42}};
          std::byte got[8];
          size_t size = 0;
          if ((*producer)->TrySend(message) != Status::kOk ||
              (*consumer)->TryReceive(got, &size) != Status::kOk || got[0] != message[0]) {
            failures[t] = "message through " + id + " did not arrive";
            return;
          }
        }
        if (auto r = client.DeleteRing(id); !r.ok()) {
          failures[t] = "delete " + id + ": " + r.error().message();
          return;
        }
        rounds.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int t = 0; t < kClients; ++t) EXPECT_EQ(failures[t], "") << "client " << t;
  EXPECT_GT(rounds.load(), kClients);
  EXPECT_EQ(daemon.CountObjectFiles(), 0) << "leaked object files";

  // The clients are gone; their connections close on the daemon's side within a moment.
  int fds_after = daemon.CountOpenFds();
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (fds_after > fds_before && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    fds_after = daemon.CountOpenFds();
  }
  EXPECT_LE(fds_after, fds_before) << "descriptors leaked in the daemon after " << rounds.load()
                                   << " rounds";
  Client client = Client::Connect(options).value();
  Result<v1::ServerStats> stats = client.GetServerStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->lease_count(), 0u);
  EXPECT_EQ(stats->ring_count(), 0u);
  std::printf("%d create/attach/send/delete rounds by %d clients; daemon fds %d -> %d\n",
              rounds.load(), kClients, fds_before, fds_after);
}

}  // namespace
}  // namespace shmd
