// message_queue: typed messages with two priority levels from several producer processes
// to one server, the shmd way to do a POSIX message queue server that switches on the
// message type and reads the priority (the article's "POSIX message queues" section).
//
//   message_queue [--listen ADDRESS] [--producers N] [--messages N]
//
// The server (this process) asks the daemon for two MPMC rings, one per priority level:
// "<queue>-urgent" and "<queue>-normal" (MPMC: any number of producers, and consumers
// too, each message taken by exactly one). It starts N producer processes (posix_spawn of
// this program); each sends --messages messages: requests, notifications, and every 16th
// an alert, which goes on the urgent ring. Each message starts with a fixed-width header
// {type, priority, sender pid, payload length, sequence number}; the server dispatches on
// the type, as the article's server switches on msg_type.
//
// Priority, honestly: a ring is FIFO, so one ring cannot reorder by priority as mq_send
// does. Two rings can: before every normal message the server takes whatever waits on the
// urgent ring, so an alert waits behind at most one normal message (or the server's 5 ms
// wait on an empty normal ring: a WaitSet, wait_set.h, would wake it at once instead).
//
// The server checks every message (its type is known, its length is what the header
// says, each sender's sequence numbers come in order per ring), prints per-type counts
// and exits non-zero if a total differs from what was sent. The rings are deleted.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "shmd/client/client.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

enum MessageType : uint32_t { kRequest = 1, kNotification = 2, kAlert = 3 };
enum Priority : uint32_t { kNormal = 0, kUrgent = 1 };

// The header every message starts with: fixed width, no pointers, the same in every
// process (producers and the server may be different builds of this file).
struct MessageHeader {
  uint32_t type;            // MessageType
  uint32_t priority;        // Priority: which ring it was sent on
  uint32_t sender_pid;      // the producer's pid
  uint32_t payload_length;  // bytes after the header
  uint64_t sequence;        // per sender and priority: 0, 1, 2...
};
static_assert(sizeof(MessageHeader) == 24 && alignof(MessageHeader) == 8);
static_assert(offsetof(MessageHeader, payload_length) == 12);
static_assert(offsetof(MessageHeader, sequence) == 16);

constexpr uint32_t kMaxMessage = 256;  // the rings' slot payload
constexpr auto kTimeout = std::chrono::seconds(30);

struct Options {
  std::string listen;
  uint32_t producers = 3;
  uint32_t messages = 2000;  // per producer
  std::string produce;       // set in a producer: the queue's name
};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "message_queue: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T Must(shmd::Result<T> r, const std::string& what) {
  if (!r.ok()) Fail(what + ": " + r.error().message());
  return std::move(r).value();
}

shmd::Client Connect(const Options& o) {
  shmd::ClientOptions options;
  options.target = o.listen;
  return Must(shmd::Client::Connect(options), "connecting to the daemon");
}

// What producer message i is: every 16th an alert, every 4th a notification.
MessageType TypeOf(uint32_t i) {
  return i % 16 == 15 ? kAlert : i % 4 == 3 ? kNotification : kRequest;
}

int Produce(const Options& o) {
  shmd::Client client = Connect(o);
  shmd::Attached<shmd::MpmcProducer> rings[2] = {
      Must(client.Open<shmd::MpmcProducer>(o.produce + "-normal"), "opening the normal ring"),
      Must(client.Open<shmd::MpmcProducer>(o.produce + "-urgent"), "opening the urgent ring")};
  uint64_t sequence[2] = {0, 0};
  std::byte message[kMaxMessage];
  for (uint32_t i = 0; i < o.messages; ++i) {
    const MessageType type = TypeOf(i);
    const Priority priority = type == kAlert ? kUrgent : kNormal;
    const std::string text = (type == kRequest        ? "please compute " + std::to_string(i)
                              : type == kNotification ? "progress " + std::to_string(i)
                                                      : "alert: disk " + std::to_string(i % 7)) +
                             " from pid " + std::to_string(getpid());
    const MessageHeader h{type, priority, static_cast<uint32_t>(getpid()),
                          static_cast<uint32_t>(text.size()), sequence[priority]++};
    std::memcpy(message, &h, sizeof h);
    std::memcpy(message + sizeof h, text.data(), text.size());
    const shmd::Status s = rings[priority]->SendFor({message, sizeof h + text.size()}, kTimeout);
    if (s != shmd::Status::kOk) {
      Fail("producer " + std::to_string(getpid()) + ": message " + std::to_string(i) + ": " +
           shmd::StatusName(s));
    }
  }
  return 0;  // leaving detaches both producers
}

