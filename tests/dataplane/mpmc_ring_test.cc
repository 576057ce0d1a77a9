// The MPMC ring. Test names say which CTest label runs them:
//   MpmcRingTest.*              unit: behaviour, statuses, edge states written into the mapping
//   MpmcRingMultiprocessTest.*  multiprocess: a real producer process dying mid-send (fork)
//   MpmcRingStressTest.*        stress: 2 producer and 2 consumer threads, one mapping each
#include "shmd/dataplane/mpmc_ring.h"
#include "shmd/dataplane/spsc_ring.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <latch>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/message_pattern.h"
#include "common/test_dir.h"
#include "shmd/dataplane/broadcast_ring.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using layout::EndpointRole;
using testing::TestDir;

std::span<const std::byte> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
std::string Text(MessageView m) { return {reinterpret_cast<const char*>(m.data), m.size}; }

// Short sleep slices, so that checks made at slice boundaries (peer gone, abandoned
// slots) happen within milliseconds.
WaitOptions FastChecks() {
  WaitOptions wait;
  wait.sleep_slice = 2ms;
  return wait;
}

// Sum of one counter over the live endpoints of a role.
uint64_t RoleCounter(const Segment& segment, EndpointRole role, layout::EndpointCounter c) {
  uint64_t sum = 0;
  for (const auto& slot : segment.endpoints().slots) {
    if (slot.state.load() == static_cast<uint32_t>(layout::EndpointState::kLive) &&
        slot.role == static_cast<uint32_t>(role)) {
      sum += slot.counters[c].load();
    }
  }
  return sum;
}

int LiveEndpoints(const Segment& segment) {
  int n = 0;
  for (const auto& slot : segment.endpoints().slots) {
    n += slot.state.load() == static_cast<uint32_t>(layout::EndpointState::kLive) ? 1 : 0;
  }
  return n;
}

class MpmcRingTest : public ::testing::Test {
 protected:
  void Make(uint32_t slots, uint32_t max_message, const WaitOptions& wait = {}) {
    auto ring = CreateMpmcRing(dir_, "ring", {.slot_count = slots, .max_message = max_message});
    ASSERT_TRUE(ring.ok()) << ring.error().message();
    segment_ = std::make_shared<Segment>(std::move(ring).value());
    auto p = MpmcProducer::Attach(segment_, wait);
    ASSERT_TRUE(p.ok()) << p.error().message();
    producer_.emplace(std::move(p).value());
    auto c = MpmcConsumer::Attach(segment_, wait);
    ASSERT_TRUE(c.ok()) << c.error().message();
    consumer_.emplace(std::move(c).value());
  }
  layout::MpmcControl& control() { return segment_->control<layout::MpmcControl>(); }
  layout::SlotHeader& header(uint64_t position) {
    const auto& p = segment_->params();
    return *reinterpret_cast<layout::SlotHeader*>(segment_->data() +
                                                  (position & (p.capacity - 1)) * p.slot_size);
  }
  // The next message as text, or "<status>" when there is none.
  std::string Next(MpmcConsumer& consumer) {
    std::vector<std::byte> buffer(consumer.max_message());
    size_t size = 0;
    Status s = consumer.TryReceive(buffer, &size);
    if (s != Status::kOk) return std::string("<") + StatusName(s) + ">";
    return {reinterpret_cast<const char*>(buffer.data()), size};
  }
  std::string Next() { return Next(*consumer_); }
  // Makes position `position` look claimed, not published, by endpoint tag `tag`: the
  // state a producer leaves when it dies between its claim and its publish.
  void FakeDeadClaim(uint64_t position, uint32_t tag) {
    ASSERT_EQ(control().enqueue_position.load(), position);
    ASSERT_EQ(header(position).sequence.load(), position);
    control().enqueue_position.store(position + 1);
    header(position).writer = tag;
    header(position).length = 3;
  }

  TestDir dir_;
  std::shared_ptr<Segment> segment_;
  std::optional<MpmcProducer> producer_;
  std::optional<MpmcConsumer> consumer_;
};

// --- setup ------------------------------------------------------------------------------

