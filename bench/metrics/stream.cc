#include "bench/metrics/stream.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

#include "bench/common/args.h"
#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/spsc_ring.h"

extern char** environ;

namespace shmd::bench {
namespace {

// A blocking call that sees nothing move for this long fails: a benchmark must never hang.
constexpr std::chrono::seconds kChildTimeout{10};
constexpr char kReady[] = "ready\n";

Error SystemError(const std::string& what, int err = errno) {
  return Error(ErrorCode::kSystem, what + ": " + std::strerror(err));
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "ended with wait status " + std::to_string(status);
}

// --- the child's side ----------------------------------------------------------------------

volatile sig_atomic_t child_stop = 0;
void OnChildStop(int) { child_stop = 1; }

const char* child_role = "stream child";

int ChildFail(const std::string& what) {
  std::fprintf(stderr, "metrics_scrape (%s): FAILED: %s\n", child_role, what.c_str());
  return 1;
}

[[noreturn]] void ChildUsageError(const std::string& message) {
  std::fprintf(stderr, "metrics_scrape (%s): %s; this mode is for the benchmark itself\n",
               child_role, message.c_str());
  std::exit(2);
}

struct ChildOptions {
  std::string role;
  ShmDir dir;
  std::string ring;
  int cpu = -1;
  pid_t parent = -1;
};

ChildOptions ParseChildOptions(int argc, char** argv) {
  ChildOptions o;
  for (ArgScanner args(argc, argv, ChildUsageError); args.Next();) {
    const std::string& arg = args.name();
    if (arg == kStreamChildFlag) {
      o.role = args.Value();
    } else if (arg == "--shm-dir") {
      o.dir.path = args.Value();
    } else if (arg == "--namespace") {
      o.dir.ns = args.Value();
    } else if (arg == "--ring") {
      o.ring = args.Value();
    } else if (arg == "--cpu") {
      o.cpu = std::atoi(args.Value().c_str());
    } else if (arg == "--parent") {
      o.parent = static_cast<pid_t>(std::atoi(args.Value().c_str()));
    } else {
      ChildUsageError("unknown argument '" + args.given() + "'");
    }
  }
  if (o.role != "producer" && o.role != "consumer") ChildUsageError("no role");
  if (o.ring.empty() || o.cpu < 0 || o.parent <= 0) ChildUsageError("missing arguments");
  return o;
}

// Tells the parent this side is open, then lets go of the pipe: nothing else goes there.
void SayReady() {
  (void)!write(STDOUT_FILENO, kReady, sizeof(kReady) - 1);
  const int null = open("/dev/null", O_WRONLY);
  if (null >= 0) dup2(null, STDOUT_FILENO);
}

int RunProducer(const ChildOptions& o) {
  Result<SpscProducer> opened = SpscProducer::Open(o.dir, o.ring);
  if (!opened.ok()) return ChildFail("opening ring '" + o.ring + "': " + opened.error().message());
  SpscProducer producer = std::move(opened).value();
  SayReady();
  // Every message carries its sequence number in its first 8 bytes, for the consumer's check.
  std::array<std::byte, kStreamMessageSize> message{};
  for (size_t i = 8; i < message.size(); ++i) message[i] = static_cast<std::byte>(i);
  for (uint64_t seq = 0; !child_stop; ++seq) {
    std::memcpy(message.data(), &seq, sizeof seq);
    const Status s = producer.SendFor(message, kChildTimeout);
    if (s != Status::kOk) [[unlikely]] {
      if (child_stop) break;
      return ChildFail("sending message " + std::to_string(seq) + ": " + StatusName(s));
    }
  }
  return 0;  // ~SpscProducer detaches: the consumer hears kPeerGone once it has drained
}

int RunConsumer(const ChildOptions& o) {
  Result<SpscConsumer> opened = SpscConsumer::Open(o.dir, o.ring);
  if (!opened.ok()) return ChildFail("opening ring '" + o.ring + "': " + opened.error().message());
  SpscConsumer consumer = std::move(opened).value();
  SayReady();
  for (uint64_t seq = 0; !child_stop; ++seq) {
    MessageView view;
    const Status s = consumer.PeekFor(&view, kChildTimeout);
    if (s == Status::kPeerGone) break;  // the producer stopped, as it was told to
    if (s != Status::kOk) [[unlikely]] {
      if (child_stop) break;
      return ChildFail("receiving message " + std::to_string(seq) + ": " + StatusName(s));
    }
    uint64_t got = 0;
    std::memcpy(&got, view.data, sizeof got);
    if (view.size != kStreamMessageSize || got != seq) [[unlikely]] {
      return ChildFail("message " + std::to_string(seq) + " arrived as message " +
                       std::to_string(got) + " of " + std::to_string(view.size) + " bytes");
    }
    consumer.Release();
  }
  return 0;
}

// --- the parent's side ---------------------------------------------------------------------

// posix_spawn's attribute and file-action objects, destroyed however Spawn returns.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

}  // namespace

bool IsStreamChild(int argc, char** argv) {
  return argc > 1 && std::strncmp(argv[1], kStreamChildFlag, sizeof(kStreamChildFlag) - 1) == 0;
}

int StreamChildMain(int argc, char** argv) {
  const ChildOptions o = ParseChildOptions(argc, argv);
  child_role = o.role == "producer" ? "producer" : "consumer";
  // Dies with the benchmark, even one killed outright; and never outlives a parent that died
  // before this line.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != o.parent) return ChildFail("the benchmark is gone");
  struct sigaction action {};
  action.sa_handler = OnChildStop;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &action, nullptr);
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(o.cpu, &set);
  if (sched_setaffinity(0, sizeof(set), &set) != 0) {
    return ChildFail("pinning to CPU " + std::to_string(o.cpu) + ": " + std::strerror(errno));
  }
  return o.role == "producer" ? RunProducer(o) : RunConsumer(o);
}

