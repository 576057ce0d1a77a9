#include "shmd/dataplane/mpmc_ring.h"

#include <cstring>
#include <string>
#include <utility>

namespace shmd {
namespace {

using layout::EndpointRole;
using layout::ObjectKind;
using layout::SlotHeader;

constexpr auto kLive = static_cast<uint32_t>(layout::EndpointState::kLive);

// The slot header's length and writer are plain uint32_t in the ABI; every access goes
// through an atomic_ref, because a recoverer may look at `writer` while its claimer writes
// it, and a C++ data race is undefined behaviour even where the hardware would not mind.
std::atomic_ref<uint32_t> WriterOf(SlotHeader& h) { return std::atomic_ref<uint32_t>(h.writer); }
std::atomic_ref<uint32_t> LengthOf(SlotHeader& h) { return std::atomic_ref<uint32_t>(h.length); }

// Whether position p is claimed but not published, and by whom: the claimer's tag
// (endpoint slot + 1), or 0 when p is not in that state or its claimer has not tagged it
// yet (or a recoverer holds it).
uint32_t UnpublishedClaimTag(const internal::MpmcRingView& ring, uint64_t position) {
  SlotHeader& h = ring.HeaderAt(position);
  // Acquire: pairs with (C) of the lap before, so the `writer` read below is that lap's
  // reset to 0 or something newer, never an older lap's tag.
  if (h.sequence.load(std::memory_order_acquire) != position) return 0;
  if (ring.control->enqueue_position.load(std::memory_order_acquire) <= position) return 0;
  // (U): pairs with the claimer's (T). If it read a later lap's tag, that lap's claim
  // happened after sequence left `position`, and the re-check below sees it.
  const uint32_t tag = WriterOf(h).load(std::memory_order_acquire);
  if (h.sequence.load(std::memory_order_relaxed) != position) return 0;
  return tag >= 1 && tag <= layout::kMaxEndpoints ? tag : 0;
}

// Whether the endpoint that tagged a claim has gone: its slot is no longer live (the
// claim happened while it was; see (T)/(U)), or its process is dead (cleared here).
bool ClaimerGone(const Segment& segment, uint32_t tag) {
  const layout::EndpointSlot& slot = segment.endpoints().slots[tag - 1];
  if (slot.state.load(std::memory_order_acquire) != kLive) return true;
  return ClearIfDead(segment, tag - 1);
}

// Publishes claimed position p, whose claimer (`tag`) has gone, as an abandoned slot.
// The CAS on `writer` elects one recoverer; a stale view (p has been published and the
// slot re-claimed by a new holder of the same tag) is detected and undone.
bool MarkAbandoned(const internal::MpmcRingView& ring, uint64_t position, uint32_t tag) {
  SlotHeader& h = ring.HeaderAt(position);
  uint32_t expected = tag;
  if (!WriterOf(h).compare_exchange_strong(expected, kWriterRecovering, std::memory_order_acq_rel,
                                           std::memory_order_relaxed)) {
    return false;
  }
  if (h.sequence.load(std::memory_order_acquire) != position) {
    expected = kWriterRecovering;
    WriterOf(h).compare_exchange_strong(expected, tag, std::memory_order_relaxed);
    return false;
  }
  LengthOf(h).store(kAbandonedLength, std::memory_order_relaxed);
  // (R): publishes the marker to the consumer that claims `position`; pairs with (B).
  h.sequence.store(position + 1, std::memory_order_release);
  Wake(ring.control->data_ready);
  return true;
}

// Calls fn(position) for every position that may be claimed and unpublished.
template <class Fn>
void ForEachInFlight(const internal::MpmcRingView& ring, Fn&& fn) {
  uint64_t head = ring.control->dequeue_position.load(std::memory_order_acquire);
  const uint64_t tail = ring.control->enqueue_position.load(std::memory_order_acquire);
  if (tail - head > ring.capacity) head = tail - ring.capacity;  // racy reads: clamp
  for (uint64_t p = head; p != tail; ++p) fn(p);
}

// At attach: claims tagged with our own tag belong to a predecessor in our endpoint slot
// (we have claimed nothing yet), whatever its process's state.
uint64_t RecoverOwnTag(const internal::MpmcRingView& ring, uint32_t tag) {
  uint64_t recovered = 0;
  ForEachInFlight(ring, [&](uint64_t p) {
    if (UnpublishedClaimTag(ring, p) == tag && MarkAbandoned(ring, p, tag)) ++recovered;
  });
  return recovered;
}

}  // namespace

// --- shared pieces --------------------------------------------------------------------

namespace internal {

RolePresence::RolePresence(const Segment* segment, EndpointRole role,
                           const std::atomic<uint64_t>* activity)
    : segment_(segment), role_(role), activity_(activity) {
  if (activity_ != nullptr) activity_at_start_ = activity_->load(std::memory_order_relaxed);
  Gone(/*check_process=*/false);  // a peer attached already counts as seen
}

bool RolePresence::Gone(bool check_process) {
  if (segment_ == nullptr) return false;
  bool live = false;
  for (uint32_t i = 0; i < layout::kMaxEndpoints && !live; ++i) {
    const layout::EndpointSlot& slot = segment_->endpoints().slots[i];
    // Acquire pairs with ClaimEndpoint's release store of kLive: the role is filled in.
    if (slot.state.load(std::memory_order_acquire) != kLive) continue;
    if (slot.role != static_cast<uint32_t>(role_)) continue;
    if (check_process && ClearIfDead(*segment_, i)) continue;
    live = true;
  }
  if (live) {
    seen_ = true;
    return false;
  }
  if (!seen_ && activity_ != nullptr &&
      activity_->load(std::memory_order_relaxed) != activity_at_start_) {
    seen_ = true;  // a peer came and went between two checks
  }
  return seen_;
}

}  // namespace internal

Result<Segment> CreateMpmcRing(const ShmDir& dir, std::string_view name, const MpmcRingSpec& spec,
                               const CreateOptions& options) {
  if (auto r = internal::CheckSlotRingSpec("mpmc ring", name, spec.slot_count, spec.max_message);
      !r.ok())
    return r.error();
  layout::ObjectParams params{};
  params.capacity = spec.slot_count;
  params.max_message = spec.max_message;
  // Truncation for absurd sizes is caught by Segment::Create's geometry check, which
  // rejects max_message over 16 MiB before it looks at slot_size.
  params.slot_size = static_cast<uint32_t>(layout::SlotSizeFor(spec.max_message));
  const uint64_t data_size = uint64_t{spec.slot_count} * layout::SlotSizeFor(spec.max_message);
  return Segment::Create(dir, name, ObjectKind::kMpmcRing, params, data_size, options,
                         [](Segment& segment) {
                           // Slot i is free for the producer claiming position i. Writer
                           // and length are zero (the file is zero-filled).
                           internal::MpmcRingView ring(&segment);
                           for (uint64_t i = 0; i < ring.capacity; ++i) {
                             ring.HeaderAt(i).sequence.store(i, std::memory_order_relaxed);
                           }
                         });
}

uint32_t RecoverAbandonedSlots(const Segment& segment) {
  if (!segment.valid() || segment.kind() != ObjectKind::kMpmcRing) return 0;
  internal::MpmcRingView ring(&segment);
  uint32_t recovered = 0;
  ForEachInFlight(ring, [&](uint64_t p) {
    const uint32_t tag = UnpublishedClaimTag(ring, p);
    if (tag != 0 && ClaimerGone(segment, tag) && MarkAbandoned(ring, p, tag)) ++recovered;
  });
  return recovered;
}

// --- producer -------------------------------------------------------------------------

MpmcProducer::MpmcProducer(std::shared_ptr<Segment> segment, uint32_t slot, const WaitOptions& wait)
    : segment_(std::move(segment)),
      ring_(segment_.get()),
      slot_(slot),
      tag_(slot + 1),
      wait_(wait),
      spin_(wait.max_spin),
      consumers_(segment_.get(), EndpointRole::kConsumer, &ring_.control->dequeue_position) {
  recovered_ = RecoverOwnTag(ring_, tag_);
}

Result<MpmcProducer> MpmcProducer::Attach(std::shared_ptr<Segment> segment,
                                          const WaitOptions& wait) {
  if (auto r = CheckAttachable(segment, ObjectKind::kMpmcRing); !r.ok()) return r.error();
  Result<uint32_t> slot = ClaimEndpoint(*segment, EndpointRole::kProducer, /*exclusive=*/false);
  if (!slot.ok()) return slot.error();
  return MpmcProducer(std::move(segment), *slot, wait);
}

Result<MpmcProducer> MpmcProducer::Open(const ShmDir& dir, std::string_view name,
                                        const WaitOptions& wait) {
  auto segment = OpenShared(dir, name, ObjectKind::kMpmcRing);
  if (!segment.ok()) return segment.error();
  return Attach(std::move(segment).value(), wait);
}

MpmcProducer::MpmcProducer(MpmcProducer&& other) noexcept { *this = std::move(other); }

MpmcProducer& MpmcProducer::operator=(MpmcProducer&& other) noexcept {
  if (this != &other) {
    Detach();
    segment_ = std::move(other.segment_);
    ring_ = other.ring_;
    slot_ = std::exchange(other.slot_, layout::kMaxEndpoints);
    tag_ = other.tag_;
    reserved_ = std::exchange(other.reserved_, false);
    reserved_position_ = other.reserved_position_;
    messages_ = other.messages_;
    bytes_ = other.bytes_;
    full_events_ = other.full_events_;
    recovered_ = other.recovered_;
    wait_ = other.wait_;
    spin_ = other.spin_;
    consumers_ = other.consumers_;  // points at the Segment, which did not move
  }
  return *this;
}

MpmcProducer::~MpmcProducer() { Detach(); }

void MpmcProducer::Detach() noexcept {
  if (!segment_) return;
  if (reserved_) {
    // Nobody else may touch a claimed slot: no CAS needed to give it up.
    SlotHeader& h = ring_.HeaderAt(reserved_position_);
    LengthOf(h).store(kAbandonedLength, std::memory_order_relaxed);
    // (A), with the marker as the message.
    h.sequence.store(reserved_position_ + 1, std::memory_order_release);
    reserved_ = false;
    Wake(ring_.control->data_ready);
  }
  if (slot_ < layout::kMaxEndpoints) ReleaseEndpoint(*segment_, slot_);
  slot_ = layout::kMaxEndpoints;
  segment_.reset();
}

Status MpmcProducer::ClaimWithin(Nanos timeout, bool try_only) noexcept {
  if (reserved_) return Status::kInvalidArgument;
  layout::MpmcControl& control = *ring_.control;
  Clock::time_point deadline = Clock::time_point::min();  // computed at the first wait
  for (bool counted = false;;) {
    uint64_t pos = control.enqueue_position.load(std::memory_order_relaxed);
    for (;;) {
      SlotHeader& h = ring_.HeaderAt(pos);
      // (D): pairs with the consumer's (C): the last lap's reader is done with the slot.
      const uint64_t seq = h.sequence.load(std::memory_order_acquire);
      const auto diff = static_cast<int64_t>(seq - pos);
      if (diff == 0) {
        if (control.enqueue_position.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed,
                                                           std::memory_order_relaxed)) {
          // (T): names the claimer, for recovery should this process die before (A).
          WriterOf(h).store(tag_, std::memory_order_release);
          reserved_ = true;
          reserved_position_ = pos;
          return Status::kOk;
        }
        // The failed CAS reloaded pos.
      } else if (diff < 0) {
        break;  // the slot still holds the message of the lap before: full
      } else {
        // Fell behind: the slot was published for pos, so enqueue_position has moved on
        // (that claim happened before the publish we just acquired). If it has not, the
        // shared state is impossible: report it rather than spin on it.
        const uint64_t now = control.enqueue_position.load(std::memory_order_relaxed);
        if (now == pos) return Status::kCorrupted;
        pos = now;
      }
    }
    if (!counted) {
      // One count per call that found the ring full; single writer: load + store.
      counted = true;
      ++full_events_;
      Counter(layout::kCounterFull).store(full_events_, std::memory_order_relaxed);
    }
    if (try_only) return Status::kFull;
    if (deadline == Clock::time_point::min()) {
      deadline = timeout == Nanos::max() ? Clock::time_point::max() : Clock::now() + timeout;
    }
    Status s = WaitFor(
        control.space_ready, wait_, spin_, deadline, &Counter(layout::kCounterWaits),
        [&] {
          const uint64_t p = control.enqueue_position.load(std::memory_order_relaxed);
          return static_cast<int64_t>(ring_.HeaderAt(p).sequence.load(std::memory_order_acquire) -
                                      p) >= 0;
        },
        [&] { return consumers_.Gone(/*check_process=*/true); });
    if (s != Status::kOk) return s;
  }
}

