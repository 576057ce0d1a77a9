// POSIX message queues, within the limits an unprivileged process gets: at most
// fs.mqueue.msg_max (10) messages of at most fs.mqueue.msgsize_max (8192) bytes; going past
// either needs CAP_SYS_RESOURCE. Sizes above the message limit have no figures.
#include <fcntl.h>
#include <mqueue.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "bench/ipc/channel_endpoint.h"
#include "bench/ipc/mechanism.h"

namespace shmd::bench {
namespace {

long ReadLimit(const char* path, long fallback) {
  std::ifstream in(path);
  long value = 0;
  return (in >> value) && value > 0 ? value : fallback;
}

// The queue depth used; 10 is the default fs.mqueue.msg_max.
long QueueDepth() { return std::min(10L, ReadLimit("/proc/sys/fs/mqueue/msg_max", 10)); }
long MaxMessageSize() { return ReadLimit("/proc/sys/fs/mqueue/msgsize_max", 8192); }

// A message queue keeps message boundaries: one mq_send is one mq_receive.
class MqChannel {
 public:
  MqChannel(mqd_t in, mqd_t out) : in_(in), out_(out) {}

  bool Send(const std::byte* msg, size_t size) {
    while (mq_send(out_, reinterpret_cast<const char*>(msg), size, 0) != 0) {
      if (errno == EINTR) continue;
      error_ = std::string("mq_send: ") + std::strerror(errno);
      return false;
    }
    return true;
  }

  bool Receive(std::byte* msg, size_t size) {
    ssize_t n;
    while ((n = mq_receive(in_, reinterpret_cast<char*>(msg), size, nullptr)) < 0) {
      if (errno == EINTR) continue;
      error_ = std::string("mq_receive: ") + std::strerror(errno);
      return false;
    }
    if (static_cast<size_t>(n) != size) {
      error_ =
          "mq_receive returned " + std::to_string(n) + " bytes, expected " + std::to_string(size);
      return false;
    }
    return true;
  }

  std::string Error() const { return error_; }

 private:
  mqd_t in_;
  mqd_t out_;
  std::string error_;
};

class MqMechanism final : public Mechanism {
 public:
  std::string_view name() const override { return "mq"; }

  bool Supports(size_t size, std::string* why_not) const override {
    const long max_size = MaxMessageSize();
    if (size <= static_cast<size_t>(max_size)) return true;
    *why_not = "this machine allows POSIX message queues at most " + std::to_string(QueueDepth()) +
               " messages of " + std::to_string(max_size) +
               " bytes (fs.mqueue.msg_max, fs.mqueue.msgsize_max; more needs "
               "CAP_SYS_RESOURCE), so there are no figures above " +
               std::to_string(max_size) + " bytes";
    return false;
  }

  Status Prepare(const RunSpec& spec) override {
    mq_attr attr{};
    attr.mq_maxmsg = QueueDepth();
    attr.mq_msgsize = static_cast<long>(spec.size);
    if (Status s = Create("forward", &attr, &forward_); !s.ok()) return s;
    return Create("backward", &attr, &backward_);
  }

  Status Open(Side side, std::unique_ptr<Endpoint>* endpoint) override {
    // The descriptors were inherited across fork; nothing to open by name.
    const bool sender = side == Side::kSender;
    *endpoint = std::make_unique<ChannelEndpoint<MqChannel>>(
        sender ? MqChannel(backward_, forward_) : MqChannel(forward_, backward_));
    return {};
  }

  void Teardown() override {
    for (mqd_t* q : {&forward_, &backward_}) {
      if (*q != static_cast<mqd_t>(-1)) mq_close(*q);
      *q = static_cast<mqd_t>(-1);
    }
  }

 private:
  // Creates a queue under a unique name and unlinks the name at once: the descriptor (which
  // the children inherit) keeps the queue alive, and a crash leaves nothing in /dev/mqueue.
  Status Create(const char* direction, mq_attr* attr, mqd_t* queue) {
    const std::string name = "/shmd-bench-" + std::to_string(getpid()) + "-" +
                             std::to_string(++serial_) + "-" + direction;
    *queue = mq_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, attr);
    if (*queue == static_cast<mqd_t>(-1)) {
      return ErrnoError("mq_open " + name + " (" + std::to_string(attr->mq_maxmsg) +
                        " messages of " + std::to_string(attr->mq_msgsize) + " bytes)");
    }
    mq_unlink(name.c_str());
    return {};
  }

  mqd_t forward_ = static_cast<mqd_t>(-1);
  mqd_t backward_ = static_cast<mqd_t>(-1);
  unsigned serial_ = 0;
};

}  // namespace

std::unique_ptr<Mechanism> MakeMq() { return std::make_unique<MqMechanism>(); }

}  // namespace shmd::bench
