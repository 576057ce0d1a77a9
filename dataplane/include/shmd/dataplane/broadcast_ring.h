// Broadcast ring: one producer, any number of subscribers, each reading every message
// at its own pace from its own cursor. Fixed-size slots (each message 1 to max_message
// bytes). Layout: layout.h ("Broadcast ring").
//
// Slow-subscriber policy, chosen at creation (BroadcastRingSpec::policy):
//
// Lossy (BroadcastPolicy::kLossy, the default). The producer never waits: it
// writes message n into slot n & (slot_count - 1) whether or not every subscriber has
// read what was there. A subscriber that falls a full ring behind is "lapped": its next
// receive returns kLapped, having moved its cursor to the oldest message the ring still
// holds intact, and says exactly how many messages it skipped (last_lost(), also added
// to its kCounterLapped counter; kCounterLapEvents counts the kLapped results). The
// oldest intact message is published - slot_count, or one later if the producer has
// already begun overwriting that one. So a subscriber that stopped reading while N >
// slot_count messages were published loses N - slot_count of them and then reads the
// last slot_count, in order. Lapped again while it copies, it loses more, counted
// the same way. For every subscriber, at any time:
//   delivered + lost + corrupted = cursor - cursor at subscription.
//
// Lossless (BroadcastPolicy::kLossless). The producer writes message n (into the slot of
// message n - slot_count) only once every LIVE subscriber's cursor is past n - slot_count:
// until then TrySend returns kFull (counted in the producer's kCounterFull, the ring's
// full_events) and Send/SendFor sleep on space_ready, which a lossless subscriber wakes
// after each advance of its cursor. Nobody is lapped. A subscriber that died must not hold
// the producer forever: at every sleep-slice boundary the waiting producer clears dead
// endpoints (ClearDeadEndpoints), whose cursors then stop counting; so does a TrySend or
// a short SendFor that finds the ring full, at most once per sleep slice. A live subscriber
// that stops reading stalls the producer (it gets kTimeout): that is the policy.
// The producer reads the cursors only when the minimum it last saw no longer leaves room
// (a cached minimum: one scan of the endpoint table per slot_count messages at best).
// Orderings, by label:
//   (L1) the subscriber stores its cursor with release, after it finished copying (and
//        re-checking) the slot: everything it read happens before that store;
//   (L2) the producer loads each cursor with acquire before it overwrites a slot: its
//        stores into message n - slot_count's slot come after the subscriber's reads
//        of it (pairs with (L1)), so the copy never mixes two messages;
//   (L3) joining: the subscriber's claim of its endpoint slot (state kLive) and its load
//        of `published`, against the producer's store of `published` and its scan of the
//        endpoint states, are separated by seq_cst fences on both sides (a store-load
//        pattern that acquire/release cannot order): either the scan sees the new slot
//        live (its cursor reads 0, zeroed when the slot was last freed, until the
//        subscriber stores the real one: the producer waits, and the subscriber wakes
//        it), or the subscriber reads a `published` at least as large as the one the
//        scan started from, so the cached minimum was no larger than its cursor.
//
// A subscriber starts at the producer's `published` count when it attaches: it sees
// the messages published after it subscribed (and possibly one being published at that
// instant), never older ones.
//
// Thread safety: one BroadcastProducer per ring at a time (an exclusive endpoint role;
// a second one gets kBusy); each handle is used by one thread at a time.
//
// Seqlock per slot. Message n: the producer stores sequence = 2n + 1 (writing), then the
// length and payload, then sequence = 2n + 2 (done). A subscriber expecting n reads the
// sequence: below 2n + 2 means "not yet" (kEmpty), above means overwritten (lapped);
// equal, it copies the length and payload out and re-reads the sequence: unchanged,
// the copy is message n; changed, it was overwritten meanwhile (lapped).
//
// The payload is read while the producer may be overwriting it. To keep that free of
// C++ data races (ThreadSanitizer checks these tests), every payload and length access
// on both sides is an 8-byte (4 for the length) atomic access through std::atomic_ref;
// the payload area is 8-aligned and the slot's payload room a multiple of 8, so the
// producer stores whole words, zero-padding the tail word. The orderings, by label:
//   (W1) the producer's store of 2n + 1 comes before its payload stores, each of which
//        is a release store: a subscriber whose acquire load (R2) of any payload word
//        or length reads a newer message's value therefore sees 2n' + 1 or later at its
//        re-check (R3), never the sequence it started with;
//   (W2) the release store of 2n + 2 publishes the length and payload of message n;
//   (R1) the subscriber's acquire load of the sequence pairs with (W2);
//   (R2) acquire loads of the length and payload words (pair with the release stores);
//   (R3) the re-check of the sequence, after (R2) (which keeps it from moving earlier).
// (Relaxed word loads plus one atomic_thread_fence(acquire) before (R3) would be the
// textbook seqlock, but GCC's ThreadSanitizer does not model fences (-Wtsan); on x86-64
// acquire loads and release stores are plain moves, so this costs nothing there.)
//
// Blocking. The producer Wake()s data_ready after every message. Receive/ReceiveFor sleep
// with WaitFor and return kClosed when the ring is deleted, and kPeerGone when the
// producer this subscriber knew of has detached or died and no message is ready
// (PeerWatch: sticky until a new producer attaches; a subscriber that never saw a
// producer waits for one). That includes a producer that attached after the subscriber
// and left while it was still reading (always lapped, it never found the ring empty):
// once the subscriber has received or lost messages, no producer at all means the end
// of the stream. A producer that died mid-message leaves it unfinished
// (sequence 2n + 1): subscribers wait at it; the next producer rewrites message n.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "shmd/dataplane/endpoints.h"
#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"
#include "shmd/dataplane/slot_ring.h"
#include "shmd/dataplane/status.h"
#include "shmd/dataplane/wait.h"

