// WaitSet in one process: timeouts, readiness of one source among many, Remove, peer gone
// (detached, level-triggered until a new producer), deleted objects, the source limit,
// the sources of every consumer kind, and the notify fd's arm/rearm protocol. The
// producers-in-other-processes cases are in wait_set_multiprocess_test.cc.
#include "shmd/dataplane/wait_set.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/test_dir.h"
#include "shmd/dataplane/broadcast_ring.h"
#include "shmd/dataplane/mpmc_ring.h"
#include "shmd/dataplane/spsc_ring.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using testing::TestDir;

std::span<const std::byte> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

template <class T>
T Must(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.error().message();
  if (!r.ok()) std::abort();
  return std::move(r).value();
}

// Whether `fd` polls readable within `timeout`.
bool Readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(timeout.count())) == 1 && (p.revents & POLLIN) != 0;
}

// N SPSC rings, each with a consumer (and a producer, until Detach).
class WaitSetTest : public ::testing::Test {
 protected:
  void Make(int n) {
    for (int i = 0; i < n; ++i) {
      std::string name = "r" + std::to_string(i);
      Must(CreateSpscRing(dir_, name, {.capacity = 4096}));
      producers_.emplace_back(Must(SpscProducer::Open(dir_, name)));
      consumers_.emplace_back(Must(SpscConsumer::Open(dir_, name)));
    }
  }
  void AddAll(WaitSet& set) {
    for (size_t i = 0; i < consumers_.size(); ++i) {
      auto added = set.Add(Must(WaitSourceOf(consumers_[i])), i);
      ASSERT_TRUE(added.ok()) << added.error().message();
    }
  }
  void Send(size_t ring, const std::string& text) {
    ASSERT_EQ(producers_[ring]->TrySend(Bytes(text)), Status::kOk);
  }
  // Receives everything in `ring`; returns how many.
  int Drain(size_t ring) {
    std::byte buf[256];
    size_t size;
    int n = 0;
    while (consumers_[ring].TryReceive(buf, &size) == Status::kOk) ++n;
    return n;
  }

  TestDir dir_;
  std::vector<std::optional<SpscProducer>> producers_;
  std::vector<SpscConsumer> consumers_;
};

TEST_F(WaitSetTest, TimesOutWhenNothingIsReady) {
  Make(3);
  WaitSet set;
  AddAll(set);
  std::vector<WaitEvent> events{{.tag = 99}};
  EXPECT_EQ(set.Wait(20ms, &events), Status::kTimeout);
  EXPECT_TRUE(events.empty());
  EXPECT_EQ(set.Wait(Nanos::zero(), &events), Status::kTimeout);
  EXPECT_EQ(set.Wait(-5ms, &events), Status::kTimeout);
  WaitSet empty;
  EXPECT_EQ(empty.Wait(5ms, &events), Status::kTimeout);
  EXPECT_EQ(set.Wait(5ms, nullptr), Status::kInvalidArgument);
}

TEST_F(WaitSetTest, ReportsTheOneSourceThatBecomesReadable) {
  Make(8);
  WaitSet set;
  AddAll(set);
  std::thread sender([&] {
    std::this_thread::sleep_for(30ms);  // long enough for the set to be asleep
    Send(5, "five");
  });
  std::vector<WaitEvent> events;
  ASSERT_EQ(set.Wait(10s, &events), Status::kOk);
  sender.join();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].tag, 5u);
  EXPECT_TRUE(events[0].readable);
  EXPECT_FALSE(events[0].peer_gone);
  EXPECT_FALSE(events[0].closed);
  // Level-triggered: still readable until received.
  ASSERT_EQ(set.Wait(Nanos::zero(), &events), Status::kOk);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(Drain(5), 1);
  EXPECT_EQ(set.Wait(Nanos::zero(), &events), Status::kTimeout);
}

TEST_F(WaitSetTest, ReportsEveryReadySourceInAddOrder) {
  Make(4);
  WaitSet set;
  AddAll(set);
  Send(3, "c");
  Send(1, "a");
  std::vector<WaitEvent> events;
  ASSERT_EQ(set.Wait(1s, &events), Status::kOk);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].tag, 1u);
  EXPECT_EQ(events[1].tag, 3u);
}