// The server's side: dispatches one message on its type; false if it is malformed.
struct Server {
  std::map<uint32_t, uint64_t> by_type;
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> next;  // (pid, priority) -> sequence
  uint64_t request_work = 0;

  bool Handle(const std::byte* data, size_t size, Priority ring) {
    MessageHeader h;
    if (size < sizeof h) return false;
    std::memcpy(&h, data, sizeof h);
    if (h.payload_length != size - sizeof h || h.priority != ring) return false;
    if (h.sequence != next[{h.sender_pid, h.priority}]++) return false;  // FIFO per sender
    const std::string_view text(reinterpret_cast<const char*>(data + sizeof h), h.payload_length);
    switch (h.type) {
      case kRequest:
        request_work += text.size();  // a real server would answer the request here
        break;
      case kNotification:
        break;  // a real server would log it
      case kAlert:
        if (by_type[kAlert] == 0)
          std::printf("server: first alert: \"%.*s\"\n", static_cast<int>(text.size()),
                      text.data());
        break;
      default:
        return false;
    }
    ++by_type[h.type];
    return true;
  }
};

int Serve(const Options& o, const char* self) {
  shmd::Client client = Connect(o);
  const std::string queue = "queue-" + std::to_string(getpid());
  shmd::v1::Ring spec;
  spec.set_kind(shmd::v1::RING_KIND_MPMC);
  spec.set_capacity_bytes(256 * 1024);
  spec.set_max_message_bytes(kMaxMessage);
  for (const char* level : {"-normal", "-urgent"}) {
    Must(client.CreateRing(queue + level, spec), std::string("creating the ring ") + level);
  }
  std::printf("server: rings/%s-normal and rings/%s-urgent, %u producers\n", queue.c_str(),
              queue.c_str(), o.producers);
  std::fflush(stdout);

  int rc = 0;
  Server server;
  {
    shmd::Attached<shmd::MpmcConsumer> rings[2] = {
        Must(client.Open<shmd::MpmcConsumer>(queue + "-normal"), "opening the normal ring"),
        Must(client.Open<shmd::MpmcConsumer>(queue + "-urgent"), "opening the urgent ring")};
    std::vector<pid_t> children;
    for (uint32_t p = 0; p < o.producers; ++p) {
      std::vector<std::string> args = {self, "--produce", queue, "--messages",
                                       std::to_string(o.messages)};
      if (!o.listen.empty()) args.insert(args.end(), {"--listen", o.listen});
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      pid_t pid = 0;
      if (int e = posix_spawn(&pid, self, nullptr, nullptr, argv.data(), environ); e != 0) {
        Fail(std::string("starting a producer: ") + std::strerror(e));
      }
      children.push_back(pid);
    }

    const uint64_t total = uint64_t{o.producers} * o.messages;
    uint64_t received = 0;
    std::byte buffer[kMaxMessage];
    // Producers still running (reaped as they exit, so the loop knows when no more can come).
    std::vector<pid_t> running = children;
    auto reap = [&](int flags) {
      for (auto it = running.begin(); it != running.end();) {
        int status = 0;
        const pid_t r = waitpid(*it, &status, flags);
        if (r == 0 || (r < 0 && errno == EINTR)) {
          ++it;
          continue;
        }
        if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
        it = running.erase(it);
      }
    };
    auto last_progress = Clock::now();
    while (received < total && rc == 0) {
      // Checked before reading: if all had exited then, whatever they sent is in the rings.
      reap(WNOHANG);
      const bool all_exited = running.empty();
      size_t size = 0;
      // Urgent first, every time; then wait a little on the normal ring.
      shmd::Status s = rings[kUrgent]->TryReceive(buffer, &size);
      Priority from = kUrgent;
      if (s != shmd::Status::kOk) {
        s = rings[kNormal]->ReceiveFor(buffer, &size, std::chrono::milliseconds(5));
        from = kNormal;
      }
      if (s == shmd::Status::kOk) {
        if (!server.Handle(buffer, size, from)) {
          std::fprintf(stderr, "message_queue: malformed message after %llu\n",
                       static_cast<unsigned long long>(received));
          rc = 1;
        }
        ++received;
        last_progress = Clock::now();
      } else if (all_exited || Clock::now() - last_progress > kTimeout) {
        std::fprintf(stderr, "message_queue: %s after %llu of %llu messages\n",
                     all_exited ? "every producer exited" : "nothing came in 30 s",
                     static_cast<unsigned long long>(received),
                     static_cast<unsigned long long>(total));
        rc = 1;
      } else if (s == shmd::Status::kPeerGone) {
        // No producer attached just now: one left before the next attached (each connects
        // to the daemon first). Not the end while producers run; do not spin meanwhile.
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      } else if (s != shmd::Status::kTimeout && s != shmd::Status::kEmpty) {
        std::fprintf(stderr, "message_queue: receiving: %s\n", shmd::StatusName(s));
        rc = 1;
      }
    }
    reap(0);  // producers end within their own timeouts
  }

  // What was sent, computed the way the producers chose the types.
  std::map<uint32_t, uint64_t> sent;
  for (uint32_t i = 0; i < o.messages; ++i) sent[TypeOf(i)] += o.producers;
  for (auto [type, name] :
       {std::pair{kRequest, "requests"}, std::pair{kNotification, "notifications"},
        std::pair{kAlert, "alerts (urgent)"}}) {
    std::printf("server: %llu %s of %llu sent\n",
                static_cast<unsigned long long>(server.by_type[type]), name,
                static_cast<unsigned long long>(sent[type]));
    if (server.by_type[type] != sent[type]) rc = 1;
  }
  for (const char* level : {"-normal", "-urgent"}) {
    Must(client.DeleteRing(queue + level), std::string("deleting the ring ") + level);
  }
  std::printf("message_queue: %s, rings deleted\n",
              rc == 0 ? "every message received once, in order per sender" : "FAILED");
  return rc;
}

uint32_t ParseNumber(const std::string& flag, const char* text, uint32_t min, uint32_t max) {
  char* end = nullptr;
  errno = 0;
  const unsigned long v = std::strtoul(text, &end, 10);
  if (*text == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
    std::fprintf(stderr, "message_queue: %s wants a number from %u to %u, not '%s'\n", flag.c_str(),
                 min, max, text);
    std::exit(2);
  }
  return static_cast<uint32_t>(v);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h" || i + 1 >= argc) {
      std::fprintf(a == "--help" || a == "-h" ? stdout : stderr,
                   "usage: message_queue [--listen ADDRESS] [--producers N] [--messages N]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
    const char* v = argv[++i];
    if (a == "--listen") {
      o.listen = v;
    } else if (a == "--producers") {
      o.producers = ParseNumber(a, v, 1, 32);
    } else if (a == "--messages") {
      o.messages = ParseNumber(a, v, 1, 10'000'000);
    } else if (a == "--produce") {
      o.produce = v;
    } else {
      std::fprintf(stderr, "message_queue: unknown option %s (see --help)\n", a.c_str());
      return 2;
    }
  }
  return o.produce.empty() ? Serve(o, argv[0]) : Produce(o);
}