TEST_F(MpmcRingTest, CreateOpenAndAttach) {
  Make(8, 100);
  EXPECT_EQ(segment_->kind(), layout::ObjectKind::kMpmcRing);
  EXPECT_EQ(segment_->params().capacity, 8u);
  EXPECT_EQ(segment_->params().max_message, 100u);
  EXPECT_EQ(segment_->params().slot_size, layout::SlotSizeFor(100));
  EXPECT_EQ(segment_->data_size(), 8 * layout::SlotSizeFor(100));
  for (uint64_t i = 0; i < 8; ++i) {
    EXPECT_EQ(header(i).sequence.load(), i) << "slot " << i << " free for position " << i;
  }
  EXPECT_EQ(producer_->slot_count(), 8u);
  EXPECT_EQ(producer_->max_message(), 100u);
  EXPECT_EQ(consumer_->max_message(), 100u);
  // Roles are not exclusive: more producers and consumers, by name or on the same mapping.
  auto p2 = MpmcProducer::Open(dir_, "ring");
  ASSERT_TRUE(p2.ok()) << p2.error().message();
  auto c2 = MpmcConsumer::Open(dir_, "ring");
  ASSERT_TRUE(c2.ok()) << c2.error().message();
  auto p3 = MpmcProducer::Attach(segment_);
  ASSERT_TRUE(p3.ok()) << p3.error().message();
  EXPECT_EQ(LiveEndpoints(*segment_), 5);
  ASSERT_EQ(p2->TrySend(Bytes("via p2")), Status::kOk);
  EXPECT_EQ(Next(*c2), "via p2");

  auto missing = MpmcConsumer::Open(dir_, "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound) << missing.error().message();
}

TEST_F(MpmcRingTest, WrongKindIsRefusedWithAClearError) {
  ASSERT_TRUE(CreateSpscRing(dir_, "spsc", {.capacity = 4096}).ok());
  auto by_name = MpmcProducer::Open(dir_, "spsc");
  ASSERT_FALSE(by_name.ok());
  EXPECT_EQ(by_name.error().code(), ErrorCode::kWrongKind);
  EXPECT_NE(by_name.error().message().find("is an spsc ring, not an mpmc ring"), std::string::npos)
      << by_name.error().message();

  auto broadcast = CreateBroadcastRing(dir_, "bcast", {.slot_count = 8, .max_message = 8});
  ASSERT_TRUE(broadcast.ok()) << broadcast.error().message();
  auto attached = MpmcConsumer::Attach(std::make_shared<Segment>(std::move(broadcast).value()));
  ASSERT_FALSE(attached.ok());
  EXPECT_EQ(attached.error().code(), ErrorCode::kWrongKind);
  EXPECT_NE(attached.error().message().find("is a broadcast ring, not an mpmc ring"),
            std::string::npos)
      << attached.error().message();

  auto nothing = MpmcConsumer::Attach(nullptr);
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(MpmcRingTest, BadSpecsAreRejectedWithWhatToDo) {
  struct Case {
    MpmcRingSpec spec;
    const char* says;
  };
  for (const Case& c : {Case{{3, 64}, "slot count 3 must be a power of two"},
                        Case{{0, 64}, "slot count 0 must be a power of two"},
                        Case{{1, 64}, "slot count 1 must be a power of two from 2"},
                        Case{{1u << 25, 8}, "slot count 33554432 must be a power of two"},
                        Case{{8, 0}, "max message must be at least 1 byte"},
                        Case{{8, (1u << 24) + 1}, "max message 16777217 must be 1 to 16777216"}}) {
    auto ring = CreateMpmcRing(dir_, "bad", c.spec);
    ASSERT_FALSE(ring.ok()) << "slot_count " << c.spec.slot_count << ", max_message "
                            << c.spec.max_message << " was accepted";
    EXPECT_EQ(ring.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(ring.error().message().find(c.says), std::string::npos)
        << "expected \"" << c.says << "\" in: " << ring.error().message();
  }
  EXPECT_EQ(dir_.CountFiles(), 0) << "a refused spec leaves no file behind";
}

// --- messages ---------------------------------------------------------------------------

TEST_F(MpmcRingTest, RoundTripInOrderWithEverySize) {
  Make(16, 100);
  EXPECT_EQ(Next(), "<empty>");
  for (uint64_t round = 0; round < 5; ++round) {  // several laps of the 16 slots
    for (uint32_t size = 1; size <= 100; size += 11) {
      std::vector<std::byte> message(size);
      testing::FillPattern(round, size, message);
      ASSERT_EQ(producer_->TrySend(message), Status::kOk) << "size " << size;
    }
    for (uint32_t size = 1; size <= 100; size += 11) {
      std::vector<std::byte> buffer(100);
      size_t got = 0;
      ASSERT_EQ(consumer_->TryReceive(buffer, &got), Status::kOk) << "size " << size;
      ASSERT_EQ(testing::CheckPattern(round, size, size, {buffer.data(), got}), "");
    }
  }
  EXPECT_EQ(Next(), "<empty>");
  EXPECT_EQ(control().enqueue_position.load(), 50u);
  EXPECT_EQ(control().dequeue_position.load(), 50u);
}

TEST_F(MpmcRingTest, FullThenRoomAgain) {
  Make(4, 16);
  for (int i = 0; i < 4; ++i)
    ASSERT_EQ(producer_->TrySend(Bytes("m" + std::to_string(i))), Status::kOk);
  EXPECT_EQ(producer_->TrySend(Bytes("over")), Status::kFull);
  EXPECT_EQ(producer_->TrySend(Bytes("over")), Status::kFull);
  EXPECT_EQ(RoleCounter(*segment_, EndpointRole::kProducer, layout::kCounterFull), 2u);
  EXPECT_EQ(Next(), "m0");
  EXPECT_EQ(producer_->TrySend(Bytes("m4")), Status::kOk) << "one freed slot is room for one";
  EXPECT_EQ(producer_->TrySend(Bytes("over")), Status::kFull);
  for (const char* expected : {"m1", "m2", "m3", "m4"}) EXPECT_EQ(Next(), expected);
  EXPECT_EQ(Next(), "<empty>");
}

TEST_F(MpmcRingTest, RejectsEmptyOversizedAndBuffersSmallerThanMaxMessage) {
  Make(4, 10);
  EXPECT_EQ(producer_->TrySend(Bytes("")), Status::kInvalidArgument);
  EXPECT_EQ(producer_->TrySend(Bytes(std::string(11, 'x'))), Status::kTooLarge);
  EXPECT_EQ(producer_->SendFor(Bytes(std::string(11, 'x')), 1s), Status::kTooLarge);
  ASSERT_EQ(producer_->TrySend(Bytes("abc")), Status::kOk);
  std::vector<std::byte> small(9);
  size_t size = 0;
  EXPECT_EQ(consumer_->TryReceive(small, &size), Status::kTooLarge);
  EXPECT_EQ(size, 10u) << "says the buffer size it needs: max_message";
  EXPECT_EQ(consumer_->ReceiveFor(small, &size, 1s), Status::kTooLarge);
  EXPECT_EQ(Next(), "abc") << "nothing was consumed by the refused calls";
}

TEST_F(MpmcRingTest, ReserveCommitAndPeekReleaseAreZeroCopy) {
  Make(4, 32);
  std::span<std::byte> room;
  ASSERT_EQ(producer_->TryReserve(&room), Status::kOk);
  EXPECT_EQ(room.size(), 32u);
  std::span<std::byte> second;
  EXPECT_EQ(producer_->TryReserve(&second), Status::kInvalidArgument) << "one at a time";
  EXPECT_EQ(producer_->TrySend(Bytes("x")), Status::kInvalidArgument) << "reservation open";
  std::memcpy(room.data(), "zero-copy", 9);
  MessageView m;
  EXPECT_EQ(consumer_->TryPeek(&m), Status::kEmpty) << "nothing visible before Commit";
  EXPECT_EQ(producer_->Commit(0), Status::kInvalidArgument);
  EXPECT_EQ(producer_->Commit(33), Status::kInvalidArgument);
  ASSERT_EQ(producer_->Commit(9), Status::kOk);
  EXPECT_EQ(producer_->Commit(9), Status::kInvalidArgument) << "nothing reserved any more";
  ASSERT_EQ(consumer_->TryPeek(&m), Status::kOk);
  EXPECT_EQ(Text(m), "zero-copy");
  EXPECT_EQ(reinterpret_cast<const void*>(m.data), reinterpret_cast<void*>(room.data()))
      << "read in place where it was written";
  MessageView again;
  EXPECT_EQ(consumer_->TryPeek(&again), Status::kInvalidArgument) << "one peek at a time";
  consumer_->Release();
  EXPECT_EQ(header(0).sequence.load(), 4u) << "released: free for position 0 + slot_count";
  EXPECT_EQ(consumer_->TryPeek(&m), Status::kEmpty);
  ASSERT_EQ(producer_->ReserveFor(10ms, &room), Status::kOk);
  ASSERT_EQ(producer_->Commit(1), Status::kOk);
  ASSERT_EQ(consumer_->PeekFor(&m, 1s), Status::kOk);
  EXPECT_EQ(m.size, 1u);
  consumer_->Release();
}

// An impossible length written straight into a published slot: reported, never copied,
// and the ring moves on.
TEST_F(MpmcRingTest, CorruptedLengthIsReportedAndNeverRead) {
  Make(4, 16);
  ASSERT_EQ(producer_->TrySend(Bytes("doomed")), Status::kOk);
  header(0).length = 17;
  std::vector<std::byte> buffer(16, std::byte{0x55});
  size_t size = 99;
  EXPECT_EQ(consumer_->TryReceive(buffer, &size), Status::kCorrupted);
  EXPECT_EQ(size, 99u) << "nothing reported as received";
  EXPECT_EQ(buffer[0], std::byte{0x55}) << "nothing copied";
  ASSERT_EQ(producer_->TrySend(Bytes("zero")), Status::kOk);
  header(1).length = 0;
  MessageView m;
  EXPECT_EQ(consumer_->TryPeek(&m), Status::kCorrupted) << "a zero length is impossible too";
  ASSERT_EQ(producer_->TrySend(Bytes("fine")), Status::kOk);
  EXPECT_EQ(Next(), "fine") << "the corrupt slots were dropped; the ring keeps moving";
  EXPECT_EQ(RoleCounter(*segment_, EndpointRole::kConsumer, layout::kCounterMessages), 1u);
}

// Positions written backwards (a buggy or hostile peer): the slot is a lap ahead of the
// position, which a correct ring never shows. Reported, not spun on forever.
TEST_F(MpmcRingTest, PositionsContradictingTheSlotsAreCorruption) {
  Make(4, 16);
  ASSERT_EQ(producer_->TrySend(Bytes("one")), Status::kOk);
  EXPECT_EQ(Next(), "one");
  control().dequeue_position.store(0);
  EXPECT_EQ(Next(), "<corrupted>");
  control().enqueue_position.store(0);
  EXPECT_EQ(producer_->TrySend(Bytes("two")), Status::kCorrupted);
  EXPECT_EQ(producer_->SendFor(Bytes("two"), 1s), Status::kCorrupted);
}

TEST_F(MpmcRingTest, CountersAddUpAndSurviveDetach) {
  Make(8, 64);
  std::optional<MpmcProducer> p2;
  auto attached = MpmcProducer::Attach(segment_);
  ASSERT_TRUE(attached.ok());
  p2.emplace(std::move(attached).value());
  uint64_t bytes = 0;
  for (int i = 0; i < 6; ++i) {
    std::string m(1 + i * 10, 'c');
    bytes += m.size();
    ASSERT_EQ((i % 2 == 0 ? *producer_ : *p2).TrySend(Bytes(m)), Status::kOk);
  }
  for (int i = 0; i < 6; ++i) ASSERT_NE(Next(), "<empty>");
  EXPECT_EQ(RoleCounter(*segment_, EndpointRole::kProducer, layout::kCounterMessages), 6u);
  EXPECT_EQ(RoleCounter(*segment_, EndpointRole::kProducer, layout::kCounterBytes), bytes);
  EXPECT_EQ(RoleCounter(*segment_, EndpointRole::kConsumer, layout::kCounterMessages), 6u);
  EXPECT_EQ(RoleCounter(*segment_, EndpointRole::kConsumer, layout::kCounterBytes), bytes);
  std::vector<std::byte> buffer(64);
  size_t size;
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 30ms), Status::kTimeout);
  EXPECT_GE(RoleCounter(*segment_, EndpointRole::kConsumer, layout::kCounterWaits), 1u)
      << "it slept on the futex";
  // Detached endpoints' counters are folded into the object's totals.
  producer_.reset();
  p2.reset();
  consumer_.reset();
  EXPECT_EQ(LiveEndpoints(*segment_), 0);
  EXPECT_EQ(SumEndpointCounter(*segment_, layout::kCounterMessages, EndpointRole::kProducer), 6u);
  EXPECT_EQ(SumEndpointCounter(*segment_, layout::kCounterBytes, EndpointRole::kProducer), bytes);
  EXPECT_EQ(SumEndpointCounter(*segment_, layout::kCounterMessages, EndpointRole::kConsumer), 6u);
  EXPECT_EQ(SumEndpointCounter(*segment_, layout::kCounterBytes, EndpointRole::kConsumer), bytes);
}

TEST_F(MpmcRingTest, MovedHandlesKeepTheirEndpoint) {
  Make(4, 16);
  MpmcProducer p = std::move(*producer_);
  producer_.reset();  // the moved-from handle detaches nothing
  MpmcConsumer c(std::move(*consumer_));
  consumer_.reset();
  EXPECT_EQ(LiveEndpoints(*segment_), 2);
  ASSERT_EQ(p.TrySend(Bytes("moved")), Status::kOk);
  EXPECT_EQ(Next(c), "moved");
  auto other = MpmcProducer::Attach(segment_);
  ASSERT_TRUE(other.ok());
  p = std::move(other).value();  // detaches the old endpoint, takes the new one
  EXPECT_EQ(LiveEndpoints(*segment_), 2);
}

// --- blocking ---------------------------------------------------------------------------

TEST_F(MpmcRingTest, TimedCallsTimeOut) {
  Make(2, 8);
  std::vector<std::byte> buffer(8);
  size_t size;
  auto start = Clock::now();
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 30ms), Status::kTimeout);
  EXPECT_GE(Clock::now() - start, 30ms);
  ASSERT_EQ(producer_->TrySend(Bytes("1")), Status::kOk);
  ASSERT_EQ(producer_->TrySend(Bytes("2")), Status::kOk);
  start = Clock::now();
  EXPECT_EQ(producer_->SendFor(Bytes("3"), 30ms), Status::kTimeout);
  EXPECT_GE(Clock::now() - start, 30ms);
  EXPECT_GE(RoleCounter(*segment_, EndpointRole::kProducer, layout::kCounterWaits), 1u);
  EXPECT_EQ(RoleCounter(*segment_, EndpointRole::kProducer, layout::kCounterFull), 1u)
      << "one blocking send that found the ring full counts once";
}

