#include "bench/control/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace shmd::bench {
namespace {

volatile sig_atomic_t stop_requested = 0;

void OnStopSignal(int) { stop_requested = 1; }

Error SystemError(const std::string& what) {
  return Error(ErrorCode::kSystem, what + ": " + std::strerror(errno));
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "ended with wait status " + std::to_string(status);
}

// The metrics URL of the serving line "shmd 0.1.0 serving on ...; metrics URL; pid N"
// ("metrics off" when there are none).
std::string MetricsUrlOf(const std::string& output) {
  const size_t serving = output.find(" serving on ");
  const std::string key = "; metrics ";
  const size_t at = output.find(key, serving);
  if (serving == std::string::npos || at == std::string::npos) return "";
  const size_t start = at + key.size();
  const std::string url = output.substr(start, output.find_first_of(";\n", start) - start);
  return url.rfind("http://", 0) == 0 ? url : "";
}

// mkdtemp on a template ending in XXXXXX.
Result<std::string> MakeTempDir(std::string path) {
  if (mkdtemp(path.data()) == nullptr) return SystemError("mkdtemp " + path);
  return path;
}

}  // namespace

void CatchStopSignals() {
  struct sigaction action {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &action, nullptr);
}

bool StopRequested() { return stop_requested != 0; }

BenchDaemon::~BenchDaemon() {
  if (pid_ > 0) (void)Stop();
  std::error_code ignored;
  if (!shm_dir_.empty()) std::filesystem::remove_all(shm_dir_, ignored);
  if (!temp_dir_.empty()) std::filesystem::remove_all(temp_dir_, ignored);
}

VoidResult BenchDaemon::Start(const std::string& binary, std::chrono::milliseconds timeout) {
  if (access(binary.c_str(), X_OK) != 0) {
    return Error(ErrorCode::kInvalidArgument, "cannot run the daemon '" + binary +
                                                  "': " + std::strerror(errno) +
                                                  "; point --shmd at a built shmd");
  }
  const char* tmp = std::getenv("TMPDIR");
  Result<std::string> temp_dir = MakeTempDir(
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/shmd-bench-XXXXXX");
  if (!temp_dir.ok()) return temp_dir.error();
  temp_dir_ = *temp_dir;
  Result<std::string> shm_dir = MakeTempDir("/dev/shm/shmd-bench-XXXXXX");
  if (!shm_dir.ok()) return shm_dir.error();
  shm_dir_ = *shm_dir;
  socket_path_ = temp_dir_ + "/shmd.sock";
  if (socket_path_.size() >= sizeof(sockaddr_un::sun_path)) {
    return Error(ErrorCode::kInvalidArgument, "the socket path " + socket_path_ +
                                                  " is too long for a Unix socket; set " +
                                                  "TMPDIR to a shorter directory");
  }
  log_path_ = temp_dir_ + "/shmd.log";
  const int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log < 0) return SystemError("open " + log_path_);

  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  const std::vector<std::string> args = {binary, "--listen=" + target(), "--shm-dir=" + shm_dir_,
                                         std::string("--namespace=") + kNamespace,
                                         "--metrics-address=127.0.0.1:0"};
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // Its own process group, so a Ctrl-C reaches only the benchmark, which then stops the
    // daemon in order; and a benchmark killed outright takes the daemon with it.
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    const int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, STDIN_FILENO);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    execv(argv[0], argv.data());
    const char message[] = "bench: exec of the daemon failed\n";
    (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
    _exit(127);
  }
  const int fork_errno = errno;
  close(log);
  if (pid_ < 0) {
    errno = fork_errno;
    return SystemError("fork");
  }

  // The daemon prints its "serving" line once it listens: until then a connection attempt
  // would fail and gRPC would back off for a second before trying again.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    // The whole line: the metrics URL is near its end.
    const std::string said = Output();
    if (const size_t at = said.find(" serving on ");
        at != std::string::npos && said.find('\n', at) != std::string::npos) {
      metrics_url_ = MetricsUrlOf(said);
      return Ok{};
    }
    int status = 0;
    if (Exited(&status)) {
      return Error(ErrorCode::kUnavailable, "the daemon " + DescribeStatus(status) +
                                                " before serving; it said:\n" + Output());
    }
    if (StopRequested()) return Error(ErrorCode::kUnavailable, "interrupted");
    if (std::chrono::steady_clock::now() > deadline) {
      return Error(ErrorCode::kUnavailable, "the daemon was not serving after " +
                                                std::to_string(timeout.count()) +
                                                " ms; it said:\n" + Output());
    }
    usleep(5'000);
  }
}

VoidResult BenchDaemon::Stop() {
  if (pid_ <= 0 && ended_.empty()) return Ok{};  // never started
  if (pid_ <= 0) {
    return Error(ErrorCode::kSystem, "the daemon " + ended_ + " before it was stopped");
  }
  kill(pid_, SIGTERM);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!Exited(&status)) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
      return Error(ErrorCode::kSystem, "the daemon did not exit within 10 s of SIGTERM; killed");
    }
    usleep(2'000);
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Ok{};
  return Error(ErrorCode::kSystem,
               "the daemon " + DescribeStatus(status) + " after SIGTERM; it said:\n" + Output());
}

bool BenchDaemon::Exited(int* status) {
  if (pid_ <= 0) return true;
  const pid_t r = waitpid(pid_, status, WNOHANG);
  if (r == 0) return false;
  if (r < 0) *status = 0;  // not our child any more: nothing to wait for
  pid_ = -1;
  ended_ = DescribeStatus(*status);
  return true;
}

std::string BenchDaemon::Ended() {
  int status = 0;
  Exited(&status);
  return ended_;
}

std::vector<std::string> BenchDaemon::ObjectFiles() const {
  std::vector<std::string> files;
  // The instance lock (".shmd.<namespace>.lock") is not an object.
  const std::string lock = std::string(".shmd.") + kNamespace + ".lock";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(shm_dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name != lock) files.push_back(name);
  }
  return files;
}

double BenchDaemon::CpuSeconds() const {
  if (pid_ <= 0) return 0;
  // The kernel's CPU-time clock of the process, in nanoseconds: /proc counts clock ticks
  // (10 ms here), too coarse for the cost of one scrape.
  clockid_t clock;
  timespec ts;
  if (clock_getcpuclockid(pid_, &clock) == 0 && clock_gettime(clock, &ts) == 0) {
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  }
  std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
  std::string line;
  std::getline(in, line);
  // The command name, in parentheses, may hold spaces: count fields after its ')'.
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(line.substr(paren + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {  // field 3 is the state
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string BenchDaemon::Output() const {
  std::ifstream in(log_path_);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace shmd::bench
