#include "bench/ipc/harness.h"

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

namespace shmd::bench {
namespace {

constexpr size_t kErrorBytes = 1024;

// What a child leaves for the parent. Written by one child, read by the parent after it
// reaped that child, so plain fields suffice.
struct SideReport {
  int32_t state;  // kNotDone, kOk or kFailed
  char error[kErrorBytes];
  StreamTiming stream;
  Percentiles rtt;
  uint64_t rtt_samples;
  int64_t rtt_total_ns;
};
constexpr int32_t kNotDone = 0, kOk = 1, kFailed = 2;

// One per run, in a MAP_SHARED | MAP_ANONYMOUS mapping made before fork. The barrier word is
// on its own line so the children's reports do not share it.
struct Control {
  alignas(128) std::atomic<uint32_t> arrived;
  alignas(128) SideReport sides[2];
};
// Lock-free atomics are address-free, so they work across processes mapping the same page.
static_assert(std::atomic<uint32_t>::is_always_lock_free);

int SideIndex(Side side) { return side == Side::kSender ? 0 : 1; }
const char* SideName(Side side) { return side == Side::kSender ? "sender" : "receiver"; }

Status WaitAtStartBarrier(std::atomic<uint32_t>* arrived, uint32_t parties, bool yield) {
  arrived->fetch_add(1, std::memory_order_acq_rel);
  const bool met = SpinUntil([&] { return arrived->load(std::memory_order_acquire) >= parties; },
                             /*relax=*/true, yield);
  if (!met) return Status::Error("start barrier: the other side did not arrive within 10 s");
  return {};
}

Status RunSide(Endpoint& endpoint, Side side, const RunSpec& spec, std::vector<int64_t>* rtt,
               SideReport* report) {
  if (spec.mode == Mode::kStream) {
    if (side == Side::kSender) return endpoint.StreamSend(spec);
    StreamTiming timing;
    Status status = endpoint.StreamReceive(spec, &timing);
    report->stream = timing;
    return status;
  }
  if (side == Side::kReceiver) return endpoint.PingPongEcho(spec);
  Status status = endpoint.PingPongInitiate(spec, rtt);
  if (!status.ok()) return status;
  int64_t total = 0;
  for (int64_t sample : *rtt) total += sample;
  report->rtt_total_ns = total;
  report->rtt_samples = rtt->size();
  report->rtt = ComputePercentiles(rtt);
  return {};
}

// The whole life of a child: it only ever leaves through _exit, so the parent's stdio
// buffers and atexit handlers run once, in the parent.
[[noreturn]] void ChildMain(Mechanism& mechanism, Side side, const RunSpec& spec, int cpu,
                            uint32_t parties, Control* control) {
  SideReport* report = &control->sides[SideIndex(side)];
  // A peer that died must show up as an EPIPE error with a message, not a silent SIGPIPE.
  signal(SIGPIPE, SIG_IGN);
  Status status = PinToCpu(cpu);
  std::unique_ptr<Endpoint> endpoint;
  if (status.ok()) status = mechanism.Open(side, &endpoint);
  if (status.ok() && endpoint == nullptr) status = Status::Error("Open() gave no endpoint");
  std::vector<int64_t> rtt;
  if (status.ok() && spec.mode == Mode::kPingPong && side == Side::kSender) {
    rtt.assign(spec.count, 0);  // allocated and touched before anything is timed
  }
  if (status.ok()) status = WaitAtStartBarrier(&control->arrived, parties, spec.shared_cpu);
  if (status.ok()) status = RunSide(*endpoint, side, spec, &rtt, report);
  endpoint.reset();
  if (!status.ok()) {
    std::snprintf(report->error, kErrorBytes, "%s: %s", SideName(side), status.message().c_str());
    report->state = kFailed;
    _exit(1);
  }
  report->state = kOk;
  _exit(0);
}

struct Child {
  Side side;
  pid_t pid = -1;
  int pidfd = -1;
  bool reaped = false;
  int wait_status = 0;
};

std::string DescribeExit(const Child& child, const SideReport& report) {
  if (report.state == kFailed) return report.error;
  std::string who = SideName(child.side);
  if (WIFSIGNALED(child.wait_status)) {
    return who + " was killed by signal " + std::to_string(WTERMSIG(child.wait_status)) + " (" +
           strsignal(WTERMSIG(child.wait_status)) + ")";
  }
  return who + " exited with status " + std::to_string(WEXITSTATUS(child.wait_status)) +
         " without a report";
}

void KillAndReap(std::vector<Child>& children) {
  for (Child& child : children) {
    if (child.reaped || child.pid <= 0) continue;  // never kill(-1): that is every process
    kill(child.pid, SIGKILL);
    waitpid(child.pid, &child.wait_status, 0);
    child.reaped = true;
  }
}

// Waits for every child, sleeping in poll() on pidfds (no periodic wake-ups that would
// disturb the pinned children). The first abnormal exit, or the deadline, kills the rest.
Status Supervise(std::vector<Child>& children, const Control& control, double timeout_s) {
  const int64_t deadline = NowNs() + static_cast<int64_t>(timeout_s * 1e9);
  Status failure;
  while (true) {
    bool all_reaped = true;
    for (Child& child : children) {
      if (child.reaped || child.pid <= 0) continue;
      pid_t got = waitpid(child.pid, &child.wait_status, WNOHANG);
      if (got == child.pid) {
        child.reaped = true;
        const SideReport& report = control.sides[SideIndex(child.side)];
        const bool clean = WIFEXITED(child.wait_status) && WEXITSTATUS(child.wait_status) == 0 &&
                           report.state == kOk;
        if (!clean) {
          failure = Status::Error(DescribeExit(child, report));
          KillAndReap(children);
          return failure;
        }
      } else {
        all_reaped = false;
      }
    }
    if (all_reaped) return {};
    const int64_t left_ns = deadline - NowNs();
    if (left_ns <= 0) {
      KillAndReap(children);
      char what[160];
      std::snprintf(what, sizeof(what), "run did not finish within %.0f s; both sides killed",
                    timeout_s);
      return Status::Error(what);
    }
    std::vector<pollfd> fds;
    for (const Child& child : children) {
      if (!child.reaped && child.pidfd >= 0) fds.push_back({child.pidfd, POLLIN, 0});
    }
    // Without pidfds (kernel < 5.3) fall back to checking every 20 ms.
    const int wait_ms = fds.size() == children.size()
                            ? static_cast<int>(std::min<int64_t>(left_ns / 1'000'000 + 1, 60'000))
                            : 20;
    poll(fds.data(), fds.size(), wait_ms);
  }
}

Control* MapControl(Status* status) {
  void* p =
      mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    *status = ErrnoError("mmap of the run's control page");
    return nullptr;
  }
  return new (p) Control();  // value-initialized: barrier at 0, reports empty
}

}  // namespace

Status PinToCpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return ErrnoError("sched_setaffinity to CPU " + std::to_string(cpu));
  }
  return {};
}

