// control_plane: latency of the shmd daemon's gRPC API over its Unix socket, measured with
// shmd::Client against a daemon this benchmark starts (and stops) itself. See --help.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "bench/common/args.h"
#include "bench/common/machine.h"
#include "bench/control/daemon.h"
#include "bench/control/measure.h"
#include "bench/control/report.h"
#include "shmd/client/client.h"

namespace shmd::bench {
namespace {

constexpr char kUsage[] =
    R"(usage: control_plane [--json] [--quick] [--count N] [--objects N] [--shmd PATH] [--help]

Starts a shmd daemon of its own (a socket in a fresh temporary directory, objects in a
fresh /dev/shm/shmd-bench-XXXXXX, namespace "%s"), times its gRPC API over the Unix
socket with shmd::Client, one call at a time after a warm-up, then stops the daemon
(SIGTERM) and removes every file it made:
  create/delete  CreateRing (SPSC, 64 KiB) then DeleteRing, N times (fresh ids)
  list           fills the daemon with --objects SPSC rings of 4 KiB, times ListAllRings
                 (1000 per page) %d times (median and per ring), times Create/Delete among
                 them, then deletes them all, timing every Create and Delete on the way
  attach         Attach (producer) then Detach on one ring, N times
Nothing is pinned: the daemon and this client share the CPUs, as they would in use.

  --json        print one JSON array of {"operation","count","p50_us","p99_us","p999_us",
                "max_us","mean_us"} (null where a figure does not apply: p99 needs %d
                samples, p99.9 %d) and nothing else on stdout; the rest goes to stderr
  --quick       N = %d, %d objects (CI smoke runs)
  --count N     timed calls of create/delete and attach (default %d)
  --objects N   rings of the list measurement (default %d)
  --shmd PATH   the daemon to run (default %s)
  --help        this text

Exit status: 0 on success, 1 if a call failed, the daemon misbehaved, a file was left
behind or the run was interrupted (SIGINT, SIGTERM, SIGHUP), 2 on a usage error.
)";

constexpr Plan kNormalPlan = {};
constexpr Plan kQuickPlan = {.round_trips = 300,
                             .warmup = 50,
                             .list_objects = 2'000,
                             .list_runs = 3,
                             .crowded_round_trips = 50};
constexpr double kCreateTargetUs = 1000;

struct Options {
  bool json = false;
  Plan plan = kNormalPlan;
  std::string shmd = SHMD_DAEMON;
};

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "control_plane: %s (see --help)\n", message.c_str());
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  bool quick = false;
  int count = 0, objects = 0;  // 0: from the plan
  for (ArgScanner args(argc, argv, UsageError); args.Next();) {
    const std::string& arg = args.name();
    if (arg == "--help" || arg == "-h") {
      std::printf(kUsage, BenchDaemon::kNamespace, kNormalPlan.list_runs,
                  static_cast<int>(kMinSamplesForP99), static_cast<int>(10 * kMinSamplesForP99),
                  kQuickPlan.round_trips, kQuickPlan.list_objects, kNormalPlan.round_trips,
                  kNormalPlan.list_objects, SHMD_DAEMON);
      std::exit(0);
    } else if (arg == "--json") {
      options.json = true;
    } else if (arg == "--quick") {
      quick = true;
    } else if (arg == "--count") {
      count = args.ParseInt(args.Value(), 1, 10'000'000);
    } else if (arg == "--objects") {
      objects = args.ParseInt(args.Value(), 1, 1'000'000);
    } else if (arg == "--shmd") {
      options.shmd = args.Value();
    } else {
      UsageError("unknown argument '" + args.given() + "'");
    }
  }
  if (quick) options.plan = kQuickPlan;
  if (count != 0) options.plan.round_trips = count;
  if (objects != 0) options.plan.list_objects = objects;
  return options;
}

const Record* Find(const std::vector<Record>& records, const std::string& operation) {
  for (const Record& r : records) {
    if (r.operation == operation) return &r;
  }
  return nullptr;
}

std::string TargetLine(const std::vector<Record>& records) {
  const Record* create = Find(records, "CreateRing 64 KiB");
  if (create == nullptr || !create->p99_us) {
    return "targets: Create p99 under 1 ms: not measured (p99 needs " +
           std::to_string(kMinSamplesForP99) + " calls)";
  }
  char line[160];
  std::snprintf(line, sizeof(line), "targets: Create p99 under 1 ms: %s (%.1f us)",
                *create->p99_us < kCreateTargetUs ? "met" : "NOT met", *create->p99_us);
  return line;
}

// The target again, with the daemon full: does Create stay fast as objects accumulate?
std::string CrowdedCreateNote(const std::vector<Record>& records, const Plan& plan) {
  const std::string n = std::to_string(plan.list_objects);
  const Record* create = Find(records, "CreateRing 64 KiB, " + n + " present");
  if (create == nullptr || !create->p99_us) return "";
  char note[200];
  std::snprintf(note, sizeof(note),
                "with %s rings present Create p99 is %.1f us: the 1 ms target is %s at that size",
                n.c_str(), *create->p99_us, *create->p99_us < kCreateTargetUs ? "met" : "NOT met");
  return note;
}

int Fail(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "control_plane: FAILED: %s\n", what.c_str());
  return 1;
}