StreamPair::~StreamPair() {
  for (Child* child : {&producer_, &consumer_}) {
    if (child->pid <= 0) continue;  // never kill(-1): that is every process
    kill(child->pid, SIGKILL);
    Reaped(child, /*wait=*/true);
  }
}

VoidResult StreamPair::Start(const StreamSpec& spec, std::chrono::milliseconds timeout) {
  Result<Segment> ring = Segment::Open(spec.dir, spec.ring, layout::ObjectKind::kSpscRing);
  if (!ring.ok())
    return Error(ring.error().code(), "opening ring '" + spec.ring + "' to count " +
                                          "its messages: " + ring.error().message());
  ring_ = std::move(ring).value();
  // The consumer first, so the producer's first message has somebody waiting for it.
  if (VoidResult r = Spawn(spec, &consumer_, timeout); !r.ok()) return r;
  return Spawn(spec, &producer_, timeout);
}

VoidResult StreamPair::Spawn(const StreamSpec& spec, Child* child,
                             std::chrono::milliseconds timeout) {
  const int cpu = child == &producer_ ? spec.producer_cpu : spec.consumer_cpu;
  const std::vector<std::string> args = {spec.program,
                                         std::string(kStreamChildFlag) + "=" + child->role,
                                         "--shm-dir=" + spec.dir.path,
                                         "--namespace=" + spec.dir.ns,
                                         "--ring=" + spec.ring,
                                         "--cpu=" + std::to_string(cpu),
                                         "--parent=" + std::to_string(getpid())};
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);

  int ready[2];  // the child's stdout: it writes "ready\n" once its end of the ring is open
  if (pipe2(ready, O_CLOEXEC) != 0) return SystemError("pipe2");
  SpawnSetup setup;
  posix_spawn_file_actions_addopen(&setup.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&setup.actions, ready[1], STDOUT_FILENO);
  // Its own process group, as the daemon's: a Ctrl-C reaches only the benchmark, which then
  // stops everything in order. Default dispositions and no blocked signals, whatever ours are.
  sigset_t defaults, none;
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) sigaddset(&defaults, sig);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&setup.attr, &defaults);
  posix_spawnattr_setsigmask(&setup.attr, &none);
  posix_spawnattr_setpgroup(&setup.attr, 0);
  posix_spawnattr_setflags(&setup.attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::fflush(nullptr);
  const int rc = posix_spawn(&child->pid, spec.program.c_str(), &setup.actions, &setup.attr,
                             argv.data(), environ);
  close(ready[1]);
  if (rc != 0) {
    close(ready[0]);
    child->pid = -1;
    return SystemError("posix_spawn of the " + std::string(child->role) + " (" + spec.program + ")",
                       rc);
  }

  std::string said;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (said.find(kReady) != std::string::npos) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{ready[0], POLLIN, 0};
    const int n = left.count() > 0 ? poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (n < 0 && errno == EINTR) continue;
    char buf[64];
    const ssize_t got = n > 0 ? read(ready[0], buf, sizeof buf) : -1;
    if (got > 0) {
      said.append(buf, static_cast<size_t>(got));
      continue;
    }
    close(ready[0]);
    if (got == 0) {  // it closed its stdout without saying it is ready: it is ending
      Reaped(child, /*wait=*/true);
      return Error(ErrorCode::kUnavailable, std::string("the ") + child->role + " " + child->ended +
                                                " before it was ready (its message, if any, "
                                                "is above)");
    }
    return Error(ErrorCode::kUnavailable, std::string("the ") + child->role +
                                              " did not say it was ready within " +
                                              std::to_string(timeout.count()) + " ms");
  }
  close(ready[0]);
  return Ok{};
}

