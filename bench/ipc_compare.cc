// ipc_compare: streaming throughput and ping-pong round-trip latency of Linux IPC
// mechanisms between two processes pinned to different cores, with two floor rows
// (cacheline, memcpy) measured in the same run. See --help.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/common/args.h"
#include "bench/common/machine.h"
#include "bench/ipc/floor_watch.h"
#include "bench/ipc/harness.h"
#include "bench/ipc/mechanism.h"

namespace shmd::bench {
namespace {

constexpr char kUsage[] =
    R"(usage: ipc_compare [--json] [--quick] [--sizes N,N,...] [--mechanisms a,b,...]
                   [--cpus A,B] [--repeat N] [--floor-ns N] [--verbose] [--help]

Compares Linux IPC mechanisms between two processes pinned to different CPUs:
  streaming   the sender sends N messages of each size, each with its sequence number
              in the first 8 bytes; the receiver reads every message, sums every byte and
              checks the sequence; msgs/s and MB/s (1 MB = 1e6 bytes) from the receiver's
              first message to its last. N is calibrated so a run takes about 0.5 s; the
              median of --repeat runs is shown.
  round trip  the sender sends a message, the receiver echoes it (same size); every round
              trip is timed after a warm-up; p50/p99/p99.9 in nanoseconds.
Floor rows: cacheline (two processes flipping one shared word: round trip only), handoff
(a bare copy into shared slots and a read out: about the most a copying transport can
stream between the two CPUs) and memcpy (one core copying each size: throughput only).
Placement: every measured run happens between two short cache-line probes. A virtual
machine's host may move its vCPUs mid-run, which changes every figure that crosses
cores. The reference is the median of the probes the run starts with (or --floor-ns);
a run starts once a probe is within 1.5x of it and is done again if the probe after it
is not (waiting at most 300 s per run in all, never with --quick). The "floor ns"
column is each row's probe furthest from the reference; rows measured outside the band
all the same are named under the table.

  --json            print one JSON array of {"mechanism","size","msgs_per_s","mb_per_s",
                    "rtt_p50_ns","rtt_p99_ns","rtt_p999_ns"} (null where a figure does not
                    apply) and nothing else on stdout; notes go to stderr
  --quick           runs about 5 times shorter (CI smoke runs)
  --sizes LIST      message sizes in bytes, at least 8 (default 64,1024,4096,65536)
  --mechanisms LIST rows to run (default all: %s)
  --cpus A,B        sender CPU, receiver CPU (default 0,1)
  --repeat N        streaming runs per row, the median kept (default 3)
  --floor-ns N      the cache-line round trip (ns) every row is measured near, within 1.5x
                    (default: the median of the probes the run starts with)
  --verbose         print every run's message count and duration on stderr
  --help            this text

Exit status: 0 on success, 1 if a run failed (lost, reordered or corrupted messages,
an error, a timeout), 2 on a usage error.
)";

constexpr size_t kMaxSize = size_t{64} << 20;

struct Options {
  bool json = false;
  bool quick = false;
  bool verbose = false;
  int stream_runs = 3;
  std::vector<size_t> sizes = {64, 1024, 4096, 65536};
  std::vector<std::string> mechanisms;  // empty: all
  std::optional<std::pair<int, int>> cpus;
  int64_t floor_ns = 0;  // 0: the reference placement is the one the run starts in
};

// How long runs take. A pilot run grows its count until it lasts pilot_s, and the measured
// run is scaled from it to last target_s.
struct Budget {
  double target_s;
  double pilot_s;
  uint64_t min_rtt_samples;  // enough for a p99.9 that is not just the maximum
  double placement_wait_s;   // FloorWatch: all the waiting for the reference placement, per run
  double timeout_s() const { return 30 + 10 * target_s; }
};
constexpr Budget kNormalBudget = {0.5, 0.05, 10'000, 300};
constexpr Budget kQuickBudget = {0.1, 0.01, 2'000, 0};
constexpr uint64_t kMaxRttSamples = 5'000'000;  // 40 MB of samples

struct Record {
  std::string mechanism;
  size_t size = 0;
  std::optional<double> msgs_per_s;
  std::optional<double> mb_per_s;
  std::optional<int64_t> rtt_p50_ns;
  std::optional<int64_t> rtt_p99_ns;
  std::optional<int64_t> rtt_p999_ns;
  std::optional<int64_t> floor_ns;  // the probe furthest from the reference, of its runs
};

std::vector<std::string> SplitCommas(std::string_view list) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) parts.emplace_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return parts;
}

bool ParseUnsigned(const std::string& text, unsigned long long* value) {
  if (text.empty() || text[0] == '-') return false;
  errno = 0;
  char* end = nullptr;
  *value = std::strtoull(text.c_str(), &end, 10);
  return errno == 0 && end != nullptr && *end == '\0';
}

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "ipc_compare: %s (see --help)\n", message.c_str());
  std::exit(2);
}

