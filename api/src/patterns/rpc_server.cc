// Request/response, the server side: requests copied out of the service's MPMC ring,
// answers written into each client's SPSC reply ring (rpc.h).
#include <cstring>
#include <utility>

#include "rpc_internal.h"

namespace shmd {

using internal::RoleLive;
using layout::EndpointRole;

RpcServer::State::~State() {
  replies.clear();  // each producer detaches before its lease ends (RpcReplyEnd's order)
  requests.reset();
  keepalive.reset();
}

RpcServer::State::CachedReply* RpcServer::State::ReplyRing(const std::string& suffix) {
  auto it = replies.find(suffix);
  if (it != replies.end()) return &it->second;
  Result<internal::RpcReplyEnd> end = open_reply(RpcReplyRingName(service, suffix));
  if (!end.ok() || end->producer == nullptr) return nullptr;  // the client has gone
  CachedReply& cached = replies[suffix];
  cached.end = std::move(end).value();
  // The segment lives in the producer's shared_ptr: its address is stable.
  cached.consumer = PeerWatch(&cached.end.producer->segment(), EndpointRole::kConsumer);
  return &cached;
}

void RpcServer::State::Sweep() {
  next_sweep = Clock::now() + std::chrono::seconds(1);
  for (auto it = replies.begin(); it != replies.end();) {
    // The client detaches its consumer before it removes the ring; a killed client's
    // endpoint is found dead and cleared here, and its ring deleted on its behalf
    // (after a clean detach the client's own removal may come first: either is fine).
    internal::RpcReplyEnd& end = it->second.end;
    if (RoleLive(end.producer->segment(), EndpointRole::kConsumer, /*check_process=*/true)) {
      ++it;
      continue;
    }
    std::function<void()> remove = std::move(end.remove);
    it = replies.erase(it);  // the producer detaches, then its lease ends
    if (remove) remove();
  }
}

Status RpcServer::State::WaitForRequests(Clock::time_point deadline) {
  // No producer is attached, so MpmcConsumer reports kPeerGone at once; sleep on the
  // ring's data word instead until some request is claimed. Acquire loads: they only
  // decide whether to look again, the peek that follows does its own ordering.
  auto claimed = [this] {
    return ring.control->enqueue_position.load(std::memory_order_acquire) !=
           ring.control->dequeue_position.load(std::memory_order_acquire);
  };
  return WaitFor(ring.control->data_ready, options.wait, spin, deadline, nullptr, claimed,
                 [] { return false; });
}

// --- RpcServer --------------------------------------------------------------------------

RpcServer::RpcServer(std::unique_ptr<State> state) : state_(std::move(state)) {}
RpcServer::RpcServer(RpcServer&&) noexcept = default;
RpcServer& RpcServer::operator=(RpcServer&&) noexcept = default;
RpcServer::~RpcServer() = default;

uint64_t RpcServer::served() const { return state_->served; }
uint64_t RpcServer::expired_skipped() const { return state_->expired; }
uint64_t RpcServer::malformed_skipped() const { return state_->malformed; }
uint64_t RpcServer::replies_dropped() const { return state_->dropped; }
size_t RpcServer::cached_clients() const { return state_->replies.size(); }

Status RpcServer::Next(RpcRequest* out, Nanos timeout) noexcept {
  State& st = *state_;
  if (out == nullptr) return Status::kInvalidArgument;
  const Clock::time_point deadline = Clock::now() + internal::BoundedTimeout(timeout);
  for (;;) {
    Clock::time_point now = Clock::now();
    if (now >= st.next_sweep) st.Sweep();
    MessageView view;
    Status s = st.requests->PeekFor(&view, now < deadline ? deadline - now : Nanos::zero());
    if (s == Status::kPeerGone) {
      s = st.WaitForRequests(deadline);
      if (s == Status::kOk) continue;
    }
    if (s == Status::kEmpty) s = Status::kTimeout;
    if (s != Status::kOk) return s;
    RpcRequestHeader h;
    bool valid = view.size >= sizeof h;
    if (valid) {
      std::memcpy(&h, view.data, sizeof h);
      valid = h.magic == kRpcRequestMagic && h.length == view.size - sizeof h &&
              internal::ValidSuffix(h.reply);
    }
    if (!valid) {
      st.requests->Release();
      ++st.malformed;
      continue;
    }
    out->deadline_ = Clock::time_point(Nanos(h.deadline_ns));
    if (Clock::now() >= out->deadline_) {
      st.requests->Release();
      ++st.expired;  // its caller has returned kTimeout already: never run the handler
      continue;
    }
    // Copied out and released at once: a server killed inside a slow handler must not
    // leave a claimed slot that would stall the ring for its successor.
    if (out->payload_.size() < h.length) out->payload_.resize(h.length);
    if (h.length != 0) std::memcpy(out->payload_.data(), view.data + sizeof h, h.length);
    st.requests->Release();
    out->size_ = h.length;
    out->method_ = h.method;
    out->call_id_ = h.call_id;
    std::memcpy(out->reply_, h.reply, sizeof h.reply);
    out->server_ = &st;
    out->replied_ = false;
    ++st.served;
    return Status::kOk;
  }
}

Status RpcServer::Serve(const std::function<void(RpcRequest&)>& handler,
                        const std::atomic<bool>& stop) {
  RpcRequest request;
  while (!stop.load(std::memory_order_acquire)) {
    Status s = Next(&request, std::chrono::milliseconds(50));
    if (s == Status::kTimeout) continue;
    if (s != Status::kOk) return s;
    handler(request);
    if (!request.replied()) (void)request.ReplyError(kRpcNoReply, "the handler did not reply");
  }
  return Status::kOk;
}

// --- RpcRequest -------------------------------------------------------------------------

Status RpcRequest::Send(uint32_t code, uint32_t size,
                        const std::function<uint32_t(std::span<std::byte>)>& write) noexcept {
  if (replied_ || server_ == nullptr) return Status::kInvalidArgument;
  auto& st = *static_cast<RpcServer::State*>(server_);
  const std::string suffix(reply_);
  RpcServer::State::CachedReply* cached = st.ReplyRing(suffix);
  // The cheap check (two loads) catches a client that detached; a killed one is caught by
  // the sweep, or by ReserveFor's liveness checks once its ring is full.
  if (cached != nullptr && cached->consumer.Gone(/*check_process=*/false)) {
    st.replies.erase(suffix);
    cached = nullptr;
  }
  if (cached == nullptr) {
    replied_ = true;
    ++st.dropped;
    return Status::kPeerGone;
  }
  SpscProducer* ring = cached->end.producer.get();
  const uint64_t total = sizeof(RpcResponseHeader) + uint64_t{size};
  if (total > ring->max_message()) return Status::kTooLarge;
  std::span<std::byte> room;
  Status s = ring->TryReserve(static_cast<uint32_t>(total), &room);
  if (s == Status::kFull) {
    // The client is not reading: wait for room, but never past the call's deadline,
    // after which the answer would be dropped anyway.
    const Clock::time_point now = Clock::now();
    s = now >= deadline_ ? Status::kTimeout
                         : ring->ReserveFor(static_cast<uint32_t>(total),
                                            internal::BoundedTimeout(deadline_ - now), &room);
  }
  if (s != Status::kOk) {
    replied_ = true;
    ++st.dropped;
    if (s == Status::kPeerGone || s == Status::kClosed) st.replies.erase(suffix);
    return s;
  }
  const uint32_t used = std::min(size, write(room.subspan(sizeof(RpcResponseHeader), size)));
  RpcResponseHeader h{};
  h.magic = kRpcResponseMagic;
  h.code = code;
  h.call_id = call_id_;
  h.length = used;
  std::memcpy(room.data(), &h, sizeof h);
  ring->Commit(static_cast<uint32_t>(sizeof h + used));
  replied_ = true;
  return Status::kOk;
}

Status RpcRequest::Reply(std::span<const std::byte> response) noexcept {
  if (response.size() > UINT32_MAX) return Status::kTooLarge;
  return Send(0, static_cast<uint32_t>(response.size()), [&](std::span<std::byte> room) {
    if (!response.empty()) std::memcpy(room.data(), response.data(), response.size());
    return static_cast<uint32_t>(response.size());
  });
}

Status RpcRequest::ReplyError(uint32_t code, std::string_view message) noexcept {
  if (code == 0) return Status::kInvalidArgument;  // 0 means ok: use Reply
  // A message longer than the client takes is cut rather than lost: the code matters most.
  Status s;
  size_t n = message.size();
  do {
    s = Send(code, static_cast<uint32_t>(std::min<size_t>(n, UINT32_MAX)),
             [&](std::span<std::byte> room) {
               if (!room.empty()) std::memcpy(room.data(), message.data(), room.size());
               return static_cast<uint32_t>(room.size());
             });
    n /= 2;
  } while (s == Status::kTooLarge && n > 0);
  if (s == Status::kTooLarge) s = Send(code, 0, [](std::span<std::byte>) { return 0u; });
  return s;
}

Status RpcRequest::ReplyInPlace(uint32_t size,
                                const std::function<uint32_t(std::span<std::byte>)>& write) {
  return Send(0, size, write);
}

// --- assembly ---------------------------------------------------------------------------

namespace internal {

Result<RpcServer> AssembleRpcServer(std::shared_ptr<void> keepalive, MpmcConsumer requests,
                                    std::string service, RpcReplyOpener open_reply,
                                    const RpcServerOptions& options) {
  auto st = std::make_unique<RpcFactory::ServerState>();
  st->keepalive = std::move(keepalive);
  st->requests.emplace(std::move(requests));
  const Segment& segment = st->requests->segment();
  if (st->requests->max_message() < sizeof(RpcRequestHeader)) {
    return Error(ErrorCode::kWrongKind, "ring " + service + " is too small to be an rpc service");
  }
  // One server per service: the reply rings are SPSC, so a second server could not answer
  // the clients the first one already answers. Counting ourselves, at most one consumer.
  uint32_t live = 0;
  for (uint32_t i = 0; i < layout::kMaxEndpoints; ++i) {
    const layout::EndpointSlot& slot = segment.endpoints().slots[i];
    if (slot.state.load(std::memory_order_acquire) ==
            static_cast<uint32_t>(layout::EndpointState::kLive) &&
        slot.role.load(std::memory_order_relaxed) ==
            static_cast<uint32_t>(EndpointRole::kConsumer) &&
        !ClearIfDead(segment, i)) {
      ++live;
    }
  }
  if (live > 1) {
    return Error(ErrorCode::kBusy, "rpc service " + service + " already has a server");
  }
  st->ring = MpmcRingView(&segment);
  st->service = std::move(service);
  st->open_reply = std::move(open_reply);
  st->options = options;
  st->spin = AdaptiveSpin(options.wait.max_spin);
  return RpcFactory::MakeServer(std::move(st));
}

}  // namespace internal

Result<RpcServer> RpcServer::Open(const ShmDir& dir, std::string_view service,
                                  const RpcServerOptions& options) {
  Result<MpmcConsumer> requests = MpmcConsumer::Open(dir, service, options.wait);
  if (!requests.ok()) return requests.error();
  const WaitOptions wait = options.wait;
  auto open = [dir, wait](const std::string& name) -> Result<internal::RpcReplyEnd> {
    Result<SpscProducer> p = SpscProducer::Open(dir, name, wait);
    if (!p.ok()) return p.error();
    return internal::RpcReplyEnd{nullptr, std::make_unique<SpscProducer>(std::move(p).value()),
                                 [dir, name] { (void)Segment::Remove(dir, name); }};
  };
  return internal::AssembleRpcServer(nullptr, std::move(requests).value(), std::string(service),
                                     std::move(open), options);
}

}  // namespace shmd
