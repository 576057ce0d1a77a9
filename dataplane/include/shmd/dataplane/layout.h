// The shared-memory ABI of every shmd object. Other processes (other builds, other
// versions of this library, the daemon) map these bytes: change nothing here without
// bumping kLayoutVersion, and keep every static_assert literal.
//
// One object = one file in the shm directory (default /dev/shm), named
// "shmd.<namespace>.<name>". Every object has the same first three pages:
//
//   offset 0      ObjectHeader      (128 B)  identity, version, kind, sizes, state
//   offset 128    ObjectParams      (128 B)  the kind's geometry, immutable after creation
//   offset 256    ObjectTotals      (128 B)  counters folded in from cleared endpoints
//   offset 384    RoleOwners        (128 B)  which endpoint slot holds an exclusive role
//   offset 4096   EndpointSlot[32]  (4 KiB)  who is attached: pid, start time, role, counters
//   offset 8192   control block     (4 KiB)  the kind's hot positions and wait words
//   offset 12288  data              (data_size bytes) ring records, slots or pool blocks
//
// Rules (see ../shared/DESIGN.md):
// - Fixed-width types only; no pointers, no size_t, no bool: offsets from the mapping base.
// - Words written by different processes live on different 128-byte blocks (two cache
//   lines: the adjacent-line prefetcher moves lines in pairs).
// - layout_version is written last, with release, by the creator; an opener that reads 0
//   is looking at an object still being created.
//
// What forces a bump of kLayoutVersion: any change of a size, offset, field meaning,
// record format, constant below, or state machine. What does not: an addition that code
// of the same version, written before it, handles unchanged, i.e. a flag in a field that
// was zero and that older readers ignore, or a transition through a state older code
// already treats as "not live" (EndpointSlot::liveness and the release path through
// kClaiming, both added within version 1).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace shmd::layout {

inline constexpr uint64_t kMagic = 0x6a626f2e646d6873ULL;  // "shmd.obj" in little-endian bytes
// 2: BroadcastControl grew a space_ready wait word (the lossless broadcast policy).
inline constexpr uint32_t kLayoutVersion = 2;

inline constexpr uint32_t kCacheLine = 64;
// Padding unit between words of different writers: two lines, because the adjacent-line
// prefetcher pulls lines in pairs and would otherwise reintroduce false sharing.
inline constexpr uint32_t kPad = 128;
inline constexpr uint32_t kPageSize = 4096;

inline constexpr uint32_t kMaxEndpoints = 32;
inline constexpr uint64_t kEndpointTableOffset = 4096;
inline constexpr uint64_t kControlOffset = 8192;
inline constexpr uint64_t kDataOffset = 12288;

enum class ObjectKind : uint32_t {
  kNone = 0,
  kRegion = 1,
  kSpscRing = 2,
  kMpmcRing = 3,
  kBroadcastRing = 4,
  kBlockPool = 5,
};

enum class ObjectState : uint32_t {
  kCreating = 0,  // file exists, header not yet published
  kReady = 1,
  kDeleted = 2,  // removed from the directory; mappings stay valid until unmapped
};

// --- Page 0 ---------------------------------------------------------------------------

struct ObjectHeader {
  uint64_t magic;                        // 0   kMagic
  std::atomic<uint32_t> layout_version;  // 8   0 while creating; kLayoutVersion, release, last
  uint32_t kind;                         // 12  ObjectKind
  uint64_t total_size;                   // 16  bytes of the file
  uint64_t data_offset;                  // 24  kDataOffset
  uint64_t data_size;                    // 32  bytes of the data area
  uint64_t created_unix_ns;              // 40  CLOCK_REALTIME at creation
  std::atomic<uint64_t> generation;      // 48  bumped by resize and delete: remap when changed
  std::atomic<uint32_t> state;           // 56  ObjectState
  uint32_t creator_uid;                  // 60
  uint32_t creator_pid;                  // 64
  uint32_t max_endpoints;                // 68  kMaxEndpoints
  uint8_t reserved[56];                  // 72  zero
};
static_assert(sizeof(ObjectHeader) == 128);
static_assert(offsetof(ObjectHeader, layout_version) == 8);
static_assert(offsetof(ObjectHeader, kind) == 12);
static_assert(offsetof(ObjectHeader, total_size) == 16);
static_assert(offsetof(ObjectHeader, data_offset) == 24);
static_assert(offsetof(ObjectHeader, data_size) == 32);
static_assert(offsetof(ObjectHeader, created_unix_ns) == 40);
static_assert(offsetof(ObjectHeader, generation) == 48);
static_assert(offsetof(ObjectHeader, state) == 56);
static_assert(offsetof(ObjectHeader, creator_uid) == 60);
static_assert(offsetof(ObjectHeader, creator_pid) == 64);
static_assert(offsetof(ObjectHeader, max_endpoints) == 68);

