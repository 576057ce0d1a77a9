// futex(2) on 32-bit words in shared memory. Never FUTEX_PRIVATE_FLAG: the waker is in
// another process, and a private futex is keyed by this process's address space.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

namespace shmd {

// Sleeps while *word == expected, at most `timeout` (relative; nullptr: no limit).
// Returns 0 when woken, or -errno: -EAGAIN (the word had changed), -ETIMEDOUT, -EINTR.
int FutexWait(std::atomic<uint32_t>* word, uint32_t expected, const timespec* timeout);

// Wakes up to `count` sleepers on `word`; returns how many woke, or -errno.
int FutexWake(std::atomic<uint32_t>* word, int count);

}  // namespace shmd
