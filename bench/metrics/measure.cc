#include "bench/metrics/measure.h"

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "bench/control/report.h"

namespace shmd::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr uint64_t kFillCapacity = 4096;  // the smallest SPSC ring

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch())
      .count();
}

Error Failed(const std::string& what, const Error& error) {
  return Error(error.code(), what + ": " + error.message());
}

Error Interrupted() { return Error(ErrorCode::kUnavailable, "interrupted"); }

// Sleeps until `when` (steady_clock is CLOCK_MONOTONIC); false if a stop was asked meanwhile.
bool SleepUntil(SteadyClock::time_point when) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch());
  timespec ts{static_cast<time_t>(ns.count() / 1'000'000'000), ns.count() % 1'000'000'000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    if (StopRequested()) return false;
  }
  return !StopRequested();
}

// What the checks and the records need from a body.
struct BodyFacts {
  int ring_info_lines = 0;
  std::optional<double> scrape_duration_s;
};

BodyFacts ReadBody(std::string_view body) {
  constexpr std::string_view kRingInfo = "shmd_ring_info{";
  constexpr std::string_view kDuration = "shmd_scrape_duration_seconds ";
  BodyFacts facts;
  for (size_t start = 0; start < body.size();) {
    size_t end = body.find('\n', start);
    if (end == std::string_view::npos) end = body.size();
    const std::string_view line = body.substr(start, end - start);
    if (line.substr(0, kRingInfo.size()) == kRingInfo) {
      ++facts.ring_info_lines;
    } else if (line.substr(0, kDuration.size()) == kDuration) {
      facts.scrape_duration_s =
          std::strtod(std::string(line.substr(kDuration.size())).c_str(), nullptr);
    }
    start = end + 1;
  }
  return facts;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// Scrapes once, timed, and checks the answer is a 200; the body's checks are the caller's,
// outside the timed part.
VoidResult ScrapeOnce(const HttpGetter& getter, HttpResponse* response, int64_t* took_ns) {
  const int64_t start = NowNs();
  VoidResult got = getter.Get(kScrapeTimeout, response);
  *took_ns = NowNs() - start;
  if (!got.ok()) return got;
  if (response->status() != 200) {
    return Error(ErrorCode::kSystem, "GET " + getter.url() + " answered " +
                                         std::to_string(response->status()) + ": " +
                                         std::string(response->body().substr(0, 200)));
  }
  return Ok{};
}

VoidResult CheckRings(const BodyFacts& facts, int rings, const std::string& url) {
  if (facts.ring_info_lines == rings) return Ok{};
  return Error(ErrorCode::kSystem,
               "GET " + url + " listed " + std::to_string(facts.ring_info_lines) +
                   " shmd_ring_info lines; " + std::to_string(rings) + " rings exist");
}

std::string ConditionName(int period_ms) {
  if (period_ms == 0) return "unscraped";
  return "scraped every " + (period_ms % 1000 == 0 ? std::to_string(period_ms / 1000) + " s"
                                                   : std::to_string(period_ms) + " ms");
}

// What the windows of one condition gathered.
struct Condition {
  int period_ms = 0;
  std::vector<double> rates;  // msgs/s, one per window
  std::vector<int64_t> scrape_ns;
  double seconds = 0;
  double daemon_cpu_s = 0;
};

// One window: the stream's rate over `length`, scraping every `period_ms` (0: never).
VoidResult RunWindow(StreamPair& stream, const HttpGetter& getter, BenchDaemon& daemon,
                     std::chrono::milliseconds length, HttpResponse* response, Condition* c) {
  const double cpu_before = daemon.CpuSeconds();
  const auto start = SteadyClock::now();
  const uint64_t read_before = stream.MessagesRead();
  const auto end = start + length;
  if (c->period_ms > 0) {
    const auto period = std::chrono::milliseconds(c->period_ms);
    for (auto next = start; next < end;) {
      if (!SleepUntil(next)) return Interrupted();
      int64_t took_ns = 0;
      if (VoidResult r = ScrapeOnce(getter, response, &took_ns); !r.ok()) return r;
      c->scrape_ns.push_back(took_ns);
      // A scrape slower than the period skips the ticks it overran, as Prometheus does.
      const auto now = SteadyClock::now();
      next += period;
      while (next < now) next += period;
    }
  }
  if (!SleepUntil(end)) return Interrupted();
  const uint64_t read_after = stream.MessagesRead();
  const auto stop = SteadyClock::now();
  const double seconds = std::chrono::duration<double>(stop - start).count();
  c->rates.push_back(static_cast<double>(read_after - read_before) / seconds);
  c->seconds += seconds;
  c->daemon_cpu_s += daemon.CpuSeconds() - cpu_before;
  return stream.CheckRunning();
}

}  // namespace

VoidResult FillRings(Client& client, int from, int to) {
  v1::Ring spec;
  spec.set_kind(v1::RING_KIND_SPSC);
  spec.set_capacity_bytes(kFillCapacity);
  for (int i = from; i < to; ++i) {
    if (StopRequested()) return Interrupted();
    char id[32];
    std::snprintf(id, sizeof(id), "fill-%05d", i);
    if (Result<v1::Ring> ring = client.CreateRing(id, spec); !ring.ok()) {
      return Failed(std::string("CreateRing ") + id, ring.error());
    }
  }
  return Ok{};
}

