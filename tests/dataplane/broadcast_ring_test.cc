// The broadcast ring. Test names say which CTest label runs them:
//   BroadcastRingTest.*        unit: behaviour, statuses, lapping, edge states in the mapping
//   BroadcastRingStressTest.*  stress: one producer and three subscriber threads, one
//                              mapping each, the producer never waiting for anyone
//                              (lossy) or waiting for the slowest (lossless)
//   BroadcastRingMultiprocessTest.*  multiprocess: a lossless subscriber killed with
//                              SIGKILL stops holding the producer back
#include "shmd/dataplane/broadcast_ring.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <latch>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/message_pattern.h"
#include "common/test_dir.h"
#include "shmd/dataplane/mpmc_ring.h"
#include "shmd/dataplane/stats.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using layout::EndpointRole;
using testing::TestDir;

std::span<const std::byte> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

WaitOptions FastChecks() {
  WaitOptions wait;
  wait.sleep_slice = 2ms;
  return wait;
}

const layout::EndpointSlot* SlotOf(const Segment& segment, EndpointRole role, int index = 0) {
  for (const auto& slot : segment.endpoints().slots) {
    if (slot.state.load() == static_cast<uint32_t>(layout::EndpointState::kLive) &&
        slot.role == static_cast<uint32_t>(role) && index-- == 0) {
      return &slot;
    }
  }
  return nullptr;
}

class BroadcastRingTest : public ::testing::Test {
 protected:
  void Make(uint32_t slots, uint32_t max_message,
            layout::BroadcastPolicy policy = layout::BroadcastPolicy::kLossy) {
    auto ring = CreateBroadcastRing(
        dir_, "ring", {.slot_count = slots, .max_message = max_message, .policy = policy});
    ASSERT_TRUE(ring.ok()) << ring.error().message();
    segment_ = std::make_shared<Segment>(std::move(ring).value());
    auto p = BroadcastProducer::Attach(segment_, FastChecks());
    ASSERT_TRUE(p.ok()) << p.error().message();
    producer_.emplace(std::move(p).value());
  }
  BroadcastSubscriber Subscribe(const WaitOptions& wait = {}) {
    auto s = BroadcastSubscriber::Attach(segment_, wait);
    EXPECT_TRUE(s.ok()) << s.error().message();
    return std::move(s).value();
  }
  layout::BroadcastControl& control() { return segment_->control<layout::BroadcastControl>(); }
  layout::SlotHeader& header(uint64_t n) {
    const auto& p = segment_->params();
    return *reinterpret_cast<layout::SlotHeader*>(segment_->data() +
                                                  (n & (p.capacity - 1)) * p.slot_size);
  }
  void Publish(uint64_t from, uint64_t to) {  // messages "m<from>" .. "m<to - 1>"
    for (uint64_t i = from; i < to; ++i) {
      ASSERT_EQ(producer_->TrySend(Bytes("m" + std::to_string(i))), Status::kOk) << i;
    }
  }
  // The next message as text, "<lapped N>" or "<status>".
  static std::string Next(BroadcastSubscriber& s) {
    std::vector<std::byte> buffer(s.max_message());
    size_t size = 0;
    Status st = s.TryReceive(buffer, &size);
    if (st == Status::kLapped) return "<lapped " + std::to_string(s.last_lost()) + ">";
    if (st != Status::kOk) return std::string("<") + StatusName(st) + ">";
    return {reinterpret_cast<const char*>(buffer.data()), size};
  }

  TestDir dir_;
  std::shared_ptr<Segment> segment_;
  std::optional<BroadcastProducer> producer_;
};

// --- setup ------------------------------------------------------------------------------

TEST_F(BroadcastRingTest, CreateOpenAndAttach) {
  Make(8, 20);
  EXPECT_EQ(segment_->kind(), layout::ObjectKind::kBroadcastRing);
  EXPECT_EQ(segment_->params().capacity, 8u);
  EXPECT_EQ(segment_->params().max_message, 20u);
  EXPECT_EQ(segment_->params().slot_size, layout::SlotSizeFor(20));
  EXPECT_EQ(segment_->params().policy, static_cast<uint32_t>(layout::BroadcastPolicy::kLossy));
  EXPECT_EQ(producer_->slot_count(), 8u);
  EXPECT_EQ(producer_->max_message(), 20u);
  EXPECT_EQ(producer_->published(), 0u);
  auto by_name = BroadcastSubscriber::Open(dir_, "ring");
  ASSERT_TRUE(by_name.ok()) << by_name.error().message();
  EXPECT_EQ(by_name->max_message(), 20u);
  BroadcastSubscriber attached = Subscribe();
  EXPECT_EQ(attached.cursor(), 0u);
  ASSERT_EQ(producer_->TrySend(Bytes("to all")), Status::kOk);
  EXPECT_EQ(Next(*by_name), "to all");
  EXPECT_EQ(Next(attached), "to all");
}