// Geometry of the object, written once by the creator before layout_version is published,
// then read-only. Which fields a kind uses is listed beside each; the rest stay zero.
struct ObjectParams {
  uint64_t capacity;       // 0   SPSC: data bytes (power of two). MPMC/broadcast: slot_count.
  uint32_t max_message;    // 8   rings: largest payload in bytes
  uint32_t slot_size;      // 12  MPMC/broadcast: bytes per slot, header included
  uint32_t block_size;     // 16  pool: bytes per block (multiple of 64)
  uint32_t block_count;    // 20  pool: number of blocks
  uint64_t blocks_offset;  // 24  pool: offset of block 0 from the mapping base
  uint64_t meta_offset;    // 32  pool: offset of BlockMeta[block_count]
  uint32_t policy;         // 40  broadcast: BroadcastPolicy
  uint32_t reserved0;      // 44
  uint8_t reserved[80];    // 48
};
static_assert(sizeof(ObjectParams) == 128);
static_assert(offsetof(ObjectParams, max_message) == 8);
static_assert(offsetof(ObjectParams, slot_size) == 12);
static_assert(offsetof(ObjectParams, block_size) == 16);
static_assert(offsetof(ObjectParams, block_count) == 20);
static_assert(offsetof(ObjectParams, blocks_offset) == 24);
static_assert(offsetof(ObjectParams, meta_offset) == 32);
static_assert(offsetof(ObjectParams, policy) == 40);

// Counters of endpoints that have left or died, kept apart by side so "written" and
// "read" never mix. Whoever clears an endpoint slot adds the slot's counters here
// (fetch_add: clearing is rare and may race with another clearer), so totals survive
// endpoints coming and going. Readers add the live slots' counters to these.
struct ObjectTotals {
  std::atomic<uint64_t> producer[7];        // 0   EndpointCounter 0..6 of producers, pool users
  std::atomic<uint64_t> consumer[7];        // 56  ... of consumers and subscribers
  std::atomic<uint64_t> endpoints_cleared;  // 112 dead endpoints cleared so far
  std::atomic<uint64_t> reclaimed_blocks;   // 120 pool blocks returned from dead owners
};
static_assert(sizeof(ObjectTotals) == 128);
static_assert(offsetof(ObjectTotals, consumer) == 56);
static_assert(offsetof(ObjectTotals, endpoints_cleared) == 112);
static_assert(offsetof(ObjectTotals, reclaimed_blocks) == 120);

// Exclusive roles (the SPSC producer and consumer, the broadcast producer): the slot
// holding the role, plus one, or 0 when nobody holds it. Claimed with compare-exchange.
struct RoleOwners {
  std::atomic<uint32_t> owner[4];  // 0  indexed by EndpointRole
  uint8_t reserved[112];           // 16
};
static_assert(sizeof(RoleOwners) == 128);

struct HeaderPage {
  ObjectHeader header;  // 0
  ObjectParams params;  // 128
  ObjectTotals totals;  // 256
  RoleOwners roles;     // 384
  uint8_t reserved[kPageSize - 512];
};
static_assert(sizeof(HeaderPage) == kPageSize);
static_assert(offsetof(HeaderPage, params) == 128);
static_assert(offsetof(HeaderPage, totals) == 256);
static_assert(offsetof(HeaderPage, roles) == 384);

// --- Page 1: endpoint table -----------------------------------------------------------

enum class EndpointState : uint32_t {
  kFree = 0,
  kClaiming = 1,  // its process is filling the slot in, or (detaching) emptying it
  kLive = 2,
  kDead = 3,  // its process died; someone is reclaiming what it held
  // A slot goes kLive -> kClaiming -> kFree when its owner detaches: kClaiming marks the
  // counters as being folded into ObjectTotals (as kDead does) and keeps checkers from
  // judging the slot while its liveness lock is let go (endpoints.cc).
};