std::string JoinNames(const std::vector<std::unique_ptr<Mechanism>>& all) {
  std::string names;
  for (const auto& m : all) names += (names.empty() ? "" : ",") + std::string(m->name());
  return names;
}

Options ParseOptions(int argc, char** argv, const std::vector<std::unique_ptr<Mechanism>>& all) {
  Options options;
  for (ArgScanner args(argc, argv, UsageError); args.Next();) {
    const std::string& arg = args.name();
    if (arg == "--help" || arg == "-h") {
      std::printf(kUsage, JoinNames(all).c_str());
      std::exit(0);
    } else if (arg == "--json") {
      options.json = true;
    } else if (arg == "--quick") {
      options.quick = true;
    } else if (arg == "--verbose" || arg == "-v") {
      options.verbose = true;
    } else if (arg == "--repeat") {
      const std::string text = args.Value();
      unsigned long long runs;
      if (!ParseUnsigned(text, &runs) || runs < 1 || runs > 99) {
        UsageError("--repeat wants a number of runs from 1 to 99, not '" + text + "'");
      }
      options.stream_runs = static_cast<int>(runs);
    } else if (arg == "--sizes") {
      options.sizes.clear();
      for (const std::string& part : SplitCommas(args.Value())) {
        unsigned long long size;
        if (!ParseUnsigned(part, &size) || size < 8 || size > kMaxSize) {
          UsageError("--sizes: '" + part + "' is not a size from 8 (the sequence number) to " +
                     std::to_string(kMaxSize) + " bytes");
        }
        options.sizes.push_back(size);
      }
      if (options.sizes.empty()) UsageError("--sizes: no sizes given");
    } else if (arg == "--mechanisms") {
      options.mechanisms = SplitCommas(args.Value());
      for (const std::string& name : options.mechanisms) {
        const bool known =
            std::any_of(all.begin(), all.end(), [&](const auto& m) { return m->name() == name; });
        if (!known) UsageError("unknown mechanism '" + name + "' (known: " + JoinNames(all) + ")");
      }
      if (options.mechanisms.empty()) UsageError("--mechanisms: no names given");
    } else if (arg == "--floor-ns") {
      const std::string text = args.Value();
      unsigned long long ns;
      if (!ParseUnsigned(text, &ns) || ns < 1 || ns > 1'000'000) {
        UsageError("--floor-ns wants a round trip in nanoseconds from 1 to 1000000, not '" + text +
                   "'");
      }
      options.floor_ns = static_cast<int64_t>(ns);
    } else if (arg == "--cpus") {
      const std::string text = args.Value();
      const std::vector<std::string> parts = SplitCommas(text);
      unsigned long long a, b;
      if (parts.size() != 2 || !ParseUnsigned(parts[0], &a) || !ParseUnsigned(parts[1], &b) ||
          a >= CPU_SETSIZE || b >= CPU_SETSIZE) {
        UsageError("--cpus wants two CPU numbers, like 0,1, not '" + text + "'");
      }
      options.cpus = {{static_cast<int>(a), static_cast<int>(b)}};
    } else {
      UsageError("unknown argument '" + args.given() + "'");
    }
  }
  return options;
}

std::string JoinCpus(const std::vector<int>& cpus) {
  std::string text;
  for (int cpu : cpus) text += (text.empty() ? "" : ",") + std::to_string(cpu);
  return text;
}