TEST_F(MpmcRingTest, BlockedReceiverWakesForData) {
  Make(4, 16);
  std::thread sender([&] {
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(producer_->TrySend(Bytes("late")), Status::kOk);
  });
  std::vector<std::byte> buffer(16);
  size_t size = 0;
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kOk);
  EXPECT_EQ(size, 4u);
  sender.join();
}

TEST_F(MpmcRingTest, BlockedSenderWakesForRoom) {
  Make(2, 16);
  ASSERT_EQ(producer_->TrySend(Bytes("a")), Status::kOk);
  ASSERT_EQ(producer_->TrySend(Bytes("b")), Status::kOk);
  std::thread receiver([&] {
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(Next(), "a");
  });
  EXPECT_EQ(producer_->SendFor(Bytes("c"), 10s), Status::kOk);
  receiver.join();
  EXPECT_EQ(Next(), "b");
  EXPECT_EQ(Next(), "c");
}

TEST_F(MpmcRingTest, DeleteWakesABlockedReceiverWithClosed) {
  Make(4, 16);
  std::thread remover([&] {
    std::this_thread::sleep_for(30ms);
    EXPECT_TRUE(Segment::Remove(dir_, "ring").ok());
  });
  std::vector<std::byte> buffer(16);
  size_t size = 0;
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kClosed);
  remover.join();
}