enum class EndpointRole : uint32_t {
  kNone = 0,
  kProducer = 1,
  kConsumer = 2,
  kSubscriber = 3,  // broadcast rings; pool users register as producer or consumer
};

// Indices of EndpointSlot::counters and ObjectTotals::producer/consumer. Each counter is written
// only by the process owning the slot (single writer: plain load + store, no RMW).
enum EndpointCounter : uint32_t {
  kCounterMessages = 0,   // messages sent or received (pool: blocks allocated)
  kCounterBytes = 1,      // payload bytes sent or received
  kCounterFull = 2,       // sends that found the ring full (pool: allocation failures)
  kCounterWaits = 3,      // times this endpoint went to sleep in a futex wait
  kCounterLapped = 4,     // broadcast: messages this subscriber lost by being lapped
  kCounterLapEvents = 5,  // broadcast: times this subscriber was lapped
  kCounterFreed = 6,      // pool: blocks released
};
inline constexpr uint32_t kEndpointCounters = 7;

// EndpointSlot::liveness: flags in bits 0-7; in bits 8-31, the low 24 bits of the
// incarnation whose claimer set kLivenessLockHeld. Added in a field that was zero in
// layout version 1 as first written: readers that predate it ignore it, writers that
// predate it never set it, so it needs no version bump. The tag is what makes that safe:
// code that predates the word leaves it as it finds it, so after such code cleared a
// dead owner and claimed the slot again, the word may still say "locked"; but that claim
// bumped the incarnation, and a flag whose tag is not the slot's incarnation counts for
// nothing (LivenessLockHeld).
enum LivenessFlags : uint32_t {
  // The owner holds an open-file-description lock (fcntl F_OFD_SETLK, F_WRLCK) on byte
  // kLivenessLockBase + slot index of the object's file, through a descriptor it keeps
  // open while attached. The kernel drops the lock when the process dies (kill -9
  // included), so any process that can open the file, in any pid namespace, can tell a
  // dead owner from a live one (F_OFD_GETLK). Set, tagged, between kClaiming and kLive;
  // taken off before the owner's slot is free again (by the owner, or by its clearer).
  kLivenessLockHeld = 1u << 0,
  // Set by whoever cleared the slot because its process died, together with kFree; the
  // slot's lease_id still names the dead owner's lease. The daemon reports the death and
  // ends that lease (an owner in another pid namespace has no pid the daemon could watch),
  // clearing the bit with a compare-exchange; the next claimer clears it too.
  kLivenessDiedUnreported = 1u << 1,
};
inline constexpr uint32_t kLivenessFlagBits = 0xffu;
inline constexpr uint32_t kLivenessTagShift = 8;

// The word a claimer of incarnation `incarnation` stores once it holds its lock.
inline constexpr uint32_t LivenessLockWord(uint32_t incarnation) {
  return kLivenessLockHeld | (incarnation << kLivenessTagShift);
}
// Whether `word`, read after `incarnation` (acquire), says that incarnation's owner holds
// its lock.
inline constexpr bool LivenessLockHeld(uint32_t word, uint32_t incarnation) {
  return (word & kLivenessLockHeld) != 0 &&
         (word >> kLivenessTagShift) == (incarnation & (0xffffffffu >> kLivenessTagShift));
}

// The liveness lock of endpoint slot i is byte kLivenessLockBase + i of the object's file:
// far beyond any object (at most 1 TiB), where a lock is legal and changes nothing in the
// file. Only these bytes are ever locked.
inline constexpr uint64_t kLivenessLockBase = uint64_t{1} << 60;

