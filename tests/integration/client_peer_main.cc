// shmd_test_client: a producer, consumer or pool user that gets its object through the
// daemon (shmd::Client::Open), for the integration tests: the daemon then knows its pid
// and watches it. Prints the lines the tests wait for; exits 0 on success, 1 with
// "error <why>" otherwise.
//
//   spsc-produce TARGET RING STREAM COUNT MAXSIZE   send COUNT pattern messages, pausing
//                                                  1 ms every 1000 (a stream that lasts)
//   spsc-consume TARGET RING STREAM COUNT MAXSIZE   check COUNT messages; "progress N" at
//                                                  every tenth, then "done COUNT BYTES"
//   spsc-stream  TARGET RING STREAM RATE SECONDS MAXSIZE
//                send RATE*SECONDS pattern messages at a steady RATE per second (message
//                n is due at start + n/RATE; ahead of time it sleeps), then "sent N in S
//                seconds B bytes from T0 to T1" (T0, T1: Unix times of the first and last
//                send). spsc-consume with COUNT = RATE*SECONDS checks them.
//   broadcast-stream TARGET RING STREAM RATE SECONDS MAXSIZE
//                the same as a broadcast ring's producer (which never waits)
//   broadcast-slow   TARGET RING SECONDS INTERVAL_MS
//                a subscriber that reads one message every INTERVAL_MS for SECONDS (or
//                until its producer leaves); then "received N lost L"
//   pool-hold    TARGET POOL COUNT                  allocate COUNT blocks, then sleep
//   spsc-idle    TARGET RING                        attach as the consumer ("ready
//                                                  LEASE"), read nothing, sleep
//   get          TARGET NAME                        GetRing/GetPool/GetRegion; prints "ok"
//                                                  or "code <error code name> <message>"
//   attach       TARGET NAME ROLE                   Attach (ROLE: producer, consumer...)
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/message_pattern.h"
#include "common/peer_output.h"
#include "shmd/client/client.h"