void MpmcProducer::Publish(uint32_t size) noexcept {
  SlotHeader& h = ring_.HeaderAt(reserved_position_);
  LengthOf(h).store(size, std::memory_order_relaxed);
  // (A): publishes length, writer and payload to the consumer that claims this position.
  h.sequence.store(reserved_position_ + 1, std::memory_order_release);
  reserved_ = false;
  ++messages_;
  bytes_ += size;
  Counter(layout::kCounterMessages).store(messages_, std::memory_order_relaxed);
  Counter(layout::kCounterBytes).store(bytes_, std::memory_order_relaxed);
  Wake(ring_.control->data_ready);
}

Status MpmcProducer::TrySend(std::span<const std::byte> message) noexcept {
  if (message.empty() || reserved_) return Status::kInvalidArgument;
  if (message.size() > ring_.max_message) return Status::kTooLarge;
  Status s = ClaimWithin(Nanos::max(), /*try_only=*/true);
  if (s != Status::kOk) return s;
  std::memcpy(ring_.PayloadAt(reserved_position_), message.data(), message.size());
  Publish(static_cast<uint32_t>(message.size()));
  return Status::kOk;
}

Status MpmcProducer::SendWithin(std::span<const std::byte> message, Nanos timeout) noexcept {
  if (message.empty() || reserved_) return Status::kInvalidArgument;
  if (message.size() > ring_.max_message) return Status::kTooLarge;
  Status s = ClaimWithin(timeout, /*try_only=*/false);
  if (s != Status::kOk) return s;
  std::memcpy(ring_.PayloadAt(reserved_position_), message.data(), message.size());
  Publish(static_cast<uint32_t>(message.size()));
  return Status::kOk;
}

