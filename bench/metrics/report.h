// What metrics_scrape reports: one record per ring count for the scrape cost, one per
// condition for the ring throughput, printed as plain tables or as one JSON array; the
// targets of the issue, judged; and how busy the machine was meanwhile.
#ifndef SHMD_BENCH_METRICS_REPORT_H_
#define SHMD_BENCH_METRICS_REPORT_H_

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "bench/common/machine.h"

namespace shmd::bench {

// GET /metrics, `count` times with `rings` rings in the daemon. Absent figures are null in
// JSON and "-" in the table.
struct ScrapeRecord {
  std::string operation;
  int rings = 0;
  uint64_t count = 0;
  std::optional<double> p50_ms;  // wall time, connect to the body's last byte
  std::optional<double> p99_ms;  // only with kMinSamplesForP99 scrapes (control/report.h)
  std::optional<double> max_ms;
  uint64_t bytes = 0;                   // the body, as the last scrape got it
  std::optional<double> daemon_ms;      // median of the body's shmd_scrape_duration_seconds
  std::optional<double> daemon_cpu_ms;  // the daemon's CPU time per scrape (mean)
};

// The SPSC stream's rate over the windows of one condition.
struct ThroughputRecord {
  std::string operation;
  int rings = 0;          // present in the daemon meanwhile, the streaming ring included
  int period_ms = 0;      // a scrape every period_ms; 0: unscraped
  uint64_t count = 0;     // windows
  double msgs_per_s = 0;  // median over the windows
  double min_msgs_per_s = 0;
  double max_msgs_per_s = 0;
  std::optional<double> ratio;  // msgs_per_s / the unscraped condition's
  uint64_t scrapes = 0;
  std::optional<double> scrape_p50_ms;  // of the scrapes made during the windows
  double daemon_cpu_percent = 0;        // of one CPU, over the windows
};

void PrintScrapeHeader(FILE* out);
void PrintScrapeRow(const ScrapeRecord& record, FILE* out);
void PrintThroughputHeader(int rings, FILE* out);
void PrintThroughputRow(const ThroughputRecord& record, FILE* out);
void PrintJson(const std::vector<ScrapeRecord>& scrapes,
               const std::vector<ThroughputRecord>& throughput, FILE* out);

// "1,000 rings scrape under 50 ms: met (p99 4.1 ms)", judged on p99 (on the maximum when
// there are too few scrapes for a p99); "not measured" without a row of `rings` rings.
std::string ScrapeTargetLine(const std::vector<ScrapeRecord>& scrapes, int rings, double target_ms);

// One line per scraped condition: met when its median is not below the slowest unscraped
// window, i.e. any drop is within the unscraped windows' own run-to-run spread. It also
// states the daemon's extra CPU share while scraped: with the producer and consumer on every
// CPU, each scrape's CPU time stalls one of them, so that share is the loss to expect even
// where the windows' spread hides it.
std::vector<std::string> ThroughputTargetLines(const std::vector<ThroughputRecord>& throughput);

// "in 41 s the daemon used 3.1 s of CPU, this benchmark 2.0 s, its producer and consumer
// 31.5 s; other processes used 0.4% ...": control_plane's DescribeCpuUse, counting the
// reaped children (the stream's processes) as ours rather than as other processes'.
std::string DescribeMachineUse(const CpuTimes& before, const CpuTimes& after, double daemon_s,
                               double wall_s, long cpus);

}  // namespace shmd::bench

#endif  // SHMD_BENCH_METRICS_REPORT_H_
