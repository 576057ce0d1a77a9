// Topic (publish/subscribe) on one broadcast ring: topic.h.
#include "shmd/client/topic.h"

#include <bit>
#include <string>
#include <utility>

namespace shmd {
namespace {

Error Invalid(std::string message) {
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

}  // namespace

std::string TopicRingName(std::string_view name) { return std::string(name); }

Result<BroadcastRingSpec> TopicRingSpecFor(const TopicSpec& spec) {
  constexpr uint32_t kMaxSlots = uint32_t{1} << 24;
  constexpr uint32_t kMaxMessage = uint32_t{1} << 24;
  if (spec.max_message == 0 || spec.max_message > kMaxMessage) {
    return Invalid("topic max_message must be 1 to 16 MiB (one message per slot); got " +
                   std::to_string(spec.max_message));
  }
  if (spec.depth < 2 || spec.depth > kMaxSlots || !std::has_single_bit(spec.depth)) {
    return Invalid("topic depth (slots) must be a power of two from 2 to 16777216; got " +
                   std::to_string(spec.depth));
  }
  if (spec.policy != TopicPolicy::kLossy && spec.policy != TopicPolicy::kLossless) {
    return Invalid("topic policy must be kLossy or kLossless; got " +
                   std::to_string(static_cast<uint32_t>(spec.policy)));
  }
  return BroadcastRingSpec{
      .slot_count = spec.depth, .max_message = spec.max_message, .policy = spec.policy};
}

VoidResult CreateTopic(const ShmDir& dir, std::string_view name, const TopicSpec& spec,
                       const CreateOptions& options) {
  Result<BroadcastRingSpec> ring = TopicRingSpecFor(spec);
  if (!ring.ok()) return ring.error();
  CreateOptions with_mode = options;
  with_mode.mode = spec.mode;
  Result<Segment> created = CreateBroadcastRing(dir, TopicRingName(name), *ring, with_mode);
  if (!created.ok()) return created.error();
  return Ok{};
}

VoidResult RemoveTopic(const ShmDir& dir, std::string_view name) {
  VoidResult r = Segment::Remove(dir, TopicRingName(name));
  if (!r.ok() && r.error().code() != ErrorCode::kNotFound) return r.error();
  return Ok{};
}

// --- Publisher ---------------------------------------------------------------------------

Result<Publisher> Publisher::Assemble(std::shared_ptr<void> keepalive, BroadcastProducer ring) {
  return Publisher(std::move(keepalive), std::move(ring));
}

Result<Publisher> Publisher::Open(const ShmDir& dir, std::string_view name,
                                  const WaitOptions& wait) {
  auto ring = BroadcastProducer::Open(dir, TopicRingName(name), wait);
  if (!ring.ok()) return ring.error();
  return Assemble(nullptr, std::move(ring).value());
}

uint32_t Publisher::subscribers() const {
  uint32_t n = 0;
  for (const layout::EndpointSlot& slot : ring_.segment().endpoints().slots) {
    n += slot.state.load(std::memory_order_acquire) ==
             static_cast<uint32_t>(layout::EndpointState::kLive) &&
         slot.role.load(std::memory_order_relaxed) ==
             static_cast<uint32_t>(layout::EndpointRole::kSubscriber);
  }
  return n;
}

Status Publisher::Publish(std::span<const std::byte> message, Nanos timeout) noexcept {
  // A lossy ring never reports kFull, so SendFor never reads the clock there.
  return timeout <= Nanos::zero() ? ring_.TrySend(message) : ring_.SendFor(message, timeout);
}

// --- Subscriber --------------------------------------------------------------------------

Result<Subscriber> Subscriber::Assemble(std::shared_ptr<void> keepalive, BroadcastSubscriber ring) {
  return Subscriber(std::move(keepalive), std::move(ring));
}

Result<Subscriber> Subscriber::Open(const ShmDir& dir, std::string_view name,
                                    const WaitOptions& wait) {
  auto ring = BroadcastSubscriber::Open(dir, TopicRingName(name), wait);
  if (!ring.ok()) return ring.error();
  return Assemble(nullptr, std::move(ring).value());
}

TopicReceive Subscriber::Receive(std::span<std::byte> buffer, Nanos timeout) noexcept {
  TopicReceive r;
  r.status = timeout <= Nanos::zero() ? ring_.TryReceive(buffer, &r.size)
                                      : ring_.ReceiveFor(buffer, &r.size, timeout);
  switch (r.status) {
    case Status::kOk:
      ++received_;
      break;
    case Status::kLapped:
      r.lost = ring_.last_lost();
      lost_ += r.lost;
      break;
    case Status::kTooLarge:
      break;  // r.size: the message's length
    default:
      r.size = 0;
      break;
  }
  return r;
}

}  // namespace shmd
