#include "shmd/dataplane/broadcast_ring.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>

namespace shmd {
namespace {

using layout::EndpointRole;
using layout::ObjectKind;
using layout::SlotHeader;

// Length and writer are plain uint32_t in the ABI; a subscriber may read the length while
// the producer rewrites it, so every access goes through an atomic_ref.
std::atomic_ref<uint32_t> LengthOf(SlotHeader& h) { return std::atomic_ref<uint32_t>(h.length); }
std::atomic_ref<uint32_t> WriterOf(SlotHeader& h) { return std::atomic_ref<uint32_t>(h.writer); }

constexpr uint64_t Writing(uint64_t n) { return 2 * n + 1; }
constexpr uint64_t Done(uint64_t n) { return 2 * n + 2; }

// Payload words: release stores on the producer's side, acquire loads on the subscriber's
// (see the top of broadcast_ring.h for why, and what they pair with). The caller's
// buffer has any alignment: words go through memcpy on that side.
void StoreWords(uint64_t* words, const std::byte* src, uint32_t size) {
  const uint32_t full = size / 8;
  for (uint32_t i = 0; i < full; ++i) {
    uint64_t w;
    std::memcpy(&w, src + uint64_t{i} * 8, 8);
    std::atomic_ref<uint64_t>(words[i]).store(w, std::memory_order_release);
  }
  if (const uint32_t tail = size % 8; tail != 0) {
    uint64_t w = 0;  // the slot's payload room is a multiple of 8: pad the last word
    std::memcpy(&w, src + uint64_t{full} * 8, tail);
    std::atomic_ref<uint64_t>(words[full]).store(w, std::memory_order_release);
  }
}

void LoadWords(uint64_t* words, std::byte* dst, uint32_t size) {
  const uint32_t full = size / 8;
  for (uint32_t i = 0; i < full; ++i) {
    const uint64_t w = std::atomic_ref<uint64_t>(words[i]).load(std::memory_order_acquire);
    std::memcpy(dst + uint64_t{i} * 8, &w, 8);
  }
  if (const uint32_t tail = size % 8; tail != 0) {
    const uint64_t w = std::atomic_ref<uint64_t>(words[full]).load(std::memory_order_acquire);
    std::memcpy(dst + uint64_t{full} * 8, &w, tail);
  }
}

}  // namespace

namespace internal {}  // namespace internal

Result<Segment> CreateBroadcastRing(const ShmDir& dir, std::string_view name,
                                    const BroadcastRingSpec& spec, const CreateOptions& options) {
  if (auto r =
          internal::CheckSlotRingSpec("broadcast ring", name, spec.slot_count, spec.max_message);
      !r.ok())
    return r.error();
  layout::ObjectParams params{};
  params.capacity = spec.slot_count;
  params.max_message = spec.max_message;
  // Truncation for absurd sizes is caught by Segment::Create's geometry check, which
  // rejects max_message over 16 MiB before it looks at slot_size.
  params.slot_size = static_cast<uint32_t>(layout::SlotSizeFor(spec.max_message));
  if (spec.policy != layout::BroadcastPolicy::kLossy &&
      spec.policy != layout::BroadcastPolicy::kLossless) {
    return Error(ErrorCode::kInvalidArgument,
                 "broadcast ring \"" + std::string(name) + "\": unknown policy " +
                     std::to_string(static_cast<uint32_t>(spec.policy)) +
                     " (kLossy = 0 or kLossless = 1)");
  }
  params.policy = static_cast<uint32_t>(spec.policy);
  const uint64_t data_size = uint64_t{spec.slot_count} * layout::SlotSizeFor(spec.max_message);
  // Zero-filled slots read sequence 0: below Done(n) for every n, so "not yet" everywhere.
  return Segment::Create(dir, name, ObjectKind::kBroadcastRing, params, data_size, options);
}

// --- producer -------------------------------------------------------------------------

// What the mapping says (Segment's geometry check refuses any other value; were one to
// slip through, lossless is the safe reading: nothing is lost, at worst the producer waits).
static layout::BroadcastPolicy PolicyOf(const Segment& segment) {
  return segment.params().policy == static_cast<uint32_t>(layout::BroadcastPolicy::kLossy)
             ? layout::BroadcastPolicy::kLossy
             : layout::BroadcastPolicy::kLossless;
}

BroadcastProducer::BroadcastProducer(std::shared_ptr<Segment> segment, uint32_t slot,
                                     const WaitOptions& wait)
    : segment_(std::move(segment)),
      ring_(segment_.get()),
      slot_(slot),
      tag_(slot + 1),
      policy_(PolicyOf(*segment_)),
      wait_(wait),
      spin_(wait.max_spin) {
  // Resume after the last message published. A predecessor that died after finishing
  // message n (sequence 2n + 2) but before counting it in `published` leaves it whole:
  // count it rather than rewrite it, or a subscriber copying the old message n could
  // see the same sequence before and after and take a mix of both for message n.
  published_ = ring_.control->published.load(std::memory_order_acquire);
  if (ring_.HeaderAt(published_).sequence.load(std::memory_order_acquire) == Done(published_)) {
    ++published_;
    ring_.control->published.store(published_, std::memory_order_release);
  }
  bytes_ = ring_.control->bytes_written.load(std::memory_order_relaxed);
  // Forces a scan at the first send that could overwrite anything.
  min_cursor_ = published_ > ring_.capacity ? published_ - ring_.capacity : 0;
}

Result<BroadcastProducer> BroadcastProducer::Attach(std::shared_ptr<Segment> segment,
                                                    const WaitOptions& wait) {
  if (auto r = CheckAttachable(segment, ObjectKind::kBroadcastRing); !r.ok()) return r.error();
  Result<uint32_t> slot = ClaimEndpoint(*segment, EndpointRole::kProducer, /*exclusive=*/true);
  if (!slot.ok()) return slot.error();
  return BroadcastProducer(std::move(segment), *slot, wait);
}

Result<BroadcastProducer> BroadcastProducer::Open(const ShmDir& dir, std::string_view name,
                                                  const WaitOptions& wait) {
  auto segment = OpenShared(dir, name, ObjectKind::kBroadcastRing);
  if (!segment.ok()) return segment.error();
  return Attach(std::move(segment).value(), wait);
}

BroadcastProducer::BroadcastProducer(BroadcastProducer&& other) noexcept {
  *this = std::move(other);
}

BroadcastProducer& BroadcastProducer::operator=(BroadcastProducer&& other) noexcept {
  if (this != &other) {
    Detach();
    segment_ = std::move(other.segment_);
    ring_ = other.ring_;
    slot_ = std::exchange(other.slot_, layout::kMaxEndpoints);
    tag_ = other.tag_;
    published_ = other.published_;
    bytes_ = other.bytes_;
    full_ = other.full_;
    policy_ = other.policy_;
    min_cursor_ = other.min_cursor_;
    wait_ = other.wait_;
    spin_ = other.spin_;
    last_clear_ = other.last_clear_;
  }
  return *this;
}

BroadcastProducer::~BroadcastProducer() { Detach(); }

void BroadcastProducer::Detach() noexcept {
  if (!segment_) return;
  if (slot_ < layout::kMaxEndpoints) ReleaseEndpoint(*segment_, slot_);
  slot_ = layout::kMaxEndpoints;
  segment_.reset();
}

Status BroadcastProducer::Check(std::span<const std::byte> message) const noexcept {
  if (message.empty()) return Status::kInvalidArgument;
  if (message.size() > ring_.max_message) return Status::kTooLarge;
  return Status::kOk;
}

void BroadcastProducer::CountFull() noexcept {
  ++full_;
  segment_->endpoints().slots[slot_].counters[layout::kCounterFull].store(
      full_, std::memory_order_relaxed);  // single writer, read by metrics
}

bool BroadcastProducer::HasRoom() noexcept {
  const uint64_t n = published_;
  // Message n overwrites n - capacity: room while every live cursor is past it.
  if (n < min_cursor_ + ring_.capacity) return true;
  // (L3): orders the store of `published` (in Write) before the state loads below,
  // against the joining subscriber's fence between its claim and its `published` load.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uint64_t min = n;  // nobody subscribed: room for a whole ring from here
  for (const layout::EndpointSlot& slot : segment_->endpoints().slots) {
    if (slot.state.load(std::memory_order_acquire) !=
            static_cast<uint32_t>(layout::EndpointState::kLive) ||
        slot.role.load(std::memory_order_relaxed) !=
            static_cast<uint32_t>(EndpointRole::kSubscriber)) {
      continue;
    }
    // (L2): pairs with the subscriber's release store (L1) of its cursor.
    min = std::min(min, slot.cursor.load(std::memory_order_acquire));
  }
  min_cursor_ = min;
  return n < min + ring_.capacity;
}

Status BroadcastProducer::TrySend(std::span<const std::byte> message) noexcept {
  if (Status s = Check(message); s != Status::kOk) return s;
  if (policy_ == layout::BroadcastPolicy::kLossless && !HasRoom() &&
      !(ClearDeadSubscribers(/*at_most_every_slice=*/true) && HasRoom())) {
    CountFull();
    return Status::kFull;
  }
  Write(message);
  return Status::kOk;
}

// Callers that never wait a whole sleep slice (TrySend in a loop, SendFor with short
// timeouts) would otherwise never reach WaitFor's slice boundary, where the dead are
// cleared: so the full path clears them too, at most once per slice (a few syscalls per
// live endpoint, off the path of any send that finds room).
bool BroadcastProducer::ClearDeadSubscribers(bool at_most_every_slice) noexcept {
  const Clock::time_point now = Clock::now();
  if (at_most_every_slice && now - last_clear_ < wait_.sleep_slice) return false;
  last_clear_ = now;
  return ClearDeadEndpoints(*segment_) != 0;
}

Status BroadcastProducer::SendFor(std::span<const std::byte> message, Nanos timeout) noexcept {
  // The clock is read only when the ring is full.
  Status s = TrySend(message);
  return s == Status::kFull ? SendUntil(message, Clock::now() + timeout) : s;
}

// After TrySend found a lossless ring full (and counted that as one full event).
Status BroadcastProducer::SendUntil(std::span<const std::byte> message,
                                    Clock::time_point deadline) noexcept {
  Status s = WaitFor(
      ring_.control->space_ready, wait_, spin_, deadline,
      &segment_->endpoints().slots[slot_].counters[layout::kCounterWaits],
      [&] { return HasRoom(); },
      [&] {
        // A dead subscriber's cursor would hold the producer forever: clear it (its slot
        // leaves kLive, so the next HasRoom skips it). Never "peer gone": a lossless
        // producer without subscribers simply has room.
        ClearDeadSubscribers(/*at_most_every_slice=*/false);
        return false;
      });
  if (s != Status::kOk) return s;
  Write(message);
  return Status::kOk;
}

void BroadcastProducer::Write(std::span<const std::byte> message) noexcept {
  const auto size = static_cast<uint32_t>(message.size());
  const uint64_t n = published_;
  SlotHeader& h = ring_.HeaderAt(n);
  // (W1): "being written". Relaxed: each release store below orders it before itself.
  h.sequence.store(Writing(n), std::memory_order_relaxed);
  LengthOf(h).store(size, std::memory_order_release);
  WriterOf(h).store(tag_, std::memory_order_release);
  StoreWords(ring_.PayloadAt(n), message.data(), size);
  // (W2): publishes message n's length and payload; pairs with the subscribers' (R1).
  h.sequence.store(Done(n), std::memory_order_release);
  published_ = n + 1;
  bytes_ += size;
  // Single writer. Release: a subscriber that attaches, or jumps after being lapped,
  // reads `published` with acquire and finds the slots it counts on written.
  ring_.control->published.store(published_, std::memory_order_release);
  ring_.control->bytes_written.store(bytes_, std::memory_order_relaxed);
  Wake(ring_.control->data_ready);
}

// --- subscriber -----------------------------------------------------------------------

BroadcastSubscriber::BroadcastSubscriber(std::shared_ptr<Segment> segment, uint32_t slot,
                                         const WaitOptions& wait)
    : segment_(std::move(segment)),
      ring_(segment_.get()),
      slot_(slot),
      lossless_(PolicyOf(*segment_) == layout::BroadcastPolicy::kLossless),
      wait_(wait),
      spin_(wait.max_spin),
      producer_(segment_.get(), EndpointRole::kProducer) {
  // (L3): the claim (slot kLive) before the load of `published`; pairs with the fence in
  // the producer's HasRoom. Lossy rings do not need it; joining is rare either way.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // Only what is published from now on.
  Advance(ring_.control->published.load(std::memory_order_acquire));
  attached_cursor_ = cursor_;
}

Result<BroadcastSubscriber> BroadcastSubscriber::Attach(std::shared_ptr<Segment> segment,
                                                        const WaitOptions& wait) {
  if (auto r = CheckAttachable(segment, ObjectKind::kBroadcastRing); !r.ok()) return r.error();
  Result<uint32_t> slot = ClaimEndpoint(*segment, EndpointRole::kSubscriber, /*exclusive=*/false);
  if (!slot.ok()) return slot.error();
  return BroadcastSubscriber(std::move(segment), *slot, wait);
}

Result<BroadcastSubscriber> BroadcastSubscriber::Open(const ShmDir& dir, std::string_view name,
                                                      const WaitOptions& wait) {
  auto segment = OpenShared(dir, name, ObjectKind::kBroadcastRing);
  if (!segment.ok()) return segment.error();
  return Attach(std::move(segment).value(), wait);
}

BroadcastSubscriber::BroadcastSubscriber(BroadcastSubscriber&& other) noexcept {
  *this = std::move(other);
}

BroadcastSubscriber& BroadcastSubscriber::operator=(BroadcastSubscriber&& other) noexcept {
  if (this != &other) {
    Detach();
    segment_ = std::move(other.segment_);
    ring_ = other.ring_;
    slot_ = std::exchange(other.slot_, layout::kMaxEndpoints);
    lossless_ = other.lossless_;
    cursor_ = other.cursor_;
    attached_cursor_ = other.attached_cursor_;
    last_lost_ = other.last_lost_;
    messages_ = other.messages_;
    bytes_ = other.bytes_;
    lost_ = other.lost_;
    lap_events_ = other.lap_events_;
    wait_ = other.wait_;
    spin_ = other.spin_;
    producer_ = PeerWatch(segment_.get(), EndpointRole::kProducer);
  }
  return *this;
}

BroadcastSubscriber::~BroadcastSubscriber() { Detach(); }

void BroadcastSubscriber::Detach() noexcept {
  if (!segment_) return;
  if (slot_ < layout::kMaxEndpoints) ReleaseEndpoint(*segment_, slot_);
  slot_ = layout::kMaxEndpoints;
  segment_.reset();
}

void BroadcastSubscriber::Advance(uint64_t next) noexcept {
  cursor_ = next;
  // Read by metrics (lag = published - cursor) and, on a lossless ring, by the producer
  // before it overwrites a slot. (L1): release, so every read of the slot this
  // subscriber has just left happens before a producer that acquires this value (L2)
  // rewrites it. (A plain store on x86-64, as relaxed was: the lossy path costs nothing.)
  segment_->endpoints().slots[slot_].cursor.store(cursor_, std::memory_order_release);
  // Only a lossless producer ever sleeps for room: lossy rings skip even the check.
  if (lossless_) Wake(ring_.control->space_ready);
}

bool BroadcastSubscriber::Ready() const noexcept {
  // Done or overwritten: either way TryReceive has something to say.
  return ring_.HeaderAt(cursor_).sequence.load(std::memory_order_acquire) >= Done(cursor_);
}

Status BroadcastSubscriber::Lapped() noexcept {
  const uint64_t c = cursor_;
  const uint64_t published = ring_.control->published.load(std::memory_order_acquire);
  // The oldest message the ring can hold is published - slot_count, in the slot the
  // producer writes message `published` into next: skip it too if that has begun.
  uint64_t next = published > ring_.capacity ? published - ring_.capacity : 0;
  if (ring_.HeaderAt(next).sequence.load(std::memory_order_acquire) != Done(next)) ++next;
  // Message c is gone whatever `published` we read.
  if (next <= c) next = c + 1;
  last_lost_ = next - c;
  lost_ += last_lost_;
  ++lap_events_;
  auto& slot = segment_->endpoints().slots[slot_];
  slot.counters[layout::kCounterLapped].store(lost_, std::memory_order_relaxed);
  slot.counters[layout::kCounterLapEvents].store(lap_events_, std::memory_order_relaxed);
  Advance(next);
  return Status::kLapped;
}

// The producer watch (PeerWatch) adopts whoever holds the role when it looks, and
// ReceiveUntil looks only when nothing is ready. A subscriber that subscribed before its
// producer attached and never ran dry while it lived (always lapped, or always a message
// behind) never adopted it: after it left, the subscriber drained the ring and then waited
// on, never told. Hence this check, made only where the watch is (nothing on the receive
// path): having received or lost messages since subscribing and finding no producer now
// is the end of the stream, as EOF is for a pipe whose writer closed (and as for the SPSC
// consumer). A subscriber that has seen nothing yet keeps waiting for a first producer.
// A dead producer still holds the role: the watch adopts it at the first look and finds
// it dead (Gone(true)). Acquire pairs with the role's release in ReleaseEndpoint; WaitFor
// re-checks Ready() after a "gone", so a last message published just before the producer
// left is still delivered.
bool BroadcastSubscriber::ProducerLeftAfterPublishing() const noexcept {
  if (cursor_ == attached_cursor_) return false;
  const auto role = static_cast<uint32_t>(EndpointRole::kProducer);
  return segment_->header_page().roles.owner[role].load(std::memory_order_acquire) == 0;
}

Status BroadcastSubscriber::TryReceive(std::span<std::byte> buffer, size_t* size) noexcept {
  const uint64_t n = cursor_;
  SlotHeader& h = ring_.HeaderAt(n);
  // (R1): pairs with the producer's (W2) for message n.
  const uint64_t before = h.sequence.load(std::memory_order_acquire);
  if (before < Done(n)) return Status::kEmpty;  // not yet written, or being written
  if (before > Done(n)) return Lapped();        // a later message is in (or going into) it
  // (R2): the length, like every payload word, is an acquire load; (R3) re-checks.
  const uint32_t length = LengthOf(h).load(std::memory_order_acquire);
  if (length == 0 || length > ring_.max_message || length > buffer.size()) {
    // Never trust the length: but a wild one may just be a newer message's, mid-write.
    if (h.sequence.load(std::memory_order_relaxed) != before) return Lapped();  // (R3)
    if (length == 0 || length > ring_.max_message) {
      Advance(n + 1);  // not read; moved past so the subscriber keeps going
      return Status::kCorrupted;
    }
    *size = length;
    return Status::kTooLarge;
  }
  LoadWords(ring_.PayloadAt(n), buffer.data(), length);
  // (R3): unchanged, so no word above came from a later message (see the header).
  if (h.sequence.load(std::memory_order_relaxed) != before) return Lapped();
  *size = length;
  ++messages_;
  bytes_ += length;
  auto& slot = segment_->endpoints().slots[slot_];
  slot.counters[layout::kCounterMessages].store(messages_, std::memory_order_relaxed);
  slot.counters[layout::kCounterBytes].store(bytes_, std::memory_order_relaxed);
  Advance(n + 1);
  return Status::kOk;
}

Status BroadcastSubscriber::ReceiveUntil(std::span<std::byte> buffer, size_t* size,
                                         Clock::time_point deadline) noexcept {
  for (;;) {
    Status s = TryReceive(buffer, size);
    if (s != Status::kEmpty) return s;
    // Report a producer known to have left at once, not after a sleep slice.
    if ((producer_.Gone(/*check_process=*/false) || ProducerLeftAfterPublishing()) && !Ready()) {
      return Status::kPeerGone;
    }
    s = WaitFor(
        ring_.control->data_ready, wait_, spin_, deadline,
        &segment_->endpoints().slots[slot_].counters[layout::kCounterWaits],
        [&] { return Ready(); },
        [&] { return producer_.Gone(/*check_process=*/true) || ProducerLeftAfterPublishing(); });
    if (s != Status::kOk) return s;
  }
}

}  // namespace shmd
