// ring_demo: two processes, one SPSC ring, no daemon (embedded mode).
//
// The parent creates a ring in /dev/shm, forks a consumer, and streams messages through
// the ring; the consumer reads each in place, checks its sequence number and sums every
// byte. Both print what they moved and how fast. This is what `script/run` shows.
//
//   ring_demo [--messages N] [--size BYTES] [--capacity BYTES] [--busy-poll]
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "shmd/dataplane/spsc_ring.h"

namespace {

struct Options {
  uint64_t messages = 10'000'000;
  uint32_t size = 256;
  uint64_t capacity = 1 << 20;
  bool busy_poll = false;
};

void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN))), &set);
  sched_setaffinity(0, sizeof set, &set);
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

int RunConsumer(const shmd::ShmDir& dir, const Options& o) {
  PinTo(1);
  shmd::WaitOptions wait;
  wait.busy_poll = o.busy_poll;
  auto consumer = shmd::SpscConsumer::Open(dir, "demo", wait);
  if (!consumer.ok()) {
    std::fprintf(stderr, "consumer: %s\n", consumer.error().message().c_str());
    return 1;
  }
  uint64_t bytes = 0, checksum = 0;
  auto start = std::chrono::steady_clock::now();
  for (uint64_t seq = 0; seq < o.messages; ++seq) {
    shmd::MessageView m;
    shmd::Status s = consumer->PeekFor(&m, std::chrono::seconds(10));
    if (s != shmd::Status::kOk) {
      std::fprintf(stderr, "consumer: message %lu: %s\n", static_cast<unsigned long>(seq),
                   shmd::StatusName(s));
      return 1;
    }
    uint64_t got;
    std::memcpy(&got, m.data, sizeof got);
    if (got != seq) {
      std::fprintf(stderr, "consumer: expected message %lu, got %lu\n",
                   static_cast<unsigned long>(seq), static_cast<unsigned long>(got));
      return 1;
    }
    // Touch every byte, eight at a time.
    uint32_t i = 0;
    for (; i + 8 <= m.size; i += 8) {
      uint64_t word;
      std::memcpy(&word, m.data + i, 8);
      checksum += word;
    }
    for (; i < m.size; ++i) checksum += static_cast<uint8_t>(m.data[i]);
    bytes += m.size;
    consumer->Release();
  }
  double secs = Seconds(std::chrono::steady_clock::now() - start);
  std::printf(
      "consumer: received %lu messages, %lu bytes in %.3f s (every byte read, checksum %lu)\n",
      static_cast<unsigned long>(o.messages), static_cast<unsigned long>(bytes), secs,
      static_cast<unsigned long>(checksum));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> uint64_t {
      return i + 1 < argc ? std::strtoull(argv[++i], nullptr, 10) : 0;
    };
    if (a == "--messages")
      o.messages = next();
    else if (a == "--size")
      o.size = static_cast<uint32_t>(next());
    else if (a == "--capacity")
      o.capacity = next();
    else if (a == "--busy-poll")
      o.busy_poll = true;
    else {
      std::fprintf(stderr,
                   "usage: %s [--messages N] [--size BYTES] [--capacity BYTES] [--busy-poll]\n",
                   argv[0]);
      return 2;
    }
  }
  if (o.size < 8) o.size = 8;  // room for the sequence number
  shmd::ShmDir dir{"/dev/shm", "demo-" + std::to_string(getpid())};
  auto ring = shmd::CreateSpscRing(dir, "demo", {.capacity = o.capacity});
  if (!ring.ok()) {
    std::fprintf(stderr, "%s\n", ring.error().message().c_str());
    return 1;
  }
  std::printf("ring %s: %lu bytes, messages of %u bytes, %s waits\n", ring->path().c_str(),
              static_cast<unsigned long>(o.capacity), o.size, o.busy_poll ? "busy-poll" : "futex");
  std::fflush(stdout);

  pid_t child = fork();
  if (child == 0) {
    int rc = RunConsumer(dir, o);
    std::fflush(stdout);
    _exit(rc);
  }

  PinTo(0);
  shmd::WaitOptions wait;
  wait.busy_poll = o.busy_poll;
  auto producer = shmd::SpscProducer::Open(dir, "demo", wait);
  int rc = 0;
  if (!producer.ok()) {
    std::fprintf(stderr, "producer: %s\n", producer.error().message().c_str());
    rc = 1;
  } else {
    std::vector<std::byte> message(o.size, std::byte{0x5a});
    auto start = std::chrono::steady_clock::now();
    for (uint64_t seq = 0; seq < o.messages && rc == 0; ++seq) {
      std::memcpy(message.data(), &seq, sizeof seq);
      shmd::Status s = producer->SendFor(message, std::chrono::seconds(10));
      if (s != shmd::Status::kOk) {
        std::fprintf(stderr, "producer: message %lu: %s\n", static_cast<unsigned long>(seq),
                     shmd::StatusName(s));
        rc = 1;
      }
    }
    double secs = Seconds(std::chrono::steady_clock::now() - start);
    std::printf("producer: sent %lu messages in %.3f s: %.2f M messages/s, %.0f MB/s\n",
                static_cast<unsigned long>(o.messages), secs, o.messages / secs / 1e6,
                o.messages * double(o.size) / secs / 1e6);
  }
  int status = 0;
  waitpid(child, &status, 0);
  (void)shmd::Segment::Remove(dir, "demo");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
  std::printf("%s\n", rc == 0 ? "ok: every message arrived, in order" : "FAILED");
  return rc;
}
