// Real processes (fork/exec of shmd_test_peer) on the data plane: volume, crashes with
// kill -9 at the worst moments, and reclaiming what a dead process held.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "common/message_pattern.h"
#include "common/peer_process.h"
#include "common/test_dir.h"
#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/spsc_ring.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using testing::DescribeStatus;
using testing::ExitedWith;
using testing::PeerProcess;
using testing::TestDir;

std::vector<std::string> PeerArgs(const TestDir& dir, std::vector<std::string> rest) {
  std::vector<std::string> args = {SHMD_TEST_PEER, rest[0], dir.dir().path, dir.dir().ns};
  args.insert(args.end(), rest.begin() + 1, rest.end());
  return args;
}

void ExpectClean(PeerProcess& peer, std::chrono::seconds timeout, const char* who) {
  int status = peer.Wait(timeout);
  EXPECT_TRUE(ExitedWith(status, 0)) << who << " " << DescribeStatus(status) << "\n"
                                     << peer.Output();
}

struct Volume {
  const char* name;
  uint64_t capacity;
  uint32_t max;
  const char* producer_mode;
  const char* consumer_mode;
};

class SpscVolumeTest : public ::testing::TestWithParam<Volume> {};

// Ten million messages of random sizes between two processes, each checked byte by byte.
TEST_P(SpscVolumeTest, TenMillionMessagesArriveIntact) {
  const Volume v = GetParam();
  TestDir dir;
  ASSERT_TRUE(CreateSpscRing(dir, "volume", {.capacity = v.capacity}).ok());
  const std::string count = std::to_string(testing::Scaled(10000000));
  PeerProcess consumer(PeerArgs(
      dir, {"spsc-consume", "volume", "7", count, std::to_string(v.max), v.consumer_mode}));
  ASSERT_NE(consumer.WaitForLine("ready", 10s), "") << consumer.Output();
  PeerProcess producer(PeerArgs(
      dir, {"spsc-produce", "volume", "7", count, std::to_string(v.max), v.producer_mode}));
  ExpectClean(producer, 240s, "producer");
  ExpectClean(consumer, 240s, "consumer");
  EXPECT_NE(consumer.Output().find("done " + count), std::string::npos) << consumer.Output();
}