TEST_F(WaitSetTest, RemovedSourcesAreNotWatched) {
  Make(3);
  WaitSet set;
  AddAll(set);
  EXPECT_TRUE(set.Remove(1));
  EXPECT_FALSE(set.Remove(1));
  EXPECT_FALSE(set.Remove(42));
  EXPECT_EQ(set.size(), 2u);
  Send(1, "ignored");
  std::vector<WaitEvent> events;
  EXPECT_EQ(set.Wait(20ms, &events), Status::kTimeout);
  Send(2, "seen");
  ASSERT_EQ(set.Wait(1s, &events), Status::kOk);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].tag, 2u);
}

TEST_F(WaitSetTest, SourceAddedWhileAnotherThreadWaitsIsSeen) {
  Make(2);
  WaitSet set;
  ASSERT_TRUE(set.Add(Must(WaitSourceOf(consumers_[0])), 0).ok());
  Send(1, "already there");
  auto waiter = std::async(std::launch::async, [&] {
    std::vector<WaitEvent> events;
    Status s = set.Wait(10s, &events);
    return std::make_pair(s, events);
  });
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(set.Add(Must(WaitSourceOf(consumers_[1])), 1).ok());
  auto [status, events] = waiter.get();
  ASSERT_EQ(status, Status::kOk);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].tag, 1u);
}

TEST_F(WaitSetTest, ProducerThatLeftIsReportedUntilANewOneAttaches) {
  Make(2);
  WaitSet set;
  AddAll(set);
  Send(0, "last words");
  std::thread leaver([&] {
    std::this_thread::sleep_for(20ms);
    producers_[0].reset();  // clean detach: wakes the set at once
  });
  // First the message (readable), possibly already with the hang-up.
  std::vector<WaitEvent> events;
  ASSERT_EQ(set.Wait(10s, &events), Status::kOk);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].readable);
  EXPECT_EQ(Drain(0), 1);
  leaver.join();
  ASSERT_EQ(set.Wait(10s, &events), Status::kOk);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].tag, 0u);
  EXPECT_TRUE(events[0].peer_gone);
  EXPECT_FALSE(events[0].readable);
  // Level-triggered: reported again, at once.
  ASSERT_EQ(set.Wait(Nanos::zero(), &events), Status::kOk);
  EXPECT_TRUE(events.at(0).peer_gone);
  // A new producer: no longer gone.
  producers_[0].emplace(Must(SpscProducer::Open(dir_, "r0")));
  EXPECT_EQ(set.Wait(30ms, &events), Status::kTimeout);
  Send(0, "hello again");
  ASSERT_EQ(set.Wait(1s, &events), Status::kOk);
  EXPECT_TRUE(events.at(0).readable);
  EXPECT_FALSE(events.at(0).peer_gone);
}

TEST_F(WaitSetTest, ProducerThatLeftWithoutWritingIsReported) {
  Make(1);
  WaitSet set;
  AddAll(set);  // the source's watch adopts the attached producer
  producers_[0].reset();
  std::vector<WaitEvent> events;
  ASSERT_EQ(set.Wait(10s, &events), Status::kOk);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].peer_gone);
}

TEST_F(WaitSetTest, ConsumerBeforeAnyProducerWaits) {
  Must(CreateSpscRing(dir_, "lonely", {.capacity = 4096}));
  SpscConsumer consumer = Must(SpscConsumer::Open(dir_, "lonely"));
  WaitSet set;
  ASSERT_TRUE(set.Add(Must(WaitSourceOf(consumer)), 7).ok());
  std::vector<WaitEvent> events;
  EXPECT_EQ(set.Wait(30ms, &events), Status::kTimeout);
}

TEST_F(WaitSetTest, DeletedObjectIsReportedClosed) {
  Make(2);
  WaitSet set;
  AddAll(set);
  std::thread remover([&] {
    std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(Segment::Remove(dir_, "r1").ok());
  });
  std::vector<WaitEvent> events;
  ASSERT_EQ(set.Wait(10s, &events), Status::kOk);
  remover.join();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].tag, 1u);
  EXPECT_TRUE(events[0].closed);
}

TEST_F(WaitSetTest, SourceOutlivesItsHandle) {
  Make(1);
  WaitSet set;
  AddAll(set);
  consumers_.clear();  // the set keeps the mapping alive
  producers_.clear();
  std::vector<WaitEvent> events;
  ASSERT_EQ(set.Wait(1s, &events), Status::kOk);  // the producer left
  EXPECT_TRUE(events.at(0).peer_gone);
  EXPECT_TRUE(set.Remove(0));
}

