// A benchmark's own shmd daemon (control_plane, metrics_scrape): its socket in a fresh
// temporary directory, its objects in a fresh directory under /dev/shm, its own namespace,
// its metrics on a free port of 127.0.0.1. Stopped with SIGTERM and both directories removed,
// however the benchmark ends (short of SIGKILL).
#ifndef SHMD_BENCH_CONTROL_DAEMON_H_
#define SHMD_BENCH_CONTROL_DAEMON_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "shmd/dataplane/result.h"

namespace shmd::bench {

// SIGINT, SIGTERM and SIGHUP only set a flag (the measurement loops check it), so an
// interrupted benchmark still stops its daemon and removes its files.
void CatchStopSignals();
bool StopRequested();

class BenchDaemon {
 public:
  static constexpr char kNamespace[] = "bench";

  BenchDaemon() = default;
  BenchDaemon(const BenchDaemon&) = delete;
  BenchDaemon& operator=(const BenchDaemon&) = delete;
  ~BenchDaemon();  // Stop() if still running, then removes both directories

  // Makes the directories and starts `binary`; fails, with the daemon's output, if it does
  // not say it is serving within `timeout`. Call it before the first gRPC call of the
  // process: forking a process whose gRPC threads run is asking for trouble.
  VoidResult Start(const std::string& binary, std::chrono::milliseconds timeout);

  // SIGTERM, and SIGKILL if it has not exited 10 s later. Fails unless it exited with 0.
  VoidResult Stop();

  // How it ended ("was killed by signal 9") if it is no longer running, else "".
  std::string Ended();

  std::string target() const { return "unix://" + socket_path_; }
  const std::string& shm_dir() const { return shm_dir_; }
  // "http://127.0.0.1:PORT/metrics" from the daemon's serving line; "" if metrics are off.
  const std::string& metrics_url() const { return metrics_url_; }
  pid_t pid() const { return pid_; }

  // The files of our namespace in the shm directory, by name: what the daemon would leave.
  std::vector<std::string> ObjectFiles() const;
  // CPU time (user + system) the daemon has used so far: its CPU-time clock, else (in
  // clock ticks) /proc/<pid>/stat.
  double CpuSeconds() const;
  // What it printed on stdout and stderr so far.
  std::string Output() const;

 private:
  bool Exited(int* status);  // reaps it when it has exited

  std::string ended_;  // how it ended, once reaped

  std::string temp_dir_;  // socket and log
  std::string socket_path_;
  std::string log_path_;
  std::string shm_dir_;
  std::string metrics_url_;
  pid_t pid_ = -1;
};

}  // namespace shmd::bench

#endif  // SHMD_BENCH_CONTROL_DAEMON_H_
