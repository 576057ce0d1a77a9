// A real shmd daemon for a test: its own socket and shm directory in a fresh temporary
// directory, started with fork/exec, stopped (SIGTERM) or killed (SIGKILL) on demand,
// restartable on the same directory.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/peer_process.h"

namespace shmd::testing {

class Daemon {
 public:
  // `extra` flags are added to --listen/--shm-dir/--namespace.
  explicit Daemon(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    char tmpl[] = "/dev/shm/shmd-it-XXXXXX";
    dir_ = mkdtemp(tmpl);
    chmod(dir_.c_str(), 0755);  // other uids (the permission test) must reach the socket
    socket_ = dir_ + "/shmd.sock";
  }
  ~Daemon() {
    process_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Run it as pid 1 of a pid namespace of its own, as a Kubernetes sidecar is: callers
  // in other namespaces then reach it as pid 0 (see PeerProcess, SpawnOptions).
  void set_own_pid_namespace(bool on) { own_pid_namespace_ = on; }
  // errno of a failed start (EPERM: no right to make a pid namespace), 0 otherwise.
  int spawn_error() const { return process_ ? process_->spawn_error() : 0; }

  // Starts it and waits for its "serving" line; false (with its output in *why) if it
  // does not come within 10 s.
  bool Start(std::string* why = nullptr) {
    // Metrics on a free port (unless the test says otherwise): never a clash with a daemon
    // already serving 9478 on this host.
    std::vector<std::string> args = {SHMD_DAEMON,  "--listen",    target(), "--shm-dir",
                                     dir_,         "--namespace", "it",     "--metrics-address",
                                     "127.0.0.1:0"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    process_ =
        std::make_unique<PeerProcess>(args, SpawnOptions{.new_pid_namespace = own_pid_namespace_});
    if (process_->spawn_error() != 0) {
      if (why) *why = "cannot start shmd: " + std::string(std::strerror(process_->spawn_error()));
      return false;
    }
    const std::string line = process_->WaitForLine("shmd ", std::chrono::seconds(10));
    if (line.find("serving") != std::string::npos) {
      const size_t at = line.find("http://");
      metrics_url_ = at == std::string::npos ? "" : line.substr(at, line.find(';', at) - at);
      return true;
    }
    if (why) *why = process_->Output();
    return false;
  }
  // SIGTERM and wait: the exit status.
  int Stop() {
    process_->Kill(SIGTERM);
    return process_->Wait(std::chrono::seconds(10));
  }
  void Kill9() {
    process_->Kill(SIGKILL);
    process_->Wait(std::chrono::seconds(10));
  }

  pid_t pid() const { return process_->pid(); }
  std::string target() const { return "unix://" + socket_; }
  const std::string& socket_path() const { return socket_; }
  const std::string& shm_dir() const { return dir_; }
  std::string ObjectPath(const std::string& id) const { return dir_ + "/shmd.it." + id; }
  std::string Output() { return process_ ? process_->Output() : ""; }
  // "http://127.0.0.1:PORT/metrics" as the daemon printed it, "" when metrics are off.
  const std::string& metrics_url() const { return metrics_url_; }

  // Files of the daemon's namespace in its directory.
  int CountObjectFiles() const {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      n += e.path().filename().string().rfind("shmd.it.", 0) == 0;
    }
    return n;
  }
  int CountOpenFds() const {
    int n = 0;
    for ([[maybe_unused]] const auto& e :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid()) + "/fd")) {
      ++n;
    }
    return n;
  }

 private:
  std::vector<std::string> extra_;
  std::string dir_;
  std::string socket_;
  std::string metrics_url_;
  bool own_pid_namespace_ = false;
  std::unique_ptr<PeerProcess> process_;
};

}  // namespace shmd::testing
