// named_channel: two programs that never meet, joined by a name, like mkfifo(1) and a
// FIFO, but through shared memory and with the daemon keeping the name.
//
//   named_channel send NAME [--messages N] [--size BYTES] [--mode 0660]
//   named_channel receive NAME [--messages N]
//   common: [--listen unix:///run/shmd/shmd.sock] [--timeout SECONDS]
//
// The sender asks the daemon for an SPSC ring called NAME (the same spec again is the
// existing ring, so either side may start first), becomes its producer and sends N
// messages, each a sequence number followed by bytes derived from it, then leaves. The
// receiver waits until NAME exists, becomes its consumer, and reads until the sender has
// left and the ring is drained (or until N messages): every message must come in order
// with every byte intact. Either side exits non-zero, saying why, if the other died
// ("peer gone"), nothing came in --timeout seconds, or a byte was wrong.
//
// --mode 0660 lets another uid of the file's group be the receiver (the ring's file mode;
// the daemon's default is owner-only 0600). This is what the Kubernetes example Pod runs
// (deploy/k8s/base): the producer and the consumer containers have different uids and
// share a group.
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shmd/client/client.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string command;  // "send" or "receive"
  std::string name;
  std::string listen;  // "" = shmd::DefaultTarget() ($SHMD_LISTEN)
  uint64_t messages =
      0;                // send: how many (default 1,000,000); receive: 0 = until the sender leaves
  uint32_t size = 256;  // send: bytes per message, 8 (the sequence number) to 65536
  uint32_t mode = 0;    // 0 = the daemon's default (0600)
  std::chrono::seconds timeout{30};
};

// Says what went wrong; the caller returns 1, so its handle detaches on the way out (a
// process that exits with std::exit would leave its endpoint for the daemon to clear).
int Failed(const std::string& what) {
  std::fprintf(stderr, "named_channel: %s\n", what.c_str());
  return 1;
}

[[noreturn]] void Fail(const std::string& what) {
  Failed(what);
  std::exit(1);
}