TEST_F(BroadcastRingTest, WrongKindAndSecondProducerAreRefused) {
  Make(8, 20);
  ASSERT_TRUE(CreateMpmcRing(dir_, "mpmc", {.slot_count = 8, .max_message = 8}).ok());
  auto wrong = BroadcastSubscriber::Open(dir_, "mpmc");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kWrongKind);
  EXPECT_NE(wrong.error().message().find("is an mpmc ring, not a broadcast ring"),
            std::string::npos)
      << wrong.error().message();
  auto mpmc = Segment::Open(dir_, "mpmc");
  ASSERT_TRUE(mpmc.ok());
  auto attached = BroadcastProducer::Attach(std::make_shared<Segment>(std::move(mpmc).value()));
  ASSERT_FALSE(attached.ok());
  EXPECT_EQ(attached.error().code(), ErrorCode::kWrongKind);
  EXPECT_NE(attached.error().message().find("not a broadcast ring"), std::string::npos)
      << attached.error().message();

  auto second = BroadcastProducer::Open(dir_, "ring");
  ASSERT_FALSE(second.ok()) << "one producer per broadcast ring";
  EXPECT_EQ(second.error().code(), ErrorCode::kBusy);
  EXPECT_NE(second.error().message().find("already has a live producer"), std::string::npos)
      << second.error().message();
  producer_.reset();
  EXPECT_TRUE(BroadcastProducer::Open(dir_, "ring").ok()) << "free again after detach";
}

TEST_F(BroadcastRingTest, BadSpecsAreRejectedWithWhatToDo) {
  struct Case {
    BroadcastRingSpec spec;
    const char* says;
  };
  for (const Case& c : {Case{{12, 64}, "slot count 12 must be a power of two"},
                        Case{{0, 64}, "slot count 0 must be a power of two"},
                        Case{{1, 64}, "slot count 1 must be a power of two from 2"},
                        Case{{8, 0}, "max message must be at least 1 byte"},
                        Case{{8, 1u << 25}, "max message 33554432 must be 1 to 16777216"}}) {
    auto ring = CreateBroadcastRing(dir_, "bad", c.spec);
    ASSERT_FALSE(ring.ok()) << "slot_count " << c.spec.slot_count << ", max_message "
                            << c.spec.max_message << " was accepted";
    EXPECT_EQ(ring.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(ring.error().message().find(c.says), std::string::npos)
        << "expected \"" << c.says << "\" in: " << ring.error().message();
  }
  EXPECT_EQ(dir_.CountFiles(), 0);
}

// --- messages ---------------------------------------------------------------------------

TEST_F(BroadcastRingTest, EverySubscriberGetsEveryMessageInOrder) {
  Make(16, 64);
  BroadcastSubscriber a = Subscribe();
  BroadcastSubscriber b = Subscribe();
  EXPECT_EQ(Next(a), "<empty>");
  for (uint64_t round = 0; round < 4; ++round) {  // several laps, every tail length
    for (uint32_t size = 1; size <= 64; size += 5) {
      std::vector<std::byte> message(size);
      testing::FillPattern(round, size, message);
      ASSERT_EQ(producer_->TrySend(message), Status::kOk);
    }
    for (BroadcastSubscriber* s : {&a, &b}) {
      for (uint32_t size = 1; size <= 64; size += 5) {
        std::vector<std::byte> buffer(size);  // exactly the message's size is enough
        size_t got = 0;
        ASSERT_EQ(s->TryReceive(buffer, &got), Status::kOk) << "size " << size;
        ASSERT_EQ(testing::CheckPattern(round, size, size, {buffer.data(), got}), "");
      }
      EXPECT_EQ(Next(*s), "<empty>");
    }
  }
  EXPECT_EQ(a.cursor(), producer_->published());
}

TEST_F(BroadcastRingTest, SubscriberSeesOnlyWhatIsPublishedAfterItSubscribed) {
  Make(8, 20);
  Publish(0, 3);
  BroadcastSubscriber late = Subscribe();
  EXPECT_EQ(late.cursor(), 3u);
  EXPECT_EQ(Next(late), "<empty>") << "m0..m2 were published before it subscribed";
  Publish(3, 4);
  EXPECT_EQ(Next(late), "m3");
}

TEST_F(BroadcastRingTest, RejectsEmptyAndOversizedAndKeepsAMessageTooBigForTheBuffer) {
  Make(8, 10);
  BroadcastSubscriber s = Subscribe();
  EXPECT_EQ(producer_->TrySend(Bytes("")), Status::kInvalidArgument);
  EXPECT_EQ(producer_->TrySend(Bytes(std::string(11, 'x'))), Status::kTooLarge);
  EXPECT_EQ(producer_->published(), 0u);
  ASSERT_EQ(producer_->TrySend(Bytes("ten bytes!")), Status::kOk);
  std::vector<std::byte> small(4);
  size_t size = 0;
  EXPECT_EQ(s.TryReceive(small, &size), Status::kTooLarge);
  EXPECT_EQ(size, 10u) << "says how much room it needs";
  EXPECT_EQ(s.cursor(), 0u) << "the message stays";
  EXPECT_EQ(Next(s), "ten bytes!");
}

TEST_F(BroadcastRingTest, LappedSubscriberCountsExactlyWhatItLost) {
  Make(8, 20);
  BroadcastSubscriber s = Subscribe();
  Publish(0, 20);  // the ring holds m12..m19
  EXPECT_EQ(Next(s), "<lapped 12>") << "20 published - 8 slots";
  EXPECT_EQ(s.cursor(), 12u);
  for (int i = 12; i < 20; ++i) EXPECT_EQ(Next(s), "m" + std::to_string(i));
  EXPECT_EQ(Next(s), "<empty>");
  const layout::EndpointSlot* slot = SlotOf(*segment_, EndpointRole::kSubscriber);
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(slot->counters[layout::kCounterLapped].load(), 12u);
  EXPECT_EQ(slot->counters[layout::kCounterLapEvents].load(), 1u);
  EXPECT_EQ(slot->counters[layout::kCounterMessages].load(), 8u);
  EXPECT_EQ(slot->cursor.load(), 20u);
  // received + lost == published since it subscribed
  EXPECT_EQ(slot->counters[layout::kCounterMessages].load() +
                slot->counters[layout::kCounterLapped].load(),
            producer_->published());

  // The blocking form reports the lap too, then reads on.
  Publish(20, 40);
  std::vector<std::byte> buffer(20);
  size_t size = 0;
  EXPECT_EQ(s.ReceiveFor(buffer, &size, 1s), Status::kLapped);
  EXPECT_EQ(s.last_lost(), 12u);
  ASSERT_EQ(s.ReceiveFor(buffer, &size, 1s), Status::kOk);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer.data()), size), "m32");
  EXPECT_EQ(slot->counters[layout::kCounterLapEvents].load(), 2u);
}

