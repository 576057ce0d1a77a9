// Request/response over shared memory: one server and many clients of a named service,
// with correlation ids, per-call deadlines, cancellation, and a dead server turned into
// an error on every pending call.
//
//   RpcServer server = RpcServer::Open(dir, "calc").value();     // or Open(client, "calc")
//   server.Serve([](RpcRequest& r) { r.Reply(Compute(r.bytes())); }, stop);
//
//   RpcClient calc = RpcClient::Open(dir, "calc").value();
//   RpcResponse resp;
//   switch (calc.Call(request, 50ms, &resp)) {
//     case Status::kOk:       resp.ok() ? Use(resp.bytes()) : Log(resp.text()); break;
//     case Status::kTimeout:  ...  // DEADLINE_EXCEEDED: a late answer is dropped, never
//                                  // handed to a later call
//     case Status::kPeerGone: ...  // no server, or it died with the call pending
//   }
//
// Objects. Service "calc" is the MPMC ring "calc" (queue_depth slots, each an
// RpcRequestHeader plus max_request bytes): every client is one of its producers, the
// server its consumer. Each client creates its own SPSC reply ring
// "calc.reply.<suffix>" (suffix: pid, a per-process counter and random bits, so never
// reused), consumes it, and removes it when it is destroyed. The server attaches to a
// client's reply ring as its producer the first time it sees one of its requests and
// keeps it (one cache entry per client), dropping it once that client has gone (its
// consumer is no longer attached), checked at every reply and once a second; at that
// once-a-second check it also deletes the ring, for a client killed before it could.
//
// Why a ring per client rather than one shared reply ring: a response then has exactly
// one possible reader, so a slow or dead client never blocks the others' answers, and no
// response can be read by the wrong process. Why the reply ring's name in every request
// rather than a registration step: a request is self-contained, so a server that restarts
// needs no state to answer the requests already queued.
//
// Correlation. A call id is a per-client 64-bit counter from 1, never reused. A client
// keeps a table of its pending calls; a response whose id is not pending (the call timed
// out, was cancelled, or failed) is dropped and counted (discarded()), so a late answer
// can never be taken for a later call's. A response read after its call's deadline is
// dropped too: a call either gets its answer before its deadline or returns kTimeout.
// Deadlines are absolute CLOCK_MONOTONIC nanoseconds (steady_clock on Linux): one host,
// one clock. The server skips requests already past their deadline without running the
// handler (expired_skipped()), and waits for room in a client's reply ring at most until
// the request's deadline.
//
// Dead server. A client waits in slices (WaitOptions::sleep_slice, 10 ms by default); it
// hears at once when the server, having answered it before, leaves its reply ring
// (SPSC peer watch), and at every slice it asks the kernel whether any consumer of the
// request ring still runs: if none does, every pending call fails with kPeerGone, long
// before its deadline. Start() refuses at once (kPeerGone) when no server is attached.
// One server per service: the reply rings are SPSC, so a second server process could not
// answer a client the first one already answers (Open refuses it with kBusy while the
// first one lives). A dead server's requests still queued are answered by the next one;
// a request the dead server had taken is lost (its caller got kPeerGone).
//
// Copies. A request is copied into its ring slot (one copy) and out of it by the server
// before the handler runs (a second copy): the slot is released at once, so a server
// killed inside a slow handler never leaves a claimed slot that would stall the ring
// (mpmc_ring.h, "Limitations"). A response is written straight into the reply ring
// (Reply copies the bytes once; ReplyInPlace lets the handler write in place) and copied
// out once by the client into its RpcResponse, whose buffer is reused across calls.
//
// Memory ordering: none of its own. Every byte of a request or response travels through
// a ring's publication (mpmc_ring.h (A)/(B), spsc_ring.h (A)/(B)); the headers are
// written before the commit that publishes them and read after the peek that acquires
// them. The only other shared reads (the server's look at the MPMC positions while no
// client is attached, the endpoint tables for liveness) decide whether to look again,
// never what to read.
//
// Thread safety: an RpcClient is used by one thread at a time (it may have many calls in
// flight); an RpcServer and its RpcRequests by one thread at a time. Use one RpcClient
// per thread for concurrent callers: each has its own reply ring.
//
// Daemon mode: the Client& factories create the objects through the daemon and hold
// leases; that Client must outlive the RpcClient (which deletes its reply ring through
// it) and the RpcServer (which opens reply rings through it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmd/dataplane/mpmc_ring.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"
#include "shmd/dataplane/spsc_ring.h"
#include "shmd/dataplane/status.h"
#include "shmd/dataplane/wait.h"