// The identity fields are atomics (used outside the hot path only) because a reader that
// saw kLive may race a detach and a new claim of the same slot: it may then read a mix
// of two owners' values, which the liveness check tolerates, but never a torn value.
struct EndpointSlot {
  std::atomic<uint32_t> state;          // 0   EndpointState
  std::atomic<uint32_t> role;           // 4   EndpointRole
  std::atomic<uint32_t> pid;            // 8   in the pid namespace below
  std::atomic<uint32_t> uid;            // 12
  std::atomic<uint64_t> start_time;     // 16  /proc/<pid>/stat field 22: tells a reused pid apart
  std::atomic<uint64_t> pid_namespace;  // 24  inode of /proc/<pid>/ns/pid: who can check the pid
  std::atomic<uint64_t> attached_unix_ns;  // 32
  std::atomic<uint64_t> lease_id;          // 40  the daemon lease covering it; 0: none
  std::atomic<uint32_t> incarnation;       // 48 bumped at every claim
  std::atomic<uint32_t> liveness;          // 52 LivenessFlags (0 from writers before them)
  uint8_t reserved1[8];                    // 56
  // Second line: written only by the owning process (its counters, a broadcast cursor).
  std::atomic<uint64_t> cursor;       // 64  broadcast: next sequence this subscriber reads
  std::atomic<uint64_t> counters[7];  // 72  EndpointCounter 0..6
};
static_assert(sizeof(EndpointSlot) == 128);
static_assert(offsetof(EndpointSlot, role) == 4);
static_assert(offsetof(EndpointSlot, pid) == 8);
static_assert(offsetof(EndpointSlot, start_time) == 16);
static_assert(offsetof(EndpointSlot, pid_namespace) == 24);
static_assert(offsetof(EndpointSlot, lease_id) == 40);
static_assert(offsetof(EndpointSlot, incarnation) == 48);
static_assert(offsetof(EndpointSlot, liveness) == 52);
static_assert(offsetof(EndpointSlot, cursor) == 64);
static_assert(offsetof(EndpointSlot, counters) == 72);

struct EndpointTable {
  EndpointSlot slots[kMaxEndpoints];
};
static_assert(sizeof(EndpointTable) == kPageSize);

// --- Wait words -----------------------------------------------------------------------

// An event count on a futex word in shared memory (the futex is never FUTEX_PRIVATE).
// A sleeper registers in `waiters`, reads `seq`, re-checks its condition and sleeps while
// `seq` is unchanged; a waker that sees waiters != 0 clears it, bumps `seq` and wakes all.
// Sits alone on its 128 bytes: the waker reads `waiters` on every publish, so nothing
// that is written often may share the line.
struct alignas(kPad) WaitWord {
  std::atomic<uint32_t> seq;      // 0
  std::atomic<uint32_t> waiters;  // 4
  std::atomic<uint32_t> closed;   // 8  set (and everyone woken) when the object is deleted
  uint8_t reserved[kPad - 12];
};
static_assert(sizeof(WaitWord) == kPad);
static_assert(alignof(WaitWord) == kPad);

// --- SPSC byte ring -------------------------------------------------------------------
//
// Data area: `capacity` bytes (a power of two), holding records back to back:
//
//   [ RecordHeader (8 B) | payload, padded to a multiple of 8 ]
//
// RecordHeader is one 64-bit word: low 32 bits the payload length, high 32 bits the type.
// Zero means "not written yet". The producer publishes a record by storing its header
// with release after the payload; before that it zeroes the header slot that follows the
// record, so the consumer, which polls the next record's header (not the producer's
// position), can never read a stale header from an earlier lap. A record that would cross
// the end of the data area is preceded by a padding record filling the tail, so every
// payload is contiguous. Positions are monotonically increasing byte counts; the offset
// is position & (capacity - 1).
enum class RecordType : uint32_t {
  kMessage = 1,
  kPadding = 2,
};
inline constexpr uint32_t kRecordHeaderSize = 8;
inline constexpr uint32_t kRecordAlign = 8;
inline constexpr uint64_t kMinSpscCapacity = 4096;
inline constexpr uint64_t kMaxSpscCapacity = uint64_t{1} << 40;

inline constexpr uint64_t PackRecordHeader(uint32_t length, RecordType type) {
  return uint64_t{length} | (uint64_t{static_cast<uint32_t>(type)} << 32);
}
inline constexpr uint32_t RecordLength(uint64_t header) { return static_cast<uint32_t>(header); }
inline constexpr uint32_t RecordTypeOf(uint64_t header) {
  return static_cast<uint32_t>(header >> 32);
}
inline constexpr uint64_t RecordSize(uint64_t payload) {
  return kRecordHeaderSize + ((payload + kRecordAlign - 1) & ~uint64_t{kRecordAlign - 1});
}
// The largest payload a ring of `capacity` bytes accepts: two records of it plus a
// header slot always fit in an empty ring, whatever the wrap position.
inline constexpr uint64_t MaxSpscMessage(uint64_t capacity) { return capacity / 2 - 16; }

