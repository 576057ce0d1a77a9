// Asymmetric fences for the sleep/wake handshake (the Dekker pattern between a waker that
// publishes data then checks for sleepers, and a sleeper that announces itself then checks
// for data). Each side needs a store-load fence; the waker runs on every message, the
// sleeper only when it is about to make a syscall anyway. So the waker's fence is only a
// compiler barrier (LightBarrier) and the sleeper pays for both with
// membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) (HeavyBarrier), which makes every CPU that
// runs a registered process execute a full barrier (see membarrier(2)).
//
// Every process using shmd registers at its first attach (RegisterAsymmetricBarrier). If
// the kernel refuses membarrier, both sides fall back to a full fence: correct, slower.
#pragma once

#include <atomic>
#include <cstdint>

namespace shmd {

namespace internal {
// True once membarrier is registered for this process; read on every publish.
extern std::atomic<bool> g_membarrier_ready;
}  // namespace internal

// Idempotent and thread-safe; returns whether the fast (membarrier) mode is on. The first
// call can take tens of milliseconds in a multi-threaded process (the kernel waits for an
// RCU grace period; measured here: 20 ms), so it is made at attach (ClaimEndpoint), off
// the data path. A call after that costs nothing.
bool RegisterAsymmetricBarrier();

// Waker side, on the hot path: after the publishing store, before reading the wait word.
inline void LightBarrier() {
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer models neither membarrier nor fences (GCC warns, -Wtsan): a seq_cst
  // read-modify-write is a full barrier on the hardware and an operation TSan knows.
  static thread_local std::atomic<uint32_t> tsan_barrier{0};
  tsan_barrier.exchange(0, std::memory_order_seq_cst);
#else
  if (internal::g_membarrier_ready.load(std::memory_order_relaxed)) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
#endif
}

// Sleeper side, on the slow path: after announcing itself, before re-checking the data.
void HeavyBarrier();

}  // namespace shmd
