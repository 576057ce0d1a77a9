#include "server/process_watcher.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "shmd/dataplane/process.h"

namespace shmd::server {
namespace {

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

Error SysError(int err, const std::string& what) {
  return Error(ErrorCode::kSystem, what + ": " + ErrnoText(err));
}

}  // namespace

ProcessWatcher::ProcessWatcher(ExitFn on_exit) : on_exit_(std::move(on_exit)) {}

ProcessWatcher::~ProcessWatcher() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  for (auto& [pid, fd] : pidfds_) close(fd);
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

VoidResult ProcessWatcher::Start() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return SysError(errno, "epoll_create1");
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) return SysError(errno, "eventfd");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = UINT64_MAX;  // not a pid
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &ev) != 0) return SysError(errno, "epoll_ctl");
  thread_ = std::thread([this] { Run(); });
  return Ok{};
}

Result<ProcessWatcher::Watch> ProcessWatcher::Add(uint32_t pid, uint64_t start_time) {
  std::lock_guard lock(mu_);
  if (pidfds_.count(pid)) return Watch::kWatching;
  int fd = PidfdOpen(static_cast<pid_t>(pid));
  if (fd < 0) {
    if (errno == ESRCH) return Watch::kAlreadyGone;
    return SysError(errno, "pidfd_open(" + std::to_string(pid) + ")");
  }
  // The pidfd pins this pid to one process; read its start time only now, so that a pid
  // reused between the caller's look and pidfd_open is seen as the other process it is.
  bool gone = false;
  const uint64_t now_start = ReadProcessStartTime(pid, &gone);
  if (gone || (start_time != 0 && now_start != start_time)) {
    close(fd);
    return Watch::kAlreadyGone;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;  // a pidfd polls readable once its process has exited
  ev.data.u64 = pid;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    int err = errno;
    close(fd);
    return SysError(err, "epoll_ctl(pidfd)");
  }
  pidfds_[pid] = fd;
  return Watch::kWatching;
}

bool ProcessWatcher::IsWatched(uint32_t pid) {
  std::lock_guard lock(mu_);
  return pidfds_.count(pid) != 0;
}

size_t ProcessWatcher::size() {
  std::lock_guard lock(mu_);
  return pidfds_.size();
}

void ProcessWatcher::Run() {
  epoll_event events[64];
  for (;;) {
    int n = epoll_wait(epoll_fd_, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == UINT64_MAX) return;  // Stop
      const auto pid = static_cast<uint32_t>(events[i].data.u64);
      {
        std::lock_guard lock(mu_);
        auto it = pidfds_.find(pid);
        if (it == pidfds_.end()) continue;
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second, nullptr);
        close(it->second);
        pidfds_.erase(it);
      }
      on_exit_(pid);
    }
  }
}

}  // namespace shmd::server