TEST_F(WaitSetTest, BadSourcesAndTheLimitAreRefusedClearly) {
  Make(1);
  WaitSet set;
  auto r = set.Add(WaitSource{}, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  // One ring's source added many times (one word: the limit counts sources).
  for (uint64_t tag = 0; tag < WaitSet::kMaxSources; ++tag) {
    ASSERT_TRUE(set.Add(Must(WaitSourceOf(consumers_[0])), tag).ok()) << tag;
  }
  r = set.Add(Must(WaitSourceOf(consumers_[0])), 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kQuotaExceeded);
  EXPECT_NE(r.error().message().find("127"), std::string::npos) << r.error().message();
  EXPECT_TRUE(set.Remove(3));
  r = set.Add(Must(WaitSourceOf(consumers_[0])), 5);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);  // tag 5 is taken
  EXPECT_NE(r.error().message().find("tag 5"), std::string::npos) << r.error().message();
  EXPECT_TRUE(set.Add(Must(WaitSourceOf(consumers_[0])), 3).ok());

  SpscConsumer moved = std::move(consumers_[0]);
  auto source = WaitSourceOf(consumers_[0]);  // NOLINT(bugprone-use-after-move): on purpose
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(WaitSetTest, FullSetSleepsOnEveryWord) {
  // kMaxSources distinct rings: the futex_waitv call is at its limit of 128 words.
  Make(static_cast<int>(WaitSet::kMaxSources));
  WaitSet set;
  AddAll(set);
  std::thread sender([&] {
    std::this_thread::sleep_for(30ms);
    Send(WaitSet::kMaxSources - 1, "last");
  });
  std::vector<WaitEvent> events;
  ASSERT_EQ(set.Wait(10s, &events), Status::kOk);
  sender.join();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].tag, WaitSet::kMaxSources - 1);
}

TEST(WaitSetSources, MpmcConsumer) {
  TestDir dir;
  Must(CreateMpmcRing(dir, "m", {.slot_count = 8, .max_message = 64}));
  auto producer = std::make_optional(Must(MpmcProducer::Open(dir, "m")));
  MpmcConsumer consumer = Must(MpmcConsumer::Open(dir, "m"));
  WaitSet set;
  ASSERT_TRUE(set.Add(Must(WaitSourceOf(consumer)), 1).ok());
  std::vector<WaitEvent> events;
  EXPECT_EQ(set.Wait(20ms, &events), Status::kTimeout);
  ASSERT_EQ(producer->TrySend(Bytes("x")), Status::kOk);
  ASSERT_EQ(set.Wait(1s, &events), Status::kOk);
  EXPECT_TRUE(events.at(0).readable);
  std::byte buf[64];
  size_t size;
  ASSERT_EQ(consumer.TryReceive(buf, &size), Status::kOk);
  EXPECT_EQ(set.Wait(20ms, &events), Status::kTimeout);
  producer.reset();
  ASSERT_EQ(set.Wait(10s, &events), Status::kOk);
  EXPECT_TRUE(events.at(0).peer_gone);
  EXPECT_FALSE(events.at(0).readable);
}

TEST(WaitSetSources, BroadcastSubscribersShareOneWord) {
  TestDir dir;
  Must(CreateBroadcastRing(dir, "b", {.slot_count = 8, .max_message = 64}));
  auto producer = std::make_optional(Must(BroadcastProducer::Open(dir, "b")));
  BroadcastSubscriber a = Must(BroadcastSubscriber::Open(dir, "b"));
  BroadcastSubscriber b = Must(BroadcastSubscriber::Open(dir, "b"));
  WaitSet set;
  ASSERT_TRUE(set.Add(Must(WaitSourceOf(a)), 1).ok());
  ASSERT_TRUE(set.Add(Must(WaitSourceOf(b)), 2).ok());
  std::vector<WaitEvent> events;
  EXPECT_EQ(set.Wait(20ms, &events), Status::kTimeout);
  std::thread sender([&] {
    std::this_thread::sleep_for(20ms);
    ASSERT_EQ(producer->TrySend(Bytes("all")), Status::kOk);
  });
  ASSERT_EQ(set.Wait(10s, &events), Status::kOk);
  sender.join();
  ASSERT_EQ(events.size(), 2u);
  std::byte buf[64];
  size_t size;
  ASSERT_EQ(a.TryReceive(buf, &size), Status::kOk);
  ASSERT_EQ(set.Wait(Nanos::zero(), &events), Status::kOk);  // b has not read yet
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].tag, 2u);
  ASSERT_EQ(b.TryReceive(buf, &size), Status::kOk);
  EXPECT_EQ(set.Wait(20ms, &events), Status::kTimeout);
  producer.reset();
  ASSERT_EQ(set.Wait(10s, &events), Status::kOk);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(events[0].peer_gone && events[1].peer_gone);
}