TEST_F(MpmcRingTest, DeleteWakesABlockedSenderWithClosed) {
  Make(2, 16);
  ASSERT_EQ(producer_->TrySend(Bytes("a")), Status::kOk);
  ASSERT_EQ(producer_->TrySend(Bytes("b")), Status::kOk);
  std::thread remover([&] {
    std::this_thread::sleep_for(30ms);
    EXPECT_TRUE(Segment::Remove(dir_, "ring").ok());
  });
  EXPECT_EQ(producer_->SendFor(Bytes("c"), 10s), Status::kClosed);
  remover.join();
}

TEST_F(MpmcRingTest, LastProducerLeavingMeansPeerGoneAfterDrain) {
  Make(4, 16, FastChecks());
  std::optional<MpmcProducer> p2;
  auto attached = MpmcProducer::Attach(segment_);
  ASSERT_TRUE(attached.ok());
  p2.emplace(std::move(attached).value());
  ASSERT_EQ(producer_->TrySend(Bytes("last words")), Status::kOk);
  producer_.reset();
  std::atomic<bool> leaving{false};
  std::thread leaver([&] {
    std::this_thread::sleep_for(30ms);
    leaving = true;
    p2.reset();
  });
  std::vector<std::byte> buffer(16);
  size_t size = 0;
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kOk) << "data first";
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kPeerGone)
      << "one producer left: still waiting, then the last one left";
  EXPECT_TRUE(leaving) << "kPeerGone came while the second producer was still attached";
  leaver.join();
  const auto start = Clock::now();
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kPeerGone) << "and again";
  EXPECT_LT(Clock::now() - start, 1s) << "at once";
  // A new producer makes it wait again.
  auto p3 = MpmcProducer::Attach(segment_);
  ASSERT_TRUE(p3.ok());
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 30ms), Status::kTimeout);
}

