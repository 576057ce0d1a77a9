#include "shmd/dataplane/spsc_ring.h"

#include <utility>

namespace shmd {
namespace {

using layout::EndpointRole;
using layout::ObjectKind;

// Positions come from shared memory: a corrupted one must be refused before it is used
// as an offset (records start on 8-byte boundaries, and the consumer is never more than
// a ring behind).
VoidResult CheckPosition(const Segment& segment, const char* which, uint64_t position) {
  if (position % layout::kRecordAlign != 0) {
    return Error(ErrorCode::kCorrupted, "ring \"" + segment.name() + "\" has a corrupted " + which +
                                            " position " + std::to_string(position) +
                                            " (not a multiple of 8); recreate the ring");
  }
  return Ok{};
}

}  // namespace

Result<Segment> CreateSpscRing(const ShmDir& dir, std::string_view name, const SpscRingSpec& spec,
                               const CreateOptions& options) {
  layout::ObjectParams params{};
  params.capacity = spec.capacity;
  params.max_message = spec.max_message != 0
                           ? spec.max_message
                           : static_cast<uint32_t>(std::min<uint64_t>(
                                 layout::MaxSpscMessage(spec.capacity), UINT32_MAX));
  // A zero-filled data area is an empty ring: every header reads "not written yet".
  return Segment::Create(dir, name, ObjectKind::kSpscRing, params, spec.capacity, options);
}

// --- producer -----------------------------------------------------------------------------

SpscProducer::SpscProducer(std::shared_ptr<Segment> segment, uint32_t slot, const WaitOptions& wait)
    : segment_(std::move(segment)),
      control_(&segment_->control<layout::SpscControl>()),
      data_(segment_->data()),
      capacity_(segment_->params().capacity),
      mask_(capacity_ - 1),
      max_message_(segment_->params().max_message),
      slot_(slot),
      wait_(wait),
      spin_(wait.max_spin),
      consumer_(segment_.get(), EndpointRole::kConsumer) {
  // Resume where the last producer published. Its last release store may have landed
  // without the position update that follows it, so walk the published chain forward to
  // the first header that reads 0: that is the true frontier.
  position_ = control_->producer_position.load(std::memory_order_acquire);
  for (uint64_t walked = 0; walked < capacity_;) {
    const uint64_t header = HeaderAt(position_).load(std::memory_order_acquire);
    if (header == 0) break;
    const uint64_t offset = position_ & mask_;
    const uint64_t step =
        layout::RecordTypeOf(header) == static_cast<uint32_t>(layout::RecordType::kPadding)
            ? capacity_ - offset
            : layout::RecordSize(layout::RecordLength(header));
    if (offset + step > capacity_) break;  // corrupt: the consumer will report it
    position_ += step;
    walked += step;
  }
  cached_consumer_ = control_->consumer_position.load(std::memory_order_acquire);
  messages_ = control_->messages_written.load(std::memory_order_relaxed);
  bytes_ = control_->bytes_written.load(std::memory_order_relaxed);
  full_events_ = control_->full_events.load(std::memory_order_relaxed);
  control_->producer_position.store(position_, std::memory_order_relaxed);
}

Result<SpscProducer> SpscProducer::Attach(std::shared_ptr<Segment> segment,
                                          const WaitOptions& wait) {
  if (auto r = CheckAttachable(segment, ObjectKind::kSpscRing); !r.ok()) return r.error();
  const auto& control = segment->control<layout::SpscControl>();
  const uint64_t recorded = control.producer_position.load(std::memory_order_acquire);
  if (auto r = CheckPosition(*segment, "producer", recorded); !r.ok()) return r.error();
  Result<uint32_t> slot = ClaimEndpoint(*segment, EndpointRole::kProducer, /*exclusive=*/true);
  if (!slot.ok()) return slot.error();
  SpscProducer producer(std::move(segment), *slot, wait);
  const uint64_t consumed = producer.cached_consumer_;
  if (consumed > producer.position_ || producer.position_ - consumed > producer.capacity_) {
    return Error(ErrorCode::kCorrupted,
                 "ring \"" + producer.segment().name() +
                     "\" has impossible positions: consumer at " + std::to_string(consumed) +
                     ", producer at " + std::to_string(producer.position_) + "; recreate the ring");
  }
  return producer;
}

Result<SpscProducer> SpscProducer::Open(const ShmDir& dir, std::string_view name,
                                        const WaitOptions& wait) {
  auto segment = OpenShared(dir, name, ObjectKind::kSpscRing);
  if (!segment.ok()) return segment.error();
  return Attach(std::move(segment).value(), wait);
}

SpscProducer::SpscProducer(SpscProducer&& other) noexcept : spin_(other.spin_) {
  *this = std::move(other);
}

SpscProducer& SpscProducer::operator=(SpscProducer&& other) noexcept {
  if (this != &other) {
    Detach();
    segment_ = std::move(other.segment_);
    control_ = other.control_;
    data_ = other.data_;
    capacity_ = other.capacity_;
    mask_ = other.mask_;
    max_message_ = other.max_message_;
    slot_ = std::exchange(other.slot_, layout::kMaxEndpoints);
    position_ = other.position_;
    cached_consumer_ = other.cached_consumer_;
    pending_position_ = other.pending_position_;
    pending_header_ = std::exchange(other.pending_header_, 0);
    reserved_ = std::exchange(other.reserved_, 0);
    messages_ = other.messages_;
    bytes_ = other.bytes_;
    full_events_ = other.full_events_;
    wait_ = other.wait_;
    spin_ = other.spin_;
    consumer_ = PeerWatch(segment_.get(), EndpointRole::kConsumer);
  }
  return *this;
}

SpscProducer::~SpscProducer() { Detach(); }

void SpscProducer::Detach() noexcept {
  if (!segment_) return;
  Flush();
  if (slot_ < layout::kMaxEndpoints) ReleaseEndpoint(*segment_, slot_);
  slot_ = layout::kMaxEndpoints;
  segment_.reset();
}

// Precondition: the caller's TryReserve(size) just returned kFull (and counted it once).
Status SpscProducer::ReserveUntil(uint32_t size, Clock::time_point deadline,
                                  std::span<std::byte>* out) noexcept {
  // Publish what is pending first: the consumer cannot make room for a batch it can't see.
  Flush();
  const uint64_t record = layout::RecordSize(size);
  Status s = WaitFor(
      control_->space_ready, wait_, spin_, deadline, &control_->producer_waits,
      [&] {
        const uint64_t offset = position_ & mask_;
        const uint64_t tail = capacity_ - offset;
        return HasRoom((record > tail ? tail : 0) + record + layout::kRecordHeaderSize);
      },
      [&] { return consumer_.Gone(/*check_process=*/true); });
  if (s != Status::kOk) return s;
  return TryReserve(size, out);
}

Status SpscProducer::ReserveFor(uint32_t size, Nanos timeout, std::span<std::byte>* out) noexcept {
  Status s = TryReserve(size, out);
  return s == Status::kFull ? ReserveUntil(size, Clock::now() + timeout, out) : s;
}

// Precondition: the caller's TrySend(message) just returned kFull.
Status SpscProducer::SendUntil(std::span<const std::byte> message,
                               Clock::time_point deadline) noexcept {
  std::span<std::byte> room;
  Status s = ReserveUntil(static_cast<uint32_t>(message.size()), deadline, &room);
  if (s != Status::kOk) return s;
  std::memcpy(room.data(), message.data(), message.size());
  Commit(static_cast<uint32_t>(message.size()));
  return Status::kOk;
}

Status SpscProducer::TrySendBatch(std::span<const std::span<const std::byte>> messages,
                                  size_t* sent) noexcept {
  *sent = 0;
  Status s = Status::kOk;
  for (const auto& message : messages) {
    if (message.size() > max_message_) {
      s = Status::kTooLarge;
      break;
    }
    std::span<std::byte> room;
    s = TryReserve(static_cast<uint32_t>(message.size()), &room);
    if (s != Status::kOk) break;
    std::memcpy(room.data(), message.data(), message.size());
    Commit(static_cast<uint32_t>(message.size()), Publish::kDeferred);
    ++*sent;
  }
  Flush();
  return s;
}

// --- consumer -----------------------------------------------------------------------------

SpscConsumer::SpscConsumer(std::shared_ptr<Segment> segment, uint32_t slot, const WaitOptions& wait)
    : segment_(std::move(segment)),
      control_(&segment_->control<layout::SpscControl>()),
      data_(segment_->data()),
      capacity_(segment_->params().capacity),
      mask_(capacity_ - 1),
      max_message_(segment_->params().max_message),
      slot_(slot),
      wait_(wait),
      spin_(wait.max_spin),
      producer_(segment_.get(), EndpointRole::kProducer) {
  // The last consumer published its position after every release: resume exactly there.
  position_ = control_->consumer_position.load(std::memory_order_acquire);
  attached_position_ = position_;
  messages_ = control_->messages_read.load(std::memory_order_relaxed);
  bytes_ = control_->bytes_read.load(std::memory_order_relaxed);
}

Result<SpscConsumer> SpscConsumer::Attach(std::shared_ptr<Segment> segment,
                                          const WaitOptions& wait) {
  if (auto r = CheckAttachable(segment, ObjectKind::kSpscRing); !r.ok()) return r.error();
  const uint64_t recorded =
      segment->control<layout::SpscControl>().consumer_position.load(std::memory_order_acquire);
  if (auto r = CheckPosition(*segment, "consumer", recorded); !r.ok()) return r.error();
  Result<uint32_t> slot = ClaimEndpoint(*segment, EndpointRole::kConsumer, /*exclusive=*/true);
  if (!slot.ok()) return slot.error();
  return SpscConsumer(std::move(segment), *slot, wait);
}

Result<SpscConsumer> SpscConsumer::Open(const ShmDir& dir, std::string_view name,
                                        const WaitOptions& wait) {
  auto segment = OpenShared(dir, name, ObjectKind::kSpscRing);
  if (!segment.ok()) return segment.error();
  return Attach(std::move(segment).value(), wait);
}

SpscConsumer::SpscConsumer(SpscConsumer&& other) noexcept : spin_(other.spin_) {
  *this = std::move(other);
}

SpscConsumer& SpscConsumer::operator=(SpscConsumer&& other) noexcept {
  if (this != &other) {
    Detach();
    segment_ = std::move(other.segment_);
    control_ = other.control_;
    data_ = other.data_;
    capacity_ = other.capacity_;
    mask_ = other.mask_;
    max_message_ = other.max_message_;
    slot_ = std::exchange(other.slot_, layout::kMaxEndpoints);
    position_ = other.position_;
    attached_position_ = other.attached_position_;
    peeked_ = std::exchange(other.peeked_, 0);
    peeked_len_ = other.peeked_len_;
    messages_ = other.messages_;
    bytes_ = other.bytes_;
    wait_ = other.wait_;
    spin_ = other.spin_;
    producer_ = PeerWatch(segment_.get(), EndpointRole::kProducer);
  }
  return *this;
}

SpscConsumer::~SpscConsumer() { Detach(); }

void SpscConsumer::Detach() noexcept {
  if (!segment_) return;
  if (slot_ < layout::kMaxEndpoints) ReleaseEndpoint(*segment_, slot_);
  slot_ = layout::kMaxEndpoints;
  segment_.reset();
}

Status SpscConsumer::PeekUntil(MessageView* out, Clock::time_point deadline) noexcept {
  Status s = TryPeek(out);
  if (s != Status::kEmpty) return s;
  s = WaitFor(
      control_->data_ready, wait_, spin_, deadline, &control_->consumer_waits,
      [&] { return HeaderAt(position_).load(std::memory_order_acquire) != 0; },
      [&] { return producer_.Gone(/*check_process=*/true) || ProducerLeftAfterWriting(); });
  if (s != Status::kOk) return s;
  return TryPeek(out);
}

// A producer the PeerWatch never saw: it attached, wrote and left while this consumer was
// busy reading (the watch looks only when the ring is empty), or before this consumer
// attached. Having read its messages and found no producer now is the end of its stream,
// as EOF is on a pipe whose writer closed. A consumer that has read nothing yet keeps
// waiting for a first producer. Acquire pairs with the role's release in ReleaseEndpoint
// (acq_rel CAS); WaitFor re-checks for data after a "gone", so a last message published
// just before the producer left is still delivered.
bool SpscConsumer::ProducerLeftAfterWriting() const noexcept {
  if (position_ == attached_position_) return false;
  const auto role = static_cast<uint32_t>(EndpointRole::kProducer);
  return segment_->header_page().roles.owner[role].load(std::memory_order_acquire) == 0;
}

Status SpscConsumer::ReceiveUntil(std::span<std::byte> buffer, size_t* size,
                                  Clock::time_point deadline) noexcept {
  MessageView view;
  Status s = PeekUntil(&view, deadline);
  if (s != Status::kOk) return s;
  if (view.size > buffer.size()) {
    peeked_ = 0;
    *size = view.size;
    return Status::kTooLarge;
  }
  std::memcpy(buffer.data(), view.data, view.size);
  *size = view.size;
  Release();
  return Status::kOk;
}

}  // namespace shmd
