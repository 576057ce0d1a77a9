// Unix domain stream sockets: a socketpair(2) made before fork, one end per child.
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "bench/ipc/channel_endpoint.h"
#include "bench/ipc/fd_channel.h"
#include "bench/ipc/mechanism.h"

namespace shmd::bench {
namespace {

class UdsMechanism final : public Mechanism {
 public:
  std::string_view name() const override { return "uds"; }

  Status Prepare(const RunSpec&) override {
    // Default buffer sizes, as an ordinary client and server would have.
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_) != 0) {
      return ErrnoError("socketpair(AF_UNIX, SOCK_STREAM)");
    }
    return {};
  }

  Status Open(Side side, std::unique_ptr<Endpoint>* endpoint) override {
    const int mine = side == Side::kSender ? 0 : 1;
    close(fds_[1 - mine]);
    *endpoint =
        std::make_unique<ChannelEndpoint<FdChannel>>(FdChannel::ForSocket(UniqueFd(fds_[mine])));
    return {};
  }

  void Teardown() override {
    for (int& fd : fds_) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
  }

 private:
  int fds_[2] = {-1, -1};
};

}  // namespace

std::unique_ptr<Mechanism> MakeUds() { return std::make_unique<UdsMechanism>(); }

}  // namespace shmd::bench
