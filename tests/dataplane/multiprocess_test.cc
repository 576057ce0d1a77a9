// Real processes (fork/exec of shmd_test_peer) on the data plane: volume, crashes with
// kill -9 at the worst moments, and reclaiming what a dead process held.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <memory>
#include <thread>

#include "common/message_pattern.h"
#include "common/peer_process.h"
#include "common/test_dir.h"
#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/broadcast_ring.h"
#include "shmd/dataplane/mpmc_ring.h"
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

// Two producer processes and two consumer processes share one MPMC ring. Every message
// carries its producer and sequence; each consumer checks contents and per-producer
// order, and reports a digest of what it got: the digests must add up to all messages.
TEST(MpmcProcessTest, TwoProducersTwoConsumersLoseNothing) {
  TestDir dir;
  ASSERT_TRUE(CreateMpmcRing(dir, "mpmc", {.slot_count = 1024, .max_message = 256}).ok());
  const uint64_t per_producer = testing::Scaled(5000000);
  const std::string total = std::to_string(2 * per_producer);
  PeerProcess c1(PeerArgs(dir, {"mpmc-consume", "mpmc", total, "256"}));
  PeerProcess c2(PeerArgs(dir, {"mpmc-consume", "mpmc", total, "256"}));
  ASSERT_NE(c1.WaitForLine("ready", 10s), "") << c1.Output();
  ASSERT_NE(c2.WaitForLine("ready", 10s), "") << c2.Output();
  PeerProcess p1(PeerArgs(dir, {"mpmc-produce", "mpmc", "1", std::to_string(per_producer), "256"}));
  PeerProcess p2(PeerArgs(dir, {"mpmc-produce", "mpmc", "2", std::to_string(per_producer), "256"}));
  ExpectClean(p1, 240s, "producer 1");
  ExpectClean(p2, 240s, "producer 2");
  std::string d1 = c1.WaitForLine("done", 240s), d2 = c2.WaitForLine("done", 240s);
  ExpectClean(c1, 10s, "consumer 1");
  ExpectClean(c2, 10s, "consumer 2");
  uint64_t n1 = 0, n2 = 0, g1 = 0, g2 = 0;
  ASSERT_EQ(std::sscanf(d1.c_str(), "done %lu %lu", &n1, &g1), 2) << d1;
  ASSERT_EQ(std::sscanf(d2.c_str(), "done %lu %lu", &n2, &g2), 2) << d2;
  EXPECT_EQ(n1 + n2, 2 * per_producer);
  uint64_t expected = 0;
  for (uint64_t stream : {1, 2}) {
    for (uint64_t seq = 0; seq < per_producer; ++seq) {
      expected += testing::SplitMix64(((stream << 40) | seq) ^ 0x5bd1e995);
    }
  }
  EXPECT_EQ(g1 + g2, expected) << "a message was lost or delivered twice";
  EXPECT_GT(n1, 0u);
  EXPECT_GT(n2, 0u);
}

// One publisher, three subscriber processes, a small ring: subscribers get lapped, and
// each accounts for every message exactly: delivered in order, or counted as lost.
TEST(BroadcastProcessTest, ThreeSubscribersAccountForEveryMessage) {
  TestDir dir;
  ASSERT_TRUE(CreateBroadcastRing(dir, "bc", {.slot_count = 256, .max_message = 256}).ok());
  const std::string count = std::to_string(testing::Scaled(10000000));
  std::vector<std::unique_ptr<PeerProcess>> subscribers;
  for (int i = 0; i < 3; ++i) {
    subscribers.push_back(
        std::make_unique<PeerProcess>(PeerArgs(dir, {"bcast-subscribe", "bc", "5", count, "256"})));
    ASSERT_NE(subscribers.back()->WaitForLine("ready", 10s), "") << subscribers.back()->Output();
  }
  PeerProcess publisher(PeerArgs(dir, {"bcast-publish", "bc", "5", count, "256"}));
  ExpectClean(publisher, 240s, "publisher");
  auto segment = Segment::Open(dir, "bc");
  ASSERT_TRUE(segment.ok());
  uint64_t lost_total = 0;
  for (auto& s : subscribers) {
    std::string done = s->WaitForLine("done", 240s);
    ExpectClean(*s, 10s, "subscriber");
    uint64_t delivered = 0, lost = 0;
    ASSERT_EQ(std::sscanf(done.c_str(), "done %lu %lu", &delivered, &lost), 2) << s->Output();
    EXPECT_EQ(std::to_string(delivered + lost), count);
    EXPECT_GT(delivered, 0u);
    lost_total += lost;
  }
  // What they reported is what the ring counted (folded into its totals as they left).
  EXPECT_EQ(SumEndpointCounter(*segment, layout::kCounterLapped, layout::EndpointRole::kConsumer),
            lost_total);
}

}  // namespace
}  // namespace shmd
