// What control_plane reports: one record per operation, summarized from its timed calls,
// printed as a plain table or as JSON; and how busy the machine was meanwhile.
#ifndef SHMD_BENCH_CONTROL_REPORT_H_
#define SHMD_BENCH_CONTROL_REPORT_H_

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "bench/common/machine.h"

namespace shmd::bench {

// Figures in microseconds; absent (null in JSON, "-" in the table) where they do not apply.
struct Record {
  std::string operation;
  uint64_t count = 0;  // timed calls (or, for a per-object row, objects)
  std::optional<double> p50_us;
  std::optional<double> p99_us;
  std::optional<double> p999_us;
  std::optional<double> max_us;
  std::optional<double> mean_us;
};

// A tail percentile is only reported when enough samples lie beyond it to mean something
// other than "the maximum": p99 needs this many samples, p99.9 ten times as many.
inline constexpr uint64_t kMinSamplesForP99 = 100;

// Nearest-rank percentiles, maximum and mean of samples in nanoseconds.
Record Summarize(std::string operation, std::vector<int64_t> samples_ns);

void PrintTableHeader(FILE* out);
void PrintTableRow(const Record& record, FILE* out);
void PrintJson(const std::vector<Record>& records, FILE* out);

// "the daemon used 1.2 s of CPU, this client 0.8 s; other processes used 3.1% ...": the
// machine's CPU time and this process's from before and after (ReadCpuTimes), the daemon's
// over the same span from BenchDaemon::CpuSeconds().
std::string DescribeCpuUse(const CpuTimes& before, const CpuTimes& after, double daemon_s,
                           double wall_s, long cpus);

}  // namespace shmd::bench

#endif  // SHMD_BENCH_CONTROL_REPORT_H_