template <class T>
T Must(shmd::Result<T> r, const std::string& what) {
  if (!r.ok()) Fail(what + ": " + r.error().message());
  return std::move(r).value();
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Byte i of message `seq` after its 8-byte sequence number: a pattern the receiver can
// check without being told anything but the sequence number.
uint8_t PatternByte(uint64_t seq, uint32_t i) { return static_cast<uint8_t>(seq * 31 + i); }

shmd::Client Connect(const Options& o) {
  shmd::ClientOptions options;
  options.target = o.listen;
  return Must(shmd::Client::Connect(options), "connecting to the daemon");
}

int Send(const Options& o) {
  shmd::Client client = Connect(o);
  shmd::v1::Ring spec;
  spec.set_kind(shmd::v1::RING_KIND_SPSC);
  spec.set_capacity_bytes(1 << 20);
  spec.set_mode(o.mode);
  Must(client.CreateRing(o.name, spec), "creating ring " + o.name);
  auto producer =
      Must(client.Open<shmd::SpscProducer>(o.name), "becoming the producer of " + o.name);
  std::printf("sender: producer of rings/%s at %s\n", o.name.c_str(), client.target().c_str());
  std::fflush(stdout);

  const uint64_t count = o.messages != 0 ? o.messages : 1'000'000;
  std::vector<std::byte> message(o.size);
  for (uint32_t i = 8; i < o.size; ++i) message[i] = std::byte{PatternByte(0, i)};
  const auto start = Clock::now();
  for (uint64_t seq = 0; seq < count; ++seq) {
    std::memcpy(message.data(), &seq, sizeof seq);
    for (uint32_t i = 8; i < o.size; ++i) message[i] = std::byte{PatternByte(seq, i)};
    const shmd::Status s = producer->SendFor(message, o.timeout);
    if (s != shmd::Status::kOk) {
      return Failed(
          "sending message " + std::to_string(seq) + " of " + std::to_string(count) + ": " +
          shmd::StatusName(s) +
          (s == shmd::Status::kTimeout ? " (the ring stayed full: is a receiver reading?)" : ""));
    }
  }
  const double secs = Seconds(Clock::now() - start);
  std::printf("sender: sent %llu messages of %u bytes in %.2f s (%.2f M msgs/s, %.0f MB/s)\n",
              static_cast<unsigned long long>(count), o.size, secs, count / secs / 1e6,
              count * static_cast<double>(o.size) / secs / 1e6);
  return 0;  // leaving detaches: the receiver drains the ring and then hears "peer gone"
}

int Receive(const Options& o) {
  shmd::Client client = Connect(o);
  // Either side may start first: wait for the sender to create the ring.
  const auto give_up = Clock::now() + o.timeout;
  for (;;) {
    shmd::Result<shmd::v1::Ring> ring = client.GetRing(o.name);
    if (ring.ok()) break;
    if (ring.error().code() != shmd::ErrorCode::kNotFound || Clock::now() > give_up) {
      Fail("waiting for ring " + o.name + ": " + ring.error().message());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto consumer =
      Must(client.Open<shmd::SpscConsumer>(o.name), "becoming the consumer of " + o.name);
  std::printf("receiver: consumer of rings/%s at %s\n", o.name.c_str(), client.target().c_str());
  std::fflush(stdout);

  uint64_t received = 0, bytes = 0, first = 0, next = 0;
  Clock::time_point start;
  for (;;) {
    if (o.messages != 0 && received == o.messages) break;
    shmd::MessageView m;
    const shmd::Status s = consumer->PeekFor(&m, o.timeout);
    if (s == shmd::Status::kPeerGone && received > 0) break;  // the sender left; all read
    if (s != shmd::Status::kOk) {
      return Failed("after " + std::to_string(received) + " messages: " + shmd::StatusName(s) +
                    (s == shmd::Status::kTimeout ? " (nothing came: is a sender running?)" : ""));
    }
    if (m.size < 8) {
      return Failed("message " + std::to_string(received) + " has " + std::to_string(m.size) +
                    " bytes, too few for a sequence number: is the sender named_channel?");
    }
    uint64_t seq;
    std::memcpy(&seq, m.data, sizeof seq);
    if (received == 0) {
      first = next = seq;  // a receiver that joins late starts where the ring is
      start = Clock::now();
    }
    if (seq != next) {
      return Failed("expected message " + std::to_string(next) + ", got " + std::to_string(seq));
    }
    for (uint32_t i = 8; i < m.size; ++i) {
      if (static_cast<uint8_t>(m.data[i]) != PatternByte(seq, i)) {
        return Failed("message " + std::to_string(seq) + ": byte " + std::to_string(i) +
                      " is wrong");
      }
    }
    consumer->Release();
    ++received;
    ++next;
    bytes += m.size;
  }
  const double secs = Seconds(Clock::now() - start);
  std::printf(
      "receiver: received %llu messages (%llu to %llu) in order, every byte checked, "
      "%.1f MB in %.2f s\n",
      static_cast<unsigned long long>(received), static_cast<unsigned long long>(first),
      static_cast<unsigned long long>(next - 1), bytes / 1e6, secs);
  return 0;
}

uint64_t ParseNumber(const std::string& flag, const char* text, int base, uint64_t min,
                     uint64_t max) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, base);
  if (*text == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
    std::fprintf(stderr, "named_channel: %s wants a number from %llu to %llu, not '%s'\n",
                 flag.c_str(), static_cast<unsigned long long>(min),
                 static_cast<unsigned long long>(max), text);
    std::exit(2);
  }
  return v;
}

constexpr char kUsage[] =
    "usage: named_channel send NAME [--messages N] [--size BYTES] [--mode 0660]\n"
    "       named_channel receive NAME [--messages N]\n"
    "       common options: [--listen ADDRESS] [--timeout SECONDS]\n";

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("%s", kUsage);
      return 0;
    }
    if (a.rfind("--", 0) != 0) {
      positional.push_back(a);
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "named_channel: %s needs a value\n%s", a.c_str(), kUsage);
      return 2;
    }
    const char* v = argv[++i];
    if (a == "--listen") {
      o.listen = v;
    } else if (a == "--messages") {
      o.messages = ParseNumber(a, v, 10, 1, UINT64_MAX);
    } else if (a == "--size") {
      o.size = static_cast<uint32_t>(ParseNumber(a, v, 10, 8, 65536));
    } else if (a == "--mode") {
      o.mode = static_cast<uint32_t>(ParseNumber(a, v, 8, 0, 0777));
    } else if (a == "--timeout") {
      o.timeout = std::chrono::seconds(ParseNumber(a, v, 10, 1, 86400));
    } else {
      std::fprintf(stderr, "named_channel: unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (positional.size() != 2 || (positional[0] != "send" && positional[0] != "receive")) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  o.command = positional[0];
  o.name = positional[1];
  return o.command == "send" ? Send(o) : Receive(o);
}