namespace shmd {

class Client;  // shmd/client/client.h: the daemon-facing factories below take one
namespace internal {
struct RpcFactory;  // builds clients and servers from their parts (rpc.cc)
}

struct RpcSpec {
  uint32_t max_request = 64 * 1024;  // payload bytes of a request: 1 to 16 MiB - 64
  uint32_t queue_depth = 64;         // request slots: a power of two, 2 to 65536
  uint32_t mode = 0600;              // file mode (0660: the group's processes may call)
};

struct RpcClientOptions {
  uint32_t max_response = 64 * 1024;  // payload bytes of a response: 1 to 16 MiB - 64
  uint32_t max_in_flight = 16;        // calls started and not yet finished: 1 to 4096
  uint32_t mode = 0600;               // of the reply ring: 0660 if the server is another uid
  WaitOptions wait{};                 // busy_poll for the lowest latency (burns a core)
};

struct RpcServerOptions {
  WaitOptions wait{};
};

// The request ring's geometry for `spec` (kInvalidArgument says what is wrong).
Result<MpmcRingSpec> RpcRequestRingSpec(const RpcSpec& spec);
// The reply ring's geometry for a client's options.
Result<SpscRingSpec> RpcReplyRingSpec(const RpcClientOptions& options);
// "<service>.reply.<suffix>".
std::string RpcReplyRingName(std::string_view service, std::string_view suffix);

// Embedded mode: creates the request ring in `dir` (it must not exist), and removes it.
VoidResult CreateRpcService(const ShmDir& dir, std::string_view service, const RpcSpec& spec = {},
                            const CreateOptions& options = {});
VoidResult RemoveRpcService(const ShmDir& dir, std::string_view service);
// Through the daemon (the same spec again is a no-op, so either side may create).
VoidResult CreateRpcService(Client& client, std::string_view service, const RpcSpec& spec = {});
VoidResult DeleteRpcService(Client& client, std::string_view service, bool force = false);

// --- wire format (fixed width, host byte order: one host) --------------------------------

inline constexpr uint32_t kRpcRequestMagic = 0x31515052;   // "RPQ1"
inline constexpr uint32_t kRpcResponseMagic = 0x31535052;  // "RPS1"
inline constexpr size_t kRpcSuffixSize = 32;               // NUL-padded, [A-Za-z0-9-]

// At the start of each request slot's payload; `length` request bytes follow.
struct RpcRequestHeader {
  uint32_t magic;              // 0   kRpcRequestMagic
  uint32_t method;             // 4   the caller's; the server's handler interprets it
  uint64_t call_id;            // 8   per client, from 1, never reused
  int64_t deadline_ns;         // 16  CLOCK_MONOTONIC
  uint32_t length;             // 24  request bytes after this header
  uint32_t reserved;           // 28  0
  char reply[kRpcSuffixSize];  // 32  the client's reply-ring suffix
};
static_assert(sizeof(RpcRequestHeader) == 64);

// At the start of each reply-ring record; `length` response bytes follow.
struct RpcResponseHeader {
  uint32_t magic;     // 0   kRpcResponseMagic
  uint32_t code;      // 4   0: ok; otherwise the handler's error code (bytes: its message)
  uint64_t call_id;   // 8
  uint32_t length;    // 16
  uint32_t reserved;  // 20
};
static_assert(sizeof(RpcResponseHeader) == 24);

// Error codes the library itself puts in a response (handlers use their own, below 1000).
inline constexpr uint32_t kRpcNoReply = 1000;           // Serve's handler replied nothing
inline constexpr uint32_t kRpcResponseTooLarge = 1001;  // over the client's max_response

using RpcCallId = uint64_t;

// A response: the handler's bytes (code 0) or its error code and message.
class RpcResponse {
 public:
  bool ok() const { return code_ == 0; }
  uint32_t code() const { return code_; }
  RpcCallId call_id() const { return call_id_; }
  std::span<const std::byte> bytes() const { return {bytes_.data(), size_}; }
  std::string_view text() const { return {reinterpret_cast<const char*>(bytes_.data()), size_}; }