TEST_F(BroadcastRingTest, OldestMessageBeingOverwrittenIsCountedAsLostToo) {
  Make(8, 20);
  BroadcastSubscriber s = Subscribe();
  Publish(0, 20);
  // The producer has begun writing m20 over m12 (same slot): sequence 2n + 1.
  header(20).sequence.store(2 * 20 + 1);
  EXPECT_EQ(Next(s), "<lapped 13>") << "m0..m12";
  for (int i = 13; i < 20; ++i) EXPECT_EQ(Next(s), "m" + std::to_string(i));
  EXPECT_EQ(Next(s), "<empty>") << "m20 is half-written: not yet";
}

TEST_F(BroadcastRingTest, HalfWrittenMessageIsNotDelivered) {
  Make(8, 20);
  BroadcastSubscriber s = Subscribe();
  Publish(0, 1);
  header(1).sequence.store(2 * 1 + 1);
  EXPECT_EQ(Next(s), "m0");
  EXPECT_EQ(Next(s), "<empty>");
  header(1).sequence.store(2 * 1 + 2);
  header(1).length = 2;
  std::memcpy(segment_->data() + segment_->params().slot_size + layout::kSlotHeaderSize, "ok", 2);
  EXPECT_EQ(Next(s), "ok") << "finished: delivered";
}

TEST_F(BroadcastRingTest, CorruptedLengthIsReportedAndNeverRead) {
  Make(8, 20);
  BroadcastSubscriber s = Subscribe();
  Publish(0, 2);
  header(0).length = 21;
  std::vector<std::byte> buffer(20, std::byte{0x55});
  size_t size = 99;
  EXPECT_EQ(s.TryReceive(buffer, &size), Status::kCorrupted);
  EXPECT_EQ(size, 99u);
  EXPECT_EQ(buffer[0], std::byte{0x55}) << "nothing copied";
  EXPECT_EQ(Next(s), "m1") << "moved past the corrupt message";
  header(2).sequence.store(2 * 2 + 2);  // "published" with a zero length
  header(2).length = 0;
  EXPECT_EQ(Next(s), "<corrupted>");
}

