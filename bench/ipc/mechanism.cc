#include "bench/ipc/mechanism.h"

#include <cerrno>
#include <cstring>
#include <string>

namespace shmd::bench {

Status ErrnoError(std::string_view what) {
  const int err = errno;
  return Status::Error(std::string(what) + ": " + std::strerror(err));
}

// A mechanism reaches these only if the runner asked for a figure it said it has not.
Status Endpoint::StreamSend(const RunSpec&) {
  return Status::Error("this mechanism has no streaming sender");
}
Status Endpoint::StreamReceive(const RunSpec&, StreamTiming*) {
  return Status::Error("this mechanism has no streaming receiver");
}
Status Endpoint::PingPongInitiate(const RunSpec&, std::vector<int64_t>*) {
  return Status::Error("this mechanism has no ping-pong initiator");
}
Status Endpoint::PingPongEcho(const RunSpec&) {
  return Status::Error("this mechanism has no ping-pong echo");
}

}  // namespace shmd::bench
