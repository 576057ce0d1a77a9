#include "bench/metrics/report.h"

#include <algorithm>

#include "bench/common/json.h"

namespace shmd::bench {
namespace {

std::string Format(const std::optional<double>& value, const char* format = nullptr) {
  if (!value) return "-";
  char text[32];
  if (format == nullptr) format = *value >= 100 ? "%.1f" : *value >= 1 ? "%.2f" : "%.3f";
  std::snprintf(text, sizeof(text), format, *value);
  return text;
}

// Four significant digits (JSON accepts %g's "1e-05"); rates, which are large, as integers.
std::string JsonNumber(const std::optional<double>& value, const char* format = "%.4g") {
  if (!value) return "null";
  char text[32];
  std::snprintf(text, sizeof(text), format, *value);
  return text;
}

std::string JsonRate(double per_s) { return JsonNumber(per_s, "%.0f"); }

std::string Millions(double per_s) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", per_s / 1e6);
  return text;
}

// 1000 -> "1,000": the spelling.
std::string Grouped(int n) {
  std::string digits = std::to_string(n);
  for (int at = static_cast<int>(digits.size()) - 3; at > 0; at -= 3) digits.insert(at, ",");
  return digits;
}

}  // namespace

void PrintScrapeHeader(FILE* out) {
  std::fprintf(out, "%-14s %6s %6s %8s %8s %8s %10s %9s %9s %9s\n", "scrape", "rings", "count",
               "p50 ms", "p99 ms", "max ms", "bytes", "us/ring", "daemon ms", "cpu ms");
}

void PrintScrapeRow(const ScrapeRecord& r, FILE* out) {
  std::optional<double> per_ring;
  if (r.p50_ms && r.rings > 0) per_ring = *r.p50_ms * 1e3 / r.rings;
  std::fprintf(out, "%-14s %6d %6llu %8s %8s %8s %10llu %9s %9s %9s\n", r.operation.c_str(),
               r.rings, static_cast<unsigned long long>(r.count), Format(r.p50_ms).c_str(),
               Format(r.p99_ms).c_str(), Format(r.max_ms).c_str(),
               static_cast<unsigned long long>(r.bytes), Format(per_ring).c_str(),
               Format(r.daemon_ms).c_str(), Format(r.daemon_cpu_ms).c_str());
  std::fflush(out);  // rows appear as they are measured
}

void PrintThroughputHeader(int rings, FILE* out) {
  char title[64];
  std::snprintf(title, sizeof(title), "stream, %d rings", rings);
  std::fprintf(out, "%-24s %7s %9s %8s %8s %6s %7s %9s %9s\n", title, "windows", "M msgs/s", "min",
               "max", "ratio", "scrapes", "scrape ms", "daemon %");
}

void PrintThroughputRow(const ThroughputRecord& r, FILE* out) {
  std::fprintf(out, "%-24s %7llu %9s %8s %8s %6s %7llu %9s %9s\n", r.operation.c_str(),
               static_cast<unsigned long long>(r.count), Millions(r.msgs_per_s).c_str(),
               Millions(r.min_msgs_per_s).c_str(), Millions(r.max_msgs_per_s).c_str(),
               Format(r.ratio, "%.3f").c_str(), static_cast<unsigned long long>(r.scrapes),
               Format(r.scrape_p50_ms).c_str(),
               Format(std::optional<double>(r.daemon_cpu_percent), "%.2f").c_str());
  std::fflush(out);
}

void PrintJson(const std::vector<ScrapeRecord>& scrapes,
               const std::vector<ThroughputRecord>& throughput, FILE* out) {
  std::vector<std::string> items;
  for (const ScrapeRecord& r : scrapes) {
    items.push_back(
        "{\"operation\": " + JsonString(r.operation) + ", \"rings\": " + std::to_string(r.rings) +
        ", \"count\": " + std::to_string(r.count) + ", \"p50_ms\": " + JsonNumber(r.p50_ms) +
        ", \"p99_ms\": " + JsonNumber(r.p99_ms) + ", \"max_ms\": " + JsonNumber(r.max_ms) +
        ", \"bytes\": " + std::to_string(r.bytes) + ", \"daemon_ms\": " + JsonNumber(r.daemon_ms) +
        ", \"daemon_cpu_ms\": " + JsonNumber(r.daemon_cpu_ms) + "}");
  }
  for (const ThroughputRecord& r : throughput) {
    items.push_back(
        "{\"operation\": " + JsonString(r.operation) + ", \"rings\": " + std::to_string(r.rings) +
        ", \"period_ms\": " + std::to_string(r.period_ms) +
        ", \"count\": " + std::to_string(r.count) + ", \"msgs_per_s\": " + JsonRate(r.msgs_per_s) +
        ", \"min_msgs_per_s\": " + JsonRate(r.min_msgs_per_s) +
        ", \"max_msgs_per_s\": " + JsonRate(r.max_msgs_per_s) +
        ", \"ratio\": " + JsonNumber(r.ratio) + ", \"scrapes\": " + std::to_string(r.scrapes) +
        ", \"scrape_p50_ms\": " + JsonNumber(r.scrape_p50_ms) +
        ", \"daemon_cpu_percent\": " + JsonNumber(r.daemon_cpu_percent) + "}");
  }
  std::fprintf(out, "[\n");
  for (size_t i = 0; i < items.size(); ++i) {
    std::fprintf(out, "  %s%s\n", items[i].c_str(), i + 1 < items.size() ? "," : "");
  }
  std::fprintf(out, "]\n");
}

