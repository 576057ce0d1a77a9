#include "shmd/dataplane/futex.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace shmd {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t),
              "the kernel sees the atomic as a plain 32-bit word");

int FutexWait(std::atomic<uint32_t>* word, uint32_t expected, const timespec* timeout) {
  long rc = syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, timeout,
                    nullptr, 0);
  return rc == 0 ? 0 : -errno;
}

int FutexWake(std::atomic<uint32_t>* word, int count) {
  long rc =
      syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
  return rc >= 0 ? static_cast<int>(rc) : -errno;
}

}  // namespace shmd
