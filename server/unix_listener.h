// The daemon's Unix socket, served by hand so the kernel can name each caller: accept a
// connection, read its peer credentials (SO_PEERCRED), remember them under the
// descriptor, then hand the descriptor to gRPC (AddInsecureChannelFromFd). gRPC 1.51
// tells a service nothing about a Unix peer but "fd:N", which is the key to look up.
//
// The socket path is guarded by a lock file ("<path>.lock", flock): gRPC would silently
// take over a live socket, and so would a second daemon. A stale socket (its daemon died)
// is removed and replaced.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <grpcpp/server.h>

#include "server/caller.h"
#include "shmd/dataplane/result.h"

namespace shmd::server {

// Credentials of accepted connections, by descriptor. An entry outlives its connection
// (gRPC closes the fd), and is overwritten when the number is accepted again: a live
// call's descriptor is always its own connection's.
class PeerTable {
 public:
  void Set(int fd, Caller caller);
  // For a ServerContext::peer() string: "fd:N" -> the caller accepted on N; anything
  // else (a TCP peer) -> Anonymous.
  Caller Lookup(const std::string& peer) const;

 private:
  mutable std::mutex mu_;
  std::map<int, Caller> by_fd_;
};

class UnixListener {
 public:
  // Takes the lock, removes a stale socket, binds and listens (socket mode `mode`).
  static Result<std::unique_ptr<UnixListener>> Bind(const std::string& path, uint32_t mode);
  ~UnixListener();  // stops accepting, removes the socket and the lock file

  // Accepts on a thread of its own, handing each connection to `server`.
  void Start(grpc::Server* server, PeerTable* peers);
  void Stop();
  const std::string& path() const { return path_; }

 private:
  UnixListener(std::string path, int listen_fd, int lock_fd, int stop_fd);
  void Run(grpc::Server* server, PeerTable* peers);

  std::string path_;
  int listen_fd_;
  int lock_fd_;
  int stop_fd_;  // eventfd
  std::thread thread_;
};

}  // namespace shmd::server
