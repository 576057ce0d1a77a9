// wait_set_wake: how long a sleeping consumer takes to wake up and receive, by the way it
// waits: a blocking Receive on one ring (one futex), WaitSet::Wait on 1 or 64 rings
// (futex_waitv), and poll(2) on the set's notify fd (the notifier thread wakes, writes the
// eventfd, the loop wakes: one thread wake-up more).
//
// A producer thread sends a timestamp into a ring (a random one of the set) every --gap
// microseconds, long after the consumer's adaptive spin gave up, so every receive starts
// asleep; latency = time received - time stamped (one steady clock, one process).
//
//   wait_set_wake [--samples N] [--gap MICROSECONDS]
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "shmd/dataplane/spsc_ring.h"
#include "shmd/dataplane/wait_set.h"

namespace {

using namespace shmd;
using Steady = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Steady::now().time_since_epoch())
      .count();
}

template <class T>
T Must(Result<T> r) {
  if (!r.ok()) {
    std::fprintf(stderr, "wait_set_wake: %s\n", r.error().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

enum class Mode { kReceive, kWait, kNotifyFd };

struct Rings {
  Rings(const ShmDir& dir, int n) {
    for (int i = 0; i < n; ++i) {
      const std::string name = "wake-" + std::to_string(i);
      Must(CreateSpscRing(dir, name, {.capacity = 4096}));
      producers.push_back(Must(SpscProducer::Open(dir, name)));
      consumers.push_back(Must(SpscConsumer::Open(dir, name)));
    }
  }
  std::vector<SpscProducer> producers;
  std::vector<SpscConsumer> consumers;
};

// Returns the latencies in microseconds, sorted.
std::vector<double> Run(const ShmDir& dir, Mode mode, int rings, int samples, int gap_us) {
  Rings r(dir, rings);
  std::vector<double> latencies;
  latencies.reserve(samples);
  std::thread producer([&] {
    std::mt19937 rng(7);
    for (int i = 0; i < samples; ++i) {
      std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
      const int64_t stamp = NowNs();
      (void)r.producers[rng() % rings].SendFor(
          {reinterpret_cast<const std::byte*>(&stamp), sizeof stamp}, std::chrono::seconds(5));
    }
  });
  auto take = [&](SpscConsumer& c) {
    int64_t stamp;
    size_t size;
    while (c.TryReceive({reinterpret_cast<std::byte*>(&stamp), sizeof stamp}, &size) ==
           Status::kOk) {
      latencies.push_back(static_cast<double>(NowNs() - stamp) / 1000.0);
    }
  };
  WaitSet set;
  std::vector<WaitEvent> events;
  if (mode != Mode::kReceive) {
    for (int i = 0; i < rings; ++i) (void)set.Add(Must(WaitSourceOf(r.consumers[i])), i);
  }
  const int fd = mode == Mode::kNotifyFd ? Must(set.NotifyFd()) : -1;
  const auto deadline = Steady::now() + std::chrono::seconds(60);
  while (static_cast<int>(latencies.size()) < samples && Steady::now() < deadline) {
    if (mode == Mode::kReceive) {
      int64_t stamp;
      size_t size;
      if (r.consumers[0].ReceiveFor({reinterpret_cast<std::byte*>(&stamp), sizeof stamp}, &size,
                                    std::chrono::seconds(1)) == Status::kOk) {
        latencies.push_back(static_cast<double>(NowNs() - stamp) / 1000.0);
      }
    } else if (mode == Mode::kWait) {
      if (set.Wait(std::chrono::seconds(1), &events) != Status::kOk) continue;
      for (const WaitEvent& e : events) take(r.consumers[e.tag]);
    } else {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 1000) != 1) continue;
      (void)set.Wait(Nanos::zero(), &events);
      for (const WaitEvent& e : events) take(r.consumers[e.tag]);
      set.Rearm();
    }
  }
  producer.join();
  std::sort(latencies.begin(), latencies.end());
  return latencies;
}

double At(const std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  int samples = 2000;
  int gap_us = 500;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--samples") == 0) {
      samples = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--gap") == 0) {
      gap_us = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: %s [--samples N] [--gap MICROSECONDS]\n", argv[0]);
      return 2;
    }
  }
  if (samples <= 0 || gap_us < 0) {
    std::fprintf(stderr, "wait_set_wake: --samples must be > 0, --gap >= 0\n");
    return 2;
  }
  ShmDir dir{"/dev/shm", "bench-wake-" + std::to_string(getpid())};
  struct Case {
    const char* name;
    Mode mode;
    int rings;
  };
  const Case cases[] = {
      {"Receive, 1 ring (one futex)", Mode::kReceive, 1},
      {"WaitSet::Wait, 1 ring", Mode::kWait, 1},
      {"WaitSet::Wait, 64 rings", Mode::kWait, 64},
      {"poll(notify fd), 1 ring", Mode::kNotifyFd, 1},
      {"poll(notify fd), 64 rings", Mode::kNotifyFd, 64},
  };
  std::printf(
      "wake-up latency, send -> received, consumer asleep (gap %d us, %d samples); "
      "microseconds\n",
      gap_us, samples);
  std::printf("%-32s %8s %8s %8s %8s\n", "", "p50", "p90", "p99", "max");
  int n = 0;
  for (const Case& c : cases) {
    ShmDir case_dir = dir;
    case_dir.ns += "-" + std::to_string(n++);
    std::vector<double> v = Run(case_dir, c.mode, c.rings, samples, gap_us);
    for (int i = 0; i < c.rings; ++i) {
      (void)Segment::Remove(case_dir, "wake-" + std::to_string(i));
    }
    std::printf("%-32s %8.1f %8.1f %8.1f %8.1f\n", c.name, At(v, 0.5), At(v, 0.9), At(v, 0.99),
                v.empty() ? 0.0 : v.back());
  }
  return 0;
}