TEST_F(MpmcRingTest, ProducerThatSentAndLeftBeforeTheWaitStillCounts) {
  Make(4, 16, FastChecks());
  producer_.reset();
  consumer_.reset();
  auto c = MpmcConsumer::Attach(segment_, FastChecks());  // no producer in sight
  ASSERT_TRUE(c.ok());
  {
    auto p = MpmcProducer::Attach(segment_);
    ASSERT_TRUE(p.ok());
    ASSERT_EQ(p->TrySend(Bytes("hit and run")), Status::kOk);
  }
  std::vector<std::byte> buffer(16);
  size_t size = 0;
  EXPECT_EQ(c->ReceiveFor(buffer, &size, 10s), Status::kOk);
  EXPECT_EQ(c->ReceiveFor(buffer, &size, 10s), Status::kPeerGone)
      << "the ring's position moved, so a producer was there";
}

TEST_F(MpmcRingTest, ConsumerThatNeverSawAProducerWaits) {
  Make(4, 16, FastChecks());
  producer_.reset();
  consumer_.reset();
  auto c = MpmcConsumer::Attach(segment_, FastChecks());
  ASSERT_TRUE(c.ok());
  std::vector<std::byte> buffer(16);
  size_t size = 0;
  EXPECT_EQ(c->ReceiveFor(buffer, &size, 30ms), Status::kTimeout);
}

