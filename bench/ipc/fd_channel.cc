#include "bench/ipc/fd_channel.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace shmd::bench {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) Reset(other.Release());
  return *this;
}

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

bool FdChannel::Send(const std::byte* msg, size_t size) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(out_, msg + done, size - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      error_ = std::string("write after ") + std::to_string(done) + " of " + std::to_string(size) +
               " bytes: " + (n < 0 ? std::strerror(errno) : "wrote 0");
      return false;
    }
  }
  return true;
}

bool FdChannel::Receive(std::byte* msg, size_t size) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = read(in_.get(), msg + done, size - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      error_ = std::string("read after ") + std::to_string(done) + " of " + std::to_string(size) +
               " bytes: " + (n < 0 ? std::strerror(errno) : "end of stream (the peer closed it)");
      return false;
    }
  }
  return true;
}

}  // namespace shmd::bench