namespace shmd {

struct BroadcastRingSpec {
  uint32_t slot_count = 1024;  // a power of two, 2 to 16777216
  uint32_t max_message = 256;  // payload bytes per slot, 1 to 16777216
  layout::BroadcastPolicy policy = layout::BroadcastPolicy::kLossy;
};

// Creates the ring's file in `dir`: nothing published, no endpoints.
Result<Segment> CreateBroadcastRing(const ShmDir& dir, std::string_view name,
                                    const BroadcastRingSpec& spec,
                                    const CreateOptions& options = {});

namespace internal {

// Process-local view of the mapped ring (slot_ring.h).
struct BroadcastRingView : SlotRingView<layout::BroadcastControl> {
  using SlotRingView::SlotRingView;
  uint64_t* PayloadAt(uint64_t position) const {
    return reinterpret_cast<uint64_t*>(SlotPayload(position));
  }
};

}  // namespace internal

class BroadcastProducer {
 public:
  // `wait` matters only on a lossless ring (a lossy producer never waits).
  static Result<BroadcastProducer> Attach(std::shared_ptr<Segment> segment,
                                          const WaitOptions& wait = {});
  static Result<BroadcastProducer> Open(const ShmDir& dir, std::string_view name,
                                        const WaitOptions& wait = {});

  BroadcastProducer(BroadcastProducer&& other) noexcept;
  BroadcastProducer& operator=(BroadcastProducer&& other) noexcept;
  ~BroadcastProducer();  // detaches: subscribers waiting for more see kPeerGone

  // Publishes a copy of `message`; never blocks. kInvalidArgument if empty; kTooLarge if
  // over max_message; on a lossless ring, kFull while a live subscriber is a whole ring
  // behind (lossy: never).
  Status TrySend(std::span<const std::byte> message) noexcept;
  Status TrySend(const void* data, size_t size) noexcept {
    return TrySend({static_cast<const std::byte*>(data), size});
  }
  // Lossless: waits for room (kTimeout at the deadline; kClosed if the ring is deleted),
  // clearing dead subscribers while it waits. Lossy: the same as TrySend.
  Status Send(std::span<const std::byte> message) noexcept {
    Status s = TrySend(message);
    return s == Status::kFull ? SendUntil(message, Clock::time_point::max()) : s;
  }
  Status SendFor(std::span<const std::byte> message, Nanos timeout) noexcept;

  layout::BroadcastPolicy policy() const { return policy_; }
  void set_wait(const WaitOptions& wait) {  // e.g. after Client::Open, which passes none
    wait_ = wait;
    spin_ = AdaptiveSpin(wait.max_spin);
  }

  // Messages published on this ring so far (by every producer it has had): the sequence
  // number of the next one.
  uint64_t published() const { return published_; }
  uint32_t max_message() const { return ring_.max_message; }
  uint64_t slot_count() const { return ring_.capacity; }
  const Segment& segment() const { return *segment_; }

 private:
  BroadcastProducer(std::shared_ptr<Segment> segment, uint32_t slot, const WaitOptions& wait);
  void Detach() noexcept;
  Status SendUntil(std::span<const std::byte> message, Clock::time_point deadline) noexcept;
  Status Check(std::span<const std::byte> message) const noexcept;
  void Write(std::span<const std::byte> message) noexcept;
  bool HasRoom() noexcept;  // lossless: may message published_ be written now?
  void CountFull() noexcept;
  bool ClearDeadSubscribers(bool at_most_every_slice) noexcept;  // true: cleared some

