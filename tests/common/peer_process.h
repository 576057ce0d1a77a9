// A child process started with fork/exec (the shmd_test_peer binary), with its stdout on a
// pipe so a test can wait for a line it prints, kill it, and collect its exit status.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

namespace shmd::testing {

struct SpawnOptions {
  // Start the child as pid 1 of a pid namespace of its own, as a container's process is
  // (clone(CLONE_NEWPID), which needs CAP_SYS_ADMIN). The parent names it by its pid here.
  bool new_pid_namespace = false;
};

class PeerProcess {
 public:
  explicit PeerProcess(std::vector<std::string> args, SpawnOptions options = {}) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      spawn_error_ = errno;
      return;
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    // clone with no new stack returns twice, as fork does.
    pid_ = options.new_pid_namespace
               ? static_cast<pid_t>(
                     syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, nullptr))
               : fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    if (pid_ < 0) spawn_error_ = errno;
    close(fds[1]);
    out_ = fds[0];
  }
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;
  ~PeerProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }

  pid_t pid() const { return pid_; }
  // errno of a failed start (EPERM: no right to make a pid namespace), 0 if it started.
  int spawn_error() const { return spawn_error_; }

  // Reads stdout until a line starting with `prefix` arrives; returns that line, or ""
  // after `timeout` or at end of output.
  std::string WaitForLine(const std::string& prefix, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      size_t nl;
      while ((nl = buffer_.find('\n')) != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        output_ += line + "\n";
        if (line.rfind(prefix, 0) == 0) return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{out_, POLLIN, 0};
      int ready = poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
      if (ready <= 0) {
        if (left.count() <= 0) return "";
        continue;
      }
      char buf[4096];
      ssize_t n = read(out_, buf, sizeof buf);
      if (n <= 0) return "";
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  void Kill(int sig = SIGKILL) {
    if (pid_ > 0) kill(pid_, sig);  // never kill(-1): that would signal everything we may
  }

  // Exit status (as from waitpid) or -1 if still running after `timeout`.
  int Wait(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return -1;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return -1;
  }

  // Everything it printed so far (for failure messages).
  std::string Output() {
    WaitForLine("\x01", std::chrono::milliseconds(0));
    return output_ + buffer_;
  }

 private:
  pid_t pid_ = -1;
  int spawn_error_ = 0;
  int out_ = -1;
  bool reaped_ = false;
  std::string buffer_;
  std::string output_;
};

// Runs `wait` (a blocking call, with a timeout far beyond what the test needs) on a
// thread, kills `peer` with SIGKILL once the call has had time to block, and returns what
// the call returned.
template <class Wait>
auto KillWhileBlocked(PeerProcess& peer, Wait&& wait) -> decltype(wait()) {
  decltype(wait()) result{};
  std::thread waiter([&] { result = wait(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  peer.Kill(SIGKILL);
  peer.Wait(std::chrono::seconds(5));
  waiter.join();  // publishes `result` to this thread
  return result;
}

inline bool ExitedWith(int status, int code) {
  return WIFEXITED(status) && WEXITSTATUS(status) == code;
}

inline std::string DescribeStatus(int status) {
  if (status == -1) return "still running (timed out)";
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

}  // namespace shmd::testing