TEST_F(MpmcRingTest, LastConsumerLeavingMeansPeerGoneForABlockedSender) {
  Make(2, 16, FastChecks());
  ASSERT_EQ(producer_->TrySend(Bytes("a")), Status::kOk);
  ASSERT_EQ(producer_->TrySend(Bytes("b")), Status::kOk);
  std::thread leaver([&] {
    std::this_thread::sleep_for(30ms);
    consumer_.reset();
  });
  EXPECT_EQ(producer_->SendFor(Bytes("c"), 10s), Status::kPeerGone);
  leaver.join();
}

// --- abandoned slots ----------------------------------------------------------------------

TEST_F(MpmcRingTest, ClaimOfAnEndpointThatLeftIsSkipped) {
  Make(4, 16, FastChecks());
  ASSERT_EQ(producer_->TrySend(Bytes("before")), Status::kOk);
  FakeDeadClaim(1, /*tag=*/20);  // endpoint slot 19: free
  ASSERT_EQ(producer_->TrySend(Bytes("after")), Status::kOk);
  EXPECT_EQ(Next(), "before");
  EXPECT_EQ(Next(), "<empty>") << "a plain try does not recover";
  std::vector<std::byte> buffer(16);
  size_t size = 0;
  ASSERT_EQ(consumer_->ReceiveFor(buffer, &size, 10s), Status::kOk);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer.data()), size), "after");
  EXPECT_EQ(consumer_->recovered(), 1u);
  EXPECT_EQ(consumer_->abandoned_skipped(), 1u);
  EXPECT_EQ(header(1).sequence.load(), 1u + 4) << "the abandoned slot was freed";
  EXPECT_EQ(RoleCounter(*segment_, EndpointRole::kConsumer, layout::kCounterMessages), 2u)
      << "the skipped slot is not a message";
}

TEST_F(MpmcRingTest, RecoverAbandonedSlotsForPollingConsumers) {
  Make(4, 16);
  FakeDeadClaim(0, /*tag=*/20);
  ASSERT_EQ(producer_->TrySend(Bytes("stuck behind")), Status::kOk);
  EXPECT_EQ(Next(), "<empty>");
  EXPECT_EQ(RecoverAbandonedSlots(*segment_), 1u);
  EXPECT_EQ(RecoverAbandonedSlots(*segment_), 0u) << "once";
  EXPECT_EQ(Next(), "stuck behind");
  EXPECT_EQ(consumer_->abandoned_skipped(), 1u);
}

TEST_F(MpmcRingTest, LiveClaimIsNeverTakenOver) {
  Make(4, 16, FastChecks());
  std::span<std::byte> room;
  ASSERT_EQ(producer_->TryReserve(&room), Status::kOk);
  EXPECT_EQ(header(0).writer, 1u) << "the claim names endpoint slot 0";
  EXPECT_EQ(RecoverAbandonedSlots(*segment_), 0u);
  std::vector<std::byte> buffer(16);
  size_t size = 0;
  EXPECT_EQ(consumer_->ReceiveFor(buffer, &size, 50ms), Status::kTimeout);
  EXPECT_EQ(consumer_->recovered(), 0u);
  std::memcpy(room.data(), "slow", 4);
  ASSERT_EQ(producer_->Commit(4), Status::kOk);
  EXPECT_EQ(Next(), "slow");
}

TEST_F(MpmcRingTest, ReservationDroppedWithItsHandleIsSkipped) {
  Make(4, 16);
  std::span<std::byte> room;
  ASSERT_EQ(producer_->TryReserve(&room), Status::kOk);
  producer_.reset();
  EXPECT_EQ(Next(), "<empty>");
  EXPECT_EQ(consumer_->abandoned_skipped(), 1u);
  auto p = MpmcProducer::Attach(segment_);
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->TrySend(Bytes("next")), Status::kOk);
  EXPECT_EQ(Next(), "next");
}