bool StreamPair::Reaped(Child* child, bool wait) {
  if (child->pid <= 0) return true;
  int status = 0;
  const pid_t r = waitpid(child->pid, &status, wait ? 0 : WNOHANG);
  if (r == 0) return false;
  child->ended = r < 0 ? "vanished (not our child any more)" : DescribeStatus(status);
  child->pid = -1;
  return true;
}

VoidResult StreamPair::CheckRunning() {
  for (Child* child : {&producer_, &consumer_}) {
    if (child->pid <= 0 && child->ended.empty()) {
      return Error(ErrorCode::kFailedPrecondition,
                   std::string("the ") + child->role + " was never started");
    }
    if (Reaped(child, /*wait=*/false)) {
      return Error(ErrorCode::kUnavailable, std::string("the ") + child->role + " " + child->ended +
                                                " during the measurement (its message, if "
                                                "any, is above)");
    }
  }
  return Ok{};
}

uint64_t StreamPair::MessagesRead() const {
  return ring_.control<layout::SpscControl>().messages_read.load(std::memory_order_relaxed);
}

VoidResult StreamPair::Stop() {
  if (producer_.pid > 0) kill(producer_.pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + kChildTimeout;
  while (!(Reaped(&producer_, false) && Reaped(&consumer_, false))) {
    if (std::chrono::steady_clock::now() > deadline) {
      for (Child* child : {&producer_, &consumer_}) {
        if (child->pid > 0) kill(child->pid, SIGKILL);
        Reaped(child, /*wait=*/true);
      }
      return Error(ErrorCode::kDeadlineExceeded,
                   "the producer and consumer had not both exited 10 s after SIGTERM; killed");
    }
    usleep(2'000);
  }
  for (const Child* child : {&producer_, &consumer_}) {
    if (child->ended != "exited with status 0") {
      return Error(ErrorCode::kSystem, std::string("the ") + child->role + " " + child->ended +
                                           " when stopped (its message, if any, is above)");
    }
  }
  return Ok{};
}

}  // namespace shmd::bench
