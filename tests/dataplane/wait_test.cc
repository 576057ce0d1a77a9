#include "shmd/dataplane/wait.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "shmd/dataplane/process.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;

TEST(WaitTest, WakeWithoutSleepersMakesNoSyscallAndChangesNothing) {
  layout::WaitWord word{};
  Wake(word);
  EXPECT_EQ(word.seq.load(), 0u) << "nobody waited: the sequence is untouched";
}

TEST(WaitTest, SleeperIsWokenAndCounted) {
  layout::WaitWord word{};
  std::atomic<bool> flag{false};
  std::atomic<uint64_t> waits{0};
  AdaptiveSpin spin(0ns);
  WaitOptions options;
  options.max_spin = 0ns;
  std::atomic<bool> saw_sleeper{false};
  std::thread waker([&] {
    // Publish only once the sleeper has announced itself: no timing involved.
    auto give_up = Clock::now() + 10s;
    while (word.waiters.load() == 0 && Clock::now() < give_up) std::this_thread::yield();
    saw_sleeper = word.waiters.load() != 0;
    flag.store(true, std::memory_order_release);
    Wake(word);
  });
  Status s = WaitFor(
      word, options, spin, Clock::now() + 10s, &waits,
      [&] { return flag.load(std::memory_order_acquire); }, [] { return false; });
  waker.join();
  EXPECT_EQ(s, Status::kOk);
  EXPECT_TRUE(saw_sleeper) << "the waiter took the futex path";
  EXPECT_EQ(word.waiters.load(), 0u) << "the sleeper took itself off";
}

TEST(WaitTest, DeadlineAndPeerGoneAndClosed) {
  layout::WaitWord word{};
  AdaptiveSpin spin(1us);
  WaitOptions options;
  options.sleep_slice = 5ms;
  EXPECT_EQ(WaitFor(
                word, options, spin, Clock::now() + 20ms, nullptr, [] { return false; },
                [] { return false; }),
            Status::kTimeout);
  EXPECT_EQ(WaitFor(
                word, options, spin, Clock::time_point::max(), nullptr, [] { return false; },
                [] { return true; }),
            Status::kPeerGone);
  word.closed.store(1);
  EXPECT_EQ(WaitFor(
                word, options, spin, Clock::time_point::max(), nullptr, [] { return false; },
                [] { return false; }),
            Status::kClosed);
}

TEST(WaitTest, BusyPollStillHonoursTheDeadline) {
  layout::WaitWord word{};
  AdaptiveSpin spin(1us);
  WaitOptions options;
  options.busy_poll = true;
  EXPECT_EQ(WaitFor(
                word, options, spin, Clock::now() + 10ms, nullptr, [] { return false; },
                [] { return false; }),
            Status::kTimeout);
}

TEST(AdaptiveSpinTest, RecoversAfterShrinkingWhenThePeerAnswersFastAgain) {
  AdaptiveSpin spin(50us);
  for (int i = 0; i < 20; ++i) spin.AfterSleep(5ms);  // an idle peer: stop burning the core
  EXPECT_LT(spin.budget(), 1us);
  spin.AfterSleep(8us);  // the peer answers within the spin limit again
  EXPECT_GE(spin.budget(), 16us) << "a spin of twice that would have caught it";
  spin.AfterSleep(40us);
  EXPECT_EQ(spin.budget(), 50us) << "never beyond the limit";
}

TEST(ProcessTest, SelfIsAliveAndAReusedPidIsNot) {
  ProcessIdentity self = ProcessIdentity::Self();
  EXPECT_EQ(self.pid, static_cast<uint32_t>(getpid()));
  EXPECT_NE(self.start_time, 0u);
  EXPECT_EQ(CheckProcess(self.pid, self.start_time, self.pid_namespace), Liveness::kAlive);
  EXPECT_EQ(CheckProcess(self.pid, self.start_time + 1, self.pid_namespace), Liveness::kDead)
      << "same pid, other start time: another process";
  EXPECT_EQ(CheckProcess(self.pid, self.start_time, self.pid_namespace + 1), Liveness::kUnknown);
}

TEST(ProcessTest, ZombieCountsAsDead) {
  pid_t child = fork();
  if (child == 0) _exit(0);
  bool gone = false;
  uint64_t start = 0;
  for (int i = 0; i < 100 && start == 0 && !gone; ++i) start = ReadProcessStartTime(child, &gone);
  std::this_thread::sleep_for(50ms);  // it exits; not reaped yet: a zombie
  ProcessIdentity self = ProcessIdentity::Self();
  EXPECT_EQ(CheckProcess(static_cast<uint32_t>(child), start, self.pid_namespace), Liveness::kDead);
  waitpid(child, nullptr, 0);
}

}  // namespace
}  // namespace shmd