TEST_F(MpmcRingTest, NewHolderOfAnEndpointSlotRecoversItsPredecessorsClaim) {
  Make(4, 16);
  // Endpoint slots 0 and 1 are taken; the next attach gets slot 2, tag 3. Its predecessor
  // there died mid-send, and someone cleared the slot before any consumer noticed.
  FakeDeadClaim(0, /*tag=*/3);
  auto p = MpmcProducer::Attach(segment_);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->recovered(), 1u);
  ASSERT_EQ(p->TrySend(Bytes("mine")), Status::kOk);
  EXPECT_EQ(Next(), "mine");
  EXPECT_EQ(consumer_->abandoned_skipped(), 1u);
}

// --- real processes -------------------------------------------------------------------

TEST(MpmcRingMultiprocessTest, ProducerProcessDyingMidSendIsSkipped) {
  TestDir dir;
  ASSERT_TRUE(CreateMpmcRing(dir, "ring", {.slot_count = 8, .max_message = 32}).ok());
  auto consumer = MpmcConsumer::Open(dir, "ring", FastChecks());
  ASSERT_TRUE(consumer.ok()) << consumer.error().message();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Attach, send one message, claim a slot, write half of it, and die.
    auto p = MpmcProducer::Open(dir, "ring");
    if (!p.ok() || p->TrySend(Bytes("before")) != Status::kOk) _exit(1);
    std::span<std::byte> room;
    if (p->TryReserve(&room) != Status::kOk) _exit(2);
    std::memcpy(room.data(), "half", 4);
    _exit(0);  // no destructor, no detach: as if killed
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "child failed with status " << status;
  auto producer = MpmcProducer::Open(dir, "ring");
  ASSERT_TRUE(producer.ok()) << producer.error().message();
  ASSERT_EQ(producer->TrySend(Bytes("after")), Status::kOk);

  std::vector<std::byte> buffer(32);
  size_t size = 0;
  ASSERT_EQ(consumer->ReceiveFor(buffer, &size, 10s), Status::kOk);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer.data()), size), "before");
  ASSERT_EQ(consumer->ReceiveFor(buffer, &size, 10s), Status::kOk)
      << "the dead producer's claim must not stall the ring";
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer.data()), size), "after");
  EXPECT_EQ(consumer->abandoned_skipped(), 1u);
  EXPECT_EQ(consumer->segment().header_page().totals.endpoints_cleared.load(), 1u)
      << "the consumer cleared the dead producer's endpoint";
}

// --- stress -----------------------------------------------------------------------------

// A stress message: who sent it, its number, its size, a checksum over all of that and
// the body; the body bytes follow from (producer, seq).
struct StressHeader {
  uint32_t producer;
  uint32_t size;
  uint64_t seq;
  uint64_t checksum;
};
static_assert(sizeof(StressHeader) == 24);

uint64_t Checksum(const StressHeader& h, std::span<const std::byte> body) {
  uint64_t x = 0xcbf29ce484222325ULL ^ (uint64_t{h.producer} << 32 | h.size) ^ (h.seq * 31);
  for (std::byte b : body) x = (x ^ static_cast<uint8_t>(b)) * 0x100000001b3ULL;
  return x;
}

uint32_t StressSize(uint32_t producer, uint64_t seq, uint32_t max) {
  return static_cast<uint32_t>(sizeof(StressHeader)) +
         static_cast<uint32_t>(testing::SplitMix64(seq * 2 + producer) %
                               (max - sizeof(StressHeader) + 1));
}

void BuildStressMessage(uint32_t producer, uint64_t seq, uint32_t max,
                        std::vector<std::byte>* out) {
  StressHeader h{producer, StressSize(producer, seq, max), seq, 0};
  out->resize(h.size);
  testing::FillPattern(producer, seq, std::span(*out).subspan(sizeof h));
  h.checksum = Checksum(h, std::span(*out).subspan(sizeof h));
  std::memcpy(out->data(), &h, sizeof h);
}

struct StressMode {
  const char* name;
  uint32_t slots;
  bool busy_poll;
};

class MpmcRingStressTest : public ::testing::TestWithParam<StressMode> {};