TEST_F(BroadcastRingTest, CountersAddUp) {
  Make(8, 20);
  BroadcastSubscriber s = Subscribe();
  Publish(0, 5);  // "m0".."m4": 10 bytes
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Next(s), "m" + std::to_string(i));
  EXPECT_EQ(control().published.load(), 5u);
  EXPECT_EQ(control().bytes_written.load(), 10u);
  const layout::EndpointSlot* slot = SlotOf(*segment_, EndpointRole::kSubscriber);
  ASSERT_NE(slot, nullptr);
  EXPECT_EQ(slot->counters[layout::kCounterMessages].load(), 5u);
  EXPECT_EQ(slot->counters[layout::kCounterBytes].load(), 10u);
  EXPECT_EQ(slot->cursor.load(), 5u);
  const layout::EndpointSlot* producer = SlotOf(*segment_, EndpointRole::kProducer);
  ASSERT_NE(producer, nullptr);
  EXPECT_EQ(producer->counters[layout::kCounterMessages].load(), 0u)
      << "the producer counts in BroadcastControl, so endpoint sums are what subscribers got";
  std::vector<std::byte> buffer(20);
  size_t size;
  EXPECT_EQ(s.ReceiveFor(buffer, &size, 30ms), Status::kTimeout);
  EXPECT_GE(slot->counters[layout::kCounterWaits].load(), 1u);
  s = Subscribe();  // the old subscriber detaches: its counters go to the totals
  EXPECT_EQ(segment_->header_page().totals.consumer[layout::kCounterMessages].load(), 5u);
}

TEST_F(BroadcastRingTest, NewProducerCountsAMessageItsPredecessorFinishedButDidNotCount) {
  Make(8, 20);
  BroadcastSubscriber s = Subscribe();
  Publish(0, 2);
  producer_.reset();
  control().published.store(1);  // died between its sequence store and its count
  auto p = BroadcastProducer::Open(dir_, "ring");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->published(), 2u);
  ASSERT_EQ(p->TrySend(Bytes("m2")), Status::kOk);
  for (const char* expected : {"m0", "m1", "m2"}) EXPECT_EQ(Next(s), expected);
}

// --- blocking ---------------------------------------------------------------------------

TEST_F(BroadcastRingTest, BlockedSubscriberWakesForData) {
  Make(8, 20);
  BroadcastSubscriber s = Subscribe();
  std::thread sender([&] {
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(producer_->TrySend(Bytes("late")), Status::kOk);
  });
  std::vector<std::byte> buffer(20);
  size_t size = 0;
  EXPECT_EQ(s.ReceiveFor(buffer, &size, 10s), Status::kOk);
  EXPECT_EQ(size, 4u);
  sender.join();
}

TEST_F(BroadcastRingTest, DeleteWakesABlockedSubscriberWithClosed) {
  Make(8, 20);
  BroadcastSubscriber s = Subscribe();
  std::thread remover([&] {
    std::this_thread::sleep_for(30ms);
    EXPECT_TRUE(Segment::Remove(dir_, "ring").ok());
  });
  std::vector<std::byte> buffer(20);
  size_t size = 0;
  EXPECT_EQ(s.ReceiveFor(buffer, &size, 10s), Status::kClosed);
  remover.join();
}

TEST_F(BroadcastRingTest, DetachedProducerMeansPeerGoneUntilANewOneComes) {
  Make(8, 20);
  BroadcastSubscriber s = Subscribe(FastChecks());
  Publish(0, 1);
  std::thread leaver([&] {
    std::this_thread::sleep_for(30ms);
    producer_.reset();
  });
  std::vector<std::byte> buffer(20);
  size_t size = 0;
  EXPECT_EQ(s.ReceiveFor(buffer, &size, 10s), Status::kOk) << "data first";
  EXPECT_EQ(s.ReceiveFor(buffer, &size, 10s), Status::kPeerGone);
  leaver.join();
  auto start = Clock::now();
  EXPECT_EQ(s.ReceiveFor(buffer, &size, 10s), Status::kPeerGone) << "sticky";
  EXPECT_LT(Clock::now() - start, 1s) << "and at once";
  auto p = BroadcastProducer::Open(dir_, "ring");
  ASSERT_TRUE(p.ok());
  std::thread sender([&] {
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(p->TrySend(Bytes("again")), Status::kOk);
  });
  EXPECT_EQ(s.ReceiveFor(buffer, &size, 10s), Status::kOk) << "a new producer: waiting again";
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer.data()), size), "again");
  sender.join();
}

