// A Channel (see channel_endpoint.h) over byte-stream file descriptors: pipes, FIFOs and
// stream sockets. A byte stream has no message boundaries, so every message is framed by its
// fixed size, and reads and writes loop until the whole message has moved.
#ifndef SHMD_BENCH_IPC_FD_CHANNEL_H_
#define SHMD_BENCH_IPC_FD_CHANNEL_H_

#include <cstddef>
#include <string>
#include <utility>

namespace shmd::bench {

// Closes an fd it owns; movable, so Channels holding it are movable.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1);

 private:
  int fd_ = -1;
};

class FdChannel {
 public:
  // `in` carries messages to this side, `out` from it. A socket passes the same fd twice
  // and owns it once: out_owner is then empty.
  FdChannel(UniqueFd in, UniqueFd out_owner, int out)
      : in_(std::move(in)), out_owner_(std::move(out_owner)), out_(out) {}
  static FdChannel ForSocket(UniqueFd socket) {
    const int fd = socket.get();
    return FdChannel(std::move(socket), UniqueFd(), fd);
  }
  static FdChannel ForPair(UniqueFd in, UniqueFd out) {
    const int fd = out.get();
    return FdChannel(std::move(in), std::move(out), fd);
  }

  bool Send(const std::byte* msg, size_t size);
  bool Receive(std::byte* msg, size_t size);
  std::string Error() const { return error_; }

 private:
  UniqueFd in_;
  UniqueFd out_owner_;
  int out_;
  std::string error_;
};

}  // namespace shmd::bench

#endif  // SHMD_BENCH_IPC_FD_CHANNEL_H_
