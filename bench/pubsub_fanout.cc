// pubsub_fanout: one publisher, 1, 2 and 4 subscriber processes on a topic (embedded mode,
// no daemon), 64 B and 4 KiB messages, lossy and lossless:
//   throughput  the publisher sends as fast as it may (lossy: never waits; lossless: as
//               fast as the slowest subscriber lets it); per subscriber, messages
//               delivered per second (and, lossy, the share it lost to laps);
//   latency     the publisher sends one message every --gap-us microseconds, so nothing
//               queues; each subscriber takes CLOCK_MONOTONIC on receipt minus the
//               timestamp in the message (the same clock in every process): p50 / p99.
// Placement: the publisher on the first allowed CPU, the subscribers round-robin on the
// others (with 2 CPUs: all of them on the second, sharing it), printed with the figures.
//
//   pubsub_fanout [--json] [--quick] [--subscribers 1,2,4] [--sizes 64,4096]
//                 [--messages N] [--gap-us U]
#include <sched.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/args.h"
#include "bench/common/json.h"
#include "bench/common/machine.h"
#include "shmd/client/topic.h"

namespace {

using namespace std::chrono_literals;
using shmd::Status;
using shmd::TopicPolicy;

int64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

struct Options {
  bool json = false;
  std::vector<int> subscribers = {1, 2, 4};
  std::vector<int> sizes = {64, 4096};
  int messages = 200000;  // per throughput run (4 KiB runs send a quarter)
  int latency_messages = 20000;
  int gap_us = 100;  // above the subscribers' 50 us spin: they sleep and are woken
};

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "pubsub_fanout: %s (see --help)\n", message.c_str());
  std::exit(2);
}

std::vector<int> ParseList(shmd::bench::ArgScanner& args, int min, int max) {
  std::vector<int> out;
  std::stringstream in(args.Value());
  for (std::string item; std::getline(in, item, ',');) out.push_back(args.ParseInt(item, min, max));
  if (out.empty()) UsageError(args.name() + " needs at least one value");
  return out;
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (shmd::bench::ArgScanner args(argc, argv, UsageError); args.Next();) {
    if (args.name() == "--help" || args.name() == "-h") {
      std::printf(
          "usage: pubsub_fanout [--json] [--quick] [--subscribers 1,2,4] [--sizes 64,4096]\n"
          "                     [--messages N] [--gap-us U]\n"
          "  --json         one JSON array of {policy, size, subscribers, msgs_per_s_per_sub,\n"
          "                 mb_per_s_per_sub, lost_fraction, p50_ns, p99_ns} on stdout\n"
          "  --quick        a tenth of the messages\n");
      std::exit(0);
    } else if (args.name() == "--json") {
      o.json = true;
    } else if (args.name() == "--quick") {
      o.messages /= 10;
      o.latency_messages /= 10;
    } else if (args.name() == "--subscribers") {
      o.subscribers = ParseList(args, 1, 16);
    } else if (args.name() == "--sizes") {
      o.sizes = ParseList(args, 16, 1 << 20);
    } else if (args.name() == "--messages") {
      o.messages = args.ParseInt(args.Value(), 1000, 100000000);
    } else if (args.name() == "--gap-us") {
      o.gap_us = args.ParseInt(args.Value(), 1, 1000000);
    } else {
      UsageError("unknown argument " + args.given());
    }
  }
  return o;
}

void Pin(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);  // best effort: unpinned figures are still figures
}

// Ahead of every message: its sequence number and when it was published.
struct Stamp {
  uint64_t seq;
  int64_t sent_ns;
};

// What a subscriber process reports through its pipe.
struct SubResult {
  uint64_t received = 0;
  uint64_t lost = 0;
  int64_t first_sent_ns = 0;
  int64_t last_received_ns = 0;
  int64_t p50_ns = 0;
  int64_t p99_ns = 0;
  int failed = 0;
};