// Chooses the two CPUs; adds a note when both sides must share one.
Placement ChoosePlacement(const Options& options, std::vector<std::string>* notes) {
  const std::vector<int> allowed = AllowedCpus();
  if (allowed.empty()) {
    std::fprintf(stderr, "ipc_compare: sched_getaffinity failed: %s\n", std::strerror(errno));
    std::exit(1);
  }
  const auto is_allowed = [&](int cpu) {
    return std::find(allowed.begin(), allowed.end(), cpu) != allowed.end();
  };
  Placement placement;
  if (options.cpus) {
    for (int cpu : {options.cpus->first, options.cpus->second}) {
      if (!is_allowed(cpu)) {
        UsageError("--cpus: CPU " + std::to_string(cpu) +
                   " is not available to this process (available: " + JoinCpus(allowed) + ")");
      }
    }
    placement = {options.cpus->first, options.cpus->second};
  } else if (allowed.size() == 1) {
    placement = {allowed[0], allowed[0]};
  } else if (is_allowed(0) && is_allowed(1)) {
    placement = {0, 1};
  } else {
    placement = {allowed[0], allowed[1]};
  }
  if (placement.shared()) {
    notes->push_back(
        (allowed.size() == 1 ? "only one CPU is available (CPU " : "both sides share CPU ") +
        std::to_string(placement.sender_cpu) + (allowed.size() == 1 ? ")" : "") +
        ": sender and receiver take turns on it, so the figures measure context switches, "
        "not transfers between cores, and the spinning rows yield to each other");
  }
  return placement;
}

const char* ModeName(Mode mode) { return mode == Mode::kStream ? "stream" : "round trip"; }

// The figures of one mechanism at one size in one mode.
struct Measured {
  Status status;
  double msgs_per_s = 0;  // stream: the median run
  Percentiles rtt;        // ping-pong
  int64_t floor_ns = 0;   // with a FloorWatch: the probe furthest from its reference
};

