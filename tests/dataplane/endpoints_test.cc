// The endpoint table in one process: the liveness lock that tells across pid namespaces,
// the trace a cleared dead endpoint leaves for the daemon, and counter sums that never go
// backwards. Another pid namespace is simulated by rewriting a slot's pid_namespace, and
// a process death by closing the open file description its endpoint locked through
// (destroying its Segment without detaching): the kernel drops the lock either way.
// pid_namespace_test does the same with real namespaces and kill -9.
#include "shmd/dataplane/endpoints.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "common/test_dir.h"
#include "shmd/dataplane/block_pool.h"

namespace shmd {
namespace {

using layout::EndpointRole;
using testing::TestDir;

class EndpointsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto created = CreateBlockPool(dir_, "pool", {.block_size = 64, .block_count = 8});
    ASSERT_TRUE(created.ok()) << created.error().message();
    segment_ = std::make_unique<Segment>(std::move(created).value());
  }

  // A second mapping of the object: its own open file description, as another process has.
  std::unique_ptr<Segment> OpenAgain() {
    auto opened = Segment::Open(dir_, "pool");
    EXPECT_TRUE(opened.ok()) << opened.error().message();
    return std::make_unique<Segment>(std::move(opened).value());
  }

  layout::EndpointSlot& Slot(uint32_t i) { return segment_->endpoints().slots[i]; }
  bool FlaggedLocked(uint32_t i) {
    return layout::LivenessLockHeld(Slot(i).liveness.load(), Slot(i).incarnation.load());
  }

  // As if the slot's owner lived in another pid namespace: its pid means nothing here.
  void PretendOtherNamespace(uint32_t i) { Slot(i).pid_namespace.store(OwnPidNamespace() + 1); }

  uint32_t Claim(const Segment& s) {
    Result<uint32_t> slot = ClaimEndpoint(s, EndpointRole::kProducer, /*exclusive=*/false);
    EXPECT_TRUE(slot.ok()) << slot.error().message();
    return slot.ok() ? *slot : layout::kMaxEndpoints;
  }

  // Whether any open file description (other than the probe's own) locks slot i's byte.
  bool LockHeld(uint32_t i) {
    const int probe = open(segment_->path().c_str(), O_RDONLY | O_CLOEXEC);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = static_cast<off_t>(layout::kLivenessLockBase + i);
    fl.l_len = 1;
    EXPECT_EQ(fcntl(probe, F_OFD_GETLK, &fl), 0);
    close(probe);
    return fl.l_type != F_UNLCK;
  }

  TestDir dir_;
  std::unique_ptr<Segment> segment_;
};

TEST_F(EndpointsTest, ALiveEndpointHoldsItsLockAndRecordsItsLease) {
  segment_->set_lease_id(0x1234abcd5678ef00);
  const uint32_t i = Claim(*segment_);
  EXPECT_TRUE(FlaggedLocked(i));
  EXPECT_EQ(Slot(i).lease_id.load(), 0x1234abcd5678ef00u);
  EXPECT_TRUE(LockHeld(i));
  EXPECT_EQ(EndpointLiveness(*segment_, i), Liveness::kAlive);
  ReleaseEndpoint(*segment_, i);
  EXPECT_FALSE(LockHeld(i)) << "a detached endpoint lets its byte go";
  EXPECT_EQ(Slot(i).liveness.load(), 0u) << "a free slot never says it holds a lock";
}

// F_OFD_GETLK ignores locks of the description it is called on: the test must go through
// another one, or this process would find its own endpoints dead.
TEST_F(EndpointsTest, ThisProcesssOwnEndpointIsNotJudgedDeadByItsLock) {
  const uint32_t i = Claim(*segment_);
  PretendOtherNamespace(i);
  EXPECT_EQ(EndpointLiveness(*segment_, i), Liveness::kAlive)
      << "tested through the description that holds the lock";
  auto other = OpenAgain();
  EXPECT_EQ(EndpointLiveness(*other, i), Liveness::kAlive);
  EXPECT_FALSE(ClearIfDead(*segment_, i));
  EXPECT_EQ(ClearDeadEndpoints(*other), 0u);
  EXPECT_EQ(Slot(i).state.load(), static_cast<uint32_t>(layout::EndpointState::kLive));
}

