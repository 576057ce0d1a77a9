#include "shmd/dataplane/barrier.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>

namespace shmd {
namespace internal {
std::atomic<bool> g_membarrier_ready{false};
}  // namespace internal

namespace {

bool TryRegister() {
  long supported = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
  if (supported < 0 || (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0) return false;
  return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) == 0;
}

}  // namespace

bool RegisterAsymmetricBarrier() {
  static std::once_flag once;
  std::call_once(once, [] {
    // Registration is inherited across fork and kept until exec; registering again after
    // fork is harmless.
    internal::g_membarrier_ready.store(TryRegister(), std::memory_order_relaxed);
  });
  return internal::g_membarrier_ready.load(std::memory_order_relaxed);
}

void HeavyBarrier() {
#if defined(__SANITIZE_THREAD__)
  LightBarrier();  // the same seq_cst read-modify-write: see barrier.h
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // The waker may be another process that registered and so uses only a compiler
  // barrier: issue the membarrier whenever the kernel has it, whatever this process did.
  if (RegisterAsymmetricBarrier()) {
    // If the call fails (it should not once registered), the waker may miss us; the
    // sleeper's bounded sleep slice (wait.h) turns that into a delay, not a hang.
    syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
  }
#endif
}

}  // namespace shmd
