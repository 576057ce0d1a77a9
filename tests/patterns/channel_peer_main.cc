// The other process of channel_test: a channel sender or a receiver that holds blocks.
//
//   channel_peer send DIR NS NAME COUNT MAX_SIZE   sends COUNT pattern messages (sizes up
//       to MAX_SIZE: small ones with Send, the rest loaned), prints "sent COUNT", exits
//   channel_peer hold DIR NS NAME K                receives K messages, keeps them,
//       prints "holding K" and sleeps until killed
//
// Exit status 0 on success; otherwise it prints "error: ..." and exits 1.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/message_pattern.h"
#include "shmd/client/channel.h"

namespace {

using shmd::Status;
constexpr auto kTimeout = std::chrono::seconds(30);

int Fail(const std::string& what) {
  std::printf("error: %s\n", what.c_str());
  std::fflush(stdout);
  return 1;
}

int Send(const shmd::ShmDir& dir, const std::string& name, uint64_t count, uint32_t max_size) {
  auto tx = shmd::ChannelSender::Open(dir, name);
  if (!tx.ok()) return Fail(tx.error().message());
  std::printf("ready\n");
  std::fflush(stdout);
  std::vector<std::byte> scratch(max_size);
  for (uint64_t seq = 0; seq < count; ++seq) {
    const uint32_t size = shmd::testing::PatternSize(1, seq, max_size);
    Status s;
    if (size <= tx->inline_max() || seq % 7 == 0) {
      // Copy-in (inline when small, loaned behind the scenes when not).
      std::span<std::byte> bytes(scratch.data(), size);
      shmd::testing::FillPattern(1, seq, bytes);
      s = tx->Send(bytes, kTimeout);
    } else {
      shmd::ChannelLoan loan;
      s = tx->Loan(size, &loan, kTimeout);
      if (s == Status::kOk) {
        shmd::testing::FillPattern(1, seq, loan.bytes());
        s = tx->Publish(std::move(loan), kTimeout);
      }
    }
    if (s != Status::kOk) {
      return Fail("message " + std::to_string(seq) + ": " + shmd::StatusName(s));
    }
  }
  std::printf("sent %llu\n", static_cast<unsigned long long>(count));
  std::fflush(stdout);
  return 0;
}

int Hold(const shmd::ShmDir& dir, const std::string& name, uint64_t k) {
  auto rx = shmd::ChannelReceiver::Open(dir, name);
  if (!rx.ok()) return Fail(rx.error().message());
  std::vector<shmd::ChannelMessage> held(k);
  for (auto& m : held) {
    Status s = rx->Receive(&m, kTimeout);
    if (s != Status::kOk) return Fail(std::string("receive: ") + shmd::StatusName(s));
  }
  std::printf("holding %llu\n", static_cast<unsigned long long>(k));
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::minutes(5));  // until the test kills it
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() >= 4) {
    const shmd::ShmDir dir{a[1], a[2]};
    if (a[0] == "send" && a.size() == 6) {
      return Send(dir, a[3], std::stoull(a[4]), static_cast<uint32_t>(std::stoul(a[5])));
    }
    if (a[0] == "hold" && a.size() == 5) return Hold(dir, a[3], std::stoull(a[4]));
  }
  std::fprintf(stderr, "usage: channel_peer send|hold DIR NS NAME ...\n");
  return 2;
}
