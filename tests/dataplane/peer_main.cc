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
//   spsc-idle      DIR NS NAME                          attach as the consumer, read
//                                                       nothing, sleep until killed
//   pool-churn     DIR NS NAME ID ITERATIONS            allocate/check/free, never sharing
//   pool-hold      DIR NS NAME COUNT                    allocate COUNT blocks, then sleep
//   mpmc-produce   DIR NS NAME STREAM COUNT MAXSIZE
//   mpmc-consume   DIR NS NAME TOTAL MAXSIZE            receive until the ring's consumers
//                                                       have TOTAL; print count and digest
//   bcast-publish  DIR NS NAME STREAM COUNT MAXSIZE
//   bcast-subscribe DIR NS NAME STREAM COUNT MAXSIZE    account for COUNT messages:
//                                                       delivered in order + lost exactly
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/message_pattern.h"
#include "common/peer_output.h"
#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/broadcast_ring.h"
#include "shmd/dataplane/mpmc_ring.h"
#include "shmd/dataplane/spsc_ring.h"
#include "shmd/dataplane/stats.h"

namespace {

using namespace shmd;
using shmd::testing::CheckPattern;
using shmd::testing::FillPattern;
using shmd::testing::PatternSize;

using shmd::testing::Fail;
using shmd::testing::Must;
using shmd::testing::Say;

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

int SpscIdle(const ShmDir& dir, const char* name) {
  auto consumer = Must(SpscConsumer::Open(dir, name));
  Say("attached");
  for (;;) pause();
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

// Messages of an MPMC stream carry (stream << 40 | seq) in their first 8 bytes; sizes
// are at least 8. The digest (a sum of hashes of every (stream, seq) received) lets the
// test prove, across consumers, that nothing was lost or duplicated.
uint64_t Tag(uint64_t stream, uint64_t seq) { return (stream << 40) | seq; }
uint64_t Digest(uint64_t tag) { return shmd::testing::SplitMix64(tag ^ 0x5bd1e995); }
uint32_t SizeAtLeast8(uint64_t stream, uint64_t seq, uint32_t max) {
  return std::max<uint32_t>(8, PatternSize(stream, seq, max));
}

int MpmcProduce(const ShmDir& dir, const char* name, uint64_t stream, uint64_t count,
                uint32_t max) {
  auto producer = Must(MpmcProducer::Open(dir, name));
  Say("ready");
  std::vector<std::byte> message(max);
  for (uint64_t seq = 0; seq < count; ++seq) {
    std::span<std::byte> m(message.data(), SizeAtLeast8(stream, seq, max));
    FillPattern(stream, Tag(stream, seq), m);
    Status s = producer.SendFor(m, std::chrono::seconds(30));
    if (s != Status::kOk) Fail("send " + std::to_string(seq) + ": " + StatusName(s));
  }
  Say("done " + std::to_string(count));
  return 0;
}

int MpmcConsume(const ShmDir& dir, const char* name, uint64_t total, uint32_t max) {
  auto consumer = Must(MpmcConsumer::Open(dir, name));
  auto segment = Must(Segment::Open(dir, name));
  Say("ready");
  std::vector<std::byte> buffer(max);
  std::vector<uint64_t> next(64, 0);  // per producer stream: the next sequence expected at least
  uint64_t count = 0, digest = 0;
  for (;;) {
    size_t size = 0;
    Status s = consumer.ReceiveFor(buffer, &size, std::chrono::milliseconds(20));
    if (s == Status::kTimeout || s == Status::kPeerGone) {
      if (ReadStats(segment).messages_read >= total) break;
      continue;
    }
    if (s != Status::kOk) Fail(std::string("receive: ") + StatusName(s));
    uint64_t tag;
    std::memcpy(&tag, buffer.data(), 8);
    const uint64_t stream = tag >> 40, seq = tag & ((uint64_t{1} << 40) - 1);
    if (stream >= next.size()) Fail("unknown stream " + std::to_string(stream));
    std::string why =
        CheckPattern(stream, tag, SizeAtLeast8(stream, seq, max), {buffer.data(), size});
    if (!why.empty()) Fail(why);
    if (seq < next[stream]) {
      Fail("stream " + std::to_string(stream) + ": message " + std::to_string(seq) +
           " after message " + std::to_string(next[stream] - 1) + " (reordered or duplicated)");
    }
    next[stream] = seq + 1;
    ++count;
    digest += Digest(tag);
  }
  Say("done " + std::to_string(count) + " " + std::to_string(digest));
  return 0;
}

int BroadcastPublish(const ShmDir& dir, const char* name, uint64_t stream, uint64_t count,
                     uint32_t max) {
  auto producer = Must(BroadcastProducer::Open(dir, name));
  Say("ready");
  std::vector<std::byte> message(max);
  for (uint64_t seq = 0; seq < count; ++seq) {
    std::span<std::byte> m(message.data(), SizeAtLeast8(stream, seq, max));
    FillPattern(stream, seq, m);
    Status s = producer.TrySend(m);
    if (s != Status::kOk) Fail("publish " + std::to_string(seq) + ": " + StatusName(s));
  }
  Say("done " + std::to_string(count));
  // Detaching now is fine: subscribers read what is left, then hear kPeerGone.
  return 0;
}

int BroadcastSubscribe(const ShmDir& dir, const char* name, uint64_t stream, uint64_t count,
                       uint32_t max) {
  auto subscriber = Must(BroadcastSubscriber::Open(dir, name));
  Say("ready");
  std::vector<std::byte> buffer(max);
  uint64_t expected = 0, delivered = 0, lost = 0;
  while (expected < count) {
    size_t size = 0;
    Status s = subscriber.ReceiveFor(buffer, &size, std::chrono::seconds(30));
    if (s == Status::kLapped) {
      lost += subscriber.last_lost();
      expected += subscriber.last_lost();
      continue;
    }
    if (s != Status::kOk) {
      Fail("at message " + std::to_string(expected) + ": " + StatusName(s));
    }
    std::string why =
        CheckPattern(stream, expected, SizeAtLeast8(stream, expected, max), {buffer.data(), size});
    if (!why.empty()) Fail(why);
    ++expected;
    ++delivered;
  }
  if (expected != count) Fail("accounted for " + std::to_string(expected) + " messages");
  Say("done " + std::to_string(delivered) + " " + std::to_string(lost));
  return 0;
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
  if (mode == "spsc-idle") return SpscIdle(dir, name);
  if (mode == "pool-churn") return PoolChurn(dir, name, arg(5), arg(6));
  if (mode == "pool-hold") return PoolHold(dir, name, arg(5));
  if (mode == "mpmc-produce")
    return MpmcProduce(dir, name, arg(5), arg(6), static_cast<uint32_t>(arg(7)));
  if (mode == "mpmc-consume") return MpmcConsume(dir, name, arg(5), static_cast<uint32_t>(arg(6)));
  if (mode == "bcast-publish") {
    return BroadcastPublish(dir, name, arg(5), arg(6), static_cast<uint32_t>(arg(7)));
  }
  if (mode == "bcast-subscribe") {
    return BroadcastSubscribe(dir, name, arg(5), arg(6), static_cast<uint32_t>(arg(7)));
  }
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