SubResult RunSubscriber(const shmd::ShmDir& dir, const std::string& topic, bool latency) {
  SubResult r;
  auto sub = shmd::Subscriber::Open(dir, topic);
  if (!sub.ok()) {
    r.failed = 1;
    return r;
  }
  std::vector<std::byte> buffer(sub->max_message());
  std::vector<int64_t> latencies;
  if (latency) latencies.reserve(1 << 20);
  uint64_t received = 0;
  for (;;) {
    shmd::TopicReceive m = sub->Receive(buffer, 30s);
    if (m.status == Status::kPeerGone) break;
    if (m.status == Status::kLapped) continue;
    if (m.status != Status::kOk) {
      r.failed = 1;
      break;
    }
    const int64_t now = NowNs();
    Stamp s;
    std::memcpy(&s, buffer.data(), sizeof s);
    if (received++ == 0) r.first_sent_ns = s.sent_ns;
    r.last_received_ns = now;
    if (latency) latencies.push_back(now - s.sent_ns);
  }
  r.received = sub->received();
  r.lost = sub->lost();
  if (!latencies.empty()) {
    std::sort(latencies.begin(), latencies.end());
    r.p50_ns = latencies[latencies.size() / 2];
    r.p99_ns = latencies[latencies.size() * 99 / 100];
  }
  return r;
}

struct Record {
  const char* policy;
  int size;
  int subscribers;
  double msgs_per_s = 0;  // per subscriber, mean
  double lost_fraction = 0;
  int64_t p50_ns = 0;  // the worst subscriber's
  int64_t p99_ns = 0;
};