namespace {

using namespace shmd;
using shmd::testing::CheckPattern;
using shmd::testing::FillPattern;
using shmd::testing::PatternSize;

using shmd::testing::Fail;
using shmd::testing::Must;
using shmd::testing::Say;

int Produce(Client& client, const std::string& ring, uint64_t stream, uint64_t count,
            uint32_t max) {
  auto producer = Must(client.Open<SpscProducer>(ring));
  Say("ready " + producer.lease().name());
  for (uint64_t seq = 0; seq < count; ++seq) {
    const uint32_t size = PatternSize(stream, seq, max);
    std::span<std::byte> room;
    const Status s = producer->ReserveFor(size, std::chrono::seconds(30), &room);
    if (s != Status::kOk) Fail(std::string("reserve: ") + StatusName(s));
    FillPattern(stream, seq, room);
    producer->Commit(size);
    if (seq % 1000 == 999) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  Say("done " + std::to_string(count));
  return 0;
}

int Consume(Client& client, const std::string& ring, uint64_t stream, uint64_t count,
            uint32_t max) {
  auto consumer = Must(client.Open<SpscConsumer>(ring));
  Say("ready " + consumer.lease().name());
  uint64_t bytes = 0;
  const uint64_t tenth = count / 10 ? count / 10 : 1;
  for (uint64_t seq = 0; seq < count; ++seq) {
    MessageView m;
    const Status s = consumer->PeekFor(&m, std::chrono::seconds(30));
    if (s != Status::kOk) Fail("after " + std::to_string(seq) + " messages: " + StatusName(s));
    const std::string why = CheckPattern(stream, seq, PatternSize(stream, seq, max), m.bytes());
    if (!why.empty()) Fail(why);
    bytes += m.size;
    consumer->Release();
    if ((seq + 1) % tenth == 0) Say("progress " + std::to_string(seq + 1));
  }
  Say("done " + std::to_string(count) + " " + std::to_string(bytes));
  return 0;
}

double UnixSeconds() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// Sends RATE*SECONDS messages, message n due at start + n/RATE: a burst every millisecond
// when on time, a catch-up when late. send(seq, size) sends one pattern message.
template <class SendFn>
int Stream(uint64_t stream, uint64_t rate, uint64_t seconds, uint32_t max, SendFn send) {
  using Clock = std::chrono::steady_clock;
  if (rate == 0 || max == 0) Fail("RATE and MAXSIZE must be positive");
  const uint64_t count = rate * seconds;
  uint64_t bytes = 0;
  const double first = UnixSeconds();
  const auto start = Clock::now();
  for (uint64_t seq = 0; seq < count; ++seq) {
    const auto due = start + std::chrono::nanoseconds(seq * 1000000000ULL / rate);
    if (due - Clock::now() > std::chrono::milliseconds(1)) std::this_thread::sleep_until(due);
    const uint32_t size = PatternSize(stream, seq, max);
    send(seq, size);
    bytes += size;
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  char line[160];
  std::snprintf(line, sizeof line, "sent %llu in %.3f seconds %llu bytes from %.3f to %.3f",
                static_cast<unsigned long long>(count), elapsed,
                static_cast<unsigned long long>(bytes), first, UnixSeconds());
  Say(line);
  return 0;
}

int SpscStream(Client& client, const std::string& ring, uint64_t stream, uint64_t rate,
               uint64_t seconds, uint32_t max) {
  auto producer = Must(client.Open<SpscProducer>(ring));
  Say("ready " + producer.lease().name());
  return Stream(stream, rate, seconds, max, [&](uint64_t seq, uint32_t size) {
    std::span<std::byte> room;
    const Status s = producer->ReserveFor(size, std::chrono::seconds(30), &room);
    if (s != Status::kOk) Fail(std::string("reserve: ") + StatusName(s));
    FillPattern(stream, seq, room);
    producer->Commit(size);
  });
}

int BroadcastStream(Client& client, const std::string& ring, uint64_t stream, uint64_t rate,
                    uint64_t seconds, uint32_t max) {
  auto producer = Must(client.Open<BroadcastProducer>(ring));
  Say("ready " + producer.lease().name());
  std::vector<std::byte> buffer(max);
  return Stream(stream, rate, seconds, max, [&](uint64_t seq, uint32_t size) {
    const std::span<std::byte> message(buffer.data(), size);
    FillPattern(stream, seq, message);
    const Status s = producer->TrySend(message);
    if (s != Status::kOk) Fail(std::string("send: ") + StatusName(s));
  });
}

int BroadcastSlow(Client& client, const std::string& ring, uint64_t seconds, uint64_t interval_ms) {
  auto subscriber = Must(client.Open<BroadcastSubscriber>(ring));
  Say("ready " + subscriber.lease().name());
  std::vector<std::byte> buffer(subscriber->max_message());
  uint64_t received = 0, lost = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    size_t size = 0;
    const Status s = subscriber->ReceiveFor(buffer, &size, std::chrono::milliseconds(100));
    if (s == Status::kOk) {
      ++received;
      std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    } else if (s == Status::kLapped) {
      lost += subscriber->last_lost();
    } else if (s == Status::kPeerGone) {
      break;
    } else if (s != Status::kTimeout) {
      Fail(std::string("receive: ") + StatusName(s));
    }
  }
  Say("received " + std::to_string(received) + " lost " + std::to_string(lost));
  return 0;
}

int PoolHold(Client& client, const std::string& pool, uint64_t count) {
  auto user = Must(client.Open<BlockPool>(pool));
  for (uint64_t i = 0; i < count; ++i) {
    Block block;
    if (user->TryAllocate(&block) != Status::kOk) Fail("allocate");
    block.bytes()[0] = std::byte{1};
  }
  Say("held " + std::to_string(count));
  for (;;) pause();
}

int SpscIdle(Client& client, const std::string& ring) {
  auto consumer = Must(client.Open<SpscConsumer>(ring));
  Say("ready " + consumer.lease().name());
  for (;;) pause();
}

template <class T>
int Report(const Result<T>& r) {
  if (r.ok()) {
    Say("ok");
    return 0;
  }
  Say(std::string("code ") + ErrorCodeName(r.error().code()) + " " + r.error().message());
  return 1;
}

int Get(Client& client, const std::string& name) {
  if (name.rfind("pools/", 0) == 0) return Report(client.GetPool(name));
  if (name.rfind("regions/", 0) == 0) return Report(client.GetRegion(name));
  return Report(client.GetRing(name));
}

int AttachAs(Client& client, const std::string& name, const std::string& role) {
  v1::Role r = v1::ROLE_UNSPECIFIED;
  std::string upper = "ROLE_";
  for (char c : role) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  v1::Role_Parse(upper, &r);
  return Report(client.Attach(name, r));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODE TARGET OBJECT ...\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  ClientOptions options;
  options.target = argv[2];
  const std::string object = argv[3];
  auto arg = [&](int i) -> uint64_t { return i < argc ? std::strtoull(argv[i], nullptr, 10) : 0; };
  Client client = Must(Client::Connect(options));
  if (mode == "spsc-produce") {
    return Produce(client, object, arg(4), arg(5), static_cast<uint32_t>(arg(6)));
  }
  if (mode == "spsc-consume") {
    return Consume(client, object, arg(4), arg(5), static_cast<uint32_t>(arg(6)));
  }
  if (mode == "spsc-stream") {
    return SpscStream(client, object, arg(4), arg(5), arg(6), static_cast<uint32_t>(arg(7)));
  }
  if (mode == "broadcast-stream") {
    return BroadcastStream(client, object, arg(4), arg(5), arg(6), static_cast<uint32_t>(arg(7)));
  }
  if (mode == "broadcast-slow") return BroadcastSlow(client, object, arg(4), arg(5));
  if (mode == "pool-hold") return PoolHold(client, object, arg(4));
  if (mode == "spsc-idle") return SpscIdle(client, object);
  if (mode == "get") return Get(client, object);
  if (mode == "attach") return AttachAs(client, object, argc > 4 ? argv[4] : "");
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