struct SpscControl {
  // Producer's block: written only by the producer, on every publish.
  alignas(kPad) std::atomic<uint64_t> producer_position;  // 0   published bytes
  std::atomic<uint64_t> messages_written;                 // 8
  std::atomic<uint64_t> bytes_written;                    // 16  payload bytes
  std::atomic<uint64_t> full_events;                      // 24  sends that found it full
  std::atomic<uint64_t> producer_waits;                   // 32  futex sleeps for space
  uint8_t producer_pad[kPad - 40];
  // Consumer's block: written only by the consumer, on every release.
  alignas(kPad) std::atomic<uint64_t> consumer_position;  // 128 released bytes
  std::atomic<uint64_t> messages_read;                    // 136
  std::atomic<uint64_t> bytes_read;                       // 144
  std::atomic<uint64_t> consumer_waits;                   // 152 futex sleeps for data
  uint8_t consumer_pad[kPad - 32];
  WaitWord data_ready;   // 256 the consumer sleeps here when empty; the producer wakes it
  WaitWord space_ready;  // 384 the producer sleeps here when full; the consumer wakes it
};
static_assert(sizeof(SpscControl) == 512);
static_assert(offsetof(SpscControl, producer_position) == 0);
static_assert(offsetof(SpscControl, messages_written) == 8);
static_assert(offsetof(SpscControl, bytes_written) == 16);
static_assert(offsetof(SpscControl, full_events) == 24);
static_assert(offsetof(SpscControl, producer_waits) == 32);
static_assert(offsetof(SpscControl, consumer_position) == 128);
static_assert(offsetof(SpscControl, messages_read) == 136);
static_assert(offsetof(SpscControl, bytes_read) == 144);
static_assert(offsetof(SpscControl, consumer_waits) == 152);
static_assert(offsetof(SpscControl, data_ready) == 256);
static_assert(offsetof(SpscControl, space_ready) == 384);

// --- MPMC ring of fixed-size slots ----------------------------------------------------
//
// Data area: capacity (a power of two) slots of slot_size bytes, each a SlotHeader then
// the payload. A slot's `sequence` says whose turn it is (Vyukov's bounded queue): equal
// to position p it is free for the producer claiming p; p + 1 it holds p's message for
// the consumer claiming p; p + capacity it is free again for the next lap.
struct SlotHeader {
  std::atomic<uint64_t> sequence;  // 0
  uint32_t length;                 // 8   payload bytes, or kAbandonedLength
  uint32_t writer;                 // 12  endpoint slot + 1 of the producer that claimed it
};
static_assert(sizeof(SlotHeader) == 16);
// MPMC: a slot whose producer died after claiming it is published by a recoverer with
// this length, which consumers skip (mpmc_ring.h, "Abandoned slots"); `writer` reads
// kWriterRecovering while one recoverer has taken the slot over. Neither is a real
// value: lengths are at most 16 MiB, endpoint tags at most kMaxEndpoints.
inline constexpr uint32_t kAbandonedLength = 0xffffffffu;
inline constexpr uint32_t kWriterRecovering = 0xffffffffu;
inline constexpr uint32_t kSlotHeaderSize = 16;
// Slot geometry shared by the MPMC and broadcast rings: header plus payload, padded to 8.
inline constexpr uint64_t SlotSizeFor(uint64_t max_message) {
  return kSlotHeaderSize + ((max_message + 7) & ~uint64_t{7});
}

struct MpmcControl {
  alignas(kPad) std::atomic<uint64_t> enqueue_position;  // 0    claimed by producers (CAS)
  uint8_t enqueue_pad[kPad - 8];
  alignas(kPad) std::atomic<uint64_t> dequeue_position;  // 128  claimed by consumers (CAS)
  uint8_t dequeue_pad[kPad - 8];
  WaitWord data_ready;   // 256
  WaitWord space_ready;  // 384
};
static_assert(sizeof(MpmcControl) == 512);
static_assert(offsetof(MpmcControl, dequeue_position) == 128);
static_assert(offsetof(MpmcControl, data_ready) == 256);
static_assert(offsetof(MpmcControl, space_ready) == 384);

// --- Broadcast ring -------------------------------------------------------------------
//
// Data area: capacity (a power of two) slots of slot_size bytes, each a SlotHeader then
// the payload. One producer; each subscriber keeps its own cursor (in its endpoint slot).
// The producer writes message n into slot n & (capacity - 1) under a seqlock: `sequence`
// becomes 2n + 1 while writing and 2n + 2 when done. A subscriber expecting n reads the
// sequence, copies, and re-reads the sequence: if it moved, the slot was overwritten and
// the subscriber was lapped (see broadcast_ring.h for the policy).
enum class BroadcastPolicy : uint32_t {
  kLossy = 0,  // the producer never waits; lapped subscribers skip ahead and count the loss
  // The producer writes message n only once every live subscriber's cursor (its endpoint
  // slot's `cursor`) is past n - capacity: a full ring makes it wait on space_ready,
  // which subscribers wake after advancing. Dead subscribers are cleared, not waited for.
  kLossless = 1,
};

