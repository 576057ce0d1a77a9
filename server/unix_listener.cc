#include "server/unix_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <grpcpp/server_posix.h>

namespace shmd::server {
namespace {

Error SysError(int err, const std::string& what) {
  return Error(ErrorCode::kSystem, what + ": " + ErrnoText(err));
}

}  // namespace

void PeerTable::Set(int fd, Caller caller) {
  std::lock_guard lock(mu_);
  by_fd_[fd] = std::move(caller);
}

Caller PeerTable::Lookup(const std::string& peer) const {
  if (peer.rfind("fd:", 0) != 0) return Caller::Anonymous();
  const int fd = std::atoi(peer.c_str() + 3);
  std::lock_guard lock(mu_);
  auto it = by_fd_.find(fd);
  return it == by_fd_.end() ? Caller::Anonymous() : it->second;
}

Result<std::unique_ptr<UnixListener>> UnixListener::Bind(const std::string& path, uint32_t mode) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return Error(ErrorCode::kInvalidArgument,
                 "socket path '" + path + "' must be 1 to " +
                     std::to_string(sizeof addr.sun_path - 1) + " characters long");
  }
  const std::string lock_path = path + ".lock";
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    return SysError(errno, "cannot open the lock file " + lock_path +
                               " (does the socket's directory exist and is it writable?)");
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {0};
    (void)!pread(lock_fd, pid, sizeof pid - 1, 0);
    close(lock_fd);
    return Error(ErrorCode::kBusy, "another shmd (pid " + std::string(pid, strcspn(pid, "\n")) +
                                       ") is serving " + path + " (it holds " + lock_path +
                                       "); stop it, or listen elsewhere with --listen");
  }
  const std::string me = std::to_string(getpid()) + "\n";
  (void)!ftruncate(lock_fd, 0);
  (void)!pwrite(lock_fd, me.data(), me.size(), 0);
  // We hold the lock, so whatever socket is there belongs to a daemon that is gone.
  unlink(path.c_str());

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    close(lock_fd);
    return SysError(errno, "socket(AF_UNIX)");
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  auto fail = [&](const std::string& what) -> Result<std::unique_ptr<UnixListener>> {
    int err = errno;
    close(fd);
    close(lock_fd);
    return SysError(err, what);
  };
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return fail("cannot bind " + path);
  }
  if (chmod(path.c_str(), mode) != 0) return fail("cannot chmod " + path);
  if (listen(fd, 128) != 0) return fail("cannot listen on " + path);
  int stop_fd = eventfd(0, EFD_CLOEXEC);
  if (stop_fd < 0) return fail("eventfd");
  return std::unique_ptr<UnixListener>(new UnixListener(path, fd, lock_fd, stop_fd));
}

UnixListener::UnixListener(std::string path, int listen_fd, int lock_fd, int stop_fd)
    : path_(std::move(path)), listen_fd_(listen_fd), lock_fd_(lock_fd), stop_fd_(stop_fd) {}

UnixListener::~UnixListener() {
  Stop();
  close(listen_fd_);
  close(stop_fd_);
  unlink(path_.c_str());
  close(lock_fd_);  // releases the lock after the socket is gone (the file stays: unlinking
                    // it could let two daemons lock two different files)
}

void UnixListener::Start(grpc::Server* server, PeerTable* peers) {
  thread_ = std::thread([this, server, peers] { Run(server, peers); });
}

void UnixListener::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof one);
  thread_.join();
}

void UnixListener::Run(grpc::Server* server, PeerTable* peers) {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;  // EAGAIN, ECONNABORTED, EMFILE: nothing to hand over
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      close(fd);
      continue;
    }
    // Recorded before gRPC sees the descriptor: no call can arrive on it earlier.
    peers->Set(fd, Caller::FromCredentials(cred.uid, cred.gid, static_cast<uint32_t>(cred.pid)));
    grpc::AddInsecureChannelFromFd(server, fd);
  }
}

}  // namespace shmd::server