// Subscribed before its producer attached, and lapped at every look while it lived: the
// subscriber never found the ring empty, where it used to look for its producer, so it
// never knew of it. Its leaving must still end the stream, after the data.
TEST_F(BroadcastRingTest, AnAlwaysLappedSubscriberHearsItsProducerLeaveAfterTheData) {
  Make(8, 20);
  producer_.reset();
  BroadcastSubscriber s = Subscribe(FastChecks());
  auto p = BroadcastProducer::Open(dir_, "ring");
  ASSERT_TRUE(p.ok()) << p.error().message();
  producer_.emplace(std::move(p).value());
  std::vector<std::byte> buffer(20);
  size_t size = 0;
  for (uint64_t round = 0; round < 3; ++round) {
    Publish(round * 20, round * 20 + 20);  // 20 messages into 8 slots
    ASSERT_EQ(s.ReceiveFor(buffer, &size, 1s), Status::kLapped) << round;
    ASSERT_EQ(s.ReceiveFor(buffer, &size, 1s), Status::kOk) << round;  // then one message
  }
  producer_.reset();  // leaves m53..m59 unread
  for (int i = 53; i < 60; ++i) {
    ASSERT_EQ(s.ReceiveFor(buffer, &size, 10s), Status::kOk) << "data first: m" << i;
    EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer.data()), size), "m" + std::to_string(i));
  }
  EXPECT_EQ(s.ReceiveFor(buffer, &size, 10s), Status::kPeerGone)
      << "then the end of the stream, not a wait for a producer it never knew of";
  EXPECT_EQ(s.ReceiveFor(buffer, &size, 10s), Status::kPeerGone) << "sticky";

  // A new producer: the stream goes on.
  auto again = BroadcastProducer::Open(dir_, "ring");
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->TrySend(Bytes("again")), Status::kOk);
  ASSERT_EQ(s.ReceiveFor(buffer, &size, 10s), Status::kOk);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer.data()), size), "again");
}

TEST_F(BroadcastRingTest, SubscriberWithoutAProducerWaits) {
  Make(8, 20);
  producer_.reset();
  BroadcastSubscriber s = Subscribe(FastChecks());
  std::vector<std::byte> buffer(20);
  size_t size = 0;
  EXPECT_EQ(s.ReceiveFor(buffer, &size, 30ms), Status::kTimeout);
}

// --- lossless policy --------------------------------------------------------------------

constexpr auto kLossless = layout::BroadcastPolicy::kLossless;

TEST_F(BroadcastRingTest, PolicyIsChosenAtCreationAndSeenByBothSides) {
  Make(4, 16, kLossless);
  EXPECT_EQ(segment_->params().policy, 1u);
  EXPECT_EQ(producer_->policy(), kLossless);
  EXPECT_EQ(Subscribe().policy(), kLossless);
  auto lossy = CreateBroadcastRing(dir_, "lossy", {.slot_count = 4, .max_message = 16});
  ASSERT_TRUE(lossy.ok());
  EXPECT_EQ(lossy->params().policy, 0u);
  auto bad = CreateBroadcastRing(
      dir_, "bad",
      {.slot_count = 4, .max_message = 16, .policy = static_cast<layout::BroadcastPolicy>(7)});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("policy"), std::string::npos) << bad.error().message();
}

TEST_F(BroadcastRingTest, LosslessWithoutSubscribersNeverFills) {
  Make(4, 16, kLossless);
  Publish(0, 100);
  EXPECT_EQ(producer_->published(), 100u);
}

TEST_F(BroadcastRingTest, LosslessProducerWaitsForTheSlowestLiveSubscriber) {
  Make(4, 16, kLossless);
  BroadcastSubscriber fast = Subscribe();
  BroadcastSubscriber slow = Subscribe();
  Publish(0, 4);
  EXPECT_EQ(producer_->TrySend(Bytes("m4")), Status::kFull);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Next(fast), "m" + std::to_string(i));
  EXPECT_EQ(producer_->TrySend(Bytes("m4")), Status::kFull) << "the slow one has read nothing";
  EXPECT_EQ(Next(slow), "m0");
  EXPECT_EQ(producer_->TrySend(Bytes("m4")), Status::kOk) << "message 0's slot is free";
  EXPECT_EQ(producer_->TrySend(Bytes("m5")), Status::kFull);
  // Nobody is ever lapped: the slow one reads everything, in order.
  for (int i = 1; i < 5; ++i) EXPECT_EQ(Next(slow), "m" + std::to_string(i));
  EXPECT_EQ(Next(fast), "m4");
  EXPECT_EQ(slow.last_lost(), 0u);
  // Each kFull is a full event: the producer's counter, the ring's full_events.
  const ObjectStats st = ReadStats(*segment_);
  EXPECT_EQ(st.full_events, 3u);
  EXPECT_EQ(st.lapped_messages, 0u);
}

TEST_F(BroadcastRingTest, LosslessSendForTimesOutUnderBackPressure) {
  Make(2, 16, kLossless);
  BroadcastSubscriber s = Subscribe(FastChecks());
  Publish(0, 2);
  EXPECT_EQ(producer_->SendFor(Bytes("m2"), 20ms), Status::kTimeout);
  EXPECT_EQ(producer_->published(), 2u);
  EXPECT_EQ(Next(s), "m0");
  EXPECT_EQ(producer_->SendFor(Bytes("m2"), 20ms), Status::kOk);
}