TEST_P(MpmcRingStressTest, TwoProducersTwoConsumersNothingLostDuplicatedReorderedOrCorrupted) {
  constexpr uint32_t kProducers = 2;
  constexpr uint32_t kConsumers = 2;
  constexpr uint32_t kMax = 200;
  const StressMode mode = GetParam();
  const uint64_t per_producer = testing::Scaled(1000000) / kProducers;
  TestDir dir;
  ASSERT_TRUE(CreateMpmcRing(dir, "stress", {.slot_count = mode.slots, .max_message = kMax}).ok());
  WaitOptions wait;
  wait.busy_poll = mode.busy_poll;

  std::latch attached(kProducers + kConsumers);
  std::vector<std::string> failures(kProducers + kConsumers);
  // seen[c][p][seq]: consumer c received message seq of producer p.
  std::vector<std::vector<std::vector<uint8_t>>> seen(
      kConsumers,
      std::vector<std::vector<uint8_t>>(kProducers, std::vector<uint8_t>(per_producer)));
  std::vector<std::thread> threads;
  const auto start = Clock::now();

  for (uint32_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      // Its own mapping, as another process would have.
      auto producer = MpmcProducer::Open(dir, "stress", wait);
      attached.count_down();
      if (!producer.ok()) {
        failures[p] = producer.error().message();
        return;
      }
      attached.wait();
      std::vector<std::byte> message;
      for (uint64_t seq = 0; seq < per_producer; ++seq) {
        BuildStressMessage(p, seq, kMax, &message);
        Status s = producer->TrySend(message);
        if (s == Status::kFull) s = producer->SendFor(message, 30s);
        if (s != Status::kOk) {
          failures[p] = "producer " + std::to_string(p) + ", message " + std::to_string(seq) +
                        ": expected ok, got " + StatusName(s);
          return;
        }
      }
    });  // detaches here: consumers end with kPeerGone once the ring is drained
  }
  for (uint32_t c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&, c] {
      std::string& failure = failures[kProducers + c];
      auto consumer = MpmcConsumer::Open(dir, "stress", wait);
      attached.count_down();
      if (!consumer.ok()) {
        failure = consumer.error().message();
        return;
      }
      attached.wait();
      std::vector<int64_t> last(kProducers, -1);
      std::vector<std::byte> buffer(kMax);
      for (;;) {
        size_t size = 0;
        Status s = consumer->ReceiveFor(buffer, &size, 30s);
        if (s == Status::kPeerGone) return;
        if (s != Status::kOk) {
          failure =
              "consumer " + std::to_string(c) + ": expected ok or peer gone, got " + StatusName(s);
          return;
        }
        StressHeader h;
        if (size < sizeof h) {
          failure = "consumer " + std::to_string(c) + ": a " + std::to_string(size) +
                    "-byte message, shorter than its header";
          return;
        }
        std::memcpy(&h, buffer.data(), sizeof h);
        std::span<const std::byte> body(buffer.data() + sizeof h, size - sizeof h);
        const std::string what = "consumer " + std::to_string(c) + ", producer " +
                                 std::to_string(h.producer) + ", message " + std::to_string(h.seq);
        if (h.producer >= kProducers || h.seq >= per_producer) {
          failure = what + ": no such message";
          return;
        }
        if (h.size != size || size != StressSize(h.producer, h.seq, kMax)) {
          failure = what + ": expected " + std::to_string(StressSize(h.producer, h.seq, kMax)) +
                    " bytes, got " + std::to_string(size) + " (header says " +
                    std::to_string(h.size) + ")";
          return;
        }
        if (h.checksum != Checksum(h, body)) {
          failure = what + ": checksum mismatch";
          return;
        }
        if (static_cast<int64_t>(h.seq) <= last[h.producer]) {
          failure = what + ": came after message " + std::to_string(last[h.producer]) +
                    " of the same producer";
          return;
        }
        last[h.producer] = static_cast<int64_t>(h.seq);
        seen[c][h.producer][h.seq] = 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const auto& f : failures) EXPECT_EQ(f, "");

  uint64_t total = 0;
  std::vector<uint64_t> per_consumer(kConsumers);
  for (uint32_t p = 0; p < kProducers; ++p) {
    for (uint64_t seq = 0; seq < per_producer; ++seq) {
      int copies = 0;
      for (uint32_t c = 0; c < kConsumers; ++c) {
        copies += seen[c][p][seq];
        per_consumer[c] += seen[c][p][seq];
      }
      ASSERT_EQ(copies, 1) << "producer " << p << ", message " << seq
                           << ": expected exactly one delivery";
      ++total;
    }
  }
  EXPECT_EQ(total, per_producer * kProducers);
  std::printf("[ stress   ] %llu messages in %.2f s (%.2f M/s); consumers took %llu and %llu\n",
              static_cast<unsigned long long>(total), seconds, total / seconds / 1e6,
              static_cast<unsigned long long>(per_consumer[0]),
              static_cast<unsigned long long>(per_consumer[1]));
}

INSTANTIATE_TEST_SUITE_P(
    Modes, MpmcRingStressTest,
    ::testing::Values(StressMode{"blocking", 64, false},
                      // Every thread spinning on a 4-slot ring: the most contended claims.
                      StressMode{"busy_poll_small_ring", 4, true}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace shmd