// Pilots with growing counts until one lasts budget.pilot_s, then the measured runs, scaled
// to last about budget.target_s each. Pilots run the full checks too, and double as warm-up.
// Streaming figures swing from run to run (whether the receiver sleeps between messages or
// keeps up without sleeping changes the rate severalfold), so a stream is measured
// `stream_runs` times and the median kept; a ping-pong run's spread is in its percentiles.
Measured Measure(Mechanism& mechanism, Mode mode, size_t size, const Placement& placement,
                 const Budget& budget, int stream_runs, bool verbose, FloorWatch* watch) {
  RunSpec spec;
  spec.mode = mode;
  spec.size = size;
  spec.shared_cpu = placement.shared();
  spec.count = mode == Mode::kStream ? std::clamp<uint64_t>((1 << 20) / size, 64, 4096) : 256;
  spec.warmup = mode == Mode::kStream ? 0 : 100;
  const auto log = [&](const char* what, const RunResult& r) {
    if (!verbose) return;
    std::fprintf(stderr, "  %-15s %8zu B %-10s %-5s count %10" PRIu64 " took %.3f s",
                 std::string(mechanism.name()).c_str(), size, ModeName(mode), what, spec.count,
                 r.timed_seconds(mode));
    if (mode == Mode::kStream) {
      std::fprintf(stderr, ", %.0f msgs/s",
                   static_cast<double>(r.stream.messages) / r.timed_seconds(mode));
    }
    std::fprintf(stderr, "\n");
  };
  Measured measured;
  double seconds = 0;
  for (int pilot = 0;; ++pilot) {
    RunResult result = RunOnce(mechanism, spec, placement, budget.timeout_s());
    if (!result.status.ok()) {
      measured.status = result.status;
      return measured;
    }
    log("pilot", result);
    seconds = result.timed_seconds(mode);
    if (seconds >= budget.pilot_s || pilot == 12) break;
    const double growth = std::clamp(budget.pilot_s / std::max(seconds, 1e-7) * 1.5, 2.0, 100.0);
    spec.count = static_cast<uint64_t>(static_cast<double>(spec.count) * growth);
  }
  const double scale = budget.target_s / std::max(seconds, 1e-7);
  const uint64_t count = static_cast<uint64_t>(static_cast<double>(spec.count) * scale);
  if (mode == Mode::kStream) {
    spec.count = std::max<uint64_t>(count, 16);
    spec.warmup = 0;
  } else {
    spec.count = std::clamp<uint64_t>(count, budget.min_rtt_samples, kMaxRttSamples);
    spec.warmup = std::clamp<uint64_t>(spec.count / 10, 100, 100'000);
  }
  std::vector<double> rates;
  for (int run = 0; run < (mode == Mode::kStream ? stream_runs : 1); ++run) {
    RunResult result;
    const bool probe_row = mechanism.is_placement_probe() && mode == Mode::kPingPong;
    const auto once = [&](int64_t* own) {
      result = RunOnce(mechanism, spec, placement, budget.timeout_s());
      if (probe_row && result.status.ok()) *own = result.rtt.p50_ns;
      return result.status;
    };
    int64_t floor_ns = 0;
    int64_t unused = 0;
    const Status status = watch != nullptr ? watch->Around(once, &floor_ns) : once(&unused);
    if (!status.ok()) {
      measured.status = status;
      return measured;
    }
    if (watch != nullptr) {
      measured.floor_ns = run == 0 ? floor_ns : watch->Worse(measured.floor_ns, floor_ns);
    }
    log("run", result);
    if (mode == Mode::kStream) {
      rates.push_back(static_cast<double>(result.stream.messages) / result.timed_seconds(mode));
    } else {
      measured.rtt = result.rtt;
    }
  }
  if (!rates.empty()) {
    std::sort(rates.begin(), rates.end());
    measured.msgs_per_s = rates[rates.size() / 2];
  }
  return measured;
}

// Both figures of one row (mechanism, size); with a watch, every measured run between two
// probes of the placement (FloorWatch::Around).
Status MeasureRow(Mechanism& mechanism, const Placement& placement, const Budget& budget,
                  const Options& options, FloorWatch* watch, Record* record) {
  for (Mode mode : {Mode::kStream, Mode::kPingPong}) {
    if (!(mode == Mode::kStream ? mechanism.HasStream() : mechanism.HasPingPong())) continue;
    const Measured measured = Measure(mechanism, mode, record->size, placement, budget,
                                      options.stream_runs, options.verbose, watch);
    if (!measured.status.ok()) {
      return Status::Error(std::string(ModeName(mode)) + ": " + measured.status.message());
    }
    if (mode == Mode::kStream) {
      record->msgs_per_s = measured.msgs_per_s;
      record->mb_per_s = measured.msgs_per_s * static_cast<double>(record->size) / 1e6;
    } else {
      record->rtt_p50_ns = measured.rtt.p50_ns;
      record->rtt_p99_ns = measured.rtt.p99_ns;
      record->rtt_p999_ns = measured.rtt.p999_ns;
    }
    if (watch != nullptr) {
      record->floor_ns =
          record->floor_ns ? watch->Worse(*record->floor_ns, measured.floor_ns) : measured.floor_ns;
    }
  }
  return {};
}

// The note on placement under the table: the reference, and any row that was measured
// elsewhere (one of its runs missed the reference at every attempt, or after the wait
// budget ran out).
std::string DescribePlacement(const FloorWatch& watch, bool given,
                              const std::vector<Record>& records) {
  std::string outside;  // rows with a run whose probes stayed outside after every attempt
  for (const Record& r : records) {
    if (r.floor_ns && !watch.InReference(*r.floor_ns)) {
      outside += (outside.empty() ? "" : ", ") + r.mechanism + " " + std::to_string(r.size) +
                 " B (" + std::to_string(*r.floor_ns) + " ns)";
    }
  }
  char reference[240];
  std::snprintf(reference, sizeof(reference),
                "within %gx of %" PRId64
                " ns, %s (%.0f s spent waiting for the host to place the vCPUs so; %d runs done "
                "again because it moved them during the run)",
                FloorWatch::kTolerance, watch.reference_ns(),
                given ? "as --floor-ns asked" : "the median of the probes this run started with",
                watch.waited_s(), watch.redone());
  if (outside.empty()) {
    return std::string("placement: every row was measured with the cache-line round trip ") +
           reference;
  }
  return std::string("placement: NOT COMPARABLE: these rows were measured with the cache-line ") +
         "round trip outside the band of the others, " + reference + ": " + outside;
}

std::string Grouped(double value) {
  // Appends rather than inserts: g++ 12 warns falsely (-Wrestrict) on string::insert here.
  const std::string digits = std::to_string(static_cast<uint64_t>(value + 0.5));
  std::string grouped;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) grouped += ',';
    grouped += digits[i];
  }
  return grouped;
}

