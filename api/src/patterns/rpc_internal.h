// Private to the request/response sources (rpc.h): the client's and server's state, and
// the helpers both use.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shmd/client/rpc.h"
#include "shmd/dataplane/endpoints.h"
#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/segment.h"

namespace shmd::internal {

// "Wait forever" as a timeout that Clock::now() + timeout cannot overflow.
inline Nanos BoundedTimeout(Nanos timeout) {
  return std::clamp<Nanos>(timeout, Nanos::zero(), std::chrono::hours(24 * 365 * 10));
}

// Whether an endpoint of `role` is live on `segment`. With `check_process`, asks the
// kernel about each one found and clears the dead (a few syscalls each: off the hot path).
bool RoleLive(const Segment& segment, layout::EndpointRole role, bool check_process);

// A suffix from shared memory is trusted only if it is 1 to 31 of [A-Za-z0-9-],
// NUL-terminated: it becomes part of a file name.
bool ValidSuffix(const char (&suffix)[kRpcSuffixSize]);

struct RpcFactory {
  using ClientState = RpcClient::State;
  using ServerState = RpcServer::State;
  static RpcClient MakeClient(std::unique_ptr<RpcClient::State> state) {
    return RpcClient(std::move(state));
  }
  static RpcServer MakeServer(std::unique_ptr<RpcServer::State> state) {
    return RpcServer(std::move(state));
  }
};

}  // namespace shmd::internal

namespace shmd {

struct RpcClient::State {
  struct Call {
    RpcCallId id = 0;
    Clock::time_point deadline{};
    bool active = false;  // started, not yet finished by Poll/Await/Cancel
    bool done = false;    // its result is known: `result` (and `response` if kOk)
    Status result = Status::kOk;
    RpcResponse response;  // buffer reused by later calls in this entry
  };

  ~State();

  std::shared_ptr<void> keepalive;  // first: the daemon's leases outlive the handles
  std::optional<MpmcProducer> requests;
  std::optional<SpscConsumer> replies;
  std::function<void()> remove_reply_ring;
  std::string suffix;
  std::string reply_name;
  RpcClientOptions options;
  uint32_t max_request = 0;
  std::vector<Call> calls;  // max_in_flight entries, active or free
  size_t in_flight = 0;
  RpcCallId next_id = 1;
  uint64_t discarded = 0;
  bool server_seen = false;  // a live server was seen since the last kPeerGone
  Clock::time_point next_server_check{};

  Call* Find(RpcCallId id);
  // Routes one reply-ring record to its pending call, or drops it.
  void Route(const MessageView& view);
  // Routes every record already in the reply ring; kEmpty, or the ring's failure.
  Status Drain();
  // Every pending call without a result fails with `status`.
  void FailAll(Status status);
  // True if the server is still there (asks the kernel; clears dead endpoints).
  bool ServerAlive();
  Status Finish(Call* call, Status status, RpcResponse* out);
};

struct RpcServer::State {
  ~State();

  std::shared_ptr<void> keepalive;  // first
  std::optional<MpmcConsumer> requests;
  internal::MpmcRingView ring;  // to sleep while no client is attached
  AdaptiveSpin spin{std::chrono::microseconds(50)};
  std::string service;
  internal::RpcReplyOpener open_reply;
  RpcServerOptions options;
  struct CachedReply {
    internal::RpcReplyEnd end;
    PeerWatch consumer;  // the client: a reply to one that left is dropped, not written
  };
  std::unordered_map<std::string, CachedReply> replies;  // by suffix
  Clock::time_point next_sweep{};
  uint64_t served = 0;
  uint64_t expired = 0;
  uint64_t malformed = 0;
  uint64_t dropped = 0;

  // The reply ring of `suffix`, attached now if it was not (nullptr: the client has gone).
  CachedReply* ReplyRing(const std::string& suffix);
  // Lets go of the reply rings whose client has gone.
  void Sweep();
  // Waits until some request is claimed in the ring (no client attached meanwhile).
  Status WaitForRequests(Clock::time_point deadline);
};

}  // namespace shmd
