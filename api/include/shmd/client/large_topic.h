// LargeTopic: zero-copy publish/subscribe for large messages. One publisher loans a block
// of a shared pool, writes the message in place and publishes it; every subscriber reads
// those same bytes in place (no copy anywhere) and releases them; the last release frees
// the block.
//
//   LargePublisher pub = *LargePublisher::Open(dir, "video");
//   LargeLoan loan;
//   if (pub.Loan(&loan, 100ms) == Status::kOk) {       // a whole pool block
//     Render(loan.bytes());
//     pub.Publish(loan, frame_size);                     // to every subscriber
//   }
//
//   LargeSubscriber sub = *LargeSubscriber::Join(dir, "video");
//   LargeMessage m;
//   while (sub.Receive(&m, 1s) == Status::kOk) {         // m.bytes() lies in the pool
//     if (m.lost_before() != 0) Note(m.lost_before());   // lossy: what it missed
//     Consume(m.bytes());
//     m.Release();                                       // or let it go out of scope
//   }
//
// Objects behind topic "video" (embedded mode: files of a ShmDir):
//   "video.blocks"    block pool: `blocks` blocks of max_message bytes (rounded to 64);
//   "video.subs"      region: the subscriber table (layout::LargeTopicHeader below: magic,
//                     version, geometry, generation; then one LargeEntry per subscriber
//                     slot, a held-block bitmap per slot, and one u32 reference count per
//                     block). Its endpoint table holds the publisher (exclusive role);
//   "video.sub.<id>"  one SPSC ring per subscriber, made by that subscriber (consumer);
//                     the publisher attaches as producer when it sees the entry (it
//                     re-scans the table when the generation moved). Each record is a
//                     LargeDescriptor: block, length, sequence, losses so far.
//
// Slow subscribers. Each subscriber may hold at most `depth` messages not yet released
// (in its ring or in its hands): the publisher counts what it sent to it against the
// subscriber's `released` counter, so the ring (sized for depth records) is never full.
//   kLossy     a subscriber at its bound misses the message; the publisher counts it in
//              that subscriber's entry and the next message it does get carries the
//              count (LargeMessage::lost_before). The others are not affected. Note that
//              the pool must still have a block for the publisher: size `blocks` for the
//              slow subscribers' holdings (depth each) plus what the others hold.
//   kLossless  Publish checks every subscriber first: while one is at its bound it waits
//              (up to the timeout, polling the counters) and then returns kTimeout with
//              the message sent to NOBODY (the loan is kept: publish it again or drop it).
//              So a message goes to all live subscribers or to none. Loan also waits for
//              a free block up to its timeout (kTimeout).
// A subscriber gets every message published after Join returned (the publisher sees it
// at its next Publish), in order; nothing published before.
//
// Leaving and dying. Join claims a table entry and bumps the generation; Leave (or the
// destructor) marks it leaving. A dead subscriber is found by the publisher (the ring's
// consumer endpoint, checked for a subscriber at its bound at most once a sleep slice,
// while a lossless Publish or a Loan waits, and by CheckSubscribers). Whoever reaps an entry (the
// publisher; or a leaving subscriber when no live publisher is attached to its ring) drops one
// reference for each descriptor left in its ring and for each block in the entry's held bitmap,
// removes the ring and frees the entry. Window: a subscriber killed between clearing a block's held
// bit and dropping its reference (two adjacent instructions in Release) leaks that block
// until the topic is recreated. A leaving subscriber that sees a live publisher leaves
// reaping to it; if that publisher dies first, the next publisher reaps at Open.
//
// Memory ordering, by label (the SPSC rings' own (A)-(D) carry the descriptors):
//   (R1) Publish stores refs[block] (relaxed) before Handoff's release CAS and the rings'
//        release publication of the descriptor: a subscriber that acquires the descriptor
//        sees the count and the bytes the publisher wrote.
//   (R2) A subscriber drops its reference with fetch_sub(acq_rel): release orders its
//        reads of the block before the drop; the dropper that reaches 0 acquires every
//        other subscriber's reads before it frees the block (and the pool's free-list
//        release hands them on to the next allocator).
//   (T1) An entry is published kLive with a release store after its ring exists and its
//        consumer is attached; the publisher's acquire load of the state (after an
//        acquire load of the generation) pairs with it before it opens the ring.
//   (T2) `released` is stored with release by the subscriber after its drop; the
//        publisher reads it with acquire (credits only: no data rides on it).
//   (T3) Leave vs a publisher attaching (or closing): the subscriber CASes kLive ->
//        kLeaving, then reads the ring's producer endpoint; the publisher claims (or
//        gives up) the producer endpoint, then reads the state. Between its write and its
//        read each side does an acq_rel read-modify-write of the table's generation: RMWs
//        of one word are totally ordered and each reads the one before, so the later side
//        synchronizes with the earlier and sees its write. So a leaver is never left
//        unreaped behind a publisher that missed it, and the reaping itself is decided by
//        a CAS kLeaving -> kReaping. (A store-load fence would do on the hardware, but
//        the RMW is also what ThreadSanitizer understands.)
//
// Known limits (not handled yet):
//   - A publisher killed inside Publish, after setting a block's count and before every
//     descriptor went out, leaks that block (the count never reaches 0). A publisher
//     killed with a loan in hand does not: the next publisher's Open clears its pool
//     endpoint, which returns the loan.
//   - A subscriber killed inside Join leaves its entry kClaiming (and maybe its ring
//     file); a reaper killed inside a reap leaves the entry kReaping. Either entry stays
//     taken until the topic is recreated (kLargeTopicMaxSubscribers bounds the damage).
//   - A lossless Publish waits by polling the subscribers' counters (20 us growing to
//     1 ms), not on a futex: fine for large messages, a latency cost for a woken waiter.
//   - A dead subscriber is found by its pid (and start time) or its liveness lock, as for
//     every endpoint (endpoints.h); a zombie nobody reaped looks alive.
//   - Embedded mode only: no daemon-facing factory and no metrics of its own yet (the
//     pool's and the rings' own counters are there, as for any object).
//
// Thread safety: a LargePublisher or LargeSubscriber is used by one thread at a time; one
// publisher per topic at a time (a second live one gets kBusy from Open; a dead one is
// cleared). Messages
// must be released (or destroyed) before their subscriber; a message outliving it is
// inert (its Release does nothing, its bytes must not be read).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"
#include "shmd/dataplane/spsc_ring.h"
#include "shmd/dataplane/status.h"
#include "shmd/dataplane/wait.h"

