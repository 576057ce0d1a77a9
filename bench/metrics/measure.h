// The metrics_scrape measurements: what a scrape of /metrics costs with N rings in the
// daemon, and whether scraping slows a ring's stream. Each checks what it gets (a scrape that
// lists the wrong rings measures nothing) and appends its records.
#ifndef SHMD_BENCH_METRICS_MEASURE_H_
#define SHMD_BENCH_METRICS_MEASURE_H_

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/control/daemon.h"
#include "bench/metrics/http_get.h"
#include "bench/metrics/report.h"
#include "bench/metrics/stream.h"
#include "shmd/client/client.h"

namespace shmd::bench {

// Every scrape (and every answer awaited from a child) is given this much.
inline constexpr std::chrono::seconds kScrapeTimeout{10};

// Creates SPSC rings of 4 KiB, the smallest, named "fill-00000"..., from number `from` up
// to `to` (exclusive), through the daemon.
VoidResult FillRings(Client& client, int from, int to);

// One untimed scrape, then `count` timed ones, each checked: status 200 and exactly `rings`
// shmd_ring_info lines. Records wall time, body size, the daemon's own
// shmd_scrape_duration_seconds and its CPU time per scrape.
VoidResult MeasureScrapes(const HttpGetter& getter, BenchDaemon& daemon, int rings, int count,
                          std::vector<ScrapeRecord>* out);

struct ThroughputPlan {
  int rings = 0;    // present meanwhile (for the records)
  int windows = 8;  // per condition
  std::chrono::milliseconds window{1000};
  std::chrono::milliseconds warmup{1000};        // streaming, unmeasured, before the first window
  std::vector<int> periods_ms = {0, 1000, 100};  // the conditions; 0: unscraped
  FILE* window_log = nullptr;                    // if set, each window's rate as measured
};

// Measures the running stream's rate over windows of the plan's conditions, in rotating order
// (A B C, B C A, C A B, ...) so neither a drift of the machine nor a window's position
// favours one condition. In a scraped window a scrape starts at the window's start and every
// period after it that begins before the window ends.
VoidResult MeasureThroughput(StreamPair& stream, const HttpGetter& getter, BenchDaemon& daemon,
                             const ThroughputPlan& plan, std::vector<ThroughputRecord>* out);

}  // namespace shmd::bench

#endif  // SHMD_BENCH_METRICS_MEASURE_H_