std::string ScrapeTargetLine(const std::vector<ScrapeRecord>& scrapes, int rings,
                             double target_ms) {
  char line[200];
  const std::string what = Grouped(rings) + " rings scrape under " +
                           Format(std::optional<double>(target_ms), "%.0f") + " ms";
  const auto row = std::find_if(scrapes.begin(), scrapes.end(),
                                [&](const ScrapeRecord& r) { return r.rings == rings; });
  if (row == scrapes.end() || !row->max_ms) return what + ": not measured";
  const unsigned long long count = row->count;
  if (row->p99_ms) {
    std::snprintf(line, sizeof(line), "%s: %s (p99 %.2f ms, max %.2f ms, %llu scrapes)",
                  what.c_str(), *row->p99_ms < target_ms ? "met" : "NOT met", *row->p99_ms,
                  *row->max_ms, count);
  } else {
    std::snprintf(line, sizeof(line), "%s: %s (max %.2f ms of %llu scrapes, too few for a p99)",
                  what.c_str(), *row->max_ms < target_ms ? "met" : "NOT met", *row->max_ms, count);
  }
  return line;
}

std::vector<std::string> ThroughputTargetLines(const std::vector<ThroughputRecord>& throughput) {
  std::vector<std::string> lines;
  const auto base = std::find_if(throughput.begin(), throughput.end(),
                                 [](const ThroughputRecord& r) { return r.period_ms == 0; });
  if (base == throughput.end()) return {"ring throughput while scraped: not measured"};
  for (const ThroughputRecord& r : throughput) {
    if (r.period_ms == 0) continue;
    const bool met = r.msgs_per_s >= base->min_msgs_per_s;
    const char* where = !met ? "below" : r.msgs_per_s <= base->max_msgs_per_s ? "within" : "above";
    const std::string period = r.period_ms % 1000 == 0 ? std::to_string(r.period_ms / 1000) + " s"
                                                       : std::to_string(r.period_ms) + " ms";
    char line[400];
    std::snprintf(line, sizeof(line),
                  "no measurable change of ring throughput while scraped every %s: %s "
                  "(ratio %.3f; scraped median %s M msgs/s, %s the unscraped windows' range "
                  "%s-%s M, a spread of %.1f%% of their median; the scrapes took %.1f%% of a "
                  "CPU in the daemon)",
                  period.c_str(), met ? "met" : "NOT met", r.ratio.value_or(0),
                  Millions(r.msgs_per_s).c_str(), where, Millions(base->min_msgs_per_s).c_str(),
                  Millions(base->max_msgs_per_s).c_str(),
                  100 * (base->max_msgs_per_s - base->min_msgs_per_s) / base->msgs_per_s,
                  std::max(0.0, r.daemon_cpu_percent - base->daemon_cpu_percent));
    lines.push_back(line);
  }
  return lines;
}

std::string DescribeMachineUse(const CpuTimes& before, const CpuTimes& after, double daemon_s,
                               double wall_s, long cpus) {
  const double capacity = wall_s * static_cast<double>(cpus);
  if (capacity <= 0) return "no measurement of CPU use";
  const double self = after.self_s - before.self_s;
  const double children = after.children_s - before.children_s;
  const double others =
      std::max(0.0, after.machine_busy_s - before.machine_busy_s - self - children - daemon_s);
  const double steal = after.machine_steal_s - before.machine_steal_s;
  char text[400];
  std::snprintf(text, sizeof(text),
                "in %.1f s the daemon used %.2f s of CPU, this benchmark %.2f s, its producer "
                "and consumer %.2f s; other processes used %.1f%% of the machine's CPU time, "
                "the hypervisor stole %.1f%%%s",
                wall_s, daemon_s, self, children, 100 * others / capacity, 100 * steal / capacity,
                (others + steal) / capacity > 0.05
                    ? ": figures are noisier than on a quiet machine, the tails most"
                    : "");
  return text;
}

}  // namespace shmd::bench