TEST_F(BroadcastRingTest, LosslessBlockedProducerWakesWhenTheSubscriberReads) {
  Make(2, 16, kLossless);
  BroadcastSubscriber s = Subscribe(FastChecks());
  Publish(0, 2);
  std::thread reader([&] {
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(Next(s), "m0");
  });
  EXPECT_EQ(producer_->SendFor(Bytes("m2"), 10s), Status::kOk);
  reader.join();
  EXPECT_EQ(Next(s), "m1");
  EXPECT_EQ(Next(s), "m2");
}

TEST_F(BroadcastRingTest, LosslessSubscriberThatDetachesStopsCounting) {
  Make(2, 16, kLossless);
  std::optional<BroadcastSubscriber> s(Subscribe());
  Publish(0, 2);
  EXPECT_EQ(producer_->TrySend(Bytes("m2")), Status::kFull);
  std::thread leaver([&] {
    std::this_thread::sleep_for(30ms);
    s.reset();  // ReleaseEndpoint wakes space_ready
  });
  EXPECT_EQ(producer_->SendFor(Bytes("m2"), 10s), Status::kOk);
  leaver.join();
}

TEST_F(BroadcastRingTest, LosslessLateSubscriberStartsAtPublishedAndHoldsTheProducerFromThere) {
  Make(4, 16, kLossless);
  Publish(0, 6);
  BroadcastSubscriber s = Subscribe();
  EXPECT_EQ(s.cursor(), 6u);
  Publish(6, 10);
  EXPECT_EQ(producer_->TrySend(Bytes("m10")), Status::kFull);
  EXPECT_EQ(Next(s), "m6");
}

TEST_F(BroadcastRingTest, DeleteWakesABlockedLosslessProducerWithClosed) {
  Make(2, 16, kLossless);
  BroadcastSubscriber s = Subscribe();
  Publish(0, 2);
  std::thread remover([&] {
    std::this_thread::sleep_for(30ms);
    EXPECT_TRUE(Segment::Remove(dir_, "ring").ok());
  });
  EXPECT_EQ(producer_->SendFor(Bytes("m2"), 10s), Status::kClosed);
  remover.join();
}

TEST_F(BroadcastRingTest, LossyProducerNeverFindsTheRingFull) {
  Make(2, 16);
  BroadcastSubscriber s = Subscribe();
  Publish(0, 10);
  EXPECT_EQ(producer_->SendFor(Bytes("m10"), 0ms), Status::kOk);
  EXPECT_EQ(ReadStats(*segment_).full_events, 0u);
}

// --- stress -----------------------------------------------------------------------------

struct StressHeader {
  uint64_t seq;
  uint32_t size;
  uint32_t reserved;
  uint64_t checksum;
};
static_assert(sizeof(StressHeader) == 24);

uint64_t Checksum(const StressHeader& h, std::span<const std::byte> body) {
  uint64_t x = 0xcbf29ce484222325ULL ^ h.seq ^ (uint64_t{h.size} << 40);
  for (std::byte b : body) x = (x ^ static_cast<uint8_t>(b)) * 0x100000001b3ULL;
  return x;
}

uint32_t StressSize(uint64_t seq, uint32_t max) {
  return static_cast<uint32_t>(sizeof(StressHeader)) +
         static_cast<uint32_t>(testing::SplitMix64(seq) % (max - sizeof(StressHeader) + 1));
}

struct StressMode {
  const char* name;
  uint32_t slots;
  uint32_t max_message;
  uint64_t count;
  bool every_subscriber_gets_some;
  bool lossless = false;  // then nobody loses anything: the producer waits instead
};

class BroadcastRingStressTest : public ::testing::TestWithParam<StressMode> {};

