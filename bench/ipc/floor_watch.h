// The cache-line round trip between the two CPUs, probed around every measured run of
// ipc_compare.
//
// Why: on a virtual machine the host may move the vCPUs while the benchmark runs. On the
// 2-vCPU KVM guest this was written on, the cache-line round trip is 60-90 ns in one
// placement (the two vCPUs on cores that share a cache) and 410-530 ns in another, and the
// host switches between them every few seconds to minutes. Every figure that moves data
// between the cores follows (64-byte streaming through a ring: 26-57 M msgs/s against
// 8-11 M), while a pipe, which is bound by its syscalls, barely changes. A ratio between a
// row measured in one placement and a row measured in the other describes the host, not the
// mechanisms.
//
// (A third placement, 40 ns, turns up now and then, most likely two hyperthreads of one core.)
//
// So every measured run (each 0.5 s stream run, each round-trip run) happens between two
// probes. The run starts by taking its reference: the median of a few probes, the placement
// it began in. A run starts only when a probe is within kTolerance of the reference either
// way (waiting for that, within a budget), and is done again when the probe after it is not:
// the host moved the vCPUs while it ran. A row is shown with the probe furthest from the
// reference among its runs. (A move and a move back within one run, between its probes,
// still goes unseen.)
#ifndef SHMD_BENCH_IPC_FLOOR_WATCH_H_
#define SHMD_BENCH_IPC_FLOOR_WATCH_H_

#include <cstdint>
#include <memory>

#include "bench/ipc/harness.h"
#include "bench/ipc/mechanism.h"

namespace shmd::bench {

class FloorWatch {
 public:
  // A probe within this factor of the reference, either way, is the same placement. The
  // usual placement spreads over 60-90 ns; the 40 ns one (which makes a ring's round trip
  // 100 ns instead of 180) and the slow one (5x) must fall outside.
  static constexpr double kTolerance = 1.5;

  // wait_budget_s: how long the whole run may spend waiting for the reference placement to
  // come back (0: never wait, only report).
  FloorWatch(const Placement& placement, double wait_budget_s);

  // Probes a few times over about a second and takes the median as the reference, unless
  // `reference_ns` is nonzero: then that is the reference (--floor-ns).
  Status Start(int64_t reference_ns);
  // p50 of a short cache-line ping-pong (about 20,000 round trips, a few milliseconds), in ns.
  Status Probe(int64_t* p50_ns);
  // Probes until one is in the reference placement, sleeping between probes, for as long as
  // the wait budget lasts. *p50_ns is the last probe.
  Status AwaitReference(int64_t* p50_ns);

  bool InReference(int64_t p50_ns) const {
    const double ratio = static_cast<double>(p50_ns) / static_cast<double>(reference_ns_);
    return ratio <= kTolerance && ratio >= 1 / kTolerance;
  }
  // Of two probes, the one further from the reference (by ratio).
  int64_t Worse(int64_t a, int64_t b) const;
  int64_t reference_ns() const { return reference_ns_; }
  // Runs `run` between two probes, and again while a probe is outside the reference
  // placement, at most kAttempts times in all and while the wait budget lasts. `run` is
  // called as run(&own) and returns a Status; a run that is itself a probe (the cacheline
  // row) sets `own` to its figure, which then counts as a third probe: a move and a move back
  // between the other two shows there. *floor_ns: the probe furthest from the reference, of
  // the last attempt.
  template <class Run>
  Status Around(Run&& run, int64_t* floor_ns);
  static constexpr int kAttempts = 4;
  // How many runs were done again because the placement moved under them.
  int redone() const { return redone_; }

  // Seconds spent waiting so far, and whether the budget ran out.
  double waited_s() const { return waited_s_; }
  bool budget_spent() const { return waited_s_ >= wait_budget_s_; }

 private:
  Placement placement_;
  double wait_budget_s_;
  double waited_s_ = 0;
  int64_t reference_ns_ = 1;
  int redone_ = 0;
  std::unique_ptr<Mechanism> cacheline_;
};

template <class Run>
Status FloorWatch::Around(Run&& run, int64_t* floor_ns) {
  for (int attempt = 1;; ++attempt) {
    int64_t before = 0;
    int64_t own = 0;
    int64_t after = 0;
    if (Status s = AwaitReference(&before); !s.ok()) return s;
    if (Status s = run(&own); !s.ok()) return s;
    if (Status s = Probe(&after); !s.ok()) return s;
    *floor_ns = Worse(before, after);
    if (own > 0) *floor_ns = Worse(*floor_ns, own);
    if (InReference(*floor_ns) || attempt == kAttempts || budget_spent()) return {};
    ++redone_;
  }
}

}  // namespace shmd::bench

#endif  // SHMD_BENCH_IPC_FLOOR_WATCH_H_
