#include "shmd/dataplane/spsc_ring.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/message_pattern.h"
#include "common/test_dir.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using testing::TestDir;

std::span<const std::byte> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
std::string Text(MessageView m) { return {reinterpret_cast<const char*>(m.data), m.size}; }

class SpscRingTest : public ::testing::Test {
 protected:
  void Make(uint64_t capacity, uint32_t max_message = 0) {
    auto ring = CreateSpscRing(dir_, "ring", {.capacity = capacity, .max_message = max_message});
    ASSERT_TRUE(ring.ok()) << ring.error().message();
    segment_ = std::make_shared<Segment>(std::move(ring).value());
    auto p = SpscProducer::Open(dir_, "ring");
    ASSERT_TRUE(p.ok()) << p.error().message();
    producer_.emplace(std::move(p).value());
    auto c = SpscConsumer::Open(dir_, "ring");
    ASSERT_TRUE(c.ok()) << c.error().message();
    consumer_.emplace(std::move(c).value());
  }
  layout::SpscControl& control() { return segment_->control<layout::SpscControl>(); }
  // A new consumer in place of the one Make attached (which detaches first).
  void ReattachConsumer() {
    consumer_.reset();
    auto c = SpscConsumer::Open(dir_, "ring");
    ASSERT_TRUE(c.ok()) << c.error().message();
    consumer_.emplace(std::move(c).value());
  }

  TestDir dir_;
  std::shared_ptr<Segment> segment_;
  std::optional<SpscProducer> producer_;
  std::optional<SpscConsumer> consumer_;
};

TEST_F(SpscRingTest, RoundTripAndEmpty) {
  Make(4096);
  MessageView m;
  EXPECT_EQ(consumer_->TryPeek(&m), Status::kEmpty);
  ASSERT_EQ(producer_->TrySend(Bytes("hello")), Status::kOk);
  ASSERT_EQ(producer_->TrySend(Bytes("world!")), Status::kOk);
  ASSERT_EQ(consumer_->TryPeek(&m), Status::kOk);
  EXPECT_EQ(Text(m), "hello");
  consumer_->Release();
  std::vector<std::byte> buffer(64);
  size_t size = 0;
  ASSERT_EQ(consumer_->TryReceive(buffer, &size), Status::kOk);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer.data()), size), "world!");
  EXPECT_EQ(consumer_->TryPeek(&m), Status::kEmpty);
  EXPECT_EQ(control().messages_written.load(), 2u);
  EXPECT_EQ(control().messages_read.load(), 2u);
  EXPECT_EQ(control().bytes_written.load(), 11u);
  EXPECT_EQ(control().bytes_read.load(), 11u);
  EXPECT_EQ(control().producer_position.load(), control().consumer_position.load());
}

TEST_F(SpscRingTest, RejectsEmptyAndOversizedMessages) {
  Make(4096, 100);
  EXPECT_EQ(producer_->TrySend(Bytes("")), Status::kInvalidArgument);
  EXPECT_EQ(producer_->TrySend(Bytes(std::string(101, 'x'))), Status::kTooLarge);
  EXPECT_EQ(producer_->TrySend(Bytes(std::string(100, 'x'))), Status::kOk);
}

TEST_F(SpscRingTest, SmallBufferNeverTruncates) {
  Make(4096);
  ASSERT_EQ(producer_->TrySend(Bytes(std::string(50, 'a'))), Status::kOk);
  std::vector<std::byte> small(10);
  size_t size = 0;
  ASSERT_EQ(consumer_->TryReceive(small, &size), Status::kTooLarge);
  EXPECT_EQ(size, 50u) << "tells how much room is needed";
  std::vector<std::byte> big(64);
  ASSERT_EQ(consumer_->TryReceive(big, &size), Status::kOk) << "the message stayed in the ring";
  EXPECT_EQ(size, 50u);
}

TEST_F(SpscRingTest, FullThenRoomAgain) {
  Make(4096);
  const std::string message(100, 'm');  // 112-byte records
  int sent = 0;
  while (producer_->TrySend(Bytes(message)) == Status::kOk) ++sent;
  EXPECT_EQ(sent, (4096 - 8) / 112);
  EXPECT_EQ(producer_->TrySend(Bytes(message)), Status::kFull);
  EXPECT_GE(control().full_events.load(), 2u);
  // The next record would wrap: it needs the 64-byte tail as padding too, so one freed
  // record is not enough room, two are.
  MessageView m;
  ASSERT_EQ(consumer_->TryPeek(&m), Status::kOk);
  consumer_->Release();
  EXPECT_EQ(producer_->TrySend(Bytes(message)), Status::kFull);
  ASSERT_EQ(consumer_->TryPeek(&m), Status::kOk);
  consumer_->Release();
  EXPECT_EQ(producer_->TrySend(Bytes(message)), Status::kOk);
}

