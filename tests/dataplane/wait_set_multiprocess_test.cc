// WaitSet with producers in other processes (wait_set_peer): 64 SPSC rings fed by 4
// processes of 16 rings each, sending with random gaps; the consumer here, with one
// WaitSet, receives every message of every ring exactly once and in order, then sees every
// producer leave (peer_gone). Once with WaitSet::Wait, once with poll(2) on the notify
// fd. And a producer killed with SIGKILL mid-stream is reported as gone.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/peer_process.h"
#include "common/test_dir.h"
#include "shmd/dataplane/spsc_ring.h"
#include "shmd/dataplane/wait_set.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using testing::PeerProcess;
using testing::Scaled;
using testing::TestDir;

constexpr uint32_t kRings = 64;
constexpr uint32_t kProcesses = 4;
constexpr uint32_t kRingsPerProcess = kRings / kProcesses;

template <class T>
T Must(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.error().message();
  if (!r.ok()) std::abort();
  return std::move(r).value();
}

std::unique_ptr<PeerProcess> StartPeer(const TestDir& dir, uint32_t first, uint32_t count,
                                       uint64_t messages, uint64_t seed, const char* mode) {
  auto peer = std::make_unique<PeerProcess>(std::vector<std::string>{
      SHMD_WAIT_SET_PEER, dir.dir().path, dir.dir().ns, "ring", std::to_string(first),
      std::to_string(count), std::to_string(messages), std::to_string(seed), mode});
  EXPECT_EQ(peer->WaitForLine("ready", 20s), "ready") << peer->Output();
  return peer;
}

// The consumer side: rings, their consumers, and what arrived.
struct Rings {
  explicit Rings(const TestDir& dir, uint32_t n) {
    for (uint32_t r = 0; r < n; ++r) {
      const std::string name = "ring" + std::to_string(r);
      Must(CreateSpscRing(dir, name, {.capacity = 4096}));  // small: producers fill it
      consumers.push_back(Must(SpscConsumer::Open(dir, name)));
    }
    received.assign(n, 0);
    gone.assign(n, false);
  }
  void AddTo(WaitSet& set) {
    for (uint32_t r = 0; r < consumers.size(); ++r) {
      ASSERT_TRUE(set.Add(Must(WaitSourceOf(consumers[r])), r).ok());
    }
  }
  // Receives all that ring r holds, checking that message i of ring r comes i-th.
  void Drain(uint32_t r) {
    uint32_t payload[2];
    size_t size = 0;
    for (;;) {
      Status s =
          consumers[r].TryReceive({reinterpret_cast<std::byte*>(payload), sizeof payload}, &size);
      if (s == Status::kEmpty || s == Status::kPeerGone) return;
      ASSERT_EQ(s, Status::kOk) << StatusName(s);
      ASSERT_EQ(size, sizeof payload);
      ASSERT_EQ(payload[0], r);
      ASSERT_EQ(payload[1], received[r]) << "ring " << r << ": out of order or duplicated";
      ++received[r];
    }
  }
  // Handles events: drain what is readable; a ring whose producer left and that is drained
  // is finished (removed from the set).
  void Handle(WaitSet& set, const std::vector<WaitEvent>& events) {
    for (const WaitEvent& e : events) {
      const auto r = static_cast<uint32_t>(e.tag);
      ASSERT_FALSE(e.closed);
      Drain(r);
      // "gone" was judged before "readable" was read: messages published before the
      // producer left are all visible to the drain above.
      if (e.peer_gone) {
        gone[r] = true;
        ASSERT_TRUE(set.Remove(r));
      }
    }
  }

  std::vector<SpscConsumer> consumers;
  std::vector<uint64_t> received;
  std::vector<bool> gone;
};

struct Producers {
  Producers(const TestDir& dir, uint64_t messages) {
    for (uint32_t p = 0; p < kProcesses; ++p) {
      peers.push_back(
          StartPeer(dir, p * kRingsPerProcess, kRingsPerProcess, messages, 1234 + p, "exit"));
    }
  }
  void ExpectCleanExit() {
    for (auto& peer : peers) {
      int status = peer->Wait(30s);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << peer->Output();
    }
  }
  std::vector<std::unique_ptr<PeerProcess>> peers;
};