 private:
  friend class RpcClient;
  std::vector<std::byte> bytes_;  // capacity kept across calls
  size_t size_ = 0;
  uint32_t code_ = 0;
  RpcCallId call_id_ = 0;
};

class RpcClient {
 public:
  static Result<RpcClient> Open(const ShmDir& dir, std::string_view service,
                                const RpcClientOptions& options = {});
  static Result<RpcClient> Open(Client& client, std::string_view service,
                                const RpcClientOptions& options = {});

  RpcClient(RpcClient&&) noexcept;
  RpcClient& operator=(RpcClient&&) noexcept;
  ~RpcClient();  // pending calls are forgotten; detaches, then removes the reply ring

  // One call: Start then Await. kOk: *out holds the response (check out->ok() for the
  // handler's verdict). Otherwise the status of Start or Await.
  Status Call(std::span<const std::byte> request, Nanos timeout, RpcResponse* out,
              uint32_t method = 0) noexcept;

  // Sends a request due by `deadline`; *id names the call. kTooLarge (over max_request),
  // kFull (max_in_flight calls pending), kPeerGone (no server attached), kTimeout (the
  // request ring stayed full until the deadline), kClosed (the service was deleted),
  // kInvalidArgument (null id). Nothing is pending unless it returns kOk.
  Status Start(std::span<const std::byte> request, Clock::time_point deadline, RpcCallId* id,
               uint32_t method = 0) noexcept;
  // Without waiting: kEmpty while the call is pending; otherwise as Await.
  Status Poll(RpcCallId id, RpcResponse* out) noexcept;
  // Until the call's response or its deadline: kOk, kTimeout, kPeerGone (the server died
  // or left), kClosed (the reply ring or service was deleted), kCorrupted (the reply ring
  // holds an impossible record), kInvalidArgument (not a pending call: unknown, or already
  // finished). The call is finished afterwards, whatever the result.
  Status Await(RpcCallId id, RpcResponse* out) noexcept;
  // Finishes a pending call: its response, if it ever comes, is dropped. kOk, or
  // kInvalidArgument if `id` is not pending. (A Poll/Await of it then says
  // kInvalidArgument: cancelling is the caller's own act, so nothing waits to hear it.)
  Status Cancel(RpcCallId id) noexcept;

  size_t in_flight() const;
  uint64_t discarded() const;  // responses dropped: late, cancelled, or for failed calls
  uint32_t max_request() const;
  const std::string& reply_ring() const;

