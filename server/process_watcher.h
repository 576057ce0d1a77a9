// Tells the daemon when a process it cares about exits, the moment it does: one pidfd
// per process (pidfd_open, Linux 5.3), all in one epoll set served by one thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "shmd/dataplane/result.h"

namespace shmd::server {

class ProcessWatcher {
 public:
  // Called on the watcher's thread, with no lock of the watcher held.
  using ExitFn = std::function<void(uint32_t pid)>;

  explicit ProcessWatcher(ExitFn on_exit);
  ~ProcessWatcher();  // stops the thread
  ProcessWatcher(const ProcessWatcher&) = delete;
  ProcessWatcher& operator=(const ProcessWatcher&) = delete;

  VoidResult Start();

  enum class Watch { kWatching, kAlreadyGone };
  // Starts watching `pid`, which must be the process that started at `start_time`
  // (/proc/<pid>/stat field 22; 0: do not check). kAlreadyGone when it has exited (or its
  // pid now names another process): the caller handles that itself, no callback comes.
  Result<Watch> Add(uint32_t pid, uint64_t start_time);
  bool IsWatched(uint32_t pid);
  size_t size();

 private:
  void Run();

  ExitFn on_exit_;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: wakes the thread to stop
  std::mutex mu_;
  std::map<uint32_t, int> pidfds_;  // pid -> pidfd
  std::thread thread_;
};

}  // namespace shmd::server