Status MpmcProducer::TryReserve(std::span<std::byte>* out) noexcept {
  Status s = ClaimWithin(Nanos::max(), /*try_only=*/true);
  if (s != Status::kOk) return s;
  *out = {ring_.PayloadAt(reserved_position_), ring_.max_message};
  return Status::kOk;
}

Status MpmcProducer::ReserveFor(Nanos timeout, std::span<std::byte>* out) noexcept {
  Status s = ClaimWithin(timeout, /*try_only=*/false);
  if (s != Status::kOk) return s;
  *out = {ring_.PayloadAt(reserved_position_), ring_.max_message};
  return Status::kOk;
}

Status MpmcProducer::Commit(uint32_t size) noexcept {
  if (!reserved_ || size == 0 || size > ring_.max_message) return Status::kInvalidArgument;
  Publish(size);
  return Status::kOk;
}

// --- consumer -------------------------------------------------------------------------

MpmcConsumer::MpmcConsumer(std::shared_ptr<Segment> segment, uint32_t slot, const WaitOptions& wait)
    : segment_(std::move(segment)),
      ring_(segment_.get()),
      slot_(slot),
      tag_(slot + 1),
      wait_(wait),
      spin_(wait.max_spin),
      producers_(segment_.get(), EndpointRole::kProducer, &ring_.control->enqueue_position) {
  // A producer that held our endpoint slot before us may have died mid-send.
  recovered_ = RecoverOwnTag(ring_, tag_);
}