 private:
  friend struct internal::RpcFactory;
  struct State;
  explicit RpcClient(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

class RpcServer;

// A request taken by RpcServer::Next, with its payload copied out of the ring. It answers
// through its server: it must not outlive it.
class RpcRequest {
 public:
  std::span<const std::byte> bytes() const { return {payload_.data(), size_}; }
  std::string_view text() const { return {reinterpret_cast<const char*>(payload_.data()), size_}; }
  uint32_t method() const { return method_; }
  RpcCallId call_id() const { return call_id_; }
  Clock::time_point deadline() const { return deadline_; }
  bool expired() const { return Clock::now() >= deadline_; }
  bool replied() const { return replied_; }

  // Answers the call (once: kInvalidArgument after that). kTooLarge if over the client's
  // max_response (nothing sent: ReplyError may follow); kTimeout if the client's reply
  // ring had no room before the deadline; kPeerGone/kClosed if the client has gone. Any
  // status but kOk and kTooLarge means the answer was dropped (replies_dropped()).
  Status Reply(std::span<const std::byte> response) noexcept;
  Status ReplyError(uint32_t code, std::string_view message) noexcept;
  // Zero-copy: `write` fills the span (`size` bytes, in the reply ring) and returns how
  // many it used (1 to size). Same results as Reply.
  Status ReplyInPlace(uint32_t size, const std::function<uint32_t(std::span<std::byte>)>& write);

 private:
  friend class RpcServer;
  Status Send(uint32_t code, uint32_t size,
              const std::function<uint32_t(std::span<std::byte>)>& write) noexcept;
  void* server_ = nullptr;  // RpcServer::State
  std::vector<std::byte> payload_;
  size_t size_ = 0;
  uint32_t method_ = 0;
  RpcCallId call_id_ = 0;
  Clock::time_point deadline_{};
  char reply_[kRpcSuffixSize] = {};
  bool replied_ = true;
};

class RpcServer {
 public:
  static Result<RpcServer> Open(const ShmDir& dir, std::string_view service,
                                const RpcServerOptions& options = {});
  static Result<RpcServer> Open(Client& client, std::string_view service,
                                const RpcServerOptions& options = {});

  RpcServer(RpcServer&&) noexcept;
  RpcServer& operator=(RpcServer&&) noexcept;
  ~RpcServer();

  // The next live request into *out. kOk; kTimeout; kClosed (the service was deleted).
  // Requests past their deadline, and malformed ones, are skipped (and counted) without
  // being returned. Waits for new clients while none is attached.
  Status Next(RpcRequest* out, Nanos timeout) noexcept;

  // Runs `handler` on every request until `stop` reads true (checked at least every
  // 50 ms) or Next fails; a request the handler did not answer gets kRpcNoReply. Returns
  // kOk when stopped, else Next's status.
  Status Serve(const std::function<void(RpcRequest&)>& handler, const std::atomic<bool>& stop);

  uint64_t served() const;           // requests handed out by Next
  uint64_t expired_skipped() const;  // past their deadline when taken: never handled
  uint64_t malformed_skipped() const;
  uint64_t replies_dropped() const;  // client gone, reply ring full until the deadline
  size_t cached_clients() const;     // reply rings attached

 private:
  friend struct internal::RpcFactory;
  friend class RpcRequest;
  struct State;
  explicit RpcServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

namespace internal {

// A reply ring attached by the server, with whatever keeps it (a daemon lease).
struct RpcReplyEnd {
  std::shared_ptr<void> keepalive;  // first: let go after the producer has detached
  std::unique_ptr<SpscProducer> producer;
  std::function<void()> remove;  // deletes the ring (its client died without doing so)
};
using RpcReplyOpener = std::function<Result<RpcReplyEnd>(const std::string& name)>;

// The pieces the factories assemble (embedded: files in a ShmDir; daemon: leases).
Result<RpcClient> AssembleRpcClient(std::shared_ptr<void> keepalive, MpmcProducer requests,
                                    SpscConsumer replies, std::string suffix,
                                    std::function<void()> remove_reply_ring,
                                    const RpcClientOptions& options);
Result<RpcServer> AssembleRpcServer(std::shared_ptr<void> keepalive, MpmcConsumer requests,
                                    std::string service, RpcReplyOpener open_reply,
                                    const RpcServerOptions& options);
// A fresh reply-ring suffix: "<pid>-<counter>-<random hex>".
std::string NewRpcSuffix();

}  // namespace internal

}  // namespace shmd