INSTANTIATE_TEST_SUITE_P(Modes, SpscVolumeTest,
                         ::testing::Values(Volume{"blocking", 1 << 20, 4096, "plain", "plain"},
                                           Volume{"batched_small_ring", 1 << 14, 2048, "batch",
                                                  "plain"}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(SpscCrashTest, ProducerKilledMidWriteExposesOnlyCompleteMessages) {
  TestDir dir;
  ASSERT_TRUE(CreateSpscRing(dir, "crash", {.capacity = 1 << 16}).ok());
  PeerProcess producer(PeerArgs(dir, {"spsc-stall", "crash", "9", "40", "1000"}));
  ASSERT_NE(producer.WaitForLine("stalled", 10s), "") << producer.Output();
  producer.Kill(SIGKILL);
  producer.Wait(5s);
  auto consumer = SpscConsumer::Open(dir, "crash");
  ASSERT_TRUE(consumer.ok());
  for (uint64_t seq = 0; seq < 40; ++seq) {
    MessageView m;
    ASSERT_EQ(consumer->PeekFor(&m, 5s), Status::kOk) << seq;
    ASSERT_EQ(testing::CheckPattern(9, seq, testing::PatternSize(9, seq, 1000), m.bytes()), "");
    consumer->Release();
  }
  MessageView m;
  EXPECT_EQ(consumer->PeekFor(&m, 5s), Status::kPeerGone)
      << "the half-written message must never appear, and the wait must not hang";
}

TEST(SpscCrashTest, ProducerKilledAtRandomMomentsNeverCorrupts) {
  TestDir dir;
  ASSERT_TRUE(CreateSpscRing(dir, "flood", {.capacity = 1 << 15}).ok());
  auto consumer = SpscConsumer::Open(dir, "flood");
  ASSERT_TRUE(consumer.ok());
  uint64_t seq = 0;
  for (int round = 0; round < 5; ++round) {
    // Each round a new producer continues the stream where the dead one stopped.
    PeerProcess producer(
        PeerArgs(dir, {"spsc-flood", "flood", std::to_string(100 + round), "4000"}));
    ASSERT_NE(producer.WaitForLine("ready", 10s), "") << producer.Output();
    uint64_t round_seq = 0;
    auto kill_at = Clock::now() + std::chrono::milliseconds(20 + round * 15);
    bool killed = false;
    for (;;) {
      if (!killed && Clock::now() >= kill_at) {
        producer.Kill(SIGKILL);
        killed = true;
      }
      MessageView m;
      Status s = consumer->PeekFor(&m, 5s);
      if (s == Status::kPeerGone) break;
      ASSERT_EQ(s, Status::kOk);
      const uint64_t stream = 100 + round;
      ASSERT_EQ(testing::CheckPattern(stream, round_seq,
                                      testing::PatternSize(stream, round_seq, 4000), m.bytes()),
                "")
          << "round " << round;
      consumer->Release();
      ++round_seq;
      ++seq;
    }
    EXPECT_GT(round_seq, 0u);
  }
  EXPECT_GT(seq, 0u);
}

TEST(SpscCrashTest, ConsumerKilledWhileBlockedIsNoticedByTheProducer) {
  TestDir dir;
  ASSERT_TRUE(CreateSpscRing(dir, "blocked", {.capacity = 4096}).ok());
  PeerProcess consumer(PeerArgs(dir, {"spsc-block", "blocked"}));
  ASSERT_NE(consumer.WaitForLine("waiting", 10s), "") << consumer.Output();
  std::this_thread::sleep_for(50ms);  // let it fall asleep on the futex
  consumer.Kill(SIGKILL);
  consumer.Wait(5s);
  auto producer = SpscProducer::Open(dir, "blocked");
  ASSERT_TRUE(producer.ok());
  std::vector<std::byte> message(500);
  Status s = Status::kOk;
  for (int i = 0; i < 100 && s == Status::kOk; ++i) s = producer->SendFor(message, 10s);
  EXPECT_EQ(s, Status::kPeerGone) << "a full ring whose consumer died must not block forever";
  // The dead consumer's slot was cleared: a new consumer may attach and drain.
  auto next = SpscConsumer::Open(dir, "blocked");
  ASSERT_TRUE(next.ok()) << next.error().message();
  MessageView m;
  EXPECT_EQ(next->TryPeek(&m), Status::kOk);
}

TEST(PoolProcessTest, TwoProcessesNeverGetTheSameBlock) {
  TestDir dir;
  auto pool = CreateBlockPool(dir, "churn", {.block_size = 256, .block_count = 16});
  ASSERT_TRUE(pool.ok());
  const std::string iterations = std::to_string(testing::Scaled(1000000));
  PeerProcess a(PeerArgs(dir, {"pool-churn", "churn", "1", iterations}));
  PeerProcess b(PeerArgs(dir, {"pool-churn", "churn", "2", iterations}));
  ExpectClean(a, 240s, "peer 1");
  ExpectClean(b, 240s, "peer 2");
  EXPECT_EQ(PoolBlocksInUse(*pool), 0u);
}

TEST(PoolProcessTest, BlocksOfAKilledHolderAreReclaimed) {
  TestDir dir;
  auto created = CreateBlockPool(dir, "hold", {.block_size = 64, .block_count = 8});
  ASSERT_TRUE(created.ok());
  PeerProcess holder(PeerArgs(dir, {"pool-hold", "hold", "6"}));
  ASSERT_NE(holder.WaitForLine("held 6", 10s), "") << holder.Output();
  EXPECT_EQ(PoolBlocksInUse(*created), 6u);
  holder.Kill(SIGKILL);
  holder.Wait(5s);
  auto pool = BlockPool::Open(dir, "hold");
  ASSERT_TRUE(pool.ok());
  Block b;
  for (int i = 0; i < 2; ++i) ASSERT_EQ(pool->TryAllocate(&b), Status::kOk);
  EXPECT_EQ(pool->TryAllocate(&b), Status::kFull) << "the dead holder still has 6";
  EXPECT_EQ(ClearDeadEndpoints(*created), 1u);
  EXPECT_EQ(created->header_page().totals.reclaimed_blocks.load(), 6u);
  for (int i = 0; i < 6; ++i) ASSERT_EQ(pool->TryAllocate(&b), Status::kOk) << i;
}

}  // namespace
}  // namespace shmd