TEST_F(SpscRingTest, WrapKeepsEveryMessageContiguousAndInOrder) {
  Make(4096);
  // Sizes that do not divide the capacity force padding records at the wrap.
  for (uint64_t seq = 0; seq < 5000; ++seq) {
    const uint32_t size = 1 + static_cast<uint32_t>((seq * 37) % 700);
    std::vector<std::byte> message(size);
    testing::FillPattern(1, seq, message);
    ASSERT_EQ(producer_->TrySend(message), Status::kOk) << seq;
    MessageView m;
    ASSERT_EQ(consumer_->TryPeek(&m), Status::kOk) << seq;
    ASSERT_EQ(testing::CheckPattern(1, seq, size, m.bytes()), "");
    const auto* data = reinterpret_cast<const std::byte*>(consumer_->segment().data());
    ASSERT_GE(m.data, data);
    ASSERT_LE(m.data + m.size, data + 4096);
    consumer_->Release();
  }
}

TEST_F(SpscRingTest, LargestMessageFitsAtAnyWrapPosition) {
  Make(4096);
  const uint32_t max = producer_->max_message();
  EXPECT_EQ(max, 2032u);
  std::vector<std::byte> message(max);
  for (int shift = 0; shift < 64; ++shift) {
    std::vector<std::byte> small(1 + shift * 8);
    ASSERT_EQ(producer_->TrySend(small), Status::kOk);
    MessageView m;
    ASSERT_EQ(consumer_->TryPeek(&m), Status::kOk);
    consumer_->Release();
    ASSERT_EQ(producer_->TrySend(message), Status::kOk) << "shift " << shift;
    ASSERT_EQ(consumer_->TryPeek(&m), Status::kOk);
    ASSERT_EQ(m.size, max);
    consumer_->Release();
  }
}

TEST_F(SpscRingTest, ReserveCommitIsZeroCopyAndMayShrink) {
  Make(4096);
  std::span<std::byte> room;
  ASSERT_EQ(producer_->TryReserve(100, &room), Status::kOk);
  EXPECT_EQ(room.size(), 100u);
  std::span<std::byte> second;
  EXPECT_EQ(producer_->TryReserve(10, &second), Status::kInvalidArgument) << "one at a time";
  std::memcpy(room.data(), "abc", 3);
  MessageView m;
  EXPECT_EQ(consumer_->TryPeek(&m), Status::kEmpty) << "nothing visible before Commit";
  producer_->Commit(3);
  ASSERT_EQ(consumer_->TryPeek(&m), Status::kOk);
  EXPECT_EQ(Text(m), "abc");
  EXPECT_EQ(m.data - reinterpret_cast<const std::byte*>(consumer_->segment().data()),
            room.data() - reinterpret_cast<std::byte*>(producer_->segment().data()))
      << "read in place where it was written";
  consumer_->Release();
}

TEST_F(SpscRingTest, DeferredCommitsPublishTogether) {
  Make(4096);
  for (int i = 0; i < 5; ++i) {
    std::span<std::byte> room;
    ASSERT_EQ(producer_->TryReserve(8, &room), Status::kOk);
    std::memset(room.data(), 'a' + i, 8);
    producer_->Commit(8, Publish::kDeferred);
    MessageView m;
    ASSERT_EQ(consumer_->TryPeek(&m), Status::kEmpty) << "batch visible before Flush";
  }
  producer_->Flush();
  for (int i = 0; i < 5; ++i) {
    MessageView m;
    ASSERT_EQ(consumer_->TryPeek(&m), Status::kOk);
    EXPECT_EQ(Text(m), std::string(8, static_cast<char>('a' + i)));
    consumer_->Release();
  }
}

TEST_F(SpscRingTest, SendBatch) {
  Make(4096);
  std::vector<std::string> texts = {"one", "two", "three"};
  std::vector<std::span<const std::byte>> batch;
  for (auto& t : texts) batch.push_back(Bytes(t));
  size_t sent = 0;
  ASSERT_EQ(producer_->TrySendBatch(batch, &sent), Status::kOk);
  EXPECT_EQ(sent, 3u);
  for (auto& t : texts) {
    MessageView m;
    ASSERT_EQ(consumer_->TryPeek(&m), Status::kOk);
    EXPECT_EQ(Text(m), t);
    consumer_->Release();
  }
}

