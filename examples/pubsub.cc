// pubsub: one publisher, three subscribers, each a process of its own, through the daemon.
//
// The publisher asks the daemon for a lossy topic (a broadcast ring), starts three
// subscribers (this program again, with --subscribe), waits for them to join and
// publishes --messages numbered ticks. Subscribers 1 and 2 keep up; subscriber 3 is slow
// on purpose (it sleeps --slow-ms after every 256 ticks), so the publisher, which never
// waits on a lossy topic, laps it: its Receive then says exactly how many ticks it lost,
// and it reads on from the oldest tick still held. Each subscriber checks that the ticks
// it got came in order and that the losses it was told of equal the gaps in the
// numbers. At the end the daemon's view of the ring sums up, and the topic is deleted.
//
//   pubsub [--listen unix:///run/shmd/shmd.sock] [--messages N] [--depth D] [--slow-ms M]
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shmd/client/client.h"
#include "shmd/client/topic.h"

extern char** environ;

namespace {

using namespace std::chrono_literals;

struct Options {
  std::string listen;  // "" = shmd::DefaultTarget() ($SHMD_LISTEN)
  uint64_t messages = 20000;
  uint32_t depth = 4096;
  uint64_t slow_ms = 20;
  std::string subscribe;  // set in a subscriber process: the topic's name
  int index = 0;          // which subscriber (1 to 3); 3 is the slow one
};

template <class T>
T Must(shmd::Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "pubsub: %s: %s\n", what, r.error().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

// A tick: its number, then a word derived from it (a torn or mixed message shows).
struct Tick {
  uint64_t seq;
  uint64_t check;
};
uint64_t CheckOf(uint64_t seq) { return seq * 0x9E3779B97F4A7C15ULL ^ 0xC0FFEE; }

int Subscribe(const Options& o, shmd::Client& client) {
  auto sub = Must(shmd::Subscriber::Open(client, o.subscribe), "subscribe");
  const bool slow = o.index == 3;
  std::vector<std::byte> buffer(sub.max_message());
  uint64_t expected = sub.cursor();
  uint64_t gaps = 0;
  for (;;) {
    shmd::TopicReceive r = sub.Receive(buffer, 30s);
    if (r.status == shmd::Status::kPeerGone) break;   // the publisher is done
    if (r.status == shmd::Status::kLapped) continue;  // r.lost ticks gone; sub.lost() sums
    Tick t{};
    if (r.status != shmd::Status::kOk || r.size != sizeof t) {
      std::fprintf(stderr, "subscriber %d: %s\n", o.index, shmd::StatusName(r.status));
      return 1;
    }
    std::memcpy(&t, buffer.data(), sizeof t);
    if (t.seq < expected || t.check != CheckOf(t.seq)) {
      std::fprintf(stderr, "subscriber %d: tick %llu out of order or corrupted\n", o.index,
                   static_cast<unsigned long long>(t.seq));
      return 1;
    }
    gaps += t.seq - expected;
    expected = t.seq + 1;
    if (slow && sub.received() % 256 == 0) std::this_thread::sleep_for(o.slow_ms * 1ms);
  }
  std::printf("subscriber %d%s: received %llu ticks in order, lapped: lost %llu%s\n", o.index,
              slow ? " (slow)" : "", static_cast<unsigned long long>(sub.received()),
              static_cast<unsigned long long>(sub.lost()),
              gaps == sub.lost() ? ", exactly the gaps it saw" : ", NOT the gaps it saw");
  std::fflush(stdout);
  return gaps == sub.lost() && sub.received() + sub.lost() == o.messages ? 0 : 1;
}

pid_t StartSubscriber(const Options& o, const char* self, const std::string& name, int index) {
  // A program of its own (posix_spawn: never fork a process that uses gRPC).
  std::vector<std::string> args = {self,
                                   "--subscribe",
                                   name,
                                   "--index",
                                   std::to_string(index),
                                   "--messages",
                                   std::to_string(o.messages),
                                   "--slow-ms",
                                   std::to_string(o.slow_ms)};
  if (!o.listen.empty()) {
    args.push_back("--listen");
    args.push_back(o.listen);
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t child = -1;
  return posix_spawn(&child, self, nullptr, nullptr, argv.data(), environ) == 0 ? child : -1;
}

int Publish(const Options& o, const char* self, shmd::Client& client) {
  const std::string name = "news-" + std::to_string(getpid());
  Must(shmd::CreateTopic(
           client, name,
           {.max_message = sizeof(Tick), .depth = o.depth, .policy = shmd::TopicPolicy::kLossy}),
       "create the topic");
  std::printf("publisher: topic %s (rings/%s, %u slots, lossy)\n", name.c_str(), name.c_str(),
              o.depth);
  int rc = 0;
  std::vector<pid_t> children;
  {
    auto pub = Must(shmd::Publisher::Open(client, name), "open the publisher");
    for (int i = 1; i <= 3; ++i) {
      const pid_t child = StartSubscriber(o, self, name, i);
      if (child < 0) {
        std::perror("posix_spawn");
        return 1;
      }
      children.push_back(child);
    }
    for (auto end = std::chrono::steady_clock::now() + 20s; pub.subscribers() < 3;) {
      if (std::chrono::steady_clock::now() > end) {
        std::fprintf(stderr, "publisher: the subscribers did not join\n");
        return 1;
      }
      std::this_thread::sleep_for(1ms);
    }
    for (uint64_t seq = 0; seq < o.messages; ++seq) {
      const Tick t{seq, CheckOf(seq)};
      if (shmd::Status s = pub.Publish(std::as_bytes(std::span(&t, 1))); s != shmd::Status::kOk) {
        std::fprintf(stderr, "publisher: %s\n", shmd::StatusName(s));
        return 1;
      }
      // A steady pace (100 us every 32 ticks) the two fast subscribers easily keep up
      // with; the slow one cannot.
      if (seq % 32 == 31) std::this_thread::sleep_for(100us);
    }
    std::printf("publisher: published %llu ticks without ever waiting\n",
                static_cast<unsigned long long>(pub.published()));
    std::fflush(stdout);
  }  // the publisher leaves: subscribers drain what is left, then hear kPeerGone
  for (pid_t child : children) {
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
  }
  shmd::v1::Ring ring = Must(client.GetRing("rings/" + name), "read the ring back");
  std::printf("daemon: rings/%s: %llu published, %llu delivered, %llu lost to laps\n", name.c_str(),
              static_cast<unsigned long long>(ring.usage().messages_written()),
              static_cast<unsigned long long>(ring.usage().messages_read()),
              static_cast<unsigned long long>(ring.usage().lapped_messages()));
  Must(shmd::DeleteTopic(client, name), "delete the topic");
  if (rc == 0 && ring.usage().lapped_messages() > 0 &&
      ring.usage().messages_read() + ring.usage().lapped_messages() == 3 * o.messages) {
    std::printf("pubsub: 3 subscribers, every tick received or counted lost (topic %s deleted)\n",
                name.c_str());
    return 0;
  }
  std::printf("pubsub: FAILED (a subscriber saw a wrong tick or miscounted its losses)\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("usage: %s [--listen ADDRESS] [--messages N] [--depth D] [--slow-ms M]\n",
                  argv[0]);
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "pubsub: %s needs a value (see --help)\n", a.c_str());
      return 2;
    }
    const char* v = argv[++i];
    if (a == "--listen") {
      o.listen = v;
    } else if (a == "--messages") {
      o.messages = std::strtoull(v, nullptr, 10);
    } else if (a == "--depth") {
      o.depth = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (a == "--slow-ms") {
      o.slow_ms = std::strtoull(v, nullptr, 10);
    } else if (a == "--subscribe") {
      o.subscribe = v;
    } else if (a == "--index") {
      o.index = std::atoi(v);
    } else {
      std::fprintf(stderr, "pubsub: unknown argument %s (see --help)\n", a.c_str());
      return 2;
    }
  }
  if (o.messages <= o.depth) {
    std::fprintf(stderr, "pubsub: --messages must exceed --depth (or nobody is ever lapped)\n");
    return 2;
  }
  shmd::ClientOptions options;
  options.target = o.listen;
  shmd::Client client = Must(shmd::Client::Connect(options), "connect to the daemon");
  return o.subscribe.empty() ? Publish(o, argv[0], client) : Subscribe(o, client);
}