  std::shared_ptr<Segment> segment_;
  internal::BroadcastRingView ring_;
  uint32_t slot_ = layout::kMaxEndpoints;
  uint32_t tag_ = 0;
  // Process-local copies of BroadcastControl's counters (single writer: this handle).
  uint64_t published_ = 0;
  uint64_t bytes_ = 0;
  uint64_t full_ = 0;
  layout::BroadcastPolicy policy_ = layout::BroadcastPolicy::kLossy;
  // Lossless: the smallest live subscriber cursor at the last scan (HasRoom).
  uint64_t min_cursor_ = 0;
  WaitOptions wait_;
  AdaptiveSpin spin_{std::chrono::microseconds(50)};
  Clock::time_point last_clear_{};  // of dead endpoints, while full
};

class BroadcastSubscriber {
 public:
  static Result<BroadcastSubscriber> Attach(std::shared_ptr<Segment> segment,
                                            const WaitOptions& wait = {});
  static Result<BroadcastSubscriber> Open(const ShmDir& dir, std::string_view name,
                                          const WaitOptions& wait = {});

  BroadcastSubscriber(BroadcastSubscriber&& other) noexcept;
  BroadcastSubscriber& operator=(BroadcastSubscriber&& other) noexcept;
  ~BroadcastSubscriber();

  // Copies the next message into `buffer`. Besides kOk and kEmpty:
  //   kLapped     the subscriber was overrun; its cursor moved past last_lost() messages
  //               it will never see; the next call reads on from there;
  //   kTooLarge   `buffer` is smaller than the message (*size = its length); the message
  //               stays for a larger buffer (unless it gets overwritten meanwhile);
  //   kCorrupted  the slot claimed a length of 0 or over max_message; it was not read,
  //               and the subscriber moved past it.
  Status TryReceive(std::span<std::byte> buffer, size_t* size) noexcept;
  Status Receive(std::span<std::byte> buffer, size_t* size) noexcept {
    return ReceiveUntil(buffer, size, Clock::time_point::max());
  }
  Status ReceiveFor(std::span<std::byte> buffer, size_t* size, Nanos timeout) noexcept {
    // The clock is read only when nothing is ready: it costs as much as a receive.
    Status s = TryReceive(buffer, size);
    return s == Status::kEmpty ? ReceiveUntil(buffer, size, Clock::now() + timeout) : s;
  }

  // Messages skipped by the last kLapped result.
  uint64_t last_lost() const { return last_lost_; }
  // Sequence number of the next message this subscriber reads.
  uint64_t cursor() const { return cursor_; }
  layout::BroadcastPolicy policy() const {
    return lossless_ ? layout::BroadcastPolicy::kLossless : layout::BroadcastPolicy::kLossy;
  }
  uint32_t max_message() const { return ring_.max_message; }
  uint64_t slot_count() const { return ring_.capacity; }
  const Segment& segment() const { return *segment_; }
  // The mapping itself, for whoever must keep it alive past this handle (wait_set.h).
  const std::shared_ptr<Segment>& shared_segment() const { return segment_; }
  // The endpoint slot whose `cursor` mirrors cursor() (stored at every advance).
  uint32_t endpoint_slot() const { return slot_; }

 private:
  BroadcastSubscriber(std::shared_ptr<Segment> segment, uint32_t slot, const WaitOptions& wait);
  Status ReceiveUntil(std::span<std::byte> buffer, size_t* size,
                      Clock::time_point deadline) noexcept;
  bool Ready() const noexcept;
  Status Lapped() noexcept;
  void Advance(uint64_t next) noexcept;
  void Detach() noexcept;
  bool ProducerLeftAfterPublishing() const noexcept;

  std::shared_ptr<Segment> segment_;
  internal::BroadcastRingView ring_;
  uint32_t slot_ = layout::kMaxEndpoints;
  // Process-local state; cursor_ and the counters are mirrored into the endpoint slot.
  uint64_t cursor_ = 0;
  uint64_t attached_cursor_ = 0;  // cursor_ at Attach: has this subscriber seen anything?
  uint64_t last_lost_ = 0;
  uint64_t messages_ = 0;
  uint64_t bytes_ = 0;
  uint64_t lost_ = 0;
  uint64_t lap_events_ = 0;
  bool lossless_ = false;  // wakes the producer after each advance
  WaitOptions wait_;
  AdaptiveSpin spin_{std::chrono::microseconds(50)};
  PeerWatch producer_;
};

}  // namespace shmd