// Edge states written straight into the mapping, as a buggy or hostile peer could.
TEST_F(SpscRingTest, ImpossibleRecordIsCorruptionAndNeverRead) {
  Make(4096, 100);
  auto* header = reinterpret_cast<std::atomic<uint64_t>*>(segment_->data());
  MessageView m;
  header->store(layout::PackRecordHeader(101, layout::RecordType::kMessage));
  EXPECT_EQ(consumer_->TryPeek(&m), Status::kCorrupted) << "longer than max_message";
  header->store(layout::PackRecordHeader(0, layout::RecordType::kMessage));
  EXPECT_EQ(consumer_->TryPeek(&m), Status::kCorrupted) << "empty message";
  header->store(layout::PackRecordHeader(16, layout::RecordType::kPadding));
  EXPECT_EQ(consumer_->TryPeek(&m), Status::kCorrupted) << "padding that stops short of the end";
  header->store(layout::PackRecordHeader(8, static_cast<layout::RecordType>(9)));
  EXPECT_EQ(consumer_->TryPeek(&m), Status::kCorrupted) << "unknown type";
  // Padding over the whole area (no producer writes it): corruption, not a lap forever.
  header->store(layout::PackRecordHeader(4096 - 8, layout::RecordType::kPadding));
  EXPECT_EQ(consumer_->TryPeek(&m), Status::kCorrupted) << "padding at offset 0";
  // A message header near the end whose payload would run past the data area.
  consumer_.reset();
  control().consumer_position.store(4096 - 16);
  auto* tail = reinterpret_cast<std::atomic<uint64_t>*>(segment_->data() + 4096 - 16);
  tail->store(layout::PackRecordHeader(64, layout::RecordType::kMessage));
  auto c = SpscConsumer::Open(dir_, "ring");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->TryPeek(&m), Status::kCorrupted) << "record crossing the end";
}

TEST_F(SpscRingTest, CorruptedPositionsAreRefusedAtAttach) {
  Make(4096);
  producer_.reset();
  consumer_.reset();
  control().consumer_position.store(10);  // not on a record boundary
  auto c = SpscConsumer::Open(dir_, "ring");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kCorrupted);
  EXPECT_NE(c.error().message().find("corrupted consumer position 10"), std::string::npos)
      << c.error().message();
  control().consumer_position.store(1 << 20);  // ahead of the producer
  auto p = SpscProducer::Open(dir_, "ring");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message().find("impossible positions"), std::string::npos)
      << p.error().message();
  control().consumer_position.store(0);
  EXPECT_TRUE(SpscProducer::Open(dir_, "ring").ok()) << "the refused attach left the role free";
}

TEST_F(SpscRingTest, HalfWrittenMessageStaysInvisible) {
  Make(4096);
  ASSERT_EQ(producer_->TrySend(Bytes("complete")), Status::kOk);
  std::span<std::byte> room;
  ASSERT_EQ(producer_->TryReserve(64, &room), Status::kOk);
  std::memset(room.data(), 'x', 32);
  // The producer "dies" here: drop the handle's state without committing.
  MessageView m;
  ASSERT_EQ(consumer_->TryPeek(&m), Status::kOk);
  EXPECT_EQ(Text(m), "complete");
  consumer_->Release();
  EXPECT_EQ(consumer_->TryPeek(&m), Status::kEmpty);
}

TEST_F(SpscRingTest, SecondProducerIsRefusedWhileTheFirstLives) {
  Make(4096);
  auto second = SpscProducer::Open(dir_, "ring");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kBusy);
  EXPECT_NE(second.error().message().find("already has a live producer"), std::string::npos)
      << second.error().message();
  producer_.reset();
  EXPECT_TRUE(SpscProducer::Open(dir_, "ring").ok()) << "the role is free after detach";
}

TEST_F(SpscRingTest, NewProducerResumesAtThePublishedFrontier) {
  Make(4096);
  ASSERT_EQ(producer_->TrySend(Bytes("first")), Status::kOk);
  ASSERT_EQ(producer_->TrySend(Bytes("second")), Status::kOk);
  // A producer that died right after its release store, before updating the position:
  control().producer_position.store(0);
  producer_.reset();
  control().producer_position.store(0);
  auto p = SpscProducer::Open(dir_, "ring");
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->TrySend(Bytes("third")), Status::kOk);
  for (const char* expected : {"first", "second", "third"}) {
    MessageView m;
    ASSERT_EQ(consumer_->TryPeek(&m), Status::kOk);
    EXPECT_EQ(Text(m), expected);
    consumer_->Release();
  }
}

