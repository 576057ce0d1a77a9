// Sleeping and waking on a layout::WaitWord, and the wait loop every blocking call uses:
// an adaptive spin, then futex sleeps in bounded slices, checking between slices whether
// the peer is still there and whether the deadline passed.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>

#include "shmd/dataplane/barrier.h"
#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/status.h"

namespace shmd {

using Clock = std::chrono::steady_clock;
using Nanos = std::chrono::nanoseconds;

// How a handle waits. Busy-poll never sleeps: lowest latency, one core burnt per waiter.
struct WaitOptions {
  bool busy_poll = false;
  // Upper bound of the adaptive spin before sleeping. The spin grows towards it while
  // waits end during the spin, and shrinks while they end up sleeping anyway.
  Nanos max_spin = std::chrono::microseconds(50);
  // Longest single futex sleep: how often a sleeper re-checks its peer's liveness.
  Nanos sleep_slice = std::chrono::milliseconds(10);
};

// Waker side, on every publish: a load of a line that stays shared in this core's cache
// unless somebody went to sleep, so no syscall and no cache miss when nobody waits.
void WakeSlow(layout::WaitWord& word);
inline void Wake(layout::WaitWord& word) {
  LightBarrier();  // orders the caller's publishing store before the load below
  if (word.waiters.load(std::memory_order_relaxed) != 0) WakeSlow(word);
}

// Wakes every sleeper unconditionally (endpoint cleared, object deleted).
void WakeAll(layout::WaitWord& word);

// Per-handle state of the adaptive spin (process-local memory). It learns from how long
// waits that ended in a sleep really took: a wait the peer answered within max_spin
// would have been caught by spinning that long, so the budget grows to twice it; a
// longer one means the peer idles, and spinning only burns the core, so it halves.
// (Growing only when a spin succeeds would never recover once the budget fell below the
// peer's answer time: every wait would sleep, and none would teach it otherwise.)
class AdaptiveSpin {
 public:
  explicit AdaptiveSpin(Nanos max) : max_(max), budget_(max) {}
  Nanos budget() const { return budget_; }
  void AfterSleep(Nanos waited) {
    budget_ = waited <= max_ ? std::min(max_, std::max(budget_, 2 * waited)) : budget_ / 2;
  }

 private:
  Nanos max_;
  Nanos budget_;
};

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Waits until ready() is true. Returns kOk, kTimeout (deadline passed), kPeerGone
// (peer_gone() said so at a slice boundary) or kClosed (the word was closed).
// ready() must be cheap and free of side effects on failure; peer_gone() may be costly.
// `waits` (a counter the caller owns, single writer) counts futex sleeps.
template <class Ready, class PeerGone>
Status WaitFor(layout::WaitWord& word, const WaitOptions& options, AdaptiveSpin& spin,
               Clock::time_point deadline, std::atomic<uint64_t>* waits, Ready&& ready,
               PeerGone&& peer_gone);

// --- implementation ---

namespace internal {
// Announces a sleeper, returns the sequence to sleep on. Pairs with Wake's LightBarrier.
uint32_t PrepareSleep(layout::WaitWord& word);
void CancelSleep(layout::WaitWord& word);
// Sleeps on `seq` until woken or `slice` passes (or the deadline, if sooner).
void Sleep(layout::WaitWord& word, uint32_t seq, Nanos slice);
}  // namespace internal

template <class Ready, class PeerGone>
Status WaitFor(layout::WaitWord& word, const WaitOptions& options, AdaptiveSpin& spin,
               Clock::time_point deadline, std::atomic<uint64_t>* waits, Ready&& ready,
               PeerGone&& peer_gone) {
  if (ready()) return Status::kOk;
  // Spin: catches a peer that answers within microseconds, without a syscall. The clock
  // is read every 64 iterations to keep the loop tight, and not before the first 64: a
  // clock read costs as much as a message, and most waits of a busy stream end sooner.
  // So the spin's start (and with it its budget, and the length a sleep teaches) is taken
  // 64 polls late, a couple of microseconds against a budget of tens.
  Clock::time_point start{};
  Clock::time_point spin_end{};
  Clock::time_point next_check{};
  for (uint32_t i = 1;; ++i) {
    if (ready()) return Status::kOk;
    CpuRelax();
    if ((i & 63) != 0) continue;
    Clock::time_point now = Clock::now();
    if (i == 64) {
      start = now;
      spin_end = options.busy_poll ? Clock::time_point::max() : start + spin.budget();
      next_check = start + options.sleep_slice;
    }
    if (now >= deadline) return Status::kTimeout;
    if (word.closed.load(std::memory_order_acquire) != 0) return Status::kClosed;
    if (now >= next_check) {
      if (peer_gone()) return ready() ? Status::kOk : Status::kPeerGone;
      next_check = now + options.sleep_slice;
    }
    if (now >= spin_end) break;
  }
  // However this wait ends from here, its length teaches the spin budget.
  struct Learn {
    AdaptiveSpin& spin;
    Clock::time_point start;
    ~Learn() { spin.AfterSleep(Clock::now() - start); }
  } learn{spin, start};
  // Sleep in slices until ready, deadline, peer gone or closed.
  for (;;) {
    uint32_t seq = internal::PrepareSleep(word);
    if (ready()) {
      internal::CancelSleep(word);
      return Status::kOk;
    }
    if (word.closed.load(std::memory_order_acquire) != 0) {
      internal::CancelSleep(word);
      return Status::kClosed;
    }
    Clock::time_point now = Clock::now();
    if (now >= deadline) {
      internal::CancelSleep(word);
      return Status::kTimeout;
    }
    if (waits != nullptr) {
      waits->store(waits->load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    Nanos slice = std::min<Nanos>(options.sleep_slice, deadline - now);
    internal::Sleep(word, seq, slice);
    internal::CancelSleep(word);
    if (ready()) return Status::kOk;
    if (peer_gone()) return ready() ? Status::kOk : Status::kPeerGone;
  }
}

}  // namespace shmd