Result<MpmcConsumer> MpmcConsumer::Attach(std::shared_ptr<Segment> segment,
                                          const WaitOptions& wait) {
  if (auto r = CheckAttachable(segment, ObjectKind::kMpmcRing); !r.ok()) return r.error();
  Result<uint32_t> slot = ClaimEndpoint(*segment, EndpointRole::kConsumer, /*exclusive=*/false);
  if (!slot.ok()) return slot.error();
  return MpmcConsumer(std::move(segment), *slot, wait);
}

Result<MpmcConsumer> MpmcConsumer::Open(const ShmDir& dir, std::string_view name,
                                        const WaitOptions& wait) {
  auto segment = OpenShared(dir, name, ObjectKind::kMpmcRing);
  if (!segment.ok()) return segment.error();
  return Attach(std::move(segment).value(), wait);
}

MpmcConsumer::MpmcConsumer(MpmcConsumer&& other) noexcept { *this = std::move(other); }

MpmcConsumer& MpmcConsumer::operator=(MpmcConsumer&& other) noexcept {
  if (this != &other) {
    Detach();
    segment_ = std::move(other.segment_);
    ring_ = other.ring_;
    slot_ = std::exchange(other.slot_, layout::kMaxEndpoints);
    tag_ = other.tag_;
    peeked_ = std::exchange(other.peeked_, false);
    peeked_position_ = other.peeked_position_;
    peeked_length_ = other.peeked_length_;
    messages_ = other.messages_;
    bytes_ = other.bytes_;
    abandoned_skipped_ = other.abandoned_skipped_;
    recovered_ = other.recovered_;
    wait_ = other.wait_;
    spin_ = other.spin_;
    producers_ = other.producers_;
  }
  return *this;
}