Percentiles ComputePercentiles(std::vector<int64_t>* samples) {
  Percentiles p;
  if (samples->empty()) return p;
  std::sort(samples->begin(), samples->end());
  const auto rank = [&](double q) {
    const size_t n = samples->size();
    size_t index = static_cast<size_t>(std::ceil(q * static_cast<double>(n)));
    index = std::clamp<size_t>(index, 1, n) - 1;
    return (*samples)[index];
  };
  p.p50_ns = rank(0.50);
  p.p99_ns = rank(0.99);
  p.p999_ns = rank(0.999);
  return p;
}

RunResult RunOnce(Mechanism& mechanism, const RunSpec& spec, const Placement& placement,
                  double timeout_s) {
  RunResult result;
  if (spec.mode == Mode::kPingPong && spec.warmup == 0) {
    result.status = Status::Error("a ping-pong run needs at least one warm-up round trip");
    return result;
  }
  Control* control = MapControl(&result.status);
  if (control == nullptr) return result;
  result.status = mechanism.Prepare(spec);
  if (!result.status.ok()) {
    mechanism.Teardown();
    munmap(control, sizeof(Control));
    return result;
  }

  // The receiver is forked first so it is listening by the time the sender starts; a
  // single-process row (memcpy) only has the receiver.
  std::vector<Child> children;
  children.push_back({Side::kReceiver});
  if (mechanism.processes() == 2) children.push_back({Side::kSender});
  const uint32_t parties = static_cast<uint32_t>(children.size());
  std::fflush(nullptr);  // so buffered output is not written again by a child
  for (Child& child : children) {
    const int cpu = child.side == Side::kSender ? placement.sender_cpu : placement.receiver_cpu;
    child.pid = fork();
    if (child.pid == 0) ChildMain(mechanism, child.side, spec, cpu, parties, control);
    if (child.pid < 0) {
      result.status = ErrnoError("fork");
      child.reaped = true;
      KillAndReap(children);
      break;
    }
    child.pidfd = static_cast<int>(syscall(SYS_pidfd_open, child.pid, 0));
  }
  if (result.status.ok()) result.status = Supervise(children, *control, timeout_s);
  for (Child& child : children) {
    if (child.pidfd >= 0) close(child.pidfd);
  }
  mechanism.Teardown();

  if (result.status.ok()) {
    result.stream = control->sides[SideIndex(Side::kReceiver)].stream;
    const SideReport& sender = control->sides[SideIndex(Side::kSender)];
    result.rtt = sender.rtt;
    result.rtt_samples = sender.rtt_samples;
    result.rtt_total_ns = sender.rtt_total_ns;
  }
  munmap(control, sizeof(Control));
  return result;
}

int64_t ClockReadCostNs() {
  int64_t best = INT64_MAX;
  for (int round = 0; round < 100; ++round) {
    const int64_t start = NowNs();
    for (int i = 0; i < 99; ++i) NowNs();
    best = std::min(best, (NowNs() - start) / 100);
  }
  return best;
}

}  // namespace shmd::bench
