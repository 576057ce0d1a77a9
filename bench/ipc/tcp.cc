// TCP over loopback (127.0.0.1) with TCP_NODELAY, so a small message is sent when written
// rather than held back by Nagle's algorithm waiting for the previous one's ACK.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "bench/ipc/channel_endpoint.h"
#include "bench/ipc/fd_channel.h"
#include "bench/ipc/mechanism.h"

namespace shmd::bench {
namespace {

constexpr int kAcceptTimeoutMs = 10'000;

Status SetNoDelay(int fd) {
  const int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
    return ErrnoError("setsockopt(TCP_NODELAY)");
  }
  return {};
}

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

class TcpMechanism final : public Mechanism {
 public:
  std::string_view name() const override { return "tcp"; }

  // The listening socket is made in the parent, so its port is known to both children and
  // the sender's connect cannot race the receiver's listen.
  Status Prepare(const RunSpec&) override {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener_ < 0) return ErrnoError("socket(AF_INET, SOCK_STREAM)");
    sockaddr_in addr = Loopback(0);  // port 0: the kernel picks a free one
    if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return ErrnoError("bind 127.0.0.1:0");
    }
    if (listen(listener_, 1) != 0) return ErrnoError("listen");
    socklen_t len = sizeof(addr);
    if (getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return ErrnoError("getsockname");
    }
    port_ = ntohs(addr.sin_port);
    return {};
  }

  Status Open(Side side, std::unique_ptr<Endpoint>* endpoint) override {
    UniqueFd listener(listener_);
    UniqueFd conn;
    if (side == Side::kReceiver) {
      pollfd pfd{listener.get(), POLLIN, 0};
      const int ready = poll(&pfd, 1, kAcceptTimeoutMs);
      if (ready < 0) return ErrnoError("poll on the listening socket");
      if (ready == 0)
        return Status::Error("no connection on 127.0.0.1:" + std::to_string(port_) +
                             " within 10 s");
      conn.Reset(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!conn.valid()) return ErrnoError("accept");
    } else {
      listener.Reset();
      conn.Reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (!conn.valid()) return ErrnoError("socket(AF_INET, SOCK_STREAM)");
      const sockaddr_in addr = Loopback(port_);
      if (connect(conn.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        return ErrnoError("connect 127.0.0.1:" + std::to_string(port_));
      }
    }
    if (Status status = SetNoDelay(conn.get()); !status.ok()) return status;
    *endpoint = std::make_unique<ChannelEndpoint<FdChannel>>(FdChannel::ForSocket(std::move(conn)));
    return {};
  }

  void Teardown() override {
    if (listener_ >= 0) close(listener_);
    listener_ = -1;
  }

 private:
  int listener_ = -1;
  uint16_t port_ = 0;
};

}  // namespace

std::unique_ptr<Mechanism> MakeTcp() { return std::make_unique<TcpMechanism>(); }

}  // namespace shmd::bench