MpmcConsumer::~MpmcConsumer() { Detach(); }

void MpmcConsumer::Detach() noexcept {
  if (!segment_) return;
  if (peeked_) {
    FreeSlot(peeked_position_);  // the peeked message is dropped
    peeked_ = false;
  }
  if (slot_ < layout::kMaxEndpoints) ReleaseEndpoint(*segment_, slot_);
  slot_ = layout::kMaxEndpoints;
  segment_.reset();
}

bool MpmcConsumer::HeadReady() const noexcept {
  const uint64_t p = ring_.control->dequeue_position.load(std::memory_order_relaxed);
  // True also when the head moved on (another consumer took it): the caller retries.
  return static_cast<int64_t>(ring_.HeaderAt(p).sequence.load(std::memory_order_acquire) -
                              (p + 1)) >= 0;
}

bool MpmcConsumer::RecoverHead() noexcept {
  const uint64_t p = ring_.control->dequeue_position.load(std::memory_order_acquire);
  const uint32_t tag = UnpublishedClaimTag(ring_, p);
  if (tag == 0) return false;
  // Our own tag can only be a predecessor's in our endpoint slot: consumers never claim
  // for writing.
  if (tag != tag_ && !ClaimerGone(*segment_, tag)) return false;
  if (!MarkAbandoned(ring_, p, tag)) return false;
  ++recovered_;
  return true;
}

void MpmcConsumer::FreeSlot(uint64_t position) noexcept {
  SlotHeader& h = ring_.HeaderAt(position);
  // The next lap's claim starts untagged (what makes (U) unambiguous); ordered by (C).
  WriterOf(h).store(0, std::memory_order_relaxed);
  // (C): this slot has been read; the producer claiming position + slot_count may
  // overwrite it. Pairs with the producer's (D).
  h.sequence.store(position + ring_.capacity, std::memory_order_release);
  Wake(ring_.control->space_ready);
}

