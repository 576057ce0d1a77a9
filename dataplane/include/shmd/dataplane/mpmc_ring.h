// Multi-producer multi-consumer ring of fixed-size slots (Vyukov's bounded queue): any
// number of producers and consumers, in any processes, each message 1 to max_message
// bytes in one slot. Layout: layout.h ("MPMC ring of fixed-size slots").
//
// Thread safety: sends and receives are lock-free across processes and threads; a handle
// (MpmcProducer or MpmcConsumer: it owns an endpoint slot and its counters) is used by one
// thread at a time. Order: the messages of one producer are received in the order it sent
// them by any one consumer; with several consumers, which consumer gets which message is
// not defined.
//
// Protocol. Position p lives in slot p & (slot_count - 1). A producer claims p by a CAS on
// enqueue_position once the slot's sequence reads p, writes `writer`, length and payload,
// and stores sequence = p + 1. A consumer claims p by a CAS on dequeue_position once the
// sequence reads p + 1, reads, sets `writer` to 0 and stores sequence = p + slot_count.
// Nobody touches a slot's contents before winning its CAS: a slot may be recycled at any
// moment by someone else.
//
// Memory ordering, by label:
//   (A) the producer's release store of sequence = p + 1 publishes length, writer and
//       payload;
//   (B) the consumer's acquire load of the sequence pairs with (A) (or with (R));
//   (C) the consumer's release store of sequence = p + slot_count says it has finished
//       reading the slot (and has reset `writer`);
//   (D) the producer's acquire load of the sequence pairs with (C) before it overwrites.
//   (T) the producer's release store of its tag into `writer`, after its claim, and
//   (U) a recoverer's acquire load of `writer`, pairing with (T): see "Abandoned slots".
//   (R) a recoverer's release store of sequence = p + 1 publishes the kAbandonedLength
//       marker, like (A).
// The CASes on the positions are relaxed: they only hand out positions; the slot's
// sequence carries every ordering.
//
// Blocking. Producers Wake(data_ready) after every publish; consumers Wake(space_ready)
// after every freed slot. Send/Receive sleep with WaitFor and return:
//   kClosed    the ring was deleted (Segment::Remove);
//   kPeerGone  no endpoint of the other role is attached any more, after this handle
//              has seen one: live at attach or at a check, or evidenced by the other
//              side's position having moved since attach. Checked at every sleep slice
//              (wait.h), asking the kernel whether each endpoint's process still runs
//              and clearing dead ones. A consumer keeps getting messages left in the
//              ring first; kPeerGone only once nothing is left. Not sticky: a new peer
//              attaching makes the calls wait again. A handle that never saw a peer
//              waits (a consumer may attach before any producer).
//
// Abandoned slots (a producer dying mid-send). A producer that claims position p and dies
// before publishing it would stall every consumer at p. The claimer's endpoint slot + 1
// is in the slot's `writer` (stored right after the claim (T); consumers reset it to 0
// when they free a slot). A consumer waiting at p checks, at each sleep slice, whether p
// is claimed (enqueue_position > p, sequence still p) and whether its claimer has gone:
// its endpoint slot is no longer live, or its process is dead (the consumer clears it).
// If so, it takes the slot over (CAS writer: tag -> kWriterRecovering, so one recoverer
// wins) and publishes it with length kAbandonedLength (R); consumers skip such slots,
// and count them (abandoned_skipped()). An endpoint slot reused by a new attacher
// before anyone noticed is handled by the attacher: every MPMC handle, at attach, scans
// the claimed-but-unpublished positions for its own tag and marks them abandoned (it
// cannot have claimed anything yet, so they belong to its predecessor).
// A producer destroyed with an open reservation publishes it as abandoned too.
// Limitations (documented, not recovered):
//   - a producer that dies in the few instructions between its claim and the store of
//     its tag leaves `writer` at 0: that slot cannot be attributed and stays stuck;
//   - a consumer that dies between claiming a message and freeing its slot (inside
//     Receive, or between TryPeek and Release) loses that message, and producers stall at
//     that slot when they come round to it: the slot header records no reader (a layout
//     change would be needed to attribute it);
//   - a recoverer that dies between its CAS and its publish leaves the slot stuck.
// These would need an operator's "unblock" (as Aeron has), which does not exist yet.
// A consumer that only polls (TryReceive/TryPeek) never recovers anything by itself: call
// RecoverAbandonedSlots now and then, or let the daemon do it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "shmd/dataplane/endpoints.h"
#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/message_view.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"
#include "shmd/dataplane/slot_ring.h"
#include "shmd/dataplane/status.h"
#include "shmd/dataplane/wait.h"

