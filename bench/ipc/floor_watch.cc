#include "bench/ipc/floor_watch.h"

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

namespace shmd::bench {

std::unique_ptr<Mechanism> MakeCacheline();  // bench/ipc/cacheline.cc

namespace {

constexpr uint64_t kProbeRoundTrips = 20'000;
constexpr int kStartProbes = 5;
constexpr double kStartSpacingS = 0.2;
// Between probes while waiting: placements last seconds at least, so probing faster only
// burns the budget's CPU time.
constexpr double kWaitSpacingS = 0.5;
constexpr double kProbeTimeoutS = 30;

void SleepSeconds(double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

}  // namespace

FloorWatch::FloorWatch(const Placement& placement, double wait_budget_s)
    : placement_(placement), wait_budget_s_(wait_budget_s), cacheline_(MakeCacheline()) {}

Status FloorWatch::Probe(int64_t* p50_ns) {
  RunSpec spec;
  spec.mode = Mode::kPingPong;
  spec.size = sizeof(uint64_t);
  spec.count = kProbeRoundTrips;
  spec.warmup = kProbeRoundTrips / 10;
  spec.shared_cpu = placement_.shared();
  const RunResult result = RunOnce(*cacheline_, spec, placement_, kProbeTimeoutS);
  if (!result.status.ok()) {
    return Status::Error("cache-line probe: " + result.status.message());
  }
  *p50_ns = std::max<int64_t>(1, result.rtt.p50_ns);
  return {};
}

int64_t FloorWatch::Worse(int64_t a, int64_t b) const {
  const auto distance = [&](int64_t p) {
    const double ratio = static_cast<double>(p) / static_cast<double>(reference_ns_);
    return std::max(ratio, 1 / ratio);
  };
  return distance(a) >= distance(b) ? a : b;
}

Status FloorWatch::Start(int64_t reference_ns) {
  if (reference_ns > 0) {
    reference_ns_ = reference_ns;
    return {};
  }
  std::vector<int64_t> probes(kStartProbes);
  for (int i = 0; i < kStartProbes; ++i) {
    if (i != 0) SleepSeconds(kStartSpacingS);
    if (Status s = Probe(&probes[i]); !s.ok()) return s;
  }
  std::sort(probes.begin(), probes.end());
  reference_ns_ = probes[probes.size() / 2];
  return {};
}

Status FloorWatch::AwaitReference(int64_t* p50_ns) {
  for (;;) {
    if (Status s = Probe(p50_ns); !s.ok()) return s;
    if (InReference(*p50_ns) || budget_spent()) return {};
    SleepSeconds(kWaitSpacingS);
    waited_s_ += kWaitSpacingS;
  }
}

}  // namespace shmd::bench