std::string FormatRate(const std::optional<double>& v) { return v ? Grouped(*v) : "-"; }
std::string FormatMb(const std::optional<double>& v) {
  if (!v) return "-";
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", *v);
  return text;
}
std::string FormatNs(const std::optional<int64_t>& v) {
  return v ? Grouped(static_cast<double>(*v)) : "-";
}

std::string JsonNumber(const std::optional<double>& v, const char* format) {
  if (!v) return "null";
  char text[48];
  std::snprintf(text, sizeof(text), format, *v);
  return text;
}
std::string JsonNumber(const std::optional<int64_t>& v) { return v ? std::to_string(*v) : "null"; }
std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof(esc), "\\u%04x", c);
      out += esc;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void PrintJson(const std::vector<Record>& records) {
  std::printf("[\n");
  for (size_t i = 0; i < records.size(); ++i) {
    const Record& r = records[i];
    std::printf(
        "  {\"mechanism\": %s, \"size\": %zu, \"msgs_per_s\": %s, \"mb_per_s\": %s, "
        "\"rtt_p50_ns\": %s, \"rtt_p99_ns\": %s, \"rtt_p999_ns\": %s}%s\n",
        JsonString(r.mechanism).c_str(), r.size, JsonNumber(r.msgs_per_s, "%.1f").c_str(),
        JsonNumber(r.mb_per_s, "%.3f").c_str(), JsonNumber(r.rtt_p50_ns).c_str(),
        JsonNumber(r.rtt_p99_ns).c_str(), JsonNumber(r.rtt_p999_ns).c_str(),
        i + 1 < records.size() ? "," : "");
  }
  std::printf("]\n");
}

void PrintTableHeader() {
  std::printf("%-15s %7s %13s %10s %12s %12s %12s %9s\n", "mechanism", "size", "msgs/s", "MB/s",
              "rtt p50 ns", "rtt p99 ns", "rtt p99.9 ns", "floor ns");
}

void PrintTableRow(const Record& r) {
  std::printf("%-15s %7zu %13s %10s %12s %12s %12s %9s\n", r.mechanism.c_str(), r.size,
              FormatRate(r.msgs_per_s).c_str(), FormatMb(r.mb_per_s).c_str(),
              FormatNs(r.rtt_p50_ns).c_str(), FormatNs(r.rtt_p99_ns).c_str(),
              FormatNs(r.rtt_p999_ns).c_str(), FormatNs(r.floor_ns).c_str());
  std::fflush(stdout);  // rows appear as they are measured
}

// --- targets: the issue's goals, as ratios of two figures of this run ----------------------

const Record* FindRecord(const std::vector<Record>& records, std::string_view mechanism,
                         size_t size) {
  for (const Record& r : records) {
    if (r.mechanism == mechanism && r.size == size) return &r;
  }
  return nullptr;
}

struct Figure {
  const char* label;  // "msgs/s", "MB/s", "rtt p50"
  std::optional<double> (*get)(const Record&);
  const char* unit;  // printed after the two values
};
const Figure kMsgs = {"msgs/s", [](const Record& r) { return r.msgs_per_s; }, "msgs/s"};
const Figure kMb = {"MB/s", [](const Record& r) { return r.mb_per_s; }, "MB/s"};
const Figure kRttP50 = {"rtt p50",
                        [](const Record& r) {
                          return r.rtt_p50_ns ? std::optional<double>(*r.rtt_p50_ns)
                                              : std::optional<double>();
                        },
                        "ns"};

struct Target {
  std::string_view mechanism;
  size_t size;
  std::string_view baseline;
  size_t baseline_size;
  const Figure* figure;
  bool at_least;  // ratio >= factor (throughput) or ratio <= factor (latency)
  double factor;
  const char* met_as;  // what "met" means in words, or nullptr
  // A floor row for the mechanism's figure (handoff for copying streams), or empty. Its own
  // ratio to the baseline is printed: about the best a transport of that kind can do.
  std::string_view bound = {};
};

