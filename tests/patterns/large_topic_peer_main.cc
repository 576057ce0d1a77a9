// A subscriber process of large_topic_test (the test itself is the publisher).
//
//   large_topic_peer DIR NS TOPIC MAX MODE [ARG]
//     Joins, prints "ready <id>", then receives until the publisher has gone (kPeerGone),
//     checking every message: its content (the message pattern of its sequence number, a
//     size from 64 KiB up to MAX), that it lies inside the pool mapping (zero copies),
//     that sequence numbers only grow and that every gap equals the loss reported with
//     the message after it (LargeMessage::lost_before). Modes:
//       steady       reads and releases as fast as it can
//       leave N      leaves after N messages (prints "left")
//       leaveheld N  the same, holding all N messages (unreleased) when it leaves
//       stall FILE   holds its first message, reads nothing more until FILE exists
//                    (polled, up to 20 s), then reads on as steady
//       hold K       keeps K messages without releasing them, prints "holding", and
//                    sleeps until killed
//     Ends with "done received=R lost=L gaps=G first=F last=S" (exit 0), or "error ..."
//     (exit 1). Every wait is bounded (20 s).
//   large_topic_peer DIR NS TOPIC MAX publish N
//     Publishes N messages (the same pattern; lossless waits up to 20 s), then loans one
//     more block and keeps it, prints "published" and sleeps until killed.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/peer_output.h"
#include "patterns/large_topic_pattern.h"
#include "shmd/client/large_topic.h"

namespace {

using namespace std::chrono_literals;
using shmd::Status;
using shmd::testing::Fail;
using shmd::testing::Say;

constexpr uint64_t kStream = shmd::testing::kLargeStream;
constexpr auto kPatience = 20s;

// publish N: N messages, then a loan it never publishes; "published", sleeps until killed.
int Publish(const shmd::ShmDir& dir, const std::string& topic, uint32_t max, uint64_t n) {
  shmd::LargePublisher pub = shmd::testing::Must(shmd::LargePublisher::Open(dir, topic));
  shmd::LargeLoan loan;
  for (uint64_t i = 0; i < n; ++i) {
    if (Status s = pub.Loan(&loan, kPatience); s != Status::kOk) Fail("loan failed");
    const uint64_t seq = pub.published();
    const uint32_t size = shmd::testing::LargePatternSize(seq, max);
    shmd::testing::FillPattern(kStream, seq, loan.bytes().first(size));
    if (Status s = pub.Publish(loan, size, kPatience); s != Status::kOk) {
      Fail(std::string("publish: ") + shmd::StatusName(s));
    }
  }
  if (pub.Loan(&loan, kPatience) != Status::kOk) Fail("last loan failed");
  Say("published");
  std::this_thread::sleep_for(60s);
  Fail("not killed");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) Fail("usage: large_topic_peer DIR NS TOPIC MAX MODE [ARG]");
  const shmd::ShmDir dir{argv[1], argv[2]};
  const std::string topic = argv[3];
  const uint32_t max = static_cast<uint32_t>(std::stoul(argv[4]));
  const std::string mode = argv[5];
  const std::string arg = argc > 6 ? argv[6] : "";

  if (mode == "publish") return Publish(dir, topic, max, std::stoull(arg));
  shmd::LargeSubscriber sub = shmd::testing::Must(shmd::LargeSubscriber::Join(dir, topic));
  Say("ready " + std::to_string(sub.id()));
  const uint8_t* pool_begin = sub.pool_segment().base();
  const uint8_t* pool_end = pool_begin + sub.pool_segment().size();

  std::vector<shmd::LargeMessage> held;
  uint64_t gaps = 0;
  uint64_t first = 0;
  uint64_t last = 0;
  for (;;) {
    shmd::LargeMessage m;
    const Status s = sub.Receive(&m, kPatience);
    if (s == Status::kPeerGone) break;
    if (s != Status::kOk) Fail(std::string("receive: ") + shmd::StatusName(s));
    const uint64_t seq = m.sequence();
    const auto* p = reinterpret_cast<const uint8_t*>(m.bytes().data());
    if (p < pool_begin || p + m.bytes().size() > pool_end) Fail("message not in the pool mapping");
    if (sub.received() == 1) {
      first = seq;
      if (m.lost_before() != 0) Fail("first message reports losses");
    } else {
      if (seq <= last) Fail("sequence " + std::to_string(seq) + " after " + std::to_string(last));
      if (seq - last - 1 != m.lost_before()) {
        Fail("gap of " + std::to_string(seq - last - 1) + " before " + std::to_string(seq) +
             " but lost_before " + std::to_string(m.lost_before()));
      }
      gaps += seq - last - 1;
    }
    last = seq;
    const uint32_t size = shmd::testing::LargePatternSize(seq, max);
    if (std::string bad = shmd::testing::CheckPattern(kStream, seq, size, m.bytes());
        !bad.empty()) {
      Fail(bad);
    }
    if (mode == "leaveheld") held.push_back(std::move(m));
    if ((mode == "leave" || mode == "leaveheld") && sub.received() == std::stoull(arg)) {
      m.Release();
      sub.Leave();  // leaveheld: with every message still held (the reaper drops them)
      Say("left");
      break;
    }
    if (mode == "hold") {
      held.push_back(std::move(m));
      if (held.size() == std::stoull(arg)) {
        Say("holding");
        std::this_thread::sleep_for(60s);
        Fail("not killed");
      }
    }
    if (mode == "stall" && sub.received() == 1) {
      const auto deadline = std::chrono::steady_clock::now() + kPatience;
      while (!std::filesystem::exists(arg)) {
        if (std::chrono::steady_clock::now() >= deadline) Fail("no " + arg);
        std::this_thread::sleep_for(1ms);
      }
    }
  }
  if (sub.lost() != gaps) Fail("lost " + std::to_string(sub.lost()) + " != gaps");
  Say("done received=" + std::to_string(sub.received()) + " lost=" + std::to_string(sub.lost()) +
      " gaps=" + std::to_string(gaps) + " first=" + std::to_string(first) +
      " last=" + std::to_string(last));
  return 0;
}
