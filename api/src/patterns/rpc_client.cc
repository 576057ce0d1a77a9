// Request/response, the client side: requests into the service's MPMC ring, responses
// from this client's own SPSC reply ring, routed to pending calls by id (rpc.h).
#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

#include "rpc_internal.h"

namespace shmd {

using internal::RoleLive;
using layout::EndpointRole;

RpcClient::State::~State() {
  // The handles leave the objects first, then the leases end, then the ring goes: the
  // server sees this consumer leave and drops its end.
  replies.reset();
  requests.reset();
  keepalive.reset();
  if (remove_reply_ring) remove_reply_ring();
}

RpcClient::State::Call* RpcClient::State::Find(RpcCallId id) {
  for (Call& c : calls) {
    if (c.active && c.id == id) return &c;
  }
  return nullptr;
}

void RpcClient::State::Route(const MessageView& view) {
  RpcResponseHeader h;
  if (view.size < sizeof h) {
    ++discarded;
    return;
  }
  std::memcpy(&h, view.data, sizeof h);
  if (h.magic != kRpcResponseMagic || h.length != view.size - sizeof h) {
    ++discarded;
    return;
  }
  Call* call = Find(h.call_id);
  // Not pending (timed out, cancelled, failed, or never ours), already answered, or past
  // its deadline: the answer is dropped, never handed to another call.
  if (call == nullptr || call->done || Clock::now() >= call->deadline) {
    ++discarded;
    return;
  }
  RpcResponse& r = call->response;
  if (r.bytes_.size() < h.length) r.bytes_.resize(h.length);
  if (h.length != 0) std::memcpy(r.bytes_.data(), view.data + sizeof h, h.length);
  r.size_ = h.length;
  r.code_ = h.code;
  r.call_id_ = h.call_id;
  call->done = true;
  call->result = Status::kOk;
}

Status RpcClient::State::Drain() {
  for (;;) {
    MessageView view;
    Status s = replies->TryPeek(&view);
    if (s != Status::kOk) return s;
    Route(view);
    replies->Release();
  }
}

void RpcClient::State::FailAll(Status status) {
  for (Call& c : calls) {
    if (c.active && !c.done) {
      c.done = true;
      c.result = status;
    }
  }
  if (status == Status::kPeerGone) server_seen = false;  // Start checks again
}

bool RpcClient::State::ServerAlive() {
  next_server_check = Clock::now() + options.wait.sleep_slice;
  return RoleLive(requests->segment(), EndpointRole::kConsumer, /*check_process=*/true);
}

Status RpcClient::State::Finish(Call* call, Status status, RpcResponse* out) {
  if (status == Status::kOk && out != nullptr) {
    // Swap buffers: the caller's old one stays with this entry for a later call.
    std::swap(out->bytes_, call->response.bytes_);
    out->size_ = call->response.size_;
    out->code_ = call->response.code_;
    out->call_id_ = call->response.call_id_;
  }
  call->active = false;
  call->done = false;
  --in_flight;
  return status;
}

// --- RpcClient --------------------------------------------------------------------------

RpcClient::RpcClient(std::unique_ptr<State> state) : state_(std::move(state)) {}
RpcClient::RpcClient(RpcClient&&) noexcept = default;
RpcClient& RpcClient::operator=(RpcClient&&) noexcept = default;
RpcClient::~RpcClient() = default;

size_t RpcClient::in_flight() const { return state_->in_flight; }
uint64_t RpcClient::discarded() const { return state_->discarded; }
uint32_t RpcClient::max_request() const { return state_->max_request; }
const std::string& RpcClient::reply_ring() const { return state_->reply_name; }

Status RpcClient::Call(std::span<const std::byte> request, Nanos timeout, RpcResponse* out,
                       uint32_t method) noexcept {
  RpcCallId id = 0;
  Status s = Start(request, Clock::now() + internal::BoundedTimeout(timeout), &id, method);
  if (s != Status::kOk) return s;
  return Await(id, out);
}

Status RpcClient::Start(std::span<const std::byte> request, Clock::time_point deadline,
                        RpcCallId* id, uint32_t method) noexcept {
  State& st = *state_;
  if (id == nullptr) return Status::kInvalidArgument;
  if (request.size() > st.max_request) return Status::kTooLarge;
  if (st.in_flight >= st.calls.size()) return Status::kFull;
  if (Clock::now() >= deadline) return Status::kTimeout;  // nothing sent: it could not be met
  if (!st.server_seen) {
    // No server known: refuse now rather than let the call wait for its deadline. Once
    // one is seen, its death is caught while waiting (every sleep slice).
    if (!RoleLive(st.requests->segment(), EndpointRole::kConsumer, /*check_process=*/true)) {
      return Status::kPeerGone;
    }
    st.server_seen = true;
  }
  const uint32_t size = static_cast<uint32_t>(sizeof(RpcRequestHeader) + request.size());
  std::span<std::byte> slot;
  Status s = st.requests->TryReserve(&slot);
  if (s == Status::kFull) {
    const Clock::time_point now = Clock::now();
    s = now >= deadline ? Status::kTimeout
                        : st.requests->ReserveFor(internal::BoundedTimeout(deadline - now), &slot);
  }
  if (s != Status::kOk) return s;
  RpcRequestHeader h{};
  h.magic = kRpcRequestMagic;
  h.method = method;
  h.call_id = st.next_id++;
  h.deadline_ns = std::chrono::duration_cast<Nanos>(deadline.time_since_epoch()).count();
  h.length = static_cast<uint32_t>(request.size());
  std::memcpy(h.reply, st.suffix.data(), st.suffix.size());  // checked < kRpcSuffixSize
  std::memcpy(slot.data(), &h, sizeof h);
  if (!request.empty()) std::memcpy(slot.data() + sizeof h, request.data(), request.size());
  if (Status c = st.requests->Commit(size); c != Status::kOk) return c;
  for (State::Call& c : st.calls) {
    if (!c.active) {
      c.id = h.call_id;
      c.deadline = deadline;
      c.active = true;
      c.done = false;
      break;
    }
  }
  ++st.in_flight;
  *id = h.call_id;
  return Status::kOk;
}

Status RpcClient::Poll(RpcCallId id, RpcResponse* out) noexcept {
  State& st = *state_;
  State::Call* call = st.Find(id);
  if (call == nullptr) return Status::kInvalidArgument;
  Status s = st.Drain();
  if (call->done) return st.Finish(call, call->result, out);
  if (s != Status::kEmpty && s != Status::kPeerGone) {
    st.FailAll(s);  // the reply ring is deleted or broken: nothing more will come
    return st.Finish(call, s, out);
  }
  const Clock::time_point now = Clock::now();
  if (now >= call->deadline) return st.Finish(call, Status::kTimeout, out);
  if (now >= st.next_server_check && !st.ServerAlive()) {
    st.FailAll(Status::kPeerGone);
    return st.Finish(call, Status::kPeerGone, out);
  }
  return Status::kEmpty;
}

Status RpcClient::Await(RpcCallId id, RpcResponse* out) noexcept {
  State& st = *state_;
  State::Call* call = st.Find(id);
  if (call == nullptr) return Status::kInvalidArgument;
  for (;;) {
    Status s = st.Drain();
    if (call->done) return st.Finish(call, call->result, out);
    const Clock::time_point now = Clock::now();
    if (now >= call->deadline) return st.Finish(call, Status::kTimeout, out);
    if (s == Status::kEmpty) {
      // Sleep (after the adaptive spin) for at most one slice, so the server's liveness
      // is checked at least that often.
      MessageView view;
      s = st.replies->PeekFor(&view,
                              std::min<Nanos>(call->deadline - now, st.options.wait.sleep_slice));
      if (s == Status::kOk) {
        st.Route(view);
        st.replies->Release();
        continue;
      }
    }
    switch (s) {
      case Status::kTimeout:
      case Status::kEmpty:
        // Nothing in this slice: is the server still there?
        if (Clock::now() >= st.next_server_check && !st.ServerAlive()) {
          if ((void)st.Drain(); call->done) return st.Finish(call, call->result, out);
          st.FailAll(Status::kPeerGone);
        }
        break;
      case Status::kPeerGone:
        // The reply ring's producer (the server) left. If no server runs, every pending
        // call fails now; if one does (a new server that has not answered us yet), poll
        // gently: the SPSC watch keeps saying "gone" until it attaches.
        if (!st.ServerAlive()) {
          if ((void)st.Drain(); call->done) return st.Finish(call, call->result, out);
          st.FailAll(Status::kPeerGone);
        } else {
          std::this_thread::sleep_for(
              std::min<Nanos>(call->deadline - Clock::now(), std::chrono::milliseconds(1)));
        }
        break;
      default:  // kClosed (the reply ring was deleted), kCorrupted: nothing more will come
        st.FailAll(s);
        break;
    }
  }
}

Status RpcClient::Cancel(RpcCallId id) noexcept {
  State& st = *state_;
  State::Call* call = st.Find(id);
  if (call == nullptr) return Status::kInvalidArgument;
  (void)st.Finish(call, Status::kCancelled, nullptr);
  return Status::kOk;
}

// --- assembly ---------------------------------------------------------------------------

namespace internal {

Result<RpcClient> AssembleRpcClient(std::shared_ptr<void> keepalive, MpmcProducer requests,
                                    SpscConsumer replies, std::string suffix,
                                    std::function<void()> remove_reply_ring,
                                    const RpcClientOptions& options) {
  auto st = std::make_unique<RpcFactory::ClientState>();
  st->keepalive = std::move(keepalive);
  st->remove_reply_ring = std::move(remove_reply_ring);
  const std::string service = requests.segment().name();
  st->requests.emplace(std::move(requests));
  st->replies.emplace(std::move(replies));
  if (st->requests->max_message() < sizeof(RpcRequestHeader)) {
    return Error(ErrorCode::kWrongKind, "ring " + service + " is too small to be an rpc service");
  }
  if (suffix.empty() || suffix.size() >= kRpcSuffixSize) {
    return Error(ErrorCode::kInvalidArgument, "rpc reply suffix must be 1 to 31 characters");
  }
  Result<SpscRingSpec> reply = RpcReplyRingSpec(options);
  if (!reply.ok()) return reply.error();
  st->max_request = st->requests->max_message() - static_cast<uint32_t>(sizeof(RpcRequestHeader));
  st->reply_name = st->replies->segment().name();
  st->suffix = std::move(suffix);
  st->options = options;
  st->calls.resize(options.max_in_flight);
  return RpcFactory::MakeClient(std::move(st));
}

}  // namespace internal

Result<RpcClient> RpcClient::Open(const ShmDir& dir, std::string_view service,
                                  const RpcClientOptions& options) {
  Result<SpscRingSpec> spec = RpcReplyRingSpec(options);
  if (!spec.ok()) return spec.error();
  Result<MpmcProducer> requests = MpmcProducer::Open(dir, service, options.wait);
  if (!requests.ok()) return requests.error();
  std::string suffix = internal::NewRpcSuffix();
  std::string name = RpcReplyRingName(service, suffix);
  CreateOptions create;
  create.mode = options.mode;
  Result<Segment> ring = CreateSpscRing(dir, name, *spec, create);
  if (!ring.ok()) return ring.error();
  auto remove = [dir, name] { (void)Segment::Remove(dir, name); };
  Result<SpscConsumer> replies = SpscConsumer::Open(dir, name, options.wait);
  if (!replies.ok()) {
    remove();
    return replies.error();
  }
  return internal::AssembleRpcClient(nullptr, std::move(requests).value(),
                                     std::move(replies).value(), std::move(suffix), remove,
                                     options);
}

}  // namespace shmd
