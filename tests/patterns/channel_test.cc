// Channel (api/include/shmd/client/channel.h): loans and copies, zero-copy delivery,
// back-pressure, bad records, and real processes that stream, hold blocks, and die.
#include "shmd/client/channel.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "common/message_pattern.h"
#include "common/peer_process.h"
#include "common/test_dir.h"
#include "shmd/dataplane/endpoints.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using testing::PeerProcess;
using testing::TestDir;

std::span<const std::byte> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
std::string Text(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

class ChannelTest : public ::testing::Test {
 protected:
  void Make(ChannelSpec spec) {
    ASSERT_TRUE(CreateChannel(dir_, "ch", spec).ok());
    auto tx = ChannelSender::Open(dir_, "ch");
    ASSERT_TRUE(tx.ok()) << tx.error().message();
    tx_.emplace(std::move(tx).value());
    auto rx = ChannelReceiver::Open(dir_, "ch");
    ASSERT_TRUE(rx.ok()) << rx.error().message();
    rx_.emplace(std::move(rx).value());
  }
  uint64_t BlocksInUse() {
    auto pool = Segment::Open(dir_, ChannelPoolName("ch"));
    return pool.ok() ? PoolBlocksInUse(*pool) : ~uint64_t{0};
  }

  TestDir dir_;
  std::optional<ChannelSender> tx_;
  std::optional<ChannelReceiver> rx_;
};

TEST(ChannelSpecTest, BadSpecsAreClearErrors) {
  TestDir dir;
  auto bad = [&](ChannelSpec spec, const char* says) {
    VoidResult r = CreateChannel(dir, "ch", spec);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(says), std::string::npos) << r.error().message();
  };
  bad({.max_message = 0}, "max_message");
  bad({.depth = 0}, "depth");
  bad({.inline_max = 4096}, "inline_max");
  EXPECT_EQ(dir.CountFiles(), 0);  // nothing half-made
  EXPECT_FALSE(ChannelSender::Open(dir, "missing").ok());
}

TEST(ChannelSpecTest, GeometryHoldsDepthRecords) {
  auto g = ChannelGeometryFor({.max_message = 1000, .depth = 64, .inline_max = 256});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->pool.block_size, 1024u);  // rounded up to 64
  EXPECT_EQ(g->pool.block_count, 64u);
  EXPECT_GE(g->ring.capacity, 65u * layout::RecordSize(8 + 256));
  EXPECT_EQ(g->ring.max_message, 8u + 256u);
}

TEST_F(ChannelTest, SmallSendsAreInlineLoansAreZeroCopy) {
  Make({.max_message = 64 * 1024, .depth = 8});
  ASSERT_EQ(tx_->Send(Bytes("hello")), Status::kOk);
  ChannelLoan loan;
  ASSERT_EQ(tx_->Loan(50000, &loan), Status::kOk);
  std::memset(loan.bytes().data(), 'x', loan.size());
  ASSERT_EQ(tx_->Publish(std::move(loan), 0ns, 40000), Status::kOk);  // a shorter length
  EXPECT_FALSE(loan.valid());

  ChannelMessage first, second;
  ASSERT_EQ(rx_->Receive(&first), Status::kOk);
  EXPECT_EQ(Text(first.bytes()), "hello");
  EXPECT_FALSE(first.zero_copy());
  ASSERT_EQ(rx_->Receive(&second), Status::kOk);
  EXPECT_TRUE(second.zero_copy());
  EXPECT_EQ(second.size(), 40000u);
  EXPECT_EQ(second.bytes()[39999], std::byte{'x'});
  EXPECT_EQ(rx_->Receive(&first), Status::kEmpty);
  EXPECT_EQ(BlocksInUse(), 1u);  // `second` still holds its block
  second.Reset();
  EXPECT_EQ(BlocksInUse(), 0u);
}

TEST_F(ChannelTest, ReceiverHoldingBlocksThrottlesLoans) {
  Make({.max_message = 4096, .depth = 4, .inline_max = 0});
  std::vector<ChannelMessage> held(4);
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(tx_->Send(Bytes("loaned block " + std::to_string(i))), Status::kOk);
  }
  ChannelLoan loan;
  EXPECT_EQ(tx_->Loan(10, &loan), Status::kFull);
  EXPECT_EQ(tx_->Loan(10, &loan, 20ms), Status::kTimeout);
  for (auto& m : held) ASSERT_EQ(rx_->Receive(&m), Status::kOk);
  EXPECT_EQ(tx_->Loan(10, &loan), Status::kFull);  // received but still held
  held[2].Reset();
  ASSERT_EQ(tx_->Loan(10, &loan), Status::kOk);
  loan.Reset();  // dropped unpublished: back in the pool
  EXPECT_EQ(BlocksInUse(), 3u);
  EXPECT_EQ(Text(held[3].bytes()), "loaned block 3");
}