TEST(WaitSetProcessTest, SixtyFourRingsThroughWait) {
  TestDir dir;
  Rings rings(dir, kRings);
  WaitSet set;
  rings.AddTo(set);
  const uint64_t messages = Scaled(3000);
  Producers producers(dir, messages);
  ASSERT_FALSE(::testing::Test::HasFailure()) << "a producer did not start";
  std::vector<WaitEvent> events;
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (set.size() > 0 && std::chrono::steady_clock::now() < deadline) {
    Status s = set.Wait(1s, &events);
    ASSERT_TRUE(s == Status::kOk || s == Status::kTimeout) << StatusName(s);
    rings.Handle(set, events);
    if (::testing::Test::HasFatalFailure()) return;
  }
  ASSERT_EQ(set.size(), 0u) << "timed out";
  for (uint32_t r = 0; r < kRings; ++r) {
    EXPECT_EQ(rings.received[r], messages) << "ring " << r;
    EXPECT_TRUE(rings.gone[r]) << "ring " << r;
  }
  producers.ExpectCleanExit();
  EXPECT_GT(set.sleeps(), 0u);  // it did sleep in futex_waitv, not only spin
}

TEST(WaitSetProcessTest, SixtyFourRingsThroughPollOnTheNotifyFd) {
  TestDir dir;
  Rings rings(dir, kRings);
  WaitSet set;
  rings.AddTo(set);
  const int fd = Must(set.NotifyFd());
  const uint64_t messages = Scaled(3000);
  Producers producers(dir, messages);
  ASSERT_FALSE(::testing::Test::HasFailure()) << "a producer did not start";
  std::vector<WaitEvent> events;
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  uint64_t wakeups = 0;
  while (set.size() > 0 && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int n = poll(&p, 1, 1000);
    ASSERT_GE(n, 0) << std::strerror(errno);
    if (n == 0) continue;
    ++wakeups;
    // The loop's usual pattern: learn which sources (a zero-timeout Wait, no sleep),
    // drain them, re-arm.
    Status s = set.Wait(Nanos::zero(), &events);
    ASSERT_TRUE(s == Status::kOk || s == Status::kTimeout) << StatusName(s);
    rings.Handle(set, events);
    if (::testing::Test::HasFatalFailure()) return;
    set.Rearm();
  }
  ASSERT_EQ(set.size(), 0u) << "timed out";
  for (uint32_t r = 0; r < kRings; ++r) {
    EXPECT_EQ(rings.received[r], messages) << "ring " << r;
    EXPECT_TRUE(rings.gone[r]) << "ring " << r;
  }
  producers.ExpectCleanExit();
  EXPECT_GT(wakeups, 0u);
  EXPECT_GE(set.notifications(), wakeups);
}

TEST(WaitSetProcessTest, ProducerKilledMidStreamIsReportedGone) {
  TestDir dir;
  constexpr uint32_t kCount = 4;
  Rings rings(dir, kCount);
  WaitSet set;
  rings.AddTo(set);
  // Far more than it can send before the kill: it is killed while sending.
  auto peer = StartPeer(dir, 0, kCount, 100000000, 99, "exit");
  ASSERT_FALSE(::testing::Test::HasFailure()) << "the producer did not start";
  std::vector<WaitEvent> events;
  auto deadline = std::chrono::steady_clock::now() + 60s;
  uint64_t total = 0;
  while (total < Scaled(2000) && std::chrono::steady_clock::now() < deadline) {
    Status s = set.Wait(1s, &events);
    ASSERT_TRUE(s == Status::kOk || s == Status::kTimeout) << StatusName(s);
    rings.Handle(set, events);
    if (::testing::Test::HasFatalFailure()) return;
    total = 0;
    for (uint64_t n : rings.received) total += n;
  }
  ASSERT_GE(total, Scaled(2000)) << peer->Output();
  ASSERT_EQ(set.size(), kCount) << "a ring was reported gone while its producer ran";
  peer->Kill(SIGKILL);
  EXPECT_NE(peer->Wait(10s), -1);
  // Nobody wakes the set for a killed process: it finds out at a sleep slice.
  deadline = std::chrono::steady_clock::now() + 30s;
  while (set.size() > 0 && std::chrono::steady_clock::now() < deadline) {
    Status s = set.Wait(1s, &events);
    ASSERT_TRUE(s == Status::kOk || s == Status::kTimeout) << StatusName(s);
    rings.Handle(set, events);
    if (::testing::Test::HasFatalFailure()) return;
  }
  for (uint32_t r = 0; r < kCount; ++r) EXPECT_TRUE(rings.gone[r]) << "ring " << r;
}

}  // namespace
}  // namespace shmd
