// The other processes of pubsub_test: a topic's publisher, or one of its subscribers.
//
//   pubsub_peer publish DIR NS TOPIC COUNT MAX_SIZE TIMEOUT_MS PACE_EVERY PACE_US SUBS HALF
//       waits (up to 20 s) for SUBS subscribers, prints "start", publishes COUNT pattern
//       messages (sizes up to MAX_SIZE, sequence number first), sleeping PACE_US after
//       every PACE_EVERY (0: never). A publish that times out (TIMEOUT_MS, lossless) is
//       retried; the first prints "throttled". At COUNT/2 it prints "half" and, unless
//       HALF is "-", waits (up to 20 s) for the file HALF to exist. Ends with
//       "published COUNT timeouts T" and detaches (subscribers then hear kPeerGone).
//   pubsub_peer subscribe DIR NS TOPIC MAX_SIZE MODE ARG [TOUCH]
//       prints "ready CURSOR" (then creates the file TOUCH, if given) and receives until
//       the publisher has gone, checking order and content:
//         steady  reads as fast as it can
//         leave   leaves after ARG messages
//         lag     after its first message, sleeps until the publisher is a whole ring
//                 ahead (or gone), then reads on: lapped on a lossy topic
//         pause   sleeps ARG ms after every 1000 messages
//         stall   never reads; sleeps until killed
//       Ends with "done received=R lost=L gaps=G joined=C": L is what the topic reported
//       lost (summed kLapped counts), G the messages missing between the sequence numbers
//       it saw; exits 1 if they differ or anything arrived out of order or corrupted.
//
// Exit status 0 on success; otherwise it prints "error: ..." and exits 1.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/message_pattern.h"
#include "shmd/client/topic.h"

namespace {

using namespace std::chrono_literals;
using shmd::Status;
using Clock = std::chrono::steady_clock;
constexpr uint64_t kStream = 6;

int Fail(const std::string& what) {
  std::printf("error: %s\n", what.c_str());
  std::fflush(stdout);
  return 1;
}

void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

uint32_t SizeOf(uint64_t seq, uint32_t max) {
  return std::max<uint32_t>(8, shmd::testing::PatternSize(kStream, seq, max));
}

template <class Pred>
bool WaitUntil(Pred&& pred, std::chrono::milliseconds timeout) {
  const auto end = Clock::now() + timeout;
  while (!pred()) {
    if (Clock::now() >= end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

int Publish(const shmd::ShmDir& dir, const std::string& topic, uint64_t count, uint32_t max_size,
            uint64_t timeout_ms, uint64_t pace_every, uint64_t pace_us, uint32_t subs,
            const std::string& half_file) {
  auto pub = shmd::Publisher::Open(dir, topic);
  if (!pub.ok()) return Fail(pub.error().message());
  if (!WaitUntil([&] { return pub->subscribers() >= subs; }, 20s)) {
    return Fail("fewer than " + std::to_string(subs) + " subscribers after 20 s");
  }
  Say("start");
  std::vector<std::byte> message(max_size);
  uint64_t timeouts = 0;
  const auto give_up = Clock::now() + 120s;
  for (uint64_t seq = 0; seq < count; ++seq) {
    if (seq == count / 2) {
      Say("half");
      if (half_file != "-" && !WaitUntil([&] { return std::filesystem::exists(half_file); }, 20s)) {
        return Fail("nobody joined at half-time");
      }
    }
    std::span<std::byte> bytes(message.data(), SizeOf(seq, max_size));
    shmd::testing::FillPattern(kStream, seq, bytes);
    for (;;) {
      Status s = pub->Publish(bytes, std::chrono::milliseconds(timeout_ms));
      if (s == Status::kOk) break;
      if ((s != Status::kTimeout && s != Status::kFull) || Clock::now() > give_up) {
        return Fail("message " + std::to_string(seq) + ": " + shmd::StatusName(s));
      }
      if (timeouts++ == 0) Say("throttled");
    }
    if (pace_every != 0 && seq % pace_every == pace_every - 1) {
      std::this_thread::sleep_for(std::chrono::microseconds(pace_us));
    }
  }
  Say("published " + std::to_string(count) + " timeouts " + std::to_string(timeouts));
  return 0;
}

int Subscribe(const shmd::ShmDir& dir, const std::string& topic, uint32_t max_size,
              const std::string& mode, uint64_t arg, const std::string& touch) {
  auto sub = shmd::Subscriber::Open(dir, topic);
  if (!sub.ok()) return Fail(sub.error().message());
  const uint64_t joined = sub->cursor();
  Say("ready " + std::to_string(joined));
  if (!touch.empty()) {
    std::FILE* f = std::fopen(touch.c_str(), "w");
    if (f == nullptr) return Fail("cannot create " + touch);
    std::fclose(f);
  }
  if (mode == "stall") {
    std::this_thread::sleep_for(5min);  // until the test kills it
    return 0;
  }
  const auto& published = sub->ring().segment().control<shmd::layout::BroadcastControl>().published;
  std::vector<std::byte> buffer(max_size);
  uint64_t expected = joined;
  uint64_t gaps = 0;
  uint64_t reported = 0;
  for (;;) {
    if (mode == "leave" && sub->received() == arg) break;
    shmd::TopicReceive r = sub->Receive(buffer, 30s);
    if (r.status == Status::kPeerGone) break;
    if (r.status == Status::kLapped) {
      reported += r.lost;
      continue;
    }
    if (r.status != Status::kOk) {
      return Fail("at " + std::to_string(expected) + ": " + shmd::StatusName(r.status));
    }
    if (r.size < 8) return Fail("a message of " + std::to_string(r.size) + " bytes");
    uint64_t seq = 0;
    std::memcpy(&seq, buffer.data(), 8);
    if (seq < expected) {
      return Fail("message " + std::to_string(seq) + " after " + std::to_string(expected - 1));
    }
    const std::string bad = shmd::testing::CheckPattern(
        kStream, seq, SizeOf(seq, max_size), std::span<const std::byte>(buffer.data(), r.size));
    if (!bad.empty()) return Fail("message " + std::to_string(seq) + ": " + bad);
    gaps += seq - expected;
    expected = seq + 1;
    if (mode == "lag" && sub->received() == 1) {
      // Deliberately slow: let the publisher get a whole ring ahead (or finish).
      WaitUntil([&] { return published.load() >= sub->cursor() + sub->depth() + 1; }, 30s);
    }
    if (mode == "pause" && sub->received() % 1000 == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(arg));
    }
  }
  Say("done received=" + std::to_string(sub->received()) + " lost=" + std::to_string(sub->lost()) +
      " gaps=" + std::to_string(gaps) + " joined=" + std::to_string(joined));
  if (reported != sub->lost()) return Fail("lost() disagrees with the kLapped counts");
  if (gaps != sub->lost()) return Fail("reported losses differ from the sequence gaps");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() >= 4) {
    const shmd::ShmDir dir{a[1], a[2]};
    auto n = [&](size_t i) { return std::stoull(a[i]); };
    if (a[0] == "publish" && a.size() == 11) {
      return Publish(dir, a[3], n(4), static_cast<uint32_t>(n(5)), n(6), n(7), n(8),
                     static_cast<uint32_t>(n(9)), a[10]);
    }
    if (a[0] == "subscribe" && (a.size() == 7 || a.size() == 8)) {
      return Subscribe(dir, a[3], static_cast<uint32_t>(n(4)), a[5], n(6),
                       a.size() == 8 ? a[7] : "");
    }
  }
  std::fprintf(stderr, "usage: pubsub_peer publish|subscribe DIR NS TOPIC ...\n");
  return 2;
}