TEST_P(BroadcastRingStressTest, ThreeSubscribersSeeIncreasingValidMessagesAndCountEveryLoss) {
  constexpr uint32_t kSubscribers = 3;
  const StressMode mode = GetParam();
  const uint32_t kMax = mode.max_message;
  const uint64_t count = testing::Scaled(mode.count);
  TestDir dir;
  auto ring = CreateBroadcastRing(dir, "stress",
                                  {.slot_count = mode.slots,
                                   .max_message = kMax,
                                   .policy = mode.lossless ? layout::BroadcastPolicy::kLossless
                                                           : layout::BroadcastPolicy::kLossy});
  ASSERT_TRUE(ring.ok()) << ring.error().message();
  auto segment = std::make_shared<Segment>(std::move(ring).value());

  struct Result {
    std::string failure;
    uint64_t received = 0;
    uint64_t lost = 0;
    uint64_t lap_events = 0;
    uint64_t cursor = 0;
  };
  std::vector<Result> results(kSubscribers);
  std::latch attached(kSubscribers + 1);
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (uint32_t i = 0; i < kSubscribers; ++i) {
    threads.emplace_back([&, i] {
      Result& r = results[i];
      auto s = BroadcastSubscriber::Open(dir, "stress");  // its own mapping
      attached.count_down();
      if (!s.ok()) {
        r.failure = s.error().message();
        return;
      }
      attached.wait();
      std::vector<std::byte> buffer(kMax);
      for (;;) {
        const uint64_t expected = s->cursor();
        size_t size = 0;
        Status st = s->ReceiveFor(buffer, &size, 30s);
        if (st == Status::kPeerGone) break;
        if (st == Status::kLapped) {
          if (s->last_lost() == 0 || s->cursor() != expected + s->last_lost()) {
            r.failure = "lapped at " + std::to_string(expected) + ": lost " +
                        std::to_string(s->last_lost()) + " but the cursor moved to " +
                        std::to_string(s->cursor());
            return;
          }
          r.lost += s->last_lost();
          ++r.lap_events;
          continue;
        }
        if (st != Status::kOk) {
          r.failure = "subscriber " + std::to_string(i) + " at " + std::to_string(expected) +
                      ": expected ok, lapped or peer gone, got " + StatusName(st);
          return;
        }
        StressHeader h;
        std::memcpy(&h, buffer.data(), sizeof h);
        std::span<const std::byte> body(buffer.data() + sizeof h, size - sizeof h);
        const std::string what =
            "subscriber " + std::to_string(i) + ", message " + std::to_string(expected);
        if (size < sizeof h || h.seq != expected) {
          r.failure = what + ": got message " + std::to_string(h.seq) + " (" +
                      std::to_string(size) +
                      " bytes); sequence numbers must increase by one "
                      "between losses";
          return;
        }
        if (h.size != size || size != StressSize(h.seq, kMax) || h.checksum != Checksum(h, body)) {
          r.failure = what + ": torn or corrupted (" + std::to_string(size) + " bytes, expected " +
                      std::to_string(StressSize(h.seq, kMax)) + ")";
          return;
        }
        ++r.received;
      }
      r.cursor = s->cursor();
    });
  }

  std::string producer_failure;
  {
    auto producer = BroadcastProducer::Attach(segment);
    attached.count_down();
    attached.wait();
    if (!producer.ok()) producer_failure = producer.error().message();
    std::vector<std::byte> message;
    for (uint64_t seq = 0; producer.ok() && seq < count; ++seq) {
      StressHeader h{seq, StressSize(seq, kMax), 0, 0};
      message.resize(h.size);
      testing::FillPattern(7, seq, std::span(message).subspan(sizeof h));
      h.checksum = Checksum(h, std::span(message).subspan(sizeof h));
      std::memcpy(message.data(), &h, sizeof h);
      const Status s = mode.lossless ? producer->SendFor(message, 30s) : producer->TrySend(message);
      if (s != Status::kOk) {
        producer_failure = "message " + std::to_string(seq) + ": expected ok, got " + StatusName(s);
        break;
      }
      // Now and then give the subscribers a chance, so that the run mixes deliveries and
      // laps on a machine with fewer cores than threads.
      if (!mode.lossless && seq % 64 == 63) std::this_thread::yield();
    }
  }  // detaches: the subscribers drain and end with kPeerGone
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  ASSERT_EQ(producer_failure, "");
  uint64_t received = 0;
  uint64_t lost = 0;
  for (uint32_t i = 0; i < kSubscribers; ++i) {
    const Result& r = results[i];
    EXPECT_EQ(r.failure, "");
    EXPECT_EQ(r.received + r.lost, count)
        << "subscriber " << i << ": received " << r.received << " + lost " << r.lost
        << " must equal published " << count;
    EXPECT_EQ(r.cursor, count);
    if (mode.lossless) {
      EXPECT_EQ(r.lost, 0u) << "subscriber " << i << " lost messages on a lossless ring";
    }
    if (mode.every_subscriber_gets_some) {
      EXPECT_GT(r.received, 0u) << "subscriber " << i << " never got a message";
    }
    received += r.received;
    lost += r.lost;
    std::printf("[ stress   ] subscriber %u: received %llu, lost %llu in %llu laps\n", i,
                static_cast<unsigned long long>(r.received),
                static_cast<unsigned long long>(r.lost),
                static_cast<unsigned long long>(r.lap_events));
  }
  // Every subscriber has detached: its counters are in the totals.
  const auto& totals = segment->header_page().totals;
  EXPECT_EQ(totals.consumer[layout::kCounterMessages].load(), received);
  EXPECT_EQ(totals.consumer[layout::kCounterLapped].load(), lost);
  EXPECT_EQ(segment->control<layout::BroadcastControl>().published.load(), count);
  std::printf("[ stress   ] %llu messages published in %.2f s (%.2f M/s)\n",
              static_cast<unsigned long long>(count), seconds, count / seconds / 1e6);
}