struct BroadcastControl {
  alignas(kPad) std::atomic<uint64_t> published;  // 0  messages published (next sequence)
  std::atomic<uint64_t> bytes_written;            // 8
  uint8_t producer_pad[kPad - 16];
  WaitWord data_ready;   // 128 subscribers sleep here when they have read everything
  WaitWord space_ready;  // 256 lossless: the producer sleeps here; subscribers wake it
};
static_assert(sizeof(BroadcastControl) == 384);
static_assert(offsetof(BroadcastControl, data_ready) == 128);
static_assert(offsetof(BroadcastControl, space_ready) == 256);

// --- Block pool -----------------------------------------------------------------------
//
// Blocks of block_size bytes at blocks_offset; beside them (not inside the payload) one
// BlockMeta per block. The free list is a Treiber stack whose head packs a 32-bit block
// index with a 32-bit tag bumped on every change, so a stale compare-exchange fails
// (ABA). Each block records its owner: the endpoint slot + 1 that allocated it, kInTransit
// while its descriptor travels through a ring, or kNoOwner while free.
inline constexpr uint32_t kNilBlock = 0xffffffffu;
inline constexpr uint32_t kNoOwner = 0;
inline constexpr uint32_t kInTransit = 0xfffffffeu;

struct BlockMeta {
  std::atomic<uint32_t> next;   // 0  next free block while on the free list
  std::atomic<uint32_t> owner;  // 4  kNoOwner, endpoint slot + 1, or kInTransit
};
static_assert(sizeof(BlockMeta) == 8);

struct PoolControl {
  alignas(kPad) std::atomic<uint64_t> free_head;  // 0  (tag << 32) | block index
  uint8_t head_pad[kPad - 8];
  WaitWord block_freed;  // 128 allocators sleep here when the pool is empty
};
static_assert(sizeof(PoolControl) == 256);
static_assert(offsetof(PoolControl, block_freed) == 128);

// What travels through a ring to hand a block over: 8 bytes, fixed width.
struct BlockDescriptor {
  uint32_t index;
  uint32_t length;
};
static_assert(sizeof(BlockDescriptor) == 8);

// Where each kind keeps its wait words, as offsets within the control block: whoever
// deletes an object or clears a dead endpoint wakes every sleeper on them.
struct WaitWordList {
  uint32_t count;
  uint32_t offsets[2];
};
inline constexpr WaitWordList WaitWordsOf(ObjectKind kind) {
  switch (kind) {
    case ObjectKind::kSpscRing:
      return {2, {offsetof(SpscControl, data_ready), offsetof(SpscControl, space_ready)}};
    case ObjectKind::kMpmcRing:
      return {2, {offsetof(MpmcControl, data_ready), offsetof(MpmcControl, space_ready)}};
    case ObjectKind::kBroadcastRing:
      return {2, {offsetof(BroadcastControl, data_ready), offsetof(BroadcastControl, space_ready)}};
    case ObjectKind::kBlockPool:
      return {1, {offsetof(PoolControl, block_freed), 0}};
    default:
      return {0, {0, 0}};
  }
}

// --- Whole-object checks --------------------------------------------------------------

template <class T>
inline constexpr bool kSharedSafe =
    std::is_standard_layout_v<T>&& std::is_trivially_destructible_v<T>;
static_assert(kSharedSafe<HeaderPage> && kSharedSafe<EndpointTable> && kSharedSafe<SpscControl> &&
              kSharedSafe<MpmcControl> && kSharedSafe<BroadcastControl> &&
              kSharedSafe<PoolControl> && kSharedSafe<SlotHeader> && kSharedSafe<BlockMeta>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<uint64_t>) == 8 && sizeof(std::atomic<uint32_t>) == 4);
static_assert(sizeof(SpscControl) <= kDataOffset - kControlOffset);
static_assert(kEndpointTableOffset + sizeof(EndpointTable) == kControlOffset);

}  // namespace shmd::layout