TEST_F(EndpointsTest, AnotherNamespacesEndpointWhoseLockIsGoneIsDeadAndCleared) {
  auto owner = OpenAgain();
  owner->set_lease_id(77);
  const uint32_t i = Claim(*owner);
  PretendOtherNamespace(i);
  Block block;
  {
    // It holds a block, which must come back.
    layout::BlockMeta* meta =
        reinterpret_cast<layout::BlockMeta*>(segment_->base() + segment_->params().meta_offset);
    auto pool = BlockPool::Attach(std::shared_ptr<Segment>(OpenAgain()), {});
    ASSERT_TRUE(pool.ok());
    ASSERT_EQ(pool->TryAllocate(&block), Status::kOk);
    meta[block.index].owner.store(i + 1);  // hand it to the endpoint about to die
  }
  EXPECT_EQ(EndpointLiveness(*segment_, i), Liveness::kAlive);
  owner.reset();  // its process "dies": the description closes, the kernel drops the lock
  EXPECT_EQ(EndpointLiveness(*segment_, i), Liveness::kDead);
  EXPECT_TRUE(ClearIfDead(*segment_, i));
  EXPECT_EQ(Slot(i).state.load(), static_cast<uint32_t>(layout::EndpointState::kFree));
  EXPECT_EQ(segment_->header_page().totals.reclaimed_blocks.load(), 1u);
  EXPECT_EQ(segment_->header_page().totals.endpoints_cleared.load(), 1u);

  // The trace for the daemon: taken once, with the dead owner's lease.
  EndpointDeath death;
  ASSERT_TRUE(TakeEndpointDeath(*segment_, i, &death));
  EXPECT_EQ(death.slot, i);
  EXPECT_EQ(death.lease_id, 77u);
  EXPECT_EQ(death.role, static_cast<uint32_t>(EndpointRole::kProducer));
  EXPECT_EQ(death.pid_namespace, OwnPidNamespace() + 1);
  EXPECT_FALSE(TakeEndpointDeath(*segment_, i, &death)) << "reported once";
}

TEST_F(EndpointsTest, TheNextClaimerTakesAnUnreportedDeathOver) {
  auto owner = OpenAgain();
  owner->set_lease_id(5);
  const uint32_t i = Claim(*owner);
  PretendOtherNamespace(i);
  owner.reset();
  ASSERT_TRUE(ClearIfDead(*segment_, i));
  ASSERT_EQ(Slot(i).liveness.load(), layout::kLivenessDiedUnreported);
  segment_->set_lease_id(6);
  ASSERT_EQ(Claim(*segment_), i) << "the first free slot";
  EXPECT_EQ(Slot(i).liveness.load(), layout::LivenessLockWord(Slot(i).incarnation.load()));
  EXPECT_EQ(Slot(i).lease_id.load(), 6u);
  EndpointDeath death;
  EXPECT_FALSE(TakeEndpointDeath(*segment_, i, &death)) << "a live slot has no death to report";
}

// Objects attached by code that predates the lock (the flag is 0) are never judged by it.
TEST_F(EndpointsTest, WithoutTheFlagAnotherNamespacesEndpointStaysUnknown) {
  auto owner = OpenAgain();
  const uint32_t i = Claim(*owner);
  PretendOtherNamespace(i);
  Slot(i).liveness.store(0);
  EXPECT_EQ(EndpointLiveness(*segment_, i), Liveness::kUnknown);
  owner.reset();  // even with its lock gone
  EXPECT_EQ(EndpointLiveness(*segment_, i), Liveness::kUnknown);
  EXPECT_FALSE(ClearIfDead(*segment_, i));
  EXPECT_EQ(Slot(i).state.load(), static_cast<uint32_t>(layout::EndpointState::kLive));
}

// Code that predates the flags leaves the word as it finds it: after it cleared a dead
// owner and claimed the slot again, the word may still say "locked", though nobody holds
// the lock. The claim bumped the incarnation, so the stale flag counts for nothing.
TEST_F(EndpointsTest, AFlagLeftFromAnEarlierIncarnationCountsForNothing) {
  auto owner = OpenAgain();
  const uint32_t i = Claim(*owner);
  PretendOtherNamespace(i);
  owner.reset();  // no lock any more; the word still says "locked" by incarnation k
  Slot(i).incarnation.fetch_add(1);  // an older claimer's claim
  EXPECT_FALSE(FlaggedLocked(i));
  EXPECT_EQ(EndpointLiveness(*segment_, i), Liveness::kUnknown) << "never dead by a stale flag";
  EXPECT_FALSE(ClearIfDead(*segment_, i));
}