// One line per target whose two figures this run has; the others (rows or sizes filtered
// out) are skipped. Prints nothing when no target applies.
void PrintTargets(const std::vector<Record>& records, const FloorWatch* watch, FILE* out) {
  // A row measured outside the run's placement (named in the placement note) is compared
  // with nothing.
  const auto elsewhere = [&](const Record& r) {
    return watch != nullptr && r.floor_ns && !watch->InReference(*r.floor_ns);
  };
  const Target targets[] = {
      {"shmd-spsc", 64, "pipe", 64, &kMsgs, true, 20, nullptr, "handoff"},
      {"shmd-spsc-busy", 64, "pipe", 64, &kMsgs, true, 20, nullptr, "handoff"},
      {"shmd-spsc-busy", 64, "cacheline", 8, &kRttP50, false, 3, nullptr},
      {"shmd-spsc", 65536, "pipe", 65536, &kMb, true, 10, nullptr, "handoff"},
      {"shmd-pool", 65536, "shmd-pool", 64, &kRttP50, false, 2, "size-independent"},
      {"shmd-spsc-sleep", 64, "pipe", 64, &kRttP50, false, 1.5,
       "a sleeping consumer wakes as fast as a pipe reader: comparable"},
      {"shmd-spsc", 64, "shmd-spsc-busy", 64, &kRttP50, false, 1.5, "as fast as busy-poll"},
  };
  bool header = false;
  for (const Target& t : targets) {
    const Record* a = FindRecord(records, t.mechanism, t.size);
    const Record* b = FindRecord(records, t.baseline, t.baseline_size);
    if (a == nullptr || b == nullptr) continue;
    const std::optional<double> va = t.figure->get(*a);
    const std::optional<double> vb = t.figure->get(*b);
    if (!va || !vb || *vb <= 0) continue;
    if (!header) {
      std::fprintf(out, "targets (ratios of two figures of this run):\n");
      header = true;
    }
    const double ratio = *va / *vb;
    const bool met = t.at_least ? ratio >= t.factor : ratio <= t.factor;
    char want[64];
    std::snprintf(want, sizeof(want), "%s %gx", t.at_least ? ">=" : "<=", t.factor);
    const std::string lhs =
        std::string(t.mechanism) + " " + std::to_string(t.size) + " B " + t.figure->label;
    const std::string rhs = std::string(t.baseline) + " " + std::to_string(t.baseline_size) + " B";
    const auto format = t.figure == &kMb ? FormatMb : FormatRate;
    const std::string va_text = format(va);
    const std::string vb_text = format(vb);
    const bool comparable = !elsewhere(*a) && !elsewhere(*b);
    const char* verdict = !comparable ? "NOT COMPARABLE (a row measured in another placement)"
                          : met       ? "met"
                                      : "NOT met";
    std::fprintf(out, "  %-34s %s %-18s %13s vs %13s %-6s = %6.2fx  %s%s%s\n", lhs.c_str(), want,
                 rhs.c_str(), va_text.c_str(), vb_text.c_str(), t.figure->unit, ratio, verdict,
                 t.met_as != nullptr && met && comparable ? ": " : "",
                 t.met_as != nullptr && met && comparable ? t.met_as : "");
    const Record* bound = t.bound.empty() ? nullptr : FindRecord(records, t.bound, t.size);
    const std::optional<double> vbound =
        bound && !elsewhere(*bound) ? t.figure->get(*bound) : std::nullopt;
    if (vbound && comparable) {
      const double ceiling = *vbound / *vb;
      std::fprintf(out,
                   "  %-34s    (%s, the bare copy, is %.2fx %s here; this row is %.2fx of it%s)\n",
                   "", std::string(t.bound).c_str(), ceiling, rhs.c_str(), *va / *vbound,
                   ceiling < t.factor ? ": the target is beyond what copying reaches here" : "");
    }
  }
  if (header) std::fprintf(out, "\n");
}

// How much of the machine's CPU time went to other processes while we ran.
std::string DescribeOtherWork(const CpuTimes& before, const CpuTimes& after, int64_t wall_ns,
                              long cpus) {
  const double capacity = static_cast<double>(wall_ns) / 1e9 * static_cast<double>(cpus);
  if (capacity <= 0) return "no measurement of other work";
  // Ours: this process and its reaped children, the sides of every run.
  const double ours = (after.self_s + after.children_s) - (before.self_s + before.children_s);
  const double others = std::max(0.0, (after.machine_busy_s - before.machine_busy_s) - ours);
  const double steal = after.machine_steal_s - before.machine_steal_s;
  char text[240];
  std::snprintf(text, sizeof(text),
                "other processes used %.1f%% of the machine's CPU time during the run, the "
                "hypervisor stole %.1f%%%s",
                100 * others / capacity, 100 * steal / capacity,
                (others + steal) / capacity > 0.05
                    ? ": figures are noisier than on a quiet machine, the tails most"
                    : "");
  return text;
}