namespace shmd {

using layout::kAbandonedLength;
using layout::kWriterRecovering;

struct MpmcRingSpec {
  uint32_t slot_count = 1024;  // a power of two, 2 to 16777216
  uint32_t max_message = 256;  // payload bytes per slot, 1 to 16777216
};

// Creates the ring's file in `dir`: every slot free (slot i's sequence is i), no endpoints.
Result<Segment> CreateMpmcRing(const ShmDir& dir, std::string_view name, const MpmcRingSpec& spec,
                               const CreateOptions& options = {});

// Marks as abandoned every claimed-but-unpublished slot whose claimer has gone (endpoint
// not live, or its process dead); returns how many. For the daemon after it clears a dead
// producer, or for a consumer that only polls with TryReceive. Safe to run at any time.
uint32_t RecoverAbandonedSlots(const Segment& ring);

namespace internal {

// Process-local view of the mapped ring (slot_ring.h).
struct MpmcRingView : SlotRingView<layout::MpmcControl> {
  using SlotRingView::SlotRingView;
  std::byte* PayloadAt(uint64_t position) const {
    return reinterpret_cast<std::byte*>(SlotPayload(position));
  }
};

// Whether any endpoint of `role` is attached, for kPeerGone on rings whose roles are not
// exclusive. "Gone" = none attached now, after one was seen: live at a check, or
// evidenced by `activity` (the other side's position) having moved since construction.
// (General enough for endpoints.h; it lives here until that file takes it.)
class RolePresence {
 public:
  RolePresence() = default;
  RolePresence(const Segment* segment, layout::EndpointRole role,
               const std::atomic<uint64_t>* activity);
  // With `check_process`, asks the kernel about each live endpoint of the role and clears
  // the dead ones; otherwise only reads the endpoint table.
  bool Gone(bool check_process);

 private:
  const Segment* segment_ = nullptr;
  layout::EndpointRole role_ = layout::EndpointRole::kNone;
  const std::atomic<uint64_t>* activity_ = nullptr;
  uint64_t activity_at_start_ = 0;
  bool seen_ = false;
};

}  // namespace internal

class MpmcProducer {
 public:
  static Result<MpmcProducer> Attach(std::shared_ptr<Segment> segment,
                                     const WaitOptions& wait = {});
  static Result<MpmcProducer> Open(const ShmDir& dir, std::string_view name,
                                   const WaitOptions& wait = {});

  MpmcProducer(MpmcProducer&& other) noexcept;
  MpmcProducer& operator=(MpmcProducer&& other) noexcept;
  ~MpmcProducer();  // publishes an open reservation as abandoned, then detaches

  // Copying sends. kInvalidArgument if empty or while a reservation is open; kTooLarge
  // if over max_message; kFull (Try) when every slot holds an unread message; kCorrupted
  // when the ring's positions and slot sequences contradict each other (written over by
  // something else: nothing was written).
  Status TrySend(std::span<const std::byte> message) noexcept;
  Status Send(std::span<const std::byte> message) noexcept {
    return SendWithin(message, Nanos::max());
  }
  Status SendFor(std::span<const std::byte> message, Nanos timeout) noexcept {
    return SendWithin(message, timeout);
  }
  Status TrySend(const void* data, size_t size) noexcept {
    return TrySend({static_cast<const std::byte*>(data), size});
  }

  // Zero-copy: claim a slot, write up to max_message bytes into *out, then Commit the
  // size. One reservation at a time; consumers wait at this slot until it is committed,
  // so keep the window short.
  Status TryReserve(std::span<std::byte>* out) noexcept;
  Status ReserveFor(Nanos timeout, std::span<std::byte>* out) noexcept;
  // kInvalidArgument (and the reservation stays open) without a reservation, or for a
  // size of 0 or over max_message.
  Status Commit(uint32_t size) noexcept;

  uint32_t max_message() const { return ring_.max_message; }
  uint64_t slot_count() const { return ring_.capacity; }
  const Segment& segment() const { return *segment_; }
  // Abandoned slots this handle's attach scan recovered (its endpoint slot's predecessor's).
  uint64_t recovered() const { return recovered_; }

 private:
  MpmcProducer(std::shared_ptr<Segment> segment, uint32_t slot, const WaitOptions& wait);
  // Claims the next position (reserved_position_); waits for room unless `try_only`.
  // The clock is read only when the ring is full: a read costs as much as a send.
  Status ClaimWithin(Nanos timeout, bool try_only) noexcept;
  void Publish(uint32_t size) noexcept;
  Status SendWithin(std::span<const std::byte> message, Nanos timeout) noexcept;
  std::atomic<uint64_t>& Counter(layout::EndpointCounter c) const {
    return segment_->endpoints().slots[slot_].counters[c];
  }
  void Detach() noexcept;

