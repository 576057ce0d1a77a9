// channel_demo: a ring asked of the shmd daemon, and two processes moving data through it.
//
// The producer (this process) asks the daemon for an SPSC ring, starts the consumer as a
// second process, and streams messages; each process gets its end of the ring with one
// call, Client::Open, which leases the ring from the daemon and maps it. From then on no
// byte passes through the daemon. At the end the daemon's own view of the ring (GetRing)
// shows what moved, and the ring is deleted.
//
//   channel_demo [--listen unix:///run/shmd/shmd.sock] [--messages N] [--size BYTES]
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "shmd/client/client.h"

extern char** environ;

namespace {

struct Options {
  std::string listen;  // "" = shmd::DefaultTarget()
  uint64_t messages = 5'000'000;
  uint32_t size = 256;
  std::string consume;  // set in the consumer process: the ring's id
};

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

template <class T>
T Must(shmd::Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "channel_demo: %s: %s\n", what, r.error().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

shmd::Client Connect(const Options& o) {
  shmd::ClientOptions options;
  options.target = o.listen;
  return Must(shmd::Client::Connect(options), "connect");
}

int Consume(const Options& o) {
  shmd::Client client = Connect(o);
  auto consumer = Must(client.Open<shmd::SpscConsumer>(o.consume), "open the consumer");
  uint64_t bytes = 0, checksum = 0;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t seq = 0; seq < o.messages; ++seq) {
    shmd::MessageView m;
    const shmd::Status s = consumer->PeekFor(&m, std::chrono::seconds(10));
    if (s != shmd::Status::kOk) {
      std::fprintf(stderr, "consumer: message %llu: %s\n", static_cast<unsigned long long>(seq),
                   shmd::StatusName(s));
      return 1;
    }
    uint64_t got;
    std::memcpy(&got, m.data, sizeof got);
    if (got != seq) {
      std::fprintf(stderr, "consumer: expected message %llu, got %llu\n",
                   static_cast<unsigned long long>(seq), static_cast<unsigned long long>(got));
      return 1;
    }
    for (uint32_t i = 0; i < m.size; ++i) checksum += static_cast<uint8_t>(m.data[i]);
    bytes += m.size;
    consumer->Release();
  }
  const double secs = Seconds(std::chrono::steady_clock::now() - start);
  std::printf("consumer: received %llu messages (%.1f MB) in %.2f s: %.2f M msgs/s, %.0f MB/s, "
              "every byte read (checksum %llu)\n",
              static_cast<unsigned long long>(o.messages), bytes / 1e6, secs,
              o.messages / secs / 1e6, bytes / secs / 1e6, static_cast<unsigned long long>(checksum));
  return 0;
}

int Produce(const Options& o, const char* self) {
  shmd::Client client = Connect(o);
  const std::string id = "channel-demo-" + std::to_string(getpid());
  shmd::v1::Ring spec;
  spec.set_kind(shmd::v1::RING_KIND_SPSC);
  spec.set_capacity_bytes(1 << 20);
  Must(client.CreateRing(id, spec), "create the ring");
  std::printf("producer: the daemon at %s made rings/%s (1 MiB)\n", client.target().c_str(),
              id.c_str());
  std::fflush(stdout);

  // The consumer is a program of its own (posix_spawn: no fork of a gRPC process).
  std::vector<std::string> args = {self, "--consume", id, "--messages", std::to_string(o.messages)};
  if (!o.listen.empty()) args.insert(args.end(), {"--listen", o.listen});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t child = 0;
  if (posix_spawn(&child, self, nullptr, nullptr, argv.data(), environ) != 0) {
    std::perror("posix_spawn");
    return 1;
  }

  int rc = 0;
  {
    auto producer = Must(client.Open<shmd::SpscProducer>(id), "open the producer");
    std::vector<std::byte> message(o.size);
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t seq = 0; seq < o.messages && rc == 0; ++seq) {
      std::memcpy(message.data(), &seq, sizeof seq);
      if (producer->SendFor(message, std::chrono::seconds(10)) != shmd::Status::kOk) {
        std::fprintf(stderr, "producer: message %llu could not be sent\n",
                     static_cast<unsigned long long>(seq));
        rc = 1;
      }
    }
    const double secs = Seconds(std::chrono::steady_clock::now() - start);
    std::printf("producer: sent %llu messages of %u bytes in %.2f s: %.2f M msgs/s\n",
                static_cast<unsigned long long>(o.messages), o.size, secs,
                o.messages / secs / 1e6);
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
  }
  shmd::v1::Ring ring = Must(client.GetRing(id), "read the ring back");
  std::printf("daemon: rings/%s wrote %llu and read %llu messages, %llu bytes in use, %d "
              "endpoint(s) attached\n",
              id.c_str(), static_cast<unsigned long long>(ring.usage().messages_written()),
              static_cast<unsigned long long>(ring.usage().messages_read()),
              static_cast<unsigned long long>(ring.usage().used_bytes()),
              ring.info().endpoints_size());
  Must(client.DeleteRing(id), "delete the ring");
  std::printf("producer: deleted rings/%s\n", id.c_str());
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--help" || a == "-h") {
      std::printf("usage: %s [--listen ADDRESS] [--messages N] [--size BYTES]\n", argv[0]);
      return 0;
    }
    if (!v) {
      std::fprintf(stderr, "channel_demo: %s needs a value (see --help)\n", a.c_str());
      return 2;
    }
    if (a == "--listen") {
      o.listen = v;
    } else if (a == "--messages") {
      o.messages = std::strtoull(v, nullptr, 10);
    } else if (a == "--size") {
      o.size = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (a == "--consume") {
      o.consume = v;
    } else {
      std::fprintf(stderr, "channel_demo: unknown argument %s (see --help)\n", a.c_str());
      return 2;
    }
    ++i;
  }
  if (o.size < 8 || o.size > 65536) {
    std::fprintf(stderr, "channel_demo: --size must be 8 to 65536 bytes\n");
    return 2;
  }
  return o.consume.empty() ? Produce(o, argv[0]) : Consume(o);
}