int Main(int argc, char** argv) {
  std::vector<std::unique_ptr<Mechanism>> all = MakeAllMechanisms();
  const Options options = ParseOptions(argc, argv, all);
  const Budget& budget = options.quick ? kQuickBudget : kNormalBudget;

  std::vector<std::string> notes;
  const Placement placement = ChoosePlacement(options, &notes);
#ifndef __OPTIMIZE__
  notes.push_back("built without optimization: the figures understate every mechanism");
#endif

  // Everything but the JSON array goes to stderr in --json mode.
  FILE* info = options.json ? stderr : stdout;
  const MachineInfo machine = DescribeMachine();
  std::fprintf(info, "machine: %s, %ld CPUs online, %s\n", machine.cpu_model.c_str(),
               machine.cpus_online, machine.kernel.c_str());
  std::fprintf(info,
               "placement: sender/initiator on CPU %d, receiver/echoer on CPU %d "
               "(memcpy on CPU %d)\n",
               placement.sender_cpu, placement.receiver_cpu, placement.receiver_cpu);
  std::fprintf(info,
               "method: stream = one send per message, receiver checks sequence and sums every "
               "byte, median of %d runs of ~%.1f s; rtt = echo of the same size, after warm-up; "
               "CLOCK_MONOTONIC (clocksource %s, ~%" PRId64
               " ns per read, one per round trip, after the send); MB = 1e6 bytes\n\n",
               options.stream_runs, budget.target_s, machine.clocksource.c_str(),
               ClockReadCostNs());
  if (!options.json) PrintTableHeader();
  std::fflush(info);

  // Both sides on one CPU: there is no transfer between cores, so no placement to watch.
  std::optional<FloorWatch> watch;
  if (!placement.shared()) {
    watch.emplace(placement, budget.placement_wait_s);
    if (Status s = watch->Start(options.floor_ns); !s.ok()) {
      std::fprintf(stderr, "ipc_compare: FAILED: %s\n", s.message().c_str());
      return 1;
    }
  }

  const CpuTimes cpu_at_start = ReadCpuTimes();
  const int64_t start_ns = NowNs();
  std::vector<Record> records;
  for (const auto& mechanism : all) {
    const std::string name(mechanism->name());
    if (!options.mechanisms.empty() &&
        std::find(options.mechanisms.begin(), options.mechanisms.end(), name) ==
            options.mechanisms.end()) {
      continue;
    }
    if (!mechanism->note().empty()) notes.emplace_back(mechanism->note());
    std::vector<size_t> sizes = options.sizes;
    if (mechanism->fixed_size() != 0) sizes = {mechanism->fixed_size()};
    for (size_t size : sizes) {
      Record record;
      record.mechanism = name;
      record.size = size;
      std::string why_not;
      if (!mechanism->Supports(size, &why_not)) {
        const std::string note = name + ": " + why_not;
        if (std::find(notes.begin(), notes.end(), note) == notes.end()) notes.push_back(note);
      } else if (Status s = MeasureRow(*mechanism, placement, budget, options,
                                       watch ? &*watch : nullptr, &record);
                 !s.ok()) {
        std::fflush(stdout);
        std::fprintf(stderr, "ipc_compare: FAILED: %s, %zu bytes, %s\n", name.c_str(), size,
                     s.message().c_str());
        return 1;
      }
      if (!options.json) PrintTableRow(record);
      records.push_back(record);
    }
  }

  if (watch) notes.push_back(DescribePlacement(*watch, options.floor_ns != 0, records));
  notes.push_back(
      DescribeOtherWork(cpu_at_start, ReadCpuTimes(), NowNs() - start_ns, machine.cpus_online));
  if (options.json) {
    PrintJson(records);
  } else {
    std::printf("\n");
  }
  // After the table; in --json mode on stderr, so stdout stays one JSON array.
  PrintTargets(records, watch ? &*watch : nullptr, info);
  for (const std::string& note : notes) std::fprintf(info, "note: %s\n", note.c_str());
  return 0;
}

}  // namespace
}  // namespace shmd::bench

int main(int argc, char** argv) { return shmd::bench::Main(argc, argv); }
