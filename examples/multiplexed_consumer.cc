// multiplexed_consumer: one consumer, three producers, one poll() loop: the classic "poll
// over three pipes" done with shmd rings.
//
// This process asks the daemon for three SPSC rings, opens the consuming end of each
// (Client::Open), and starts three producers: itself again with --produce, each writing
// into its own ring at its own pace, like three programs writing into three pipes. Instead
// of a thread per ring, it puts the three consumers in one WaitSet and gives the set's
// notify fd to poll(2): an ordinary event loop, which could watch sockets or a timerfd
// beside it. When poll says the fd is readable, a zero-timeout WaitSet::Wait says which
// rings have something (or which producer left: POLLHUP), the loop drains them with
// TryReceive and re-arms the fd. When all three producers have left and every ring is
// drained, it checks that every message came, in order, and deletes the rings.
//
//   multiplexed_consumer [--listen unix:///run/shmd/shmd.sock] [--messages N]
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "shmd/client/client.h"
#include "shmd/dataplane/wait_set.h"

extern char** environ;

namespace {

constexpr int kProducers = 3;

struct Options {
  std::string listen;  // "" = shmd::DefaultTarget()
  uint64_t messages = 20;
  std::string produce;  // set in a producer process: its ring's id
  int index = 0;        // which producer (its pace)
};

template <class T>
T Must(shmd::Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "multiplexed_consumer: %s: %s\n", what, r.error().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

shmd::Client Connect(const Options& o) {
  shmd::ClientOptions options;
  options.target = o.listen;
  return Must(shmd::Client::Connect(options), "connect");
}

// A producer: message i is the text "message i"; producer k pauses (k + 1) ms between
// messages, so the rings fill at different rates and the consumer sees them interleave.
int Produce(const Options& o) {
  shmd::Client client = Connect(o);
  auto producer = Must(client.Open<shmd::SpscProducer>(o.produce), "open the producer");
  for (uint64_t i = 0; i < o.messages; ++i) {
    const std::string text = "message " + std::to_string(i);
    if (producer->SendFor(std::as_bytes(std::span(text)), std::chrono::seconds(10)) !=
        shmd::Status::kOk) {
      std::fprintf(stderr, "producer %d: message %llu could not be sent\n", o.index,
                   static_cast<unsigned long long>(i));
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(o.index + 1));
  }
  return 0;  // the producer detaches here: the consumer's poll sees it leave
}

// Starts this program again as producer `index` of ring `id`.
pid_t Spawn(const Options& o, const char* self, const std::string& id, int index) {
  std::vector<std::string> args = {self,
                                   "--produce",
                                   id,
                                   "--index",
                                   std::to_string(index),
                                   "--messages",
                                   std::to_string(o.messages)};
  if (!o.listen.empty()) args.insert(args.end(), {"--listen", o.listen});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t child = 0;
  // posix_spawn, not fork: a process with gRPC threads should not fork.
  if (posix_spawn(&child, self, nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return child;
}

int Consume(const Options& o, const char* self) {
  shmd::Client client = Connect(o);
  shmd::v1::Ring spec;
  spec.set_kind(shmd::v1::RING_KIND_SPSC);
  spec.set_capacity_bytes(64 << 10);
  std::vector<std::string> ids;
  for (int k = 0; k < kProducers; ++k) {
    ids.push_back("mux-" + std::to_string(getpid()) + "-" + std::to_string(k));
    Must(client.CreateRing(ids.back(), spec), "create a ring");
  }

  int rc = 0;
  std::vector<uint64_t> received(kProducers, 0);
  {
    // The consumers, then the set (destroyed first: it stops its thread before the
    // consumers and their leases go).
    std::vector<shmd::Attached<shmd::SpscConsumer>> consumers;
    for (const auto& id : ids) {
      consumers.push_back(Must(client.Open<shmd::SpscConsumer>(id), "open a consumer"));
    }
    shmd::WaitSet set;
    for (int k = 0; k < kProducers; ++k) {
      Must(set.Add(Must(shmd::WaitSourceOf(*consumers[k]), "watch a ring"), k), "add to the set");
    }
    const int fd = Must(set.NotifyFd(), "the notify fd");

    std::vector<pid_t> children;
    for (int k = 0; k < kProducers; ++k) {
      pid_t child = Spawn(o, self, ids[k], k);
      if (child < 0) {
        std::perror("posix_spawn");
        rc = 1;
        break;
      }
      children.push_back(child);
    }
    std::printf("consumer: %d producers started, one poll() loop on the wait set's fd %d\n",
                kProducers, fd);

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::vector<shmd::WaitEvent> events;
    while (set.size() > 0 && rc == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr, "consumer: gave up waiting after 60 s\n");
        rc = 1;
        break;
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 1000) <= 0) {  // a real loop would watch more fds here
        // Idle for a second: a producer that failed before attaching would never be
        // reported gone (the ring never had it), so look at the children too.
        for (size_t k = 0; k < children.size(); ++k) {
          int status = 0;
          if (children[k] > 0 && waitpid(children[k], &status, WNOHANG) == children[k]) {
            children[k] = -1;  // reaped
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
              std::fprintf(stderr, "consumer: producer %zu failed\n", k);
              rc = 1;
            }
          }
        }
        continue;
      }
      (void)set.Wait(shmd::Nanos::zero(), &events);  // which rings? (no sleep)
      for (const shmd::WaitEvent& e : events) {
        const auto k = static_cast<int>(e.tag);
        char buf[64];
        size_t size = 0;
        while (consumers[k]->TryReceive({reinterpret_cast<std::byte*>(buf), sizeof buf - 1},
                                        &size) == shmd::Status::kOk) {
          buf[size] = '\0';
          std::printf("[producer %d] %s\n", k, buf);
          const std::string expected = "message " + std::to_string(received[k]);
          if (expected != buf) {
            std::fprintf(stderr, "consumer: producer %d: expected \"%s\"\n", k, expected.c_str());
            rc = 1;
          }
          ++received[k];
        }
        if (e.peer_gone) {  // POLLHUP: it left, and its ring is drained
          std::printf("[producer %d] left after %llu messages\n", k,
                      static_cast<unsigned long long>(received[k]));
          set.Remove(e.tag);
        }
        if (e.closed) {
          std::fprintf(stderr, "consumer: ring %s was deleted under us\n", ids[k].c_str());
          rc = 1;
        }
      }
      set.Rearm();  // re-checks at once: what came during the drain is not missed
    }
    std::fflush(stdout);
    for (pid_t child : children) {
      if (child < 0) continue;  // reaped above
      int status = 0;
      if (rc != 0) kill(child, SIGTERM);
      waitpid(child, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
    }
  }
  for (const auto& id : ids) Must(client.DeleteRing(id), "delete a ring");
  for (int k = 0; k < kProducers; ++k) {
    if (received[k] != o.messages) rc = 1;
  }
  if (rc == 0) {
    std::printf("multiplexed_consumer: %d producers, %llu messages each, all received in order\n",
                kProducers, static_cast<unsigned long long>(o.messages));
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--help" || a == "-h") {
      std::printf("usage: %s [--listen ADDRESS] [--messages N]\n", argv[0]);
      return 0;
    }
    if (!v) {
      std::fprintf(stderr, "multiplexed_consumer: %s needs a value (see --help)\n", a.c_str());
      return 2;
    }
    if (a == "--listen") {
      o.listen = v;
    } else if (a == "--messages") {
      o.messages = std::strtoull(v, nullptr, 10);
    } else if (a == "--produce") {
      o.produce = v;
    } else if (a == "--index") {
      o.index = std::atoi(v);
    } else {
      std::fprintf(stderr, "multiplexed_consumer: unknown argument %s (see --help)\n", a.c_str());
      return 2;
    }
    ++i;
  }
  if (o.messages == 0 || o.messages > 1000000) {
    std::fprintf(stderr, "multiplexed_consumer: --messages must be 1 to 1000000\n");
    return 2;
  }
  return o.produce.empty() ? Consume(o, argv[0]) : Produce(o);
}