TEST_F(ChannelTest, MisuseIsRefused) {
  Make({.max_message = 1000, .depth = 2});
  ChannelLoan loan;
  EXPECT_EQ(tx_->Loan(0, &loan), Status::kInvalidArgument);
  EXPECT_EQ(tx_->Loan(1025, &loan), Status::kTooLarge);                // block size is 1024
  EXPECT_EQ(tx_->Publish(std::move(loan)), Status::kInvalidArgument);  // never loaned
  EXPECT_EQ(tx_->Send({}), Status::kInvalidArgument);
  std::vector<std::byte> big(1025);
  EXPECT_EQ(tx_->Send(big), Status::kTooLarge);
  ASSERT_EQ(tx_->Loan(100, &loan), Status::kOk);
  EXPECT_EQ(tx_->Publish(std::move(loan), 0ns, 101), Status::kTooLarge);
  EXPECT_TRUE(loan.valid());  // still the caller's
}

TEST_F(ChannelTest, CopyOutWaitsForABufferThatFits) {
  Make({.max_message = 8192, .depth = 4});
  std::string large(5000, 'L');
  ASSERT_EQ(tx_->Send(Bytes("tiny")), Status::kOk);
  ASSERT_EQ(tx_->Send(Bytes(large)), Status::kOk);
  std::vector<std::byte> small(16), wide(8192);
  size_t size = 0;
  ASSERT_EQ(rx_->Receive(small, &size), Status::kOk);
  EXPECT_EQ(Text({small.data(), size}), "tiny");
  EXPECT_EQ(rx_->Receive(small, &size), Status::kTooLarge);
  EXPECT_EQ(size, 5000u);
  ASSERT_EQ(rx_->Receive(wide, &size), Status::kOk);  // the same message, now it fits
  EXPECT_EQ(Text({wide.data(), size}), large);
  EXPECT_EQ(BlocksInUse(), 0u);
}

TEST_F(ChannelTest, RecordsThatAreNotChannelMessagesAreSkipped) {
  ASSERT_TRUE(CreateChannel(dir_, "ch", {.max_message = 4096, .depth = 8}).ok());
  auto rx = ChannelReceiver::Open(dir_, "ch");
  ASSERT_TRUE(rx.ok());
  {
    // A raw producer writes what a channel sender never would.
    auto raw = SpscProducer::Open(dir_, ChannelRingName("ch"));
    ASSERT_TRUE(raw.ok());
    ASSERT_EQ(raw->TrySend(Bytes("short")), Status::kOk);  // no frame
    ChannelFrame lying{kChannelInline, 999};               // wrong length
    ASSERT_EQ(raw->TrySend(&lying, sizeof lying), Status::kOk);
    struct {
      ChannelFrame frame;
      layout::BlockDescriptor d;
    } stray{{kChannelBlock, 10}, {3, 10}};  // a block that was never handed off
    ASSERT_EQ(raw->TrySend(&stray, sizeof stray), Status::kOk);
    stray.d = {1000, 10};  // out of range
    ASSERT_EQ(raw->TrySend(&stray, sizeof stray), Status::kOk);
  }
  ChannelMessage m;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rx->Receive(&m), Status::kCorrupted) << i;
  auto tx = ChannelSender::Open(dir_, "ch");
  ASSERT_TRUE(tx.ok()) << tx.error().message();
  ASSERT_EQ(tx->Send(Bytes("fine")), Status::kOk);
  ASSERT_EQ(rx->Receive(&m), Status::kOk);
  EXPECT_EQ(Text(m.bytes()), "fine");
}

TEST_F(ChannelTest, SenderLeavingEndsTheStreamAfterTheDrain) {
  Make({.max_message = 4096, .depth = 8});
  ASSERT_EQ(tx_->Send(Bytes("last words")), Status::kOk);
  tx_.reset();
  ChannelMessage m;
  ASSERT_EQ(rx_->Receive(&m, 1s), Status::kOk);
  EXPECT_EQ(Text(m.bytes()), "last words");
  EXPECT_EQ(rx_->Receive(&m, 5s), Status::kPeerGone);
}

// --- across processes -----------------------------------------------------------------

