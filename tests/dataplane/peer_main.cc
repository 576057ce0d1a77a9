// shmd_test_peer: the other process of the multi-process tests. Each mode attaches to an
// object and plays one role; it prints progress lines the test waits for ("ready",
// "done N ...") and exits 0 on success, 1 with a reason on stdout otherwise.
//
//   spsc-produce   DIR NS NAME STREAM COUNT MAXSIZE [batch|busy]
//   spsc-consume   DIR NS NAME STREAM COUNT MAXSIZE [busy]
//   spsc-stall     DIR NS NAME STREAM COMPLETE MAXSIZE  send COMPLETE messages, then stop
//                                                       half-way through writing one more
//   spsc-flood     DIR NS NAME STREAM MAXSIZE           send until killed
//   spsc-block     DIR NS NAME                          consume; block in Receive forever
//   pool-churn     DIR NS NAME ID ITERATIONS            allocate/check/free, never sharing
//   pool-hold      DIR NS NAME COUNT                    allocate COUNT blocks, then sleep
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/message_pattern.h"
#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/spsc_ring.h"

namespace {

using namespace shmd;
using shmd::testing::CheckPattern;
using shmd::testing::FillPattern;
using shmd::testing::PatternSize;

[[noreturn]] void Fail(const std::string& why) {
  std::printf("error %s\n", why.c_str());
  std::fflush(stdout);
  std::exit(1);
}

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

template <class T>
T Must(Result<T> r) {
  if (!r.ok()) Fail(r.error().message());
  return std::move(r).value();
}

WaitOptions Waiting(bool busy) {
  WaitOptions w;
  w.busy_poll = busy;
  return w;
}

int SpscProduce(const ShmDir& dir, const char* name, uint64_t stream, uint64_t count, uint32_t max,
                const std::string& mode) {
  auto producer = Must(SpscProducer::Open(dir, name, Waiting(mode == "busy")));
  Say("ready");
  const bool batch = mode == "batch";
  for (uint64_t seq = 0; seq < count; ++seq) {
    uint32_t size = PatternSize(stream, seq, max);
    std::span<std::byte> room;
    Status s = producer.TryReserve(size, &room);
    if (s == Status::kFull) {
      producer.Flush();
      s = producer.ReserveFor(size, std::chrono::seconds(30), &room);
    }
    if (s != Status::kOk) Fail(std::string("reserve: ") + StatusName(s));
    FillPattern(stream, seq, room);
    producer.Commit(size, batch && (seq % 16 != 15) ? Publish::kDeferred : Publish::kNow);
  }
  producer.Flush();
  Say("done " + std::to_string(count));
  return 0;
}

int SpscConsume(const ShmDir& dir, const char* name, uint64_t stream, uint64_t count, uint32_t max,
                bool busy) {
  auto consumer = Must(SpscConsumer::Open(dir, name, Waiting(busy)));
  Say("ready");
  uint64_t bytes = 0;
  for (uint64_t seq = 0; seq < count; ++seq) {
    MessageView m;
    Status s = consumer.PeekFor(&m, std::chrono::seconds(30));
    if (s != Status::kOk) {
      Fail("after " + std::to_string(seq) + " messages: " + StatusName(s));
    }
    std::string why = CheckPattern(stream, seq, PatternSize(stream, seq, max), m.bytes());
    if (!why.empty()) Fail(why);
    bytes += m.size;
    consumer.Release();
  }
  Say("done " + std::to_string(count) + " " + std::to_string(bytes));
  return 0;
}

int SpscStall(const ShmDir& dir, const char* name, uint64_t stream, uint64_t complete,
              uint32_t max) {
  auto producer = Must(SpscProducer::Open(dir, name));
  for (uint64_t seq = 0; seq < complete; ++seq) {
    uint32_t size = PatternSize(stream, seq, max);
    std::vector<std::byte> message(size);
    FillPattern(stream, seq, message);
    if (producer.SendFor(message, std::chrono::seconds(30)) != Status::kOk) Fail("send");
  }
  // Half of one more message, never committed.
  std::span<std::byte> room;
  if (producer.TryReserve(max, &room) != Status::kOk) Fail("reserve");
  FillPattern(stream, complete, room.first(room.size() / 2));
  Say("stalled");
  for (;;) pause();
}

int SpscFlood(const ShmDir& dir, const char* name, uint64_t stream, uint32_t max) {
  auto producer = Must(SpscProducer::Open(dir, name));
  Say("ready");
  for (uint64_t seq = 0;; ++seq) {
    uint32_t size = PatternSize(stream, seq, max);
    std::span<std::byte> room;
    if (producer.ReserveFor(size, std::chrono::seconds(30), &room) != Status::kOk) Fail("reserve");
    FillPattern(stream, seq, room);
    producer.Commit(size);
  }
}

int SpscBlock(const ShmDir& dir, const char* name) {
  auto consumer = Must(SpscConsumer::Open(dir, name));
  Say("waiting");
  std::vector<std::byte> buffer(consumer.max_message());
  size_t size = 0;
  Status s = consumer.Receive(buffer, &size);
  Say(std::string("returned ") + StatusName(s));
  return 0;
}

// Holds each block for a moment with its own stamp written over all of it, and checks
// the stamp before freeing: a block handed to two holders at once gets overwritten.
int PoolChurn(const ShmDir& dir, const char* name, uint64_t id, uint64_t iterations) {
  auto pool = Must(BlockPool::Open(dir, name));
  Say("ready");
  std::vector<Block> held;
  uint64_t stamp = id << 48;
  for (uint64_t i = 0; i < iterations; ++i) {
    if (held.size() < 4 && (i % 3 != 2 || held.empty())) {
      Block b;
      Status s = pool.AllocateFor(&b, std::chrono::seconds(30));
      if (s != Status::kOk) Fail(std::string("allocate: ") + StatusName(s));
      ++stamp;
      for (uint32_t off = 0; off + 8 <= b.size; off += 8) std::memcpy(b.data + off, &stamp, 8);
      held.push_back(b);
    } else {
      Block b = held.front();
      held.erase(held.begin());
      uint64_t first;
      std::memcpy(&first, b.data, 8);
      for (uint32_t off = 0; off + 8 <= b.size; off += 8) {
        uint64_t v;
        std::memcpy(&v, b.data + off, 8);
        if (v != first || (v >> 48) != id) {
          Fail("block " + std::to_string(b.index) + " was handed out twice (stamp " +
               std::to_string(v) + " in a block of peer " + std::to_string(id) + ")");
        }
      }
      if (pool.Free(b.index) != Status::kOk) Fail("free");
    }
  }
  for (const Block& b : held) (void)pool.Free(b.index);
  Say("done " + std::to_string(iterations));
  return 0;
}

int PoolHold(const ShmDir& dir, const char* name, uint64_t count) {
  auto pool = Must(BlockPool::Open(dir, name));
  for (uint64_t i = 0; i < count; ++i) {
    Block b;
    if (pool.TryAllocate(&b) != Status::kOk) Fail("allocate");
  }
  Say("held " + std::to_string(count));
  for (;;) pause();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s MODE DIR NS NAME ...\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const ShmDir dir{argv[2], argv[3]};
  const char* name = argv[4];
  auto arg = [&](int i) -> uint64_t { return i < argc ? std::strtoull(argv[i], nullptr, 10) : 0; };
  auto word = [&](int i) -> std::string { return i < argc ? argv[i] : ""; };
  if (const char* cpu = std::getenv("SHMD_PEER_CPU")) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(std::atoi(cpu), &set);
    sched_setaffinity(0, sizeof set, &set);
  }
  if (mode == "spsc-produce") {
    return SpscProduce(dir, name, arg(5), arg(6), static_cast<uint32_t>(arg(7)), word(8));
  }
  if (mode == "spsc-consume") {
    return SpscConsume(dir, name, arg(5), arg(6), static_cast<uint32_t>(arg(7)), word(8) == "busy");
  }
  if (mode == "spsc-stall")
    return SpscStall(dir, name, arg(5), arg(6), static_cast<uint32_t>(arg(7)));
  if (mode == "spsc-flood") return SpscFlood(dir, name, arg(5), static_cast<uint32_t>(arg(6)));
  if (mode == "spsc-block") return SpscBlock(dir, name);
  if (mode == "pool-churn") return PoolChurn(dir, name, arg(5), arg(6));
  if (mode == "pool-hold") return PoolHold(dir, name, arg(5));
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
