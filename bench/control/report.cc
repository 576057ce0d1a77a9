#include "bench/control/report.h"

#include <algorithm>
#include <cmath>

#include "bench/common/json.h"

namespace shmd::bench {
namespace {

// The sample of rank ceil(q * n) (1-based) of sorted samples.
int64_t NearestRank(const std::vector<int64_t>& sorted, double q) {
  const size_t n = sorted.size();
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(n)));
  return sorted[std::clamp<size_t>(rank, 1, n) - 1];
}

double Us(int64_t ns) { return static_cast<double>(ns) / 1e3; }

// Three significant-ish digits for small figures, one decimal for the rest.
std::string FormatUs(const std::optional<double>& us) {
  if (!us) return "-";
  char text[32];
  const char* format = *us >= 10 ? "%.1f" : *us >= 1 ? "%.2f" : "%.3f";
  std::snprintf(text, sizeof(text), format, *us);
  return text;
}

std::string JsonNumber(const std::optional<double>& us) {
  if (!us) return "null";
  char text[32];
  std::snprintf(text, sizeof(text), "%.3f", *us);
  return text;
}

}  // namespace

Record Summarize(std::string operation, std::vector<int64_t> samples_ns) {
  Record record;
  record.operation = std::move(operation);
  record.count = samples_ns.size();
  if (samples_ns.empty()) return record;
  std::sort(samples_ns.begin(), samples_ns.end());
  double total = 0;
  for (int64_t ns : samples_ns) total += static_cast<double>(ns);
  record.p50_us = Us(NearestRank(samples_ns, 0.50));
  if (record.count >= kMinSamplesForP99) record.p99_us = Us(NearestRank(samples_ns, 0.99));
  if (record.count >= 10 * kMinSamplesForP99) record.p999_us = Us(NearestRank(samples_ns, 0.999));
  record.max_us = Us(samples_ns.back());
  record.mean_us = total / static_cast<double>(record.count) / 1e3;
  return record;
}

void PrintTableHeader(FILE* out) {
  std::fprintf(out, "%-34s %6s %9s %9s %9s %9s %9s\n", "operation", "count", "p50 us", "p99 us",
               "p99.9 us", "max us", "mean us");
}

void PrintTableRow(const Record& r, FILE* out) {
  std::fprintf(out, "%-34s %6llu %9s %9s %9s %9s %9s\n", r.operation.c_str(),
               static_cast<unsigned long long>(r.count), FormatUs(r.p50_us).c_str(),
               FormatUs(r.p99_us).c_str(), FormatUs(r.p999_us).c_str(), FormatUs(r.max_us).c_str(),
               FormatUs(r.mean_us).c_str());
  std::fflush(out);  // rows appear as they are measured
}

void PrintJson(const std::vector<Record>& records, FILE* out) {
  std::fprintf(out, "[\n");
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    std::fprintf(out,
                 "  {\"operation\": %s, \"count\": %llu, \"p50_us\": %s, \"p99_us\": %s, "
                 "\"p999_us\": %s, \"max_us\": %s, \"mean_us\": %s}%s\n",
                 JsonString(r.operation).c_str(), static_cast<unsigned long long>(r.count),
                 JsonNumber(r.p50_us).c_str(), JsonNumber(r.p99_us).c_str(),
                 JsonNumber(r.p999_us).c_str(), JsonNumber(r.max_us).c_str(),
                 JsonNumber(r.mean_us).c_str(), i + 1 < records.size() ? "," : "");
  }
  std::fprintf(out, "]\n");
}

std::string DescribeCpuUse(const CpuTimes& before, const CpuTimes& after, double daemon_s,
                           double wall_s, long cpus) {
  const double capacity = wall_s * static_cast<double>(cpus);
  if (capacity <= 0) return "no measurement of CPU use";
  const double client = after.self_s - before.self_s;
  const double others =
      std::max(0.0, after.machine_busy_s - before.machine_busy_s - client - daemon_s);
  const double steal = after.machine_steal_s - before.machine_steal_s;
  char text[320];
  std::snprintf(text, sizeof(text),
                "in %.1f s the daemon used %.2f s of CPU and this client %.2f s; other "
                "processes used %.1f%% of the machine's CPU time, the hypervisor stole %.1f%%%s",
                wall_s, daemon_s, client, 100 * others / capacity, 100 * steal / capacity,
                (others + steal) / capacity > 0.05
                    ? ": figures are noisier than on a quiet machine, the tails most"
                    : "");
  return text;
}

}  // namespace shmd::bench