// One run: forks the subscribers, publishes, collects what each measured.
bool Run(const shmd::ShmDir& dir, TopicPolicy policy, int size, int subs, int messages, int gap_us,
         const std::vector<int>& cpus, std::vector<SubResult>* out) {
  const std::string topic = "fanout";
  (void)shmd::RemoveTopic(dir, topic);
  auto created = shmd::CreateTopic(
      dir, topic, {.max_message = static_cast<uint32_t>(size), .depth = 1024, .policy = policy});
  if (!created.ok()) {
    std::fprintf(stderr, "pubsub_fanout: %s\n", created.error().message().c_str());
    return false;
  }
  auto pub = shmd::Publisher::Open(dir, topic);
  if (!pub.ok()) return false;
  std::vector<pid_t> pids;
  std::vector<int> fds;
  for (int i = 0; i < subs; ++i) {
    int p[2];
    if (pipe(p) != 0) return false;
    const pid_t pid = fork();  // no threads and no gRPC here: a plain fork is safe
    if (pid == 0) {
      close(p[0]);
      Pin(cpus.size() > 1 ? cpus[1 + i % (cpus.size() - 1)] : -1);
      const SubResult r = RunSubscriber(dir, topic, gap_us > 0);
      (void)!write(p[1], &r, sizeof r);
      _exit(0);
    }
    close(p[1]);
    pids.push_back(pid);
    fds.push_back(p[0]);
  }
  // Wait for every subscriber to join (each starts at `published`: it must not miss any).
  for (auto end = std::chrono::steady_clock::now() + 10s;
       pub->subscribers() < static_cast<uint32_t>(subs);) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  std::vector<std::byte> message(size);
  int64_t next = NowNs();
  for (int seq = 0; seq < messages; ++seq) {
    if (gap_us > 0) {  // paced: spin to the next send time (sleeping would add its jitter)
      next += int64_t{gap_us} * 1000;
      while (NowNs() < next) {
      }
    }
    const Stamp s{static_cast<uint64_t>(seq), NowNs()};
    std::memcpy(message.data(), &s, sizeof s);
    if (pub->Publish(message, 10s) != Status::kOk) return false;
  }
  { auto leaving = std::move(pub).value(); }  // subscribers drain, then hear kPeerGone
  out->clear();
  bool ok = true;
  for (int i = 0; i < subs; ++i) {
    SubResult r;
    ok &= read(fds[i], &r, sizeof r) == static_cast<ssize_t>(sizeof r) && r.failed == 0;
    close(fds[i]);
    waitpid(pids[i], nullptr, 0);
    out->push_back(r);
  }
  (void)shmd::RemoveTopic(dir, topic);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = ParseOptions(argc, argv);
  FILE* info = o.json ? stderr : stdout;
  const auto machine = shmd::bench::DescribeMachine();
  std::vector<int> cpus = shmd::bench::AllowedCpus();
  std::fprintf(info, "machine: %s, %ld CPUs online, %s\n", machine.cpu_model.c_str(),
               machine.cpus_online, machine.kernel.c_str());
  if (cpus.size() >= 2) {
    std::string rest;
    for (size_t i = 1; i < cpus.size(); ++i) rest += (i > 1 ? "," : "") + std::to_string(cpus[i]);
    std::fprintf(info,
                 "placement: publisher on CPU %d, subscribers round-robin on CPU %s "
                 "(more subscribers than CPUs share them)\n",
                 cpus[0], rest.c_str());
  } else {
    std::fprintf(info, "placement: not pinned (fewer than 2 CPUs allowed)\n");
    cpus.clear();
  }
  std::fprintf(info,
               "method: topic of 1024 slots; throughput = messages delivered per second per "
               "subscriber (mean), publisher unpaced; latency = receipt - publish timestamp "
               "(CLOCK_MONOTONIC), publisher paced at one message per %d us, worst subscriber's "
               "p50/p99\n\n",
               o.gap_us);
  Pin(cpus.empty() ? -1 : cpus[0]);
  const shmd::ShmDir dir{"/dev/shm", "bench-fanout-" + std::to_string(getpid())};
  const auto cpu_start = shmd::bench::ReadCpuTimes();
  const int64_t start_ns = NowNs();

  std::vector<Record> records;
  if (!o.json) {
    std::printf("%-9s %6s %4s %14s %10s %9s %10s %10s\n", "policy", "size", "subs", "msgs/s/sub",
                "MB/s/sub", "lost", "p50", "p99");
  }
  for (TopicPolicy policy : {TopicPolicy::kLossy, TopicPolicy::kLossless}) {
    for (int size : o.sizes) {
      for (int subs : o.subscribers) {
        Record rec{policy == TopicPolicy::kLossy ? "lossy" : "lossless", size, subs};
        const int count = size > 1024 ? o.messages / 4 : o.messages;
        std::vector<SubResult> results;
        if (!Run(dir, policy, size, subs, count, 0, cpus, &results)) {
          std::fprintf(stderr, "pubsub_fanout: throughput run failed (%s, %d B, %d subs)\n",
                       rec.policy, size, subs);
          return 1;
        }
        double rate = 0;
        double lost = 0;
        for (const SubResult& r : results) {
          const double secs = (r.last_received_ns - r.first_sent_ns) / 1e9;
          rate += secs > 0 ? r.received / secs : 0;
          lost += static_cast<double>(r.lost) / count;
        }
        rec.msgs_per_s = rate / subs;
        rec.lost_fraction = lost / subs;
        if (!Run(dir, policy, size, subs, o.latency_messages, o.gap_us, cpus, &results)) {
          std::fprintf(stderr, "pubsub_fanout: latency run failed (%s, %d B, %d subs)\n",
                       rec.policy, size, subs);
          return 1;
        }
        for (const SubResult& r : results) {
          rec.p50_ns = std::max(rec.p50_ns, r.p50_ns);
          rec.p99_ns = std::max(rec.p99_ns, r.p99_ns);
        }
        records.push_back(rec);
        if (!o.json) {
          std::printf("%-9s %6d %4d %14.0f %10.1f %8.2f%% %8.1fus %8.1fus\n", rec.policy, size,
                      subs, rec.msgs_per_s, rec.msgs_per_s * size / 1e6, rec.lost_fraction * 100,
                      rec.p50_ns / 1e3, rec.p99_ns / 1e3);
          std::fflush(stdout);
        }
      }
    }
  }
  if (o.json) {
    std::printf("[\n");
    for (size_t i = 0; i < records.size(); ++i) {
      const Record& r = records[i];
      std::printf(
          "  {\"policy\": %s, \"size\": %d, \"subscribers\": %d, \"msgs_per_s_per_sub\": %.1f, "
          "\"mb_per_s_per_sub\": %.3f, \"lost_fraction\": %.6f, \"p50_ns\": %" PRId64
          ", \"p99_ns\": %" PRId64 "}%s\n",
          shmd::bench::JsonString(r.policy).c_str(), r.size, r.subscribers, r.msgs_per_s,
          r.msgs_per_s * r.size / 1e6, r.lost_fraction, r.p50_ns, r.p99_ns,
          i + 1 < records.size() ? "," : "");
    }
    std::printf("]\n");
  }
  const auto cpu_end = shmd::bench::ReadCpuTimes();
  const double wall = (NowNs() - start_ns) / 1e9;
  std::fprintf(info,
               "\nother work: the machine was busy %.1f CPU-s in %.1f s, this benchmark %.1f "
               "(%ld CPUs)\n",
               cpu_end.machine_busy_s - cpu_start.machine_busy_s, wall,
               (cpu_end.self_s - cpu_start.self_s) + (cpu_end.children_s - cpu_start.children_s),
               machine.cpus_online);
  return 0;
}