int Run(const Options& options) {
  FILE* info = options.json ? stderr : stdout;  // stdout is the JSON array alone with --json
  const MachineInfo machine = DescribeMachine();
  std::fprintf(info, "machine: %s, %ld CPUs online, %s\n", machine.cpu_model.c_str(),
               machine.cpus_online, machine.kernel.c_str());

  // Started before any gRPC call of ours: see BenchDaemon::Start.
  BenchDaemon daemon;
  if (VoidResult r = daemon.Start(options.shmd, std::chrono::seconds(10)); !r.ok()) {
    return Fail("starting " + options.shmd + ": " + r.error().message());
  }
  ClientOptions client_options;
  client_options.target = daemon.target();
  client_options.deadline = std::chrono::seconds(10);  // slower than this is a failure
  Result<Client> connected = Client::Connect(client_options);
  if (!connected.ok()) return Fail(connected.error().message());
  // Optional so it can hang up before the daemon is stopped: the daemon waits out its
  // whole shutdown deadline (2 s) while any client stays connected.
  std::optional<Client> client = std::move(connected).value();
  Result<v1::ServerStats> stats = client->GetServerStats();
  if (!stats.ok()) return Fail("GetServerStats: " + stats.error().message());

  std::fprintf(info, "daemon: shmd %s (%s), pid %d, on %s, objects in %s (namespace %s)\n",
               stats->version().c_str(), options.shmd.c_str(), daemon.pid(),
               daemon.target().c_str(), daemon.shm_dir().c_str(), BenchDaemon::kNamespace);
  std::fprintf(info,
               "placement: nothing pinned: the daemon (and its gRPC threads) and this client "
               "share the %ld CPUs, so every figure includes the scheduler's wake-ups\n",
               machine.cpus_online);
  std::fprintf(info,
               "method: one call at a time, each timed around the shmd::Client call "
               "(steady_clock); untimed warm-up first (%d pairs before each pair measurement, "
               "one ListAllRings before the timed ones); us = microseconds\n\n",
               options.plan.warmup);
  if (!options.json) PrintTableHeader(stdout);

  const CpuTimes cpu_before = ReadCpuTimes();
  const double daemon_cpu_before_s = daemon.CpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  std::vector<Record> records;
  using Measurement = VoidResult (*)(Client&, const Plan&, std::vector<Record>*);
  for (Measurement measure : {&MeasureCreateDelete, &MeasureList, &MeasureAttach}) {
    const size_t first = records.size();
    if (VoidResult r = measure(*client, options.plan, &records); !r.ok()) {
      const std::string ended = daemon.Ended();  // a crash is the daemon's story, not ours
      return Fail(
          r.error().message() +
          (ended.empty() ? "" : "\nthe daemon " + ended + "; it said:\n" + daemon.Output()));
    }
    if (options.json) continue;
    for (size_t i = first; i < records.size(); ++i) PrintTableRow(records[i], stdout);
  }
  const CpuTimes cpu_after = ReadCpuTimes();
  const double daemon_cpu_s = daemon.CpuSeconds() - daemon_cpu_before_s;
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  // Every measurement deleted what it made: the daemon should hold nothing now.
  std::vector<std::string> notes;
  stats = client->GetServerStats();
  if (!stats.ok()) return Fail("GetServerStats: " + stats.error().message());
  if (stats->ring_count() != 0 || stats->lease_count() != 0) {
    return Fail("after every ring was deleted the daemon still counts " +
                std::to_string(stats->ring_count()) + " ring(s) and " +
                std::to_string(stats->lease_count()) + " lease(s)");
  }
  const std::vector<std::string> left = daemon.ObjectFiles();
  if (!left.empty()) {
    return Fail(std::to_string(left.size()) + " file(s) remain in " + daemon.shm_dir() +
                " after every ring was deleted, the first " + left.front());
  }
  client.reset();
  if (VoidResult r = daemon.Stop(); !r.ok()) return Fail(r.error().message());

  if (options.json) {
    PrintJson(records, stdout);
  } else {
    std::printf("\n");
  }
  std::fprintf(info, "%s\n", TargetLine(records).c_str());
#ifndef __OPTIMIZE__
  notes.push_back("built without optimization: the client's share of every figure is inflated");
#endif
  notes.push_back("'-': p99 needs " + std::to_string(kMinSamplesForP99) + " samples, p99.9 " +
                  std::to_string(10 * kMinSamplesForP99) +
                  "; the per-ring list row is the list's median and mean over its rings "
                  "(ListAllRings asks for 1000 rings per call)");
  if (std::string crowded = CrowdedCreateNote(records, options.plan); !crowded.empty()) {
    notes.push_back(crowded);
  }
  notes.push_back(DescribeCpuUse(cpu_before, cpu_after, daemon_cpu_s, wall_s, machine.cpus_online));
  for (const std::string& note : notes) std::fprintf(info, "note: %s\n", note.c_str());
  return 0;
}

}  // namespace
}  // namespace shmd::bench

int main(int argc, char** argv) {
  shmd::bench::CatchStopSignals();
  const shmd::bench::Options options = shmd::bench::ParseOptions(argc, argv);
  // Run returns before main does, so the daemon is stopped and its files removed (by
  // ~BenchDaemon) on every path, failures included.
  return shmd::bench::Run(options);
}