TEST_F(WaitSetTest, NotifyFdIsReadableUntilRearmed) {
  Make(3);
  WaitSet set;
  AddAll(set);
  const int fd = Must(set.NotifyFd());
  EXPECT_EQ(Must(set.NotifyFd()), fd);  // one fd per set
  EXPECT_FALSE(Readable(fd, 30ms));

  std::thread sender([&] {
    std::this_thread::sleep_for(20ms);
    Send(2, "x");
  });
  ASSERT_TRUE(Readable(fd, 10s));
  sender.join();
  // Which source? A zero-timeout Wait says.
  std::vector<WaitEvent> events;
  ASSERT_EQ(set.Wait(Nanos::zero(), &events), Status::kOk);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].tag, 2u);
  EXPECT_EQ(Drain(2), 1);
  EXPECT_TRUE(Readable(fd, 0ms));  // stays readable until re-armed, even when drained
  set.Rearm();
  EXPECT_FALSE(Readable(fd, 30ms));

  // A message arriving while the loop drains (before Rearm) is not missed: Rearm re-checks.
  Send(0, "a");
  ASSERT_TRUE(Readable(fd, 10s));
  EXPECT_EQ(Drain(0), 1);
  Send(1, "late");
  set.Rearm();
  ASSERT_TRUE(Readable(fd, 10s));
  EXPECT_EQ(Drain(1), 1);
  set.Rearm();
  EXPECT_FALSE(Readable(fd, 30ms));
  EXPECT_GE(set.notifications(), 3u);

  // Reading the eventfd is allowed too (Rearm tolerates an empty one).
  Send(0, "b");
  ASSERT_TRUE(Readable(fd, 10s));
  uint64_t count = 0;
  ASSERT_EQ(read(fd, &count, sizeof count), static_cast<ssize_t>(sizeof count));
  EXPECT_EQ(Drain(0), 1);
  set.Rearm();
  EXPECT_FALSE(Readable(fd, 30ms));

  // A producer leaving is a notification too.
  producers_[1].reset();
  ASSERT_TRUE(Readable(fd, 10s));
  ASSERT_EQ(set.Wait(Nanos::zero(), &events), Status::kOk);
  EXPECT_TRUE(events.at(0).peer_gone);
}

// As on a kernel older than 5.16: one word at a time, short slices, re-polling every source.
TEST_F(WaitSetTest, WorksWithoutFutexWaitv) {
  internal::SetFutexWaitvDisabledForTesting(true);
  struct Restore {
    ~Restore() { internal::SetFutexWaitvDisabledForTesting(false); }
  } restore;
  Make(8);
  WaitSet set;
  AddAll(set);
  std::vector<WaitEvent> events;
  EXPECT_EQ(set.Wait(20ms, &events), Status::kTimeout);
  std::thread sender([&] {
    std::this_thread::sleep_for(30ms);
    Send(6, "six");  // not the word the set happens to sleep on, most of the time
  });
  ASSERT_EQ(set.Wait(10s, &events), Status::kOk);
  sender.join();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].tag, 6u);
  EXPECT_EQ(Drain(6), 1);
  const int fd = Must(set.NotifyFd());
  EXPECT_FALSE(Readable(fd, 20ms));
  Send(3, "three");
  ASSERT_TRUE(Readable(fd, 10s));
  EXPECT_EQ(Drain(3), 1);
  set.Rearm();
  EXPECT_FALSE(Readable(fd, 20ms));
}

TEST_F(WaitSetTest, DestructorJoinsTheNotifierPromptly) {
  Make(2);
  for (int armed = 0; armed < 2; ++armed) {
    auto set = std::make_unique<WaitSet>(WaitOptions{.sleep_slice = std::chrono::hours(1)});
    AddAll(*set);
    const int fd = Must(set->NotifyFd());
    if (armed == 0) {
      Send(0, "fire");  // the thread reports, then waits for a Rearm that never comes
      ASSERT_TRUE(Readable(fd, 10s));
      Drain(0);
    }
    std::this_thread::sleep_for(10ms);  // asleep in futex_waitv (slices of an hour)
    // Bounded: the destructor must not wait out the slice. A hang fails here, not at ctest.
    auto done = std::async(std::launch::async, [&] { set.reset(); });
    ASSERT_EQ(done.wait_for(10s), std::future_status::ready) << "destructor hung";
  }
}

}  // namespace
}  // namespace shmd
