// Named pipes: mkfifo(3) in a private temporary directory, one FIFO per direction, opened
// by path in each child after fork (which is what distinguishes a FIFO from a pipe).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "bench/ipc/channel_endpoint.h"
#include "bench/ipc/fd_channel.h"
#include "bench/ipc/mechanism.h"

namespace shmd::bench {
namespace {

class FifoMechanism final : public Mechanism {
 public:
  std::string_view name() const override { return "fifo"; }

  Status Prepare(const RunSpec&) override {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/shmd-bench-fifo-XXXXXX";
    if (mkdtemp(dir.data()) == nullptr) return ErrnoError("mkdtemp " + dir);
    dir_ = dir;
    forward_ = dir_ + "/forward";
    backward_ = dir_ + "/backward";
    if (mkfifo(forward_.c_str(), 0600) != 0) return ErrnoError("mkfifo " + forward_);
    if (mkfifo(backward_.c_str(), 0600) != 0) return ErrnoError("mkfifo " + backward_);
    return {};
  }

  Status Open(Side side, std::unique_ptr<Endpoint>* endpoint) override {
    // Opening a FIFO blocks until the other end is opened too. Both sides open `forward`
    // first, so the opens pair up in the same order and cannot deadlock.
    const bool sender = side == Side::kSender;
    UniqueFd forward(open(forward_.c_str(), sender ? O_WRONLY : O_RDONLY));
    if (!forward.valid()) return ErrnoError("open " + forward_);
    UniqueFd backward(open(backward_.c_str(), sender ? O_RDONLY : O_WRONLY));
    if (!backward.valid()) return ErrnoError("open " + backward_);
    *endpoint = std::make_unique<ChannelEndpoint<FdChannel>>(
        sender ? FdChannel::ForPair(std::move(backward), std::move(forward))
               : FdChannel::ForPair(std::move(forward), std::move(backward)));
    return {};
  }

  void Teardown() override {
    if (!forward_.empty()) unlink(forward_.c_str());
    if (!backward_.empty()) unlink(backward_.c_str());
    if (!dir_.empty()) rmdir(dir_.c_str());
    dir_.clear();
    forward_.clear();
    backward_.clear();
  }

 private:
  std::string dir_;
  std::string forward_;
  std::string backward_;
};

}  // namespace

std::unique_ptr<Mechanism> MakeFifo() { return std::make_unique<FifoMechanism>(); }

}  // namespace shmd::bench