TEST_F(SpscRingTest, TimedReceiveTimesOut) {
  Make(4096);
  std::vector<std::byte> buffer(64);
  size_t size;
  auto start = Clock::now();
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 30ms), Status::kTimeout);
  EXPECT_GE(Clock::now() - start, 30ms);
}

TEST_F(SpscRingTest, TimedSendTimesOutWhenFull) {
  Make(4096);
  while (producer_->TrySend(Bytes(std::string(500, 'f'))) == Status::kOk) {
  }
  EXPECT_EQ(producer_->SendFor(Bytes(std::string(500, 'f')), 20ms), Status::kTimeout);
  EXPECT_GE(control().producer_waits.load(), 1u) << "it slept on the futex";
}

TEST_F(SpscRingTest, ABlockingSendThatFoundTheRingFullCountsOnce) {
  Make(4096);
  while (producer_->TrySend(Bytes(std::string(500, 'f'))) == Status::kOk) {
  }
  ASSERT_EQ(control().full_events.load(), 1u);
  EXPECT_EQ(producer_->SendFor(Bytes(std::string(500, 'f')), 1ms), Status::kTimeout);
  EXPECT_EQ(control().full_events.load(), 2u);
}

TEST_F(SpscRingTest, BlockedReceiverWakesForData) {
  Make(4096);
  std::thread sender([&] {
    std::this_thread::sleep_for(50ms);
    (void)producer_->TrySend(Bytes("late"));
  });
  std::vector<std::byte> buffer(64);
  size_t size = 0;
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kOk);
  EXPECT_EQ(size, 4u);
  sender.join();
  EXPECT_GE(control().consumer_waits.load(), 1u);
}

TEST_F(SpscRingTest, DetachedProducerMeansPeerGoneAfterDrain) {
  Make(4096);
  ASSERT_EQ(producer_->TrySend(Bytes("last words")), Status::kOk);
  std::thread leaver([&] {
    std::this_thread::sleep_for(30ms);
    producer_.reset();
  });
  std::vector<std::byte> buffer(64);
  size_t size = 0;
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kOk) << "data first";
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kPeerGone);
  leaver.join();
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kPeerGone) << "sticky";
}

// The consumer never found the ring empty while the producer lived (so its PeerWatch never
// saw it): reading the producer's messages and then finding no producer is still the end.
TEST_F(SpscRingTest, ProducerThatWroteAndLeftUnseenMeansPeerGoneAfterDrain) {
  Make(4096);
  producer_.reset();
  auto p = SpscProducer::Open(dir_, "ring");
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_EQ(p->TrySend(Bytes("one")), Status::kOk);
  ASSERT_EQ(p->TrySend(Bytes("two")), Status::kOk);
  { SpscProducer leaving = std::move(p).value(); }  // detaches before any wait
  std::vector<std::byte> buffer(64);
  size_t size = 0;
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kOk);
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kOk);
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kPeerGone);
}

// Like reading a FIFO whose writer has closed: a consumer that attaches after the producer
// left reads what it left behind, then hears that nobody writes any more.
TEST_F(SpscRingTest, ConsumerAttachedAfterTheProducerLeftDrainsThenPeerGone) {
  Make(4096);
  ASSERT_EQ(producer_->TrySend(Bytes("left behind")), Status::kOk);
  producer_.reset();
  ASSERT_NO_FATAL_FAILURE(ReattachConsumer());
  std::vector<std::byte> buffer(64);
  size_t size = 0;
  ASSERT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kOk);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(buffer.data()), size), "left behind");
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kPeerGone);
}

// A consumer that has read nothing waits for a first producer: no producer yet is not the
// end of anything.
TEST_F(SpscRingTest, ConsumerThatReadNothingWaitsForAFirstProducer) {
  Make(4096);
  producer_.reset();
  ASSERT_NO_FATAL_FAILURE(ReattachConsumer());
  std::vector<std::byte> buffer(64);
  size_t size = 0;
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 50ms), Status::kTimeout);
  auto p = SpscProducer::Open(dir_, "ring");
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_EQ(p->TrySend(Bytes("first")), Status::kOk);
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kOk);
}

TEST_F(SpscRingTest, DeleteWakesABlockedReceiverWithClosed) {
  Make(4096);
  std::thread remover([&] {
    std::this_thread::sleep_for(30ms);
    ASSERT_TRUE(Segment::Remove(dir_, "ring").ok());
  });
  std::vector<std::byte> buffer(64);
  size_t size = 0;
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kClosed);
  remover.join();
}

}  // namespace
}  // namespace shmd