PeerProcess StartPeer(const TestDir& dir, std::vector<std::string> args) {
  std::vector<std::string> argv = {SHMD_PATTERN_PEER, args[0], dir.dir().path, dir.dir().ns};
  argv.insert(argv.end(), args.begin() + 1, args.end());
  return PeerProcess(argv);
}

TEST(ChannelMultiprocessTest, EveryMessageArrivesIntactAndInOrder) {
  TestDir dir;
  const uint32_t max_size = 64 * 1024;
  ASSERT_TRUE(CreateChannel(dir, "ch", {.max_message = max_size, .depth = 32}).ok());
  auto rx = ChannelReceiver::Open(dir, "ch");
  ASSERT_TRUE(rx.ok());
  const uint64_t count = testing::Scaled(200'000);
  PeerProcess sender =
      StartPeer(dir, {"send", "ch", std::to_string(count), std::to_string(max_size)});
  ChannelMessage m;
  uint64_t zero_copy = 0;
  for (uint64_t seq = 0; seq < count; ++seq) {
    Status s = rx->Receive(&m, 30s);
    ASSERT_EQ(s, Status::kOk) << "message " << seq << ": " << StatusName(s) << "\n"
                              << sender.Output();
    const uint32_t size = testing::PatternSize(1, seq, max_size);
    std::string wrong = testing::CheckPattern(1, seq, size, m.bytes());
    ASSERT_EQ(wrong, "") << sender.Output();
    zero_copy += m.zero_copy();
  }
  EXPECT_GT(zero_copy, 0u);
  EXPECT_LT(zero_copy, count);  // both paths were used
  EXPECT_EQ(rx->Receive(&m, 30s), Status::kPeerGone);
  EXPECT_EQ(sender.Wait(10s), 0) << sender.Output();
}

TEST(ChannelMultiprocessTest, BlocksOfAKilledReceiverComeBack) {
  TestDir dir;
  ASSERT_TRUE(CreateChannel(dir, "ch", {.max_message = 4096, .depth = 4, .inline_max = 0}).ok());
  auto tx = ChannelSender::Open(dir, "ch");
  ASSERT_TRUE(tx.ok());
  for (int i = 0; i < 4; ++i)
    ASSERT_EQ(tx->Send(Bytes("held message " + std::to_string(i))), Status::kOk);
  PeerProcess holder = StartPeer(dir, {"hold", "ch", "3"});
  ASSERT_NE(holder.WaitForLine("holding", 10s), "") << holder.Output();
  ChannelLoan loan;
  EXPECT_EQ(tx->Loan(10, &loan), Status::kFull);  // 3 held, 1 still in the ring
  holder.Kill();
  holder.Wait(5s);
  // Whoever finds the receiver dead (the daemon, or here the sender's side) clears it.
  auto pool = Segment::Open(dir, ChannelPoolName("ch"));
  ASSERT_TRUE(pool.ok());
  EXPECT_GE(ClearDeadEndpoints(*pool), 1u);
  ASSERT_EQ(tx->Loan(10, &loan), Status::kOk);
  loan.Reset();
  // A new receiver takes over and reads what the dead one had not taken.
  auto rx = ChannelReceiver::Open(dir, "ch");
  ASSERT_TRUE(rx.ok()) << rx.error().message();
  ChannelMessage m;
  ASSERT_EQ(rx->Receive(&m, 5s), Status::kOk);
  EXPECT_EQ(Text(m.bytes()), "held message 3");
}

TEST(ChannelMultiprocessTest, KilledSenderLeavesOnlyWholeMessages) {
  TestDir dir;
  ASSERT_TRUE(CreateChannel(dir, "ch", {.max_message = 8192, .depth = 16}).ok());
  auto rx = ChannelReceiver::Open(dir, "ch");
  ASSERT_TRUE(rx.ok());
  PeerProcess sender = StartPeer(dir, {"send", "ch", "100000000", "8192"});
  ASSERT_NE(sender.WaitForLine("ready", 10s), "") << sender.Output();
  ChannelMessage m;
  uint64_t seq = 0;
  for (; seq < 1000; ++seq) ASSERT_EQ(rx->Receive(&m, 10s), Status::kOk);
  sender.Kill();
  sender.Wait(5s);
  Status s;
  while ((s = rx->Receive(&m, 10s)) == Status::kOk) {
    ASSERT_EQ(testing::CheckPattern(1, seq, testing::PatternSize(1, seq, 8192), m.bytes()), "");
    ++seq;
  }
  EXPECT_EQ(s, Status::kPeerGone);
}

}  // namespace
}  // namespace shmd
