#include "shmd/dataplane/wait.h"

#include <climits>

#include "shmd/dataplane/futex.h"

namespace shmd {

void WakeSlow(layout::WaitWord& word) {
  // Release: a sleeper that reads the new seq (acquire) also sees what was published
  // before the Wake call. Bumping seq makes a sleeper that has read the old seq but not
  // yet entered the kernel return at once (futex compares the word).
  word.seq.fetch_add(1, std::memory_order_release);
  FutexWake(&word.seq, INT_MAX);
}

void WakeAll(layout::WaitWord& word) { WakeSlow(word); }

namespace internal {

uint32_t PrepareSleep(layout::WaitWord& word) {
  word.waiters.fetch_add(1, std::memory_order_relaxed);
  uint32_t seq = word.seq.load(std::memory_order_acquire);
  // Pairs with the waker's LightBarrier: either the waker sees waiters != 0, or our
  // re-check of the data (next, in the caller) sees what it published.
  HeavyBarrier();
  return seq;
}

void CancelSleep(layout::WaitWord& word) {
  // Saturating decrement: a cleaner may have reset the count of a dead sleeper to 0.
  uint32_t n = word.waiters.load(std::memory_order_relaxed);
  while (n != 0 && !word.waiters.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) {
  }
}

void Sleep(layout::WaitWord& word, uint32_t seq, Nanos slice) {
  if (slice <= Nanos::zero()) return;
  timespec ts{static_cast<time_t>(slice.count() / 1000000000),
              static_cast<long>(slice.count() % 1000000000)};
  // EINTR, EAGAIN and ETIMEDOUT all send the caller back to re-check its condition.
  (void)FutexWait(&word.seq, seq, &ts);
}

}  // namespace internal
}  // namespace shmd