namespace shmd {

struct LargeTopicSpec {
  uint32_t max_message = 1 << 20;  // bytes: 1 to 256 MiB (a pool block each)
  uint32_t blocks = 64;            // pool blocks: 2 to kLargeTopicMaxBlocks
  uint32_t depth = 16;             // unreleased messages per subscriber: 1 to blocks - 1
  layout::BroadcastPolicy policy = layout::BroadcastPolicy::kLossy;
  uint32_t mode = 0600;
};

inline constexpr uint32_t kLargeTopicMaxSubscribers = 16;
inline constexpr uint32_t kLargeTopicMaxBlocks = 4096;

// --- shared layout of "<name>.subs" (fixed width, offsets from the region's data) --------
namespace layout {

inline constexpr uint32_t kLargeTopicMagic = 0x4c54424cu;  // "LBTL"
inline constexpr uint32_t kLargeTopicVersion = 1;

enum class LargeEntryState : uint32_t { kFree = 0, kClaiming, kLive, kLeaving, kReaping };

struct LargeTopicHeader {
  std::atomic<uint32_t> magic;       // 0   stored last by the creator (release)
  uint32_t version;                  // 4
  uint32_t max_message;              // 8
  uint32_t blocks;                   // 12
  uint32_t depth;                    // 16
  uint32_t policy;                   // 20  BroadcastPolicy
  uint32_t reserved0[2];             // 24
  std::atomic<uint64_t> generation;  // 32  bumped on every join, leave and reap
  std::atomic<uint64_t> next_id;     // 40  subscriber ids (never reused)
  std::atomic<uint64_t> published;   // 48  messages published (the next sequence)
  uint64_t reserved1;                // 56
};
static_assert(sizeof(LargeTopicHeader) == 64);

struct LargeEntry {
  std::atomic<uint32_t> state;     // 0  LargeEntryState
  uint32_t reserved0;              // 4
  std::atomic<uint64_t> id;        // 8  its ring is "<topic>.sub.<id>"
  std::atomic<uint64_t> released;  // 16 messages it has released (subscriber writes)
  std::atomic<uint64_t> lost;      // 24 messages it missed (publisher writes)
  std::atomic<uint64_t> sent;      // 32 messages sent to it (publisher writes)
  uint64_t reserved1[3];           // 40
};
static_assert(sizeof(LargeEntry) == 64);

inline constexpr uint64_t kLargeEntriesOffset = sizeof(LargeTopicHeader);
inline constexpr uint64_t kLargeBitmapWords = kLargeTopicMaxBlocks / 64;
inline constexpr uint64_t kLargeBitmapsOffset =
    kLargeEntriesOffset + sizeof(LargeEntry) * kLargeTopicMaxSubscribers;
inline constexpr uint64_t kLargeRefsOffset =
    kLargeBitmapsOffset + kLargeBitmapWords * 8 * kLargeTopicMaxSubscribers;
static_assert(kLargeBitmapsOffset % 64 == 0 && kLargeRefsOffset % 64 == 0);
inline constexpr uint64_t LargeTableBytes(uint32_t blocks) {
  return kLargeRefsOffset + uint64_t{blocks} * 4;
}

// One SPSC record per message sent to a subscriber.
struct LargeDescriptor {
  uint32_t index;       // 0  pool block
  uint32_t length;      // 4  message bytes
  uint64_t sequence;    // 8  topic-wide message number
  uint64_t lost_total;  // 16 messages this subscriber missed before this one, in all
};
static_assert(sizeof(LargeDescriptor) == 24);
static_assert(kSharedSafe<LargeTopicHeader> && kSharedSafe<LargeEntry>);

}  // namespace layout

// Object names behind topic `name`.
std::string LargeTopicPoolName(std::string_view name);
std::string LargeTopicTableName(std::string_view name);
std::string LargeTopicRingName(std::string_view name, uint64_t subscriber_id);

// Embedded mode: creates the pool and the table (neither may exist); kInvalidArgument
// says what is wrong with `spec`.
VoidResult CreateLargeTopic(const ShmDir& dir, std::string_view name, const LargeTopicSpec& spec,
                            const CreateOptions& options = {});
// Removes the pool, the table and every subscriber ring still listed (missing: no error).
VoidResult RemoveLargeTopic(const ShmDir& dir, std::string_view name);

namespace internal {
struct LargeTopicShared;      // the mapped pool and table (large_topic.cc)
struct LargeSubscriberState;  // a subscriber's handles, shared with its messages
}  // namespace internal

// A block loaned to the publisher: write up to bytes().size() bytes, then Publish.
struct LargeLoan {
  uint32_t index = layout::kNilBlock;
  std::span<std::byte> bytes() const { return data; }
  std::span<std::byte> data;
};

class LargePublisher {
 public:
  static Result<LargePublisher> Open(const ShmDir& dir, std::string_view name,
                                     const WaitOptions& wait = {});
  LargePublisher(LargePublisher&&) noexcept;
  LargePublisher& operator=(LargePublisher&&) noexcept;
  ~LargePublisher();  // reaps leavers, detaches from the rings, frees an open loan