Status MpmcConsumer::TryClaim(MessageView* out) noexcept {
  if (peeked_) return Status::kInvalidArgument;
  layout::MpmcControl& control = *ring_.control;
  uint64_t pos = control.dequeue_position.load(std::memory_order_relaxed);
  for (;;) {
    SlotHeader& h = ring_.HeaderAt(pos);
    // (B): pairs with the producer's (A) or a recoverer's (R).
    const uint64_t seq = h.sequence.load(std::memory_order_acquire);
    const auto diff = static_cast<int64_t>(seq - (pos + 1));
    if (diff < 0) return Status::kEmpty;  // not published yet (maybe claimed)
    if (diff > 0) {
      // Fell behind: the slot was freed for pos, so dequeue_position has moved on (that
      // claim happened before the (C) we just acquired). If not, the state is impossible.
      const uint64_t now = control.dequeue_position.load(std::memory_order_relaxed);
      if (now == pos) return Status::kCorrupted;
      pos = now;
      continue;
    }
    if (!control.dequeue_position.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed,
                                                        std::memory_order_relaxed)) {
      continue;  // the failed CAS reloaded pos
    }
    // The slot is ours until FreeSlot. Never trust its length.
    const uint32_t length = LengthOf(h).load(std::memory_order_relaxed);
    if (length == kAbandonedLength) {
      ++abandoned_skipped_;
      FreeSlot(pos);
      pos = control.dequeue_position.load(std::memory_order_relaxed);
      continue;
    }
    if (length == 0 || length > ring_.max_message) {
      FreeSlot(pos);  // dropped unread, so the ring keeps moving
      return Status::kCorrupted;
    }
    peeked_ = true;
    peeked_position_ = pos;
    peeked_length_ = length;
    out->data = ring_.PayloadAt(pos);
    out->size = length;
    return Status::kOk;
  }
}

Status MpmcConsumer::WaitForData(Clock::time_point deadline) noexcept {
  // Producers that all detached cleanly leave nothing half-claimed: report at once (after
  // recovering a head whose claimer was cleared by somebody else) rather than after a
  // sleep slice.
  if (producers_.Gone(/*check_process=*/false)) {
    RecoverHead();
    if (!HeadReady()) return Status::kPeerGone;
  }
  return WaitFor(
      ring_.control->data_ready, wait_, spin_, deadline, &Counter(layout::kCounterWaits),
      [&] { return HeadReady(); },
      [&] {
        // At each sleep slice: take over a head whose claimer died, then ask about peers.
        if (RecoverHead()) return false;
        return producers_.Gone(/*check_process=*/true);
      });
}

Status MpmcConsumer::TryPeek(MessageView* out) noexcept { return TryClaim(out); }

Status MpmcConsumer::PeekUntil(MessageView* out, Clock::time_point deadline) noexcept {
  for (;;) {
    Status s = TryClaim(out);
    if (s != Status::kEmpty) return s;
    s = WaitForData(deadline);
    if (s != Status::kOk) return s;
    // Ready, but another consumer may take it first: claim again.
  }
}

void MpmcConsumer::Release() noexcept {
  if (!peeked_) return;
  peeked_ = false;
  FreeSlot(peeked_position_);
  ++messages_;
  bytes_ += peeked_length_;
  Counter(layout::kCounterMessages).store(messages_, std::memory_order_relaxed);
  Counter(layout::kCounterBytes).store(bytes_, std::memory_order_relaxed);
}

Status MpmcConsumer::CopyOut(const MessageView& view, std::span<std::byte> buffer,
                             size_t* size) noexcept {
  std::memcpy(buffer.data(), view.data, view.size);
  *size = view.size;
  Release();
  return Status::kOk;
}

Status MpmcConsumer::TryReceive(std::span<std::byte> buffer, size_t* size) noexcept {
  if (buffer.size() < ring_.max_message) {
    *size = ring_.max_message;
    return Status::kTooLarge;
  }
  MessageView view;
  Status s = TryClaim(&view);
  if (s != Status::kOk) return s;
  return CopyOut(view, buffer, size);
}

Status MpmcConsumer::ReceiveUntil(std::span<std::byte> buffer, size_t* size,
                                  Clock::time_point deadline) noexcept {
  if (buffer.size() < ring_.max_message) {
    *size = ring_.max_message;
    return Status::kTooLarge;
  }
  MessageView view;
  Status s = PeekUntil(&view, deadline);
  if (s != Status::kOk) return s;
  return CopyOut(view, buffer, size);
}

}  // namespace shmd