TEST_F(EndpointsTest, EndpointsOfOneMappingEachOwnTheirByte) {
  const uint32_t a = Claim(*segment_);
  const uint32_t b = Claim(*segment_);
  ASSERT_NE(a, b);
  PretendOtherNamespace(a);
  PretendOtherNamespace(b);
  auto checker = OpenAgain();
  ReleaseEndpoint(*segment_, a);
  EXPECT_FALSE(LockHeld(a));
  EXPECT_TRUE(LockHeld(b)) << "releasing one endpoint must not drop another's lock";
  EXPECT_EQ(EndpointLiveness(*checker, b), Liveness::kAlive);
  EXPECT_EQ(ClearDeadEndpoints(*checker), 0u);
}

// A byte some other description still holds (a child forked without exec keeps its dead
// parent's): the claim works all the same, without the flag.
TEST_F(EndpointsTest, ALockThatCannotBeTakenOnlyLeavesTheFlagOff) {
  const int holder = open(segment_->path().c_str(), O_RDWR | O_CLOEXEC);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(layout::kLivenessLockBase + 0);
  fl.l_len = 1;
  ASSERT_EQ(fcntl(holder, F_OFD_SETLK, &fl), 0);
  const uint32_t i = Claim(*segment_);
  ASSERT_EQ(i, 0u);
  EXPECT_FALSE(FlaggedLocked(i));
  EXPECT_EQ(EndpointLiveness(*segment_, i), Liveness::kAlive) << "the pid check still applies";
  ReleaseEndpoint(*segment_, i);
  EXPECT_TRUE(LockHeld(0)) << "a release never lets go of a lock it did not take";
  close(holder);
}

// Counters move from a slot into the totals when it is released or cleared; a reader that
// overlaps the move must count them once, never twice or not at all (Prometheus would
// take the dip for a counter reset).
TEST_F(EndpointsTest, CounterSumsNeverGoBackwardsWhileEndpointsComeAndGo) {
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> added{0};
  // Counts n, one at a time, a few microseconds apart: a reader mostly finds the slot
  // holding counts (a slot folded while still at 0 could not show a dip).
  auto count = [&](const Segment& s, uint32_t i, uint64_t n) {
    auto& c = s.endpoints().slots[i].counters[layout::kCounterMessages];
    for (uint64_t k = 0; k < n; ++k) {
      c.store(c.load() + 1, std::memory_order_relaxed);
      added.fetch_add(1);
      const auto until = Clock::now() + std::chrono::microseconds(2);
      while (Clock::now() < until) {
      }
    }
  };
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; ++t) {
    writers.emplace_back([&] {  // attach, count, detach
      while (!stop.load()) {
        const uint32_t i = Claim(*segment_);
        if (i == layout::kMaxEndpoints) return;
        count(*segment_, i, 3);
        ReleaseEndpoint(*segment_, i);
      }
    });
  }
  writers.emplace_back([&] {  // attach, count, die, get cleared
    while (!stop.load()) {
      auto owner = OpenAgain();
      const uint32_t i = Claim(*owner);
      if (i == layout::kMaxEndpoints) return;
      count(*owner, i, 5);
      PretendOtherNamespace(i);
      owner.reset();
      ClearIfDead(*segment_, i);
    }
  });
  // Two readers, each checking its own sequence: more chances to overlap a fold.
  std::atomic<uint64_t> reads{0}, backwards{0};
  auto read = [&] {
    uint64_t last = 0;
    const auto until = Clock::now() + std::chrono::milliseconds(1500);
    while (Clock::now() < until) {
      const uint64_t sum = SumEndpointCounter(*segment_, layout::kCounterMessages);
      if (sum < last) backwards.fetch_add(1);
      last = std::max(last, sum);
      reads.fetch_add(1);
    }
  };
  std::thread reader(read);
  read();
  reader.join();
  stop.store(true);
  for (auto& w : writers) w.join();
  EXPECT_EQ(backwards.load(), 0u) << "of " << reads.load() << " reads";
  EXPECT_GT(reads.load(), 1000u);
  EXPECT_EQ(SumEndpointCounter(*segment_, layout::kCounterMessages), added.load());
}

}  // namespace
}  // namespace shmd
