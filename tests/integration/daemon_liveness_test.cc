// What the daemon does about processes that die, and what survives the daemon dying:
// kill -9 of a pool user (its blocks come back, an event says so), kill -9 of the daemon
// in the middle of a stream (nothing lost; a restarted daemon serves the same objects
// with the same contents), and SIGTERM (a clean stop that deletes nothing).
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "common/daemon.h"
#include "common/peer_process.h"
#include "common/test_dir.h"
#include "shmd/client/client.h"

namespace shmd {
namespace {

using shmd::testing::Daemon;
using shmd::testing::DescribeStatus;
using shmd::testing::ExitedWith;
using shmd::testing::PeerProcess;
using Clock = std::chrono::steady_clock;

Client ConnectTo(const Daemon& daemon) {
  ClientOptions options;
  options.target = daemon.target();
  Result<Client> client = Client::Connect(options);
  if (!client.ok()) ADD_FAILURE() << client.error().message();
  return std::move(client).value();
}

TEST(DaemonLivenessTest, AKilledPoolUsersBlocksReturnWithinASecond) {
  Daemon daemon;
  std::string why;
  ASSERT_TRUE(daemon.Start(&why)) << why;
  Client client = ConnectTo(daemon);
  v1::Pool spec;
  spec.set_block_size_bytes(4096);
  spec.set_block_count(64);
  ASSERT_TRUE(client.CreatePool("frames", spec).ok());
  Result<EventStream> events = client.WatchEvents();
  ASSERT_TRUE(events.ok());

  PeerProcess holder({SHMD_TEST_CLIENT, "pool-hold", daemon.target(), "frames", "10"});
  ASSERT_EQ(holder.WaitForLine("held", std::chrono::seconds(10)), "held 10") << holder.Output();
  ASSERT_EQ(client.GetPool("frames")->usage().blocks_in_use(), 10u);

  holder.Kill(SIGKILL);
  const auto killed = Clock::now();
  uint64_t in_use = 10;
  while (Clock::now() - killed < std::chrono::seconds(1)) {
    in_use = client.GetPool("frames")->usage().blocks_in_use();
    if (in_use == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(in_use, 0u) << "the dead holder's blocks must be back within a second";
  Result<v1::Pool> pool = client.GetPool("frames");
  EXPECT_EQ(pool->usage().reclaimed_blocks(), 10u);
  EXPECT_EQ(pool->info().lease_count(), 0u);
  EXPECT_EQ(pool->info().endpoints_size(), 0);

  bool died = false;
  while (!died) {
    Result<v1::Event> e = events->Next(std::chrono::seconds(5));
    ASSERT_TRUE(e.ok()) << "no death event: " << e.error().message();
    if (e->type() != v1::Event::TYPE_ENDPOINT_DIED) continue;
    died = true;
    EXPECT_EQ(e->object(), "pools/frames");
    EXPECT_EQ(e->pid(), static_cast<uint32_t>(holder.pid()));
    EXPECT_EQ(e->reclaimed_blocks(), 10u);
    EXPECT_EQ(e->cleared_endpoints(), 1u);
    EXPECT_FALSE(e->lease().empty());
  }
}

TEST(DaemonLivenessTest, KillingTheDaemonMidStreamLosesNothing) {
  Daemon daemon;
  std::string why;
  ASSERT_TRUE(daemon.Start(&why)) << why;
  const uint64_t count = shmd::testing::Scaled(1'000'000);
  const uint32_t max = 1000;
  {
    Client client = ConnectTo(daemon);
    v1::Ring ring;
    ring.set_kind(v1::RING_KIND_SPSC);
    ring.set_capacity_bytes(256 * 1024);
    ASSERT_TRUE(client.CreateRing("orders", ring).ok());
    v1::Region region;
    region.set_size_bytes(4096);
    ASSERT_TRUE(client.CreateRegion("table", region).ok());
    auto table = client.Open<Segment>("table");
    ASSERT_TRUE(table.ok()) << table.error().message();
    std::memcpy((*table)->data(), "contents that outlive the daemon", 33);
  }
  PeerProcess consumer({SHMD_TEST_CLIENT, "spsc-consume", daemon.target(), "orders", "7",
                        std::to_string(count), std::to_string(max)});
  ASSERT_EQ(consumer.WaitForLine("ready", std::chrono::seconds(10)).rfind("ready", 0), 0u)
      << consumer.Output();
  PeerProcess producer({SHMD_TEST_CLIENT, "spsc-produce", daemon.target(), "orders", "7",
                        std::to_string(count), std::to_string(max)});
  ASSERT_EQ(consumer.WaitForLine("progress", std::chrono::seconds(30)).rfind("progress", 0), 0u)
      << consumer.Output();

  daemon.Kill9();  // mid-stream: the data path never needed it

  EXPECT_EQ(consumer.WaitForLine("done", std::chrono::seconds(60)).rfind("done " +
                                                                         std::to_string(count), 0),
            0u)
      << consumer.Output();
  const int consumer_status = consumer.Wait(std::chrono::seconds(10));
  const int producer_status = producer.Wait(std::chrono::seconds(10));
  EXPECT_TRUE(ExitedWith(consumer_status, 0)) << DescribeStatus(consumer_status);
  EXPECT_TRUE(ExitedWith(producer_status, 0)) << DescribeStatus(producer_status);

  ASSERT_TRUE(daemon.Start(&why)) << "restart: " << why;
  EXPECT_NE(daemon.Output().find("adopted rings/orders"), std::string::npos) << daemon.Output();
  Client client = ConnectTo(daemon);
  Result<std::vector<v1::Ring>> rings = client.ListAllRings();
  ASSERT_TRUE(rings.ok());
  ASSERT_EQ(rings->size(), 1u);
  EXPECT_EQ((*rings)[0].name(), "rings/orders");
  EXPECT_EQ((*rings)[0].usage().messages_written(), count);
  EXPECT_EQ((*rings)[0].usage().messages_read(), count);
  EXPECT_EQ((*rings)[0].usage().used_bytes(), 0u);
  auto table = client.Open<Segment>("table");
  ASSERT_TRUE(table.ok()) << table.error().message();
  EXPECT_STREQ(reinterpret_cast<const char*>((*table)->data()), "contents that outlive the daemon");
}

TEST(DaemonLivenessTest, SigtermStopsCleanlyAndDeletesNothing) {
  Daemon daemon;
  std::string why;
  ASSERT_TRUE(daemon.Start(&why)) << why;
  {
    Client client = ConnectTo(daemon);
    v1::Ring ring;
    ring.set_kind(v1::RING_KIND_SPSC);
    ring.set_capacity_bytes(4096);
    ASSERT_TRUE(client.CreateRing("keep", ring).ok());
    Result<EventStream> events = client.WatchEvents();  // an open stream must not hold it up
    ASSERT_TRUE(events.ok());
    const int status = daemon.Stop();
    EXPECT_TRUE(ExitedWith(status, 0)) << DescribeStatus(status) << "\n" << daemon.Output();
  }
  EXPECT_EQ(daemon.CountObjectFiles(), 1);
  EXPECT_NE(access(daemon.socket_path().c_str(), F_OK), 0) << "the socket is removed";
}

}  // namespace
}  // namespace shmd