  // A free block, waiting up to `timeout` (kFull with 0, then kTimeout). One loan at a
  // time: kInvalidArgument while one is open.
  Status Loan(LargeLoan* out, Nanos timeout = Nanos::zero()) noexcept;
  // Sends the loan's first `length` bytes (1 to max_message) to every subscriber. kOk
  // (the loan is consumed, even with no subscriber); lossless: kTimeout (kFull with 0)
  // while a subscriber stays at its bound: nothing sent, the loan is kept.
  Status Publish(const LargeLoan& loan, uint32_t length, Nanos timeout = Nanos::zero()) noexcept;
  // Gives an unpublished loan back.
  void Drop(const LargeLoan& loan) noexcept;
  // Copying convenience: Loan + copy + Publish, sharing one timeout.
  Status Publish(std::span<const std::byte> message, Nanos timeout = Nanos::zero()) noexcept;

  uint64_t published() const;                  // messages published on the topic so far
  uint32_t subscribers() const;                // subscribers this publisher sends to right now
  uint64_t lost() const;                       // messages subscribers missed, summed (lossy)
  uint64_t reaped() const { return reaped_; }  // subscribers it cleaned up after
  // Re-scans the table and checks every subscriber's process now (a few syscalls each),
  // reaping the dead and the leavers; returns how many it reaped. Publish does this
  // lazily (on a generation change, and for a subscriber at its bound).
  uint32_t CheckSubscribers() noexcept;
  uint32_t max_message() const;
  const Segment& pool_segment() const;  // for PoolBlocksInUse

