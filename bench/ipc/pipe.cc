// pipe(2): one pipe per direction, created before fork and inherited.
#include <unistd.h>

#include <memory>

#include "bench/ipc/channel_endpoint.h"
#include "bench/ipc/fd_channel.h"
#include "bench/ipc/mechanism.h"

namespace shmd::bench {
namespace {

class PipeMechanism final : public Mechanism {
 public:
  std::string_view name() const override { return "pipe"; }

  Status Prepare(const RunSpec&) override {
    // Default pipe capacity (64 KiB), as a program that just calls pipe() gets.
    if (pipe(forward_) != 0) return ErrnoError("pipe (sender to receiver)");
    if (pipe(backward_) != 0) return ErrnoError("pipe (receiver to sender)");
    return {};
  }

  Status Open(Side side, std::unique_ptr<Endpoint>* endpoint) override {
    // Each child keeps its two ends and closes the other two, as a real pipeline would.
    const bool sender = side == Side::kSender;
    UniqueFd in(sender ? backward_[0] : forward_[0]);
    UniqueFd out(sender ? forward_[1] : backward_[1]);
    close(sender ? forward_[0] : backward_[0]);
    close(sender ? backward_[1] : forward_[1]);
    *endpoint = std::make_unique<ChannelEndpoint<FdChannel>>(
        FdChannel::ForPair(std::move(in), std::move(out)));
    return {};
  }

  void Teardown() override {
    for (int* fds : {forward_, backward_}) {
      for (int i = 0; i < 2; ++i) {
        if (fds[i] >= 0) close(fds[i]);
        fds[i] = -1;
      }
    }
  }

 private:
  int forward_[2] = {-1, -1};
  int backward_[2] = {-1, -1};
};

}  // namespace

std::unique_ptr<Mechanism> MakePipe() { return std::make_unique<PipeMechanism>(); }

}  // namespace shmd::bench
