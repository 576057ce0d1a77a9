// What rpc_test and rpc_peer send each other: requests that name their caller and
// sequence number, and a handler whose answers prove which request they answer.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "shmd/client/rpc.h"

namespace shmd::testing {

enum RpcTestMethod : uint32_t {
  kMethodCheck = 1,  // answer RpcCheckAnswer for the request (after its sleep_us)
  kMethodError = 2,  // ReplyError(7, "boom")
  kMethodEcho = 3,   // the request's bytes back (after its sleep_us, if it has a prefix)
};

struct RpcCheckRequest {
  uint64_t client;
  uint64_t seq;
  uint32_t sleep_us;  // the handler sleeps this long first
  uint32_t filler;    // bytes of filler after this prefix, derived from client and seq
};

struct RpcCheckAnswer {
  uint64_t client;
  uint64_t seq;
  uint64_t checksum;  // of the whole request
};

inline uint64_t RpcChecksum(std::span<const std::byte> bytes) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (std::byte b : bytes) h = (h ^ static_cast<uint8_t>(b)) * 1099511628211ull;
  return h;
}

inline std::vector<std::byte> MakeCheckRequest(uint64_t client, uint64_t seq, uint32_t sleep_us,
                                               uint32_t filler) {
  std::vector<std::byte> out(sizeof(RpcCheckRequest) + filler);
  RpcCheckRequest r{client, seq, sleep_us, filler};
  std::memcpy(out.data(), &r, sizeof r);
  for (uint32_t i = 0; i < filler; ++i) {
    out[sizeof r + i] = static_cast<std::byte>((client * 131 + seq * 7 + i) & 0xff);
  }
  return out;
}

// A well-behaved handler's sleep: never past the call's deadline, after which its answer
// would be dropped anyway.
inline void SleepWithin(const RpcRequest& r, uint32_t us) {
  std::this_thread::sleep_until(
      std::min(r.deadline(), Clock::now() + std::chrono::microseconds(us)));
}

// The handler both the peer server and in-process servers run.
inline void HandleTestRequest(RpcRequest& r) {
  RpcCheckRequest in{};
  const bool has_prefix = r.bytes().size() >= sizeof in;
  if (has_prefix) std::memcpy(&in, r.bytes().data(), sizeof in);
  switch (r.method()) {
    case kMethodCheck: {
      if (!has_prefix) {
        (void)r.ReplyError(9, "short request");
        return;
      }
      if (in.sleep_us != 0) SleepWithin(r, in.sleep_us);
      RpcCheckAnswer a{in.client, in.seq, RpcChecksum(r.bytes())};
      (void)r.Reply({reinterpret_cast<const std::byte*>(&a), sizeof a});
      return;
    }
    case kMethodError:
      (void)r.ReplyError(7, "boom");
      return;
    case kMethodEcho:
      if (has_prefix && in.sleep_us != 0) {
        SleepWithin(r, in.sleep_us);
      }
      (void)r.Reply(r.bytes());
      return;
    default:
      (void)r.ReplyError(5, "no such method");
  }
}

}  // namespace shmd::testing