INSTANTIATE_TEST_SUITE_P(
    Rings, BroadcastRingStressTest,
    ::testing::Values(StressMode{"small_messages", 256, 200, 1000000, true},
                      // Two slots and long copies: subscribers are overwritten mid-copy
                      // all the time, which the seqlock re-check must catch.
                      StressMode{"two_slots_long_messages", 2, 4096, 200000, false},
                      // The producer waits for the slowest of three: every one gets all.
                      StressMode{"lossless_small_messages", 64, 200, 300000, true, true},
                      StressMode{"lossless_two_slots", 2, 1024, 50000, true, true}),
    [](const auto& info) { return std::string(info.param.name); });

// --- multiprocess -----------------------------------------------------------------------

// A child process (fork, no exec: it only attaches and waits to be killed) subscribed to
// `name`; it reports its subscription on a pipe.
pid_t ForkSubscriber(const ShmDir& dir, const std::string& name) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    auto s = BroadcastSubscriber::Open(dir, name);
    const char c = s.ok() ? 'y' : 'n';
    if (write(fds[1], &c, 1) != 1) _exit(2);
    for (;;) pause();  // never reads: holds the lossless producer back until killed
  }
  close(fds[1]);
  char c = 0;
  const bool ok = pid > 0 && read(fds[0], &c, 1) == 1 && c == 'y';
  close(fds[0]);
  if (!ok && pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return -1;
  }
  return pid;
}

TEST(BroadcastRingMultiprocessTest, KilledLosslessSubscriberStopsHoldingTheProducer) {
  TestDir dir;
  auto ring = CreateBroadcastRing(
      dir, "ring",
      {.slot_count = 4, .max_message = 32, .policy = layout::BroadcastPolicy::kLossless});
  ASSERT_TRUE(ring.ok()) << ring.error().message();
  auto producer = BroadcastProducer::Open(dir, "ring", FastChecks());
  ASSERT_TRUE(producer.ok()) << producer.error().message();
  auto live = BroadcastSubscriber::Open(dir, "ring", FastChecks());
  ASSERT_TRUE(live.ok());
  const pid_t child = ForkSubscriber(dir, "ring");
  ASSERT_GT(child, 0);
  for (int i = 0; i < 4; ++i)
    ASSERT_EQ(producer->TrySend(Bytes("m" + std::to_string(i))), Status::kOk);
  std::vector<std::byte> buffer(32);
  size_t size = 0;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(live->TryReceive(buffer, &size), Status::kOk);
  // The child has read nothing: a live, stuck subscriber is back-pressure.
  EXPECT_EQ(producer->SendFor(Bytes("m4"), 30ms), Status::kTimeout);
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  // Dead: the waiting producer clears it at a slice boundary and goes on.
  EXPECT_EQ(producer->SendFor(Bytes("m4"), 10s), Status::kOk);
  for (int i = 5; i < 20; ++i) {
    ASSERT_EQ(producer->SendFor(Bytes("m" + std::to_string(i)), 10s), Status::kOk);
    ASSERT_EQ(live->ReceiveFor(buffer, &size, 10s), Status::kOk);
  }
  EXPECT_GE(producer->segment().header_page().totals.endpoints_cleared.load(), 1u);
}

TEST(BroadcastRingMultiprocessTest, KilledLosslessSubscriberIsClearedEvenByShortTimeouts) {
  // Sends whose timeout is shorter than a sleep slice never reach WaitFor's slice
  // boundary: the full path itself clears the dead, once per slice.
  TestDir dir;
  auto ring = CreateBroadcastRing(
      dir, "ring",
      {.slot_count = 2, .max_message = 8, .policy = layout::BroadcastPolicy::kLossless});
  ASSERT_TRUE(ring.ok()) << ring.error().message();
  auto producer = BroadcastProducer::Open(dir, "ring", FastChecks());
  ASSERT_TRUE(producer.ok());
  const pid_t child = ForkSubscriber(dir, "ring");
  ASSERT_GT(child, 0);
  ASSERT_EQ(producer->TrySend(Bytes("a")), Status::kOk);
  ASSERT_EQ(producer->TrySend(Bytes("b")), Status::kOk);
  EXPECT_EQ(producer->TrySend(Bytes("c")), Status::kFull);
  kill(child, SIGKILL);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);
  Status s = Status::kFull;
  for (const auto end = Clock::now() + 10s; s != Status::kOk && Clock::now() < end;) {
    s = producer->SendFor(Bytes("c"), 100us);
  }
  EXPECT_EQ(s, Status::kOk);
}

}  // namespace
}  // namespace shmd