VoidResult MeasureScrapes(const HttpGetter& getter, BenchDaemon& daemon, int rings, int count,
                          std::vector<ScrapeRecord>* out) {
  HttpResponse response;
  int64_t took_ns = 0;
  // The untimed first scrape: sizes the buffer, and is the first check of the body.
  if (VoidResult r = ScrapeOnce(getter, &response, &took_ns); !r.ok()) return r;
  if (VoidResult r = CheckRings(ReadBody(response.body()), rings, getter.url()); !r.ok()) return r;

  std::vector<int64_t> wall_ns;
  std::vector<double> daemon_s;
  double cpu_s = 0;
  for (int i = 0; i < count; ++i) {
    if (StopRequested()) return Interrupted();
    const double cpu_before = daemon.CpuSeconds();
    if (VoidResult r = ScrapeOnce(getter, &response, &took_ns); !r.ok()) return r;
    cpu_s += daemon.CpuSeconds() - cpu_before;
    wall_ns.push_back(took_ns);
    const BodyFacts facts = ReadBody(response.body());
    if (VoidResult r = CheckRings(facts, rings, getter.url()); !r.ok()) return r;
    if (!facts.scrape_duration_s) {
      return Error(ErrorCode::kSystem,
                   "GET " + getter.url() + " gave no shmd_scrape_duration_seconds");
    }
    daemon_s.push_back(*facts.scrape_duration_s);
  }
  // Percentiles as control_plane's (nearest rank; p99 only with enough samples), in ms.
  const Record summary = Summarize("", std::move(wall_ns));
  const auto ms = [](const std::optional<double>& us) -> std::optional<double> {
    if (!us) return std::nullopt;
    return *us / 1e3;
  };
  ScrapeRecord record;
  record.operation = "GET /metrics";
  record.rings = rings;
  record.count = summary.count;
  record.p50_ms = ms(summary.p50_us);
  record.p99_ms = ms(summary.p99_us);
  record.max_ms = ms(summary.max_us);
  record.bytes = response.body().size();
  if (!daemon_s.empty()) record.daemon_ms = Median(daemon_s) * 1e3;
  if (count > 0) record.daemon_cpu_ms = cpu_s * 1e3 / count;
  out->push_back(record);
  return Ok{};
}

VoidResult MeasureThroughput(StreamPair& stream, const HttpGetter& getter, BenchDaemon& daemon,
                             const ThroughputPlan& plan, std::vector<ThroughputRecord>* out) {
  // The warm-up: the ring's pages faulted in, both waits' spins settled; and the proof that
  // messages move at all.
  const uint64_t before_warmup = stream.MessagesRead();
  if (!SleepUntil(SteadyClock::now() + plan.warmup)) return Interrupted();
  if (VoidResult r = stream.CheckRunning(); !r.ok()) return r;
  if (stream.MessagesRead() == before_warmup) {
    return Error(ErrorCode::kSystem, "no message moved through the ring in the " +
                                         std::to_string(plan.warmup.count()) + " ms warm-up");
  }

  std::vector<Condition> conditions(plan.periods_ms.size());
  for (size_t i = 0; i < conditions.size(); ++i) conditions[i].period_ms = plan.periods_ms[i];
  const size_t n = conditions.size();
  HttpResponse response;
  for (int round = 0; round < plan.windows; ++round) {
    for (size_t j = 0; j < n; ++j) {
      Condition& c = conditions[(static_cast<size_t>(round) + j) % n];
      const size_t scrapes_before = c.scrape_ns.size();
      if (VoidResult r = RunWindow(stream, getter, daemon, plan.window, &response, &c); !r.ok()) {
        return r;
      }
      if (plan.window_log != nullptr) {
        std::fprintf(plan.window_log, "window %d.%zu: %-20s %8.2f M msgs/s, %zu scrapes\n", round,
                     j, ConditionName(c.period_ms).c_str(), c.rates.back() / 1e6,
                     c.scrape_ns.size() - scrapes_before);
      }
    }
  }

  std::optional<double> base;
  for (const Condition& c : conditions) {
    if (c.period_ms == 0) base = Median(c.rates);
  }
  for (const Condition& c : conditions) {
    ThroughputRecord record;
    record.operation = ConditionName(c.period_ms);
    record.rings = plan.rings;
    record.period_ms = c.period_ms;
    record.count = c.rates.size();
    record.msgs_per_s = Median(c.rates);
    if (!c.rates.empty()) {
      record.min_msgs_per_s = *std::min_element(c.rates.begin(), c.rates.end());
      record.max_msgs_per_s = *std::max_element(c.rates.begin(), c.rates.end());
    }
    if (base && *base > 0) record.ratio = record.msgs_per_s / *base;
    record.scrapes = c.scrape_ns.size();
    if (!c.scrape_ns.empty()) {
      const Record summary = Summarize("", c.scrape_ns);
      if (summary.p50_us) record.scrape_p50_ms = *summary.p50_us / 1e3;
    }
    if (c.seconds > 0) record.daemon_cpu_percent = 100 * c.daemon_cpu_s / c.seconds;
    out->push_back(record);
  }
  return Ok{};
}

}  // namespace shmd::bench
