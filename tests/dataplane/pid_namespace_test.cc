// Peers in other pid namespaces, as the containers of one Kubernetes pod are (without
// shareProcessNamespace): their pids mean nothing here, so only their liveness locks can
// tell whether they still run. Each peer (shmd_test_peer) is started as pid 1 of a pid
// namespace of its own, attaches, and is killed with SIGKILL; nobody may hang and no
// block may be lost. Making a pid namespace needs CAP_SYS_ADMIN: without it, the tests
// skip and say so.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "common/peer_process.h"
#include "common/test_dir.h"
#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/endpoints.h"
#include "shmd/dataplane/spsc_ring.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using layout::EndpointRole;
using testing::KillWhileBlocked;
using testing::PeerProcess;
using testing::TestDir;

std::unique_ptr<PeerProcess> StartInOwnPidNamespace(const TestDir& dir,
                                                    std::vector<std::string> rest) {
  std::vector<std::string> args = {SHMD_TEST_PEER, rest[0], dir.dir().path, dir.dir().ns};
  args.insert(args.end(), rest.begin() + 1, rest.end());
  return std::make_unique<PeerProcess>(args, testing::SpawnOptions{.new_pid_namespace = true});
}

#define SKIP_WITHOUT_PID_NAMESPACES(peer)                                                  \
  if ((peer)->spawn_error() != 0) {                                                        \
    GTEST_SKIP() << "cannot start a process in a new pid namespace (clone(CLONE_NEWPID): " \
                 << std::strerror((peer)->spawn_error())                                   \
                 << "); these tests need CAP_SYS_ADMIN, e.g. root";                        \
  }

// The live slot of `role`, or kMaxEndpoints.
uint32_t SlotOf(const Segment& segment, EndpointRole role) {
  for (uint32_t i = 0; i < layout::kMaxEndpoints; ++i) {
    const auto& slot = segment.endpoints().slots[i];
    if (slot.state.load() == static_cast<uint32_t>(layout::EndpointState::kLive) &&
        slot.role.load() == static_cast<uint32_t>(role)) {
      return i;
    }
  }
  return layout::kMaxEndpoints;
}

TEST(PidNamespaceTest, AProducerBlockedOnAFullRingHearsOfItsKilledConsumer) {
  TestDir dir;
  ASSERT_TRUE(CreateSpscRing(dir, "blocked", {.capacity = 4096}).ok());
  auto consumer = StartInOwnPidNamespace(dir, {"spsc-idle", "blocked"});
  SKIP_WITHOUT_PID_NAMESPACES(consumer);
  ASSERT_NE(consumer->WaitForLine("attached", 10s), "") << consumer->Output();
  auto producer = SpscProducer::Open(dir, "blocked");
  ASSERT_TRUE(producer.ok()) << producer.error().message();
  const Segment& segment = producer->segment();

  // A live consumer of another pid namespace: judged by its lock, and alive.
  const uint32_t slot = SlotOf(segment, EndpointRole::kConsumer);
  ASSERT_LT(slot, layout::kMaxEndpoints);
  EXPECT_NE(segment.endpoints().slots[slot].pid_namespace.load(), OwnPidNamespace());
  EXPECT_TRUE(layout::LivenessLockHeld(segment.endpoints().slots[slot].liveness.load(),
                                       segment.endpoints().slots[slot].incarnation.load()));
  EXPECT_EQ(EndpointLiveness(segment, slot), Liveness::kAlive);

  // Fill the ring: while the consumer lives, a full ring only times out.
  std::vector<std::byte> message(500);
  while (producer->TrySend(message) == Status::kOk) {
  }
  EXPECT_EQ(producer->SendFor(message, 300ms), Status::kTimeout)
      << "a live consumer in another pid namespace was taken for dead";
  EXPECT_EQ(ClearDeadEndpoints(segment), 0u);

  // Blocked in SendFor, the producer must hear of the kill (within a sleep slice), not
  // wait out its timeout.
  const Status sent = KillWhileBlocked(*consumer, [&] { return producer->SendFor(message, 10s); });
  EXPECT_EQ(sent, Status::kPeerGone) << StatusName(sent);
  EXPECT_EQ(segment.header_page().totals.endpoints_cleared.load(), 1u);
  EXPECT_EQ(segment.endpoints().slots[slot].state.load(),
            static_cast<uint32_t>(layout::EndpointState::kFree));

  // The dead consumer's role is free: a new one attaches and finds the messages.
  auto next = SpscConsumer::Open(dir, "blocked");
  ASSERT_TRUE(next.ok()) << next.error().message();
  MessageView m;
  EXPECT_EQ(next->TryPeek(&m), Status::kOk);
}

TEST(PidNamespaceTest, AConsumerBlockedInReceiveHearsOfItsKilledProducer) {
  TestDir dir;
  ASSERT_TRUE(CreateSpscRing(dir, "stall", {.capacity = 1 << 16}).ok());
  auto producer = StartInOwnPidNamespace(dir, {"spsc-stall", "stall", "9", "10", "100"});
  SKIP_WITHOUT_PID_NAMESPACES(producer);
  ASSERT_NE(producer->WaitForLine("stalled", 10s), "") << producer->Output();
  auto consumer = SpscConsumer::Open(dir, "stall");
  ASSERT_TRUE(consumer.ok()) << consumer.error().message();
  std::vector<std::byte> buffer(100);
  size_t size = 0;
  for (int i = 0; i < 10; ++i) ASSERT_EQ(consumer->ReceiveFor(buffer, &size, 5s), Status::kOk) << i;
  // It lives (half-way through a message): a wait only times out.
  EXPECT_EQ(consumer->ReceiveFor(buffer, &size, 300ms), Status::kTimeout);

  const Status received =
      KillWhileBlocked(*producer, [&] { return consumer->ReceiveFor(buffer, &size, 10s); });
  EXPECT_EQ(received, Status::kPeerGone) << StatusName(received);
}

TEST(PidNamespaceTest, BlocksOfAKilledHolderInAnotherNamespaceAreReclaimed) {
  TestDir dir;
  auto created = CreateBlockPool(dir, "hold", {.block_size = 64, .block_count = 8});
  ASSERT_TRUE(created.ok());
  auto holder = StartInOwnPidNamespace(dir, {"pool-hold", "hold", "6"});
  SKIP_WITHOUT_PID_NAMESPACES(holder);
  ASSERT_NE(holder->WaitForLine("held 6", 10s), "") << holder->Output();
  const uint32_t slot = SlotOf(*created, EndpointRole::kProducer);
  ASSERT_LT(slot, layout::kMaxEndpoints);
  EXPECT_EQ(EndpointLiveness(*created, slot), Liveness::kAlive);
  EXPECT_EQ(ClearDeadEndpoints(*created), 0u) << "it still runs";
  EXPECT_EQ(PoolBlocksInUse(*created), 6u);

  holder->Kill(SIGKILL);
  holder->Wait(5s);
  EXPECT_EQ(EndpointLiveness(*created, slot), Liveness::kDead);
  EXPECT_EQ(ClearDeadEndpoints(*created), 1u);
  EXPECT_EQ(created->header_page().totals.reclaimed_blocks.load(), 6u);
  EXPECT_EQ(PoolBlocksInUse(*created), 0u);
  auto pool = BlockPool::Open(dir, "hold");
  ASSERT_TRUE(pool.ok());
  Block b;
  for (int i = 0; i < 8; ++i) ASSERT_EQ(pool->TryAllocate(&b), Status::kOk) << i;
}

}  // namespace
}  // namespace shmd
