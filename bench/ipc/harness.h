// Process plumbing for ipc_compare: clocks, pinning, the start barrier, bounded spinning,
// percentiles, and RunOnce, which forks the two sides of one run and collects what they saw.
#ifndef SHMD_BENCH_IPC_HARNESS_H_
#define SHMD_BENCH_IPC_HARNESS_H_

#include <sched.h>
#include <time.h>

#include <cstdint>
#include <vector>

#include "bench/ipc/mechanism.h"

namespace shmd::bench {

// A spin that sees no progress for this long gives up: a benchmark must never hang.
inline constexpr int64_t kNoProgressTimeoutNs = 10'000'000'000;

// CLOCK_MONOTONIC in nanoseconds (a vDSO call, no syscall, when the clocksource is tsc).
inline int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Spins until done() is true. Gives up (returns false) after kNoProgressTimeoutNs. The clock
// is read only every 1024 polls, so the poll loop stays a plain load. `relax` adds a pause
// per poll (kinder to a hyperthread sibling, slower to react); `yield` gives the CPU away
// every 1024 polls, which a peer on the same CPU needs to run at all.
template <typename Done>
inline bool SpinUntil(Done done, bool relax, bool yield) {
  int64_t deadline = 0;
  for (uint32_t polls = 1; !done(); ++polls) {
    if (relax) CpuRelax();
    if (polls % 1024 == 0) {
      if (yield) sched_yield();
      const int64_t now = NowNs();
      if (deadline == 0) {
        deadline = now + kNoProgressTimeoutNs;
      } else if (now > deadline) {
        return false;
      }
    }
  }
  return true;
}

Status PinToCpu(int cpu);

// Where the two sides of every run live.
struct Placement {
  int sender_cpu = 0;
  int receiver_cpu = 1;
  bool shared() const { return sender_cpu == receiver_cpu; }
};

struct Percentiles {
  int64_t p50_ns = 0;
  int64_t p99_ns = 0;
  int64_t p999_ns = 0;
};
// Nearest-rank percentiles of *samples (sorted in place). Empty input gives zeros.
Percentiles ComputePercentiles(std::vector<int64_t>* samples);

// What one run produced.
struct RunResult {
  Status status;
  StreamTiming stream;  // kStream: from the receiver
  Percentiles rtt;      // kPingPong: from the sender
  uint64_t rtt_samples = 0;
  int64_t rtt_total_ns = 0;  // sum of the timed round trips
  // How long the timed part took, for calibrating the next run's count.
  double timed_seconds(Mode mode) const {
    return (mode == Mode::kStream ? static_cast<double>(stream.last_ns - stream.first_ns)
                                  : static_cast<double>(rtt_total_ns)) /
           1e9;
  }
};

// Prepare, fork the side(s) pinned per `placement`, open, meet at the start barrier, run,
// collect, tear down. A side that fails or exits abnormally fails the run (and the other side
// is killed); so does a run that outlives timeout_s. Never leaves a child behind.
RunResult RunOnce(Mechanism& mechanism, const RunSpec& spec, const Placement& placement,
                  double timeout_s);

// Smallest observed cost of one NowNs() call: every round-trip sample includes one.
int64_t ClockReadCostNs();

}  // namespace shmd::bench

#endif  // SHMD_BENCH_IPC_HARNESS_H_