  std::shared_ptr<Segment> segment_;
  internal::MpmcRingView ring_;
  uint32_t slot_ = layout::kMaxEndpoints;
  uint32_t tag_ = 0;  // slot_ + 1, what goes into SlotHeader::writer
  // Process-local state.
  bool reserved_ = false;
  uint64_t reserved_position_ = 0;
  uint64_t messages_ = 0;  // mirrored into the endpoint slot's counters (single writer)
  uint64_t bytes_ = 0;
  uint64_t full_events_ = 0;
  uint64_t recovered_ = 0;
  WaitOptions wait_;
  AdaptiveSpin spin_{std::chrono::microseconds(50)};
  internal::RolePresence consumers_;
};

class MpmcConsumer {
 public:
  static Result<MpmcConsumer> Attach(std::shared_ptr<Segment> segment,
                                     const WaitOptions& wait = {});
  static Result<MpmcConsumer> Open(const ShmDir& dir, std::string_view name,
                                   const WaitOptions& wait = {});

  MpmcConsumer(MpmcConsumer&& other) noexcept;
  MpmcConsumer& operator=(MpmcConsumer&& other) noexcept;
  ~MpmcConsumer();  // releases an open peek (that message is dropped), then detaches

  // Copying receives. The slot is claimed before its length can be read (another consumer
  // could recycle it otherwise), so a message cannot be left in the ring for a larger
  // buffer: `buffer` must hold max_message bytes, or the call returns kTooLarge at once,
  // with *size = max_message and nothing consumed. Use TryPeek to read any size in place.
  // kCorrupted: the slot claimed a length of 0 or over max_message (it was not read, and
  // was dropped so the ring keeps moving), or the positions and sequences contradict each
  // other (nothing was read).
  Status TryReceive(std::span<std::byte> buffer, size_t* size) noexcept;
  Status Receive(std::span<std::byte> buffer, size_t* size) noexcept {
    return ReceiveUntil(buffer, size, Clock::time_point::max());
  }
  Status ReceiveFor(std::span<std::byte> buffer, size_t* size, Nanos timeout) noexcept {
    Status s = TryReceive(buffer, size);
    return s == Status::kEmpty ? ReceiveUntil(buffer, size, Clock::now() + timeout) : s;
  }

  // Zero-copy: claim the next message and look at it in place until Release(). One at a
  // time (kInvalidArgument otherwise). Producers wait at this slot when they come round to
  // it, so keep the window short.
  Status TryPeek(MessageView* out) noexcept;
  Status Peek(MessageView* out) noexcept { return PeekUntil(out, Clock::time_point::max()); }
  Status PeekFor(MessageView* out, Nanos timeout) noexcept {
    Status s = TryPeek(out);
    return s == Status::kEmpty ? PeekUntil(out, Clock::now() + timeout) : s;
  }
  void Release() noexcept;

  uint32_t max_message() const { return ring_.max_message; }
  uint64_t slot_count() const { return ring_.capacity; }
  const Segment& segment() const { return *segment_; }
  // The mapping itself, for whoever must keep it alive past this handle (wait_set.h).
  const std::shared_ptr<Segment>& shared_segment() const { return segment_; }
  // Abandoned slots (see the top of this file) this handle skipped, and recovered itself.
  uint64_t abandoned_skipped() const { return abandoned_skipped_; }
  uint64_t recovered() const { return recovered_; }

 private:
  MpmcConsumer(std::shared_ptr<Segment> segment, uint32_t slot, const WaitOptions& wait);
  Status TryClaim(MessageView* out) noexcept;
  Status PeekUntil(MessageView* out, Clock::time_point deadline) noexcept;
  Status ReceiveUntil(std::span<std::byte> buffer, size_t* size,
                      Clock::time_point deadline) noexcept;
  Status CopyOut(const MessageView& view, std::span<std::byte> buffer, size_t* size) noexcept;
  Status WaitForData(Clock::time_point deadline) noexcept;
  bool HeadReady() const noexcept;
  bool RecoverHead() noexcept;  // marks the head abandoned if its claimer has gone
  void FreeSlot(uint64_t position) noexcept;
  std::atomic<uint64_t>& Counter(layout::EndpointCounter c) const {
    return segment_->endpoints().slots[slot_].counters[c];
  }
  void Detach() noexcept;

  std::shared_ptr<Segment> segment_;
  internal::MpmcRingView ring_;
  uint32_t slot_ = layout::kMaxEndpoints;
  uint32_t tag_ = 0;
  bool peeked_ = false;
  uint64_t peeked_position_ = 0;
  uint32_t peeked_length_ = 0;
  uint64_t messages_ = 0;
  uint64_t bytes_ = 0;
  uint64_t abandoned_skipped_ = 0;
  uint64_t recovered_ = 0;
  WaitOptions wait_;
  AdaptiveSpin spin_{std::chrono::microseconds(50)};
  internal::RolePresence producers_;
};

}  // namespace shmd