 private:
  struct Sink;
  explicit LargePublisher(std::shared_ptr<internal::LargeTopicShared> shared, const WaitOptions& w);
  void Rescan() noexcept;
  void Reap(uint32_t entry, bool subscriber_dead) noexcept;
  bool ConsumerAlive(Sink& sink) noexcept;
  void Close() noexcept;

  std::shared_ptr<internal::LargeTopicShared> shared_;
  std::vector<Sink> sinks_;  // by table entry
  uint64_t seen_generation_ = ~uint64_t{0};
  uint32_t loaned_ = layout::kNilBlock;
  uint32_t table_slot_ = layout::kMaxEndpoints;  // the exclusive publisher endpoint
  uint64_t reaped_ = 0;
  WaitOptions wait_;
};

// A message seen in place; releasing it (Release or destruction) drops its reference.
class LargeMessage {
 public:
  LargeMessage() = default;
  LargeMessage(LargeMessage&& other) noexcept { *this = std::move(other); }
  LargeMessage& operator=(LargeMessage&& other) noexcept;
  ~LargeMessage() { Release(); }

  std::span<const std::byte> bytes() const { return data_; }
  uint64_t sequence() const { return sequence_; }
  uint64_t lost_before() const { return lost_before_; }  // missed just before this one
  bool valid() const { return state_ != nullptr; }
  void Release() noexcept;

 private:
  friend class LargeSubscriber;
  std::shared_ptr<internal::LargeSubscriberState> state_;
  std::span<const std::byte> data_;
  uint32_t index_ = layout::kNilBlock;
  uint64_t sequence_ = 0;
  uint64_t lost_before_ = 0;
};

class LargeSubscriber {
 public:
  // Claims a table entry (kBusy when all kLargeTopicMaxSubscribers are taken) and makes
  // its ring; gets everything published after it returns.
  static Result<LargeSubscriber> Join(const ShmDir& dir, std::string_view name,
                                      const WaitOptions& wait = {});
  LargeSubscriber(LargeSubscriber&&) noexcept = default;
  LargeSubscriber& operator=(LargeSubscriber&&) noexcept;
  ~LargeSubscriber() { Leave(); }

  // The next message, waiting up to `timeout`: kOk; kEmpty (timeout 0) or kTimeout;
  // kPeerGone (the publisher left and the ring is drained); kClosed (topic removed);
  // kCorrupted (a record that is not a valid descriptor: skipped); kInvalidArgument
  // after Leave.
  Status Receive(LargeMessage* out, Nanos timeout) noexcept;
  // Leaves the topic (idempotent). Messages still held are dropped (do not read them).
  void Leave() noexcept;

  uint64_t id() const;
  uint64_t received() const { return received_; }
  uint64_t lost() const { return lost_; }  // sum of lost_before over what it received
  const Segment& pool_segment() const;     // the mapping messages point into

 private:
  explicit LargeSubscriber(std::shared_ptr<internal::LargeSubscriberState> state)
      : state_(std::move(state)) {}
  std::shared_ptr<internal::LargeSubscriberState> state_;
  uint64_t received_ = 0;
  uint64_t lost_ = 0;
  uint64_t last_lost_total_ = 0;
};

}  // namespace shmd
