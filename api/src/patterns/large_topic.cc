// Zero-copy publish/subscribe for large messages: large_topic.h (design, orderings).
#include "shmd/client/large_topic.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "shmd/dataplane/endpoints.h"
#include "shmd/dataplane/region.h"

namespace shmd {

using layout::LargeDescriptor;
using layout::LargeEntry;
using layout::LargeEntryState;
using layout::LargeTopicHeader;

namespace {

Error Invalid(std::string message) {
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

constexpr uint32_t S(LargeEntryState s) { return static_cast<uint32_t>(s); }

uint64_t RingCapacityFor(uint32_t depth) {
  // `depth` descriptor records at most are in a ring (the publisher's credit check), plus
  // the zeroed header slot and a padding record at the wrap: twice that is plenty.
  const uint64_t needed = 2 * uint64_t{depth} * layout::RecordSize(sizeof(LargeDescriptor));
  return std::max<uint64_t>(4096, std::bit_ceil(needed));
}

bool HasLiveEndpoint(const Segment& segment, layout::EndpointRole role) {
  for (const layout::EndpointSlot& slot : segment.endpoints().slots) {
    if (slot.state.load(std::memory_order_acquire) ==
            static_cast<uint32_t>(layout::EndpointState::kLive) &&
        slot.role.load(std::memory_order_relaxed) == static_cast<uint32_t>(role)) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::string LargeTopicPoolName(std::string_view name) { return std::string(name) + ".blocks"; }
std::string LargeTopicTableName(std::string_view name) { return std::string(name) + ".subs"; }
std::string LargeTopicRingName(std::string_view name, uint64_t subscriber_id) {
  return std::string(name) + ".sub." + std::to_string(subscriber_id);
}

// --- the mapped objects ------------------------------------------------------------------

namespace internal {

struct LargeTopicShared {
  ShmDir dir;
  std::string name;
  std::shared_ptr<Segment> table;
  mutable std::optional<BlockPool> pool;  // this process's endpoint: frees blocks, loans them
  LargeTopicHeader* header = nullptr;
  LargeEntry* entries = nullptr;
  std::atomic<uint64_t>* bitmaps = nullptr;
  std::atomic<uint32_t>* refs = nullptr;
  uint32_t blocks = 0;
  uint32_t depth = 0;
  uint32_t max_message = 0;
  layout::BroadcastPolicy policy = layout::BroadcastPolicy::kLossy;

  std::atomic<uint64_t>* Bitmap(uint32_t entry) const {
    return bitmaps + uint64_t{entry} * layout::kLargeBitmapWords;
  }
  // (R2): release orders this process's reads of the block before the drop; the dropper
  // that reaches 0 acquires everyone's before Free. A count already 0 (a corrupted table)
  // is left alone rather than wrapped.
  void DropRef(uint32_t index) const {
    uint32_t refs_now = refs[index].load(std::memory_order_relaxed);
    do {
      if (refs_now == 0) return;
    } while (!refs[index].compare_exchange_weak(refs_now, refs_now - 1, std::memory_order_acq_rel,
                                                std::memory_order_relaxed));
    if (refs_now == 1) (void)pool->Free(index);
  }
  // Empties entry `e` (its owner dead or gone, the caller holding it in kReaping): one
  // dropped reference per descriptor left in its ring and per block in its held bitmap
  // (a block is in one of the two, never both twice: it cannot be sent again before this
  // subscriber's reference is dropped), then removes the ring and frees the entry.
  void ReapEntry(uint32_t e, uint64_t id) const;
};

struct LargeSubscriberState {
  std::shared_ptr<LargeTopicShared> shared;
  uint32_t entry = 0;
  uint64_t id = 0;
  std::optional<SpscConsumer> ring;
  bool left = false;
};

void LargeTopicShared::ReapEntry(uint32_t e, uint64_t id) const {
  std::vector<bool> held(blocks, false);
  const std::string ring_name = LargeTopicRingName(name, id);
  if (auto segment = OpenShared(dir, ring_name, layout::ObjectKind::kSpscRing); segment.ok()) {
    ClearDeadEndpoints(**segment);
    if (auto consumer = SpscConsumer::Attach(*segment); consumer.ok()) {
      MessageView view;
      while (consumer->TryPeek(&view) == Status::kOk) {
        LargeDescriptor d;
        if (view.size == sizeof d) {
          std::memcpy(&d, view.data, sizeof d);
          if (d.index < blocks) held[d.index] = true;
        }
        consumer->Release();
      }
    }
  }
  std::atomic<uint64_t>* bitmap = Bitmap(e);
  for (uint32_t w = 0; w < layout::kLargeBitmapWords; ++w) {
    uint64_t bits = bitmap[w].exchange(0, std::memory_order_acq_rel);
    for (; bits != 0; bits &= bits - 1) {
      const uint32_t index = w * 64 + static_cast<uint32_t>(std::countr_zero(bits));
      if (index < blocks) held[index] = true;
    }
  }
  for (uint32_t i = 0; i < blocks; ++i) {
    if (held[i]) DropRef(i);
  }
  (void)Segment::Remove(dir, ring_name);
  LargeEntry& entry = entries[e];
  entry.released.store(0, std::memory_order_relaxed);
  entry.sent.store(0, std::memory_order_relaxed);
  entry.lost.store(0, std::memory_order_relaxed);
  entry.id.store(0, std::memory_order_relaxed);
  // (T1) in reverse: the reset fields are published with the free state.
  entry.state.store(S(LargeEntryState::kFree), std::memory_order_release);
  header->generation.fetch_add(1, std::memory_order_release);
}

}  // namespace internal

namespace {

Result<std::shared_ptr<internal::LargeTopicShared>> OpenTopic(const ShmDir& dir,
                                                              std::string_view name,
                                                              const WaitOptions& wait) {
  auto shared = std::make_shared<internal::LargeTopicShared>();
  shared->dir = dir;
  shared->name = std::string(name);
  auto table = OpenShared(dir, LargeTopicTableName(name), layout::ObjectKind::kRegion);
  if (!table.ok()) return table.error();
  shared->table = std::move(table).value();
  const Segment& t = *shared->table;
  if (t.data_size() < layout::kLargeRefsOffset) {
    return Error(ErrorCode::kCorrupted, "large topic table " + t.name() + " is too small");
  }
  auto* header = reinterpret_cast<LargeTopicHeader*>(t.data());
  // Acquire pairs with the creator's release store of the magic: the geometry is set.
  if (header->magic.load(std::memory_order_acquire) != layout::kLargeTopicMagic) {
    return Error(ErrorCode::kNotReady, "large topic table " + t.name() + " is not initialized");
  }
  if (header->version != layout::kLargeTopicVersion) {
    return Error(ErrorCode::kVersionMismatch, "large topic table " + t.name() + " has version " +
                                                  std::to_string(header->version));
  }
  if (header->blocks < 2 || header->blocks > kLargeTopicMaxBlocks || header->depth == 0 ||
      header->depth >= header->blocks || t.data_size() < layout::LargeTableBytes(header->blocks)) {
    return Error(ErrorCode::kCorrupted, "large topic table " + t.name() + " has a bad geometry");
  }
  auto pool = BlockPool::Open(dir, LargeTopicPoolName(name), wait);
  if (!pool.ok()) return pool.error();
  if (pool->block_count() != header->blocks || pool->block_size() < header->max_message) {
    return Error(ErrorCode::kCorrupted, "large topic pool does not match its table");
  }
  shared->pool.emplace(std::move(pool).value());
  shared->header = header;
  shared->entries = reinterpret_cast<LargeEntry*>(t.data() + layout::kLargeEntriesOffset);
  shared->bitmaps =
      reinterpret_cast<std::atomic<uint64_t>*>(t.data() + layout::kLargeBitmapsOffset);
  shared->refs = reinterpret_cast<std::atomic<uint32_t>*>(t.data() + layout::kLargeRefsOffset);
  shared->blocks = header->blocks;
  shared->depth = header->depth;
  shared->max_message = header->max_message;
  shared->policy = static_cast<layout::BroadcastPolicy>(header->policy);
  return shared;
}

}  // namespace

VoidResult CreateLargeTopic(const ShmDir& dir, std::string_view name, const LargeTopicSpec& spec,
                            const CreateOptions& options) {
  if (spec.max_message == 0 || spec.max_message > (uint32_t{1} << 28)) {
    return Invalid("large topic max_message must be 1 byte to 256 MiB; got " +
                   std::to_string(spec.max_message));
  }
  if (spec.blocks < 2 || spec.blocks > kLargeTopicMaxBlocks) {
    return Invalid("large topic blocks must be 2 to " + std::to_string(kLargeTopicMaxBlocks) +
                   "; got " + std::to_string(spec.blocks));
  }
  if (spec.depth == 0 || spec.depth >= spec.blocks) {
    return Invalid("large topic depth must be 1 to blocks - 1 (" + std::to_string(spec.blocks - 1) +
                   "); got " + std::to_string(spec.depth));
  }
  if (spec.policy != layout::BroadcastPolicy::kLossy &&
      spec.policy != layout::BroadcastPolicy::kLossless) {
    return Invalid("large topic policy must be kLossy or kLossless");
  }
  if (auto r = ValidateName(name, "topic name"); !r.ok()) return r.error();
  CreateOptions with_mode = options;
  with_mode.mode = spec.mode;
  const uint32_t block_size = (spec.max_message + 63) & ~uint32_t{63};
  auto pool = CreateBlockPool(dir, LargeTopicPoolName(name),
                              {.block_size = block_size, .block_count = spec.blocks}, with_mode);
  if (!pool.ok()) return pool.error();
  auto table =
      CreateRegion(dir, LargeTopicTableName(name), layout::LargeTableBytes(spec.blocks), with_mode);
  if (!table.ok()) {
    (void)Segment::Remove(dir, LargeTopicPoolName(name));
    return table.error();
  }
  auto* header = reinterpret_cast<LargeTopicHeader*>(table->data());
  header->version = layout::kLargeTopicVersion;
  header->max_message = spec.max_message;
  header->blocks = spec.blocks;
  header->depth = spec.depth;
  header->policy = static_cast<uint32_t>(spec.policy);
  // Release: openers that acquire the magic see the geometry above (the rest is zeros).
  header->magic.store(layout::kLargeTopicMagic, std::memory_order_release);
  return Ok{};
}

VoidResult RemoveLargeTopic(const ShmDir& dir, std::string_view name) {
  if (auto table = Segment::Open(dir, LargeTopicTableName(name), layout::ObjectKind::kRegion);
      table.ok() && table->data_size() >= layout::kLargeRefsOffset) {
    const auto* entries =
        reinterpret_cast<const LargeEntry*>(table->data() + layout::kLargeEntriesOffset);
    for (uint32_t e = 0; e < kLargeTopicMaxSubscribers; ++e) {
      const uint64_t id = entries[e].id.load(std::memory_order_acquire);
      if (id != 0) (void)Segment::Remove(dir, LargeTopicRingName(name, id));
    }
  }
  for (const std::string& object : {LargeTopicTableName(name), LargeTopicPoolName(name)}) {
    VoidResult r = Segment::Remove(dir, object);
    if (!r.ok() && r.error().code() != ErrorCode::kNotFound) return r.error();
  }
  return Ok{};
}

// --- LargePublisher ----------------------------------------------------------------------

struct LargePublisher::Sink {
  uint64_t id = 0;  // 0: not attached
  std::optional<SpscProducer> ring;
  Clock::time_point next_check{};  // rate limit of the liveness check (syscalls)
};

LargePublisher::LargePublisher(std::shared_ptr<internal::LargeTopicShared> shared,
                               const WaitOptions& wait)
    : shared_(std::move(shared)), sinks_(kLargeTopicMaxSubscribers), wait_(wait) {}

LargePublisher::LargePublisher(LargePublisher&& other) noexcept = default;

LargePublisher& LargePublisher::operator=(LargePublisher&& other) noexcept {
  if (this != &other) {
    Close();
    shared_ = std::move(other.shared_);
    sinks_ = std::move(other.sinks_);
    seen_generation_ = other.seen_generation_;
    loaned_ = std::exchange(other.loaned_, layout::kNilBlock);
    table_slot_ = other.table_slot_;
    reaped_ = other.reaped_;
    wait_ = other.wait_;
  }
  return *this;
}

Result<LargePublisher> LargePublisher::Open(const ShmDir& dir, std::string_view name,
                                            const WaitOptions& wait) {
  auto shared = OpenTopic(dir, name, wait);
  if (!shared.ok()) return shared.error();
  // A previous publisher that died with a block loaned still owns it: clearing its pool
  // endpoint returns it (blocks in transit stay with their subscribers).
  ClearDeadEndpoints((*shared)->pool->segment());
  // One publisher at a time: the table's exclusive producer role (a dead holder is
  // cleared by the claim).
  Result<uint32_t> slot =
      ClaimEndpoint(*(*shared)->table, layout::EndpointRole::kProducer, /*exclusive=*/true);
  if (!slot.ok()) return slot.error();
  LargePublisher publisher(std::move(shared).value(), wait);
  publisher.table_slot_ = *slot;
  publisher.Rescan();  // also reaps what a previous publisher left to reap
  return publisher;
}

LargePublisher::~LargePublisher() { Close(); }

void LargePublisher::Close() noexcept {
  if (!shared_) return;
  if (loaned_ != layout::kNilBlock) Drop(LargeLoan{loaned_, {}});
  // Detach first, then (T3) look for leavers: one that saw us attached left its reaping
  // to us, and after our RMW of the generation we see its kLeaving.
  for (Sink& sink : sinks_) sink = Sink{};
  shared_->header->generation.fetch_add(0, std::memory_order_acq_rel);
  for (uint32_t e = 0; e < kLargeTopicMaxSubscribers; ++e) {
    if (shared_->entries[e].state.load(std::memory_order_acquire) == S(LargeEntryState::kLeaving)) {
      Reap(e, /*subscriber_dead=*/false);
    }
  }
  sinks_.clear();
  ReleaseEndpoint(*shared_->table, table_slot_);
  shared_.reset();
}

uint64_t LargePublisher::published() const {
  return shared_->header->published.load(std::memory_order_acquire);
}
uint32_t LargePublisher::max_message() const { return shared_->max_message; }
const Segment& LargePublisher::pool_segment() const { return shared_->pool->segment(); }

uint32_t LargePublisher::subscribers() const {
  uint32_t n = 0;
  for (const Sink& sink : sinks_) n += sink.ring.has_value();
  return n;
}

uint64_t LargePublisher::lost() const {
  uint64_t n = 0;
  for (uint32_t e = 0; e < kLargeTopicMaxSubscribers; ++e) {
    n += shared_->entries[e].lost.load(std::memory_order_relaxed);
  }
  return n;
}

void LargePublisher::Rescan() noexcept {
  // (T1): acquire pairs with the joiner's / reaper's release bump of the generation.
  const uint64_t generation = shared_->header->generation.load(std::memory_order_acquire);
  if (generation == seen_generation_) return;
  seen_generation_ = generation;
  for (uint32_t e = 0; e < kLargeTopicMaxSubscribers; ++e) {
    LargeEntry& entry = shared_->entries[e];
    Sink& sink = sinks_[e];
    const uint32_t state = entry.state.load(std::memory_order_acquire);
    const uint64_t id = entry.id.load(std::memory_order_relaxed);
    if (sink.ring && state == S(LargeEntryState::kLeaving) && id == sink.id) {
      // Reap CASes the entry before our producer lets go, so the leaver (which saw our
      // producer) never reaps itself: one reaper, deterministically us.
      Reap(e, /*subscriber_dead=*/false);
      continue;
    }
    if (sink.ring && (state != S(LargeEntryState::kLive) || id != sink.id)) {
      // Not ours any more: reaped by someone else, and maybe taken by a new subscriber
      // already (whose join may predate the generation we loaded: attach it now).
      sink = Sink{};
    }
    if (sink.ring) continue;
    if (state == S(LargeEntryState::kLeaving)) {
      Reap(e, /*subscriber_dead=*/false);  // a leaver that saw us (or a dead predecessor)
      continue;
    }
    if (state != S(LargeEntryState::kLive)) continue;
    auto segment = OpenShared(shared_->dir, LargeTopicRingName(shared_->name, id),
                              layout::ObjectKind::kSpscRing);
    if (!segment.ok()) continue;  // reaped meanwhile
    auto producer = SpscProducer::Attach(std::move(segment).value(), wait_);
    if (!producer.ok()) continue;  // another publisher holds it (kBusy)
    sink.id = id;
    sink.ring.emplace(std::move(producer).value());
    // (T3): our producer endpoint is claimed; an RMW of the generation, then the state.
    // A leaver whose RMW came first is seen here; one after us sees our endpoint and
    // leaves the reap to us.
    shared_->header->generation.fetch_add(0, std::memory_order_acq_rel);
    if (entry.state.load(std::memory_order_acquire) != S(LargeEntryState::kLive) ||
        entry.id.load(std::memory_order_relaxed) != id) {
      if (entry.state.load(std::memory_order_acquire) == S(LargeEntryState::kLeaving)) {
        Reap(e, false);
      } else {
        sink = Sink{};
      }
      continue;
    }
    sink.next_check = Clock::now() + wait_.sleep_slice;
  }
}

void LargePublisher::Reap(uint32_t e, bool subscriber_dead) noexcept {
  LargeEntry& entry = shared_->entries[e];
  // One reaper per entry: the CAS (against the leaving subscriber itself). While our
  // producer is still attached nobody else reaps this entry, so its id cannot change
  // under us; a dead-looking subscriber that is in fact leaving is reaped as a leaver.
  uint32_t from = S(subscriber_dead ? LargeEntryState::kLive : LargeEntryState::kLeaving);
  bool won = entry.state.compare_exchange_strong(from, S(LargeEntryState::kReaping),
                                                 std::memory_order_acq_rel);
  if (!won && subscriber_dead && from == S(LargeEntryState::kLeaving)) {
    won = entry.state.compare_exchange_strong(from, S(LargeEntryState::kReaping),
                                              std::memory_order_acq_rel);
  }
  sinks_[e] = Sink{};  // our producer detaches (the drain only reads; ours, then gone)
  if (!won) return;
  shared_->ReapEntry(e, entry.id.load(std::memory_order_relaxed));
  ++reaped_;
}

bool LargePublisher::ConsumerAlive(Sink& sink) noexcept {
  const Clock::time_point now = Clock::now();
  if (now < sink.next_check) return true;
  sink.next_check = now + wait_.sleep_slice;
  ClearDeadEndpoints(sink.ring->segment());
  return HasLiveEndpoint(sink.ring->segment(), layout::EndpointRole::kConsumer);
}

uint32_t LargePublisher::CheckSubscribers() noexcept {
  const uint64_t before = reaped_;
  ClearDeadEndpoints(shared_->pool->segment());
  seen_generation_ = ~uint64_t{0};
  Rescan();
  for (uint32_t e = 0; e < kLargeTopicMaxSubscribers; ++e) {
    Sink& sink = sinks_[e];
    if (!sink.ring) continue;
    sink.next_check = Clock::time_point{};
    if (!ConsumerAlive(sink)) Reap(e, /*subscriber_dead=*/true);
  }
  return static_cast<uint32_t>(reaped_ - before);
}

Status LargePublisher::Loan(LargeLoan* out, Nanos timeout) noexcept {
  if (loaned_ != layout::kNilBlock) return Status::kInvalidArgument;
  BlockPool& pool = *shared_->pool;
  Block block;
  Status s = pool.TryAllocate(&block);
  if (s == Status::kFull && timeout > Nanos::zero()) {
    // Wait in slices: between them, subscribers that died holding blocks are reaped.
    const Clock::time_point deadline = Clock::now() + timeout;
    while (s == Status::kFull) {
      const Clock::time_point now = Clock::now();
      if (now >= deadline) return Status::kTimeout;
      s = pool.AllocateFor(&block, std::min<Nanos>(deadline - now, wait_.sleep_slice));
      if (s == Status::kTimeout) {
        s = Status::kFull;
        CheckSubscribers();
      }
    }
  }
  if (s != Status::kOk) return s;
  loaned_ = block.index;
  *out = LargeLoan{block.index, {block.data, shared_->max_message}};
  return Status::kOk;
}

void LargePublisher::Drop(const LargeLoan& loan) noexcept {
  if (loan.index != loaned_ || loaned_ == layout::kNilBlock) return;
  (void)shared_->pool->Free(loaned_);
  loaned_ = layout::kNilBlock;
}

Status LargePublisher::Publish(std::span<const std::byte> message, Nanos timeout) noexcept {
  if (message.empty()) return Status::kInvalidArgument;
  if (message.size() > shared_->max_message) return Status::kTooLarge;
  const Clock::time_point start = Clock::now();
  LargeLoan loan;
  if (loaned_ != layout::kNilBlock) return Status::kInvalidArgument;
  Status s = Loan(&loan, timeout);
  if (s != Status::kOk) return s;
  std::memcpy(loan.data.data(), message.data(), message.size());
  const Nanos left = timeout - (Clock::now() - start);
  s = Publish(loan, static_cast<uint32_t>(message.size()), std::max(left, Nanos::zero()));
  if (s != Status::kOk) Drop(loan);
  return s;
}

Status LargePublisher::Publish(const LargeLoan& loan, uint32_t length, Nanos timeout) noexcept {
  if (loan.index != loaned_ || loaned_ == layout::kNilBlock || length == 0) {
    return Status::kInvalidArgument;
  }
  if (length > shared_->max_message) return Status::kTooLarge;
  const internal::LargeTopicShared& topic = *shared_;
  Rescan();
  auto at_bound = [&](uint32_t e) {
    // (T2): acquire pairs with the subscriber's release store of `released`.
    const LargeEntry& entry = topic.entries[e];
    return entry.sent.load(std::memory_order_relaxed) -
               entry.released.load(std::memory_order_acquire) >=
           topic.depth;
  };
  // A subscriber at its bound whose process has died is reaped (rate-limited check).
  auto blocked = [&](uint32_t e) {
    if (!at_bound(e)) return false;
    if (ConsumerAlive(sinks_[e])) return true;
    Reap(e, /*subscriber_dead=*/true);
    return false;
  };
  if (topic.policy == layout::BroadcastPolicy::kLossless) {
    // Every subscriber must have room before anything is sent: all or none.
    const Clock::time_point deadline = Clock::now() + timeout;
    Nanos pause = std::chrono::microseconds(20);
    for (;;) {
      bool any_blocked = false;
      for (uint32_t e = 0; e < kLargeTopicMaxSubscribers && !any_blocked; ++e) {
        any_blocked = sinks_[e].ring && blocked(e);
      }
      if (!any_blocked) break;
      if (timeout <= Nanos::zero()) return Status::kFull;
      if (Clock::now() >= deadline) return Status::kTimeout;
      // Polling: the subscribers' releases have no wait word of their own (yet).
      std::this_thread::sleep_for(pause);
      pause = std::min<Nanos>(2 * pause, std::chrono::milliseconds(1));
      Rescan();
    }
  }
  uint32_t targets[kLargeTopicMaxSubscribers];
  uint32_t n = 0;
  for (uint32_t e = 0; e < kLargeTopicMaxSubscribers; ++e) {
    if (!sinks_[e].ring) continue;
    if (blocked(e)) {  // lossy only: lossless checked above
      LargeEntry& entry = topic.entries[e];
      entry.lost.store(entry.lost.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      continue;
    }
    if (sinks_[e].ring) targets[n++] = e;
  }
  const uint64_t sequence = topic.header->published.load(std::memory_order_relaxed);
  const uint32_t index = loaned_;
  loaned_ = layout::kNilBlock;
  if (n == 0) {
    (void)topic.pool->Free(index);
  } else {
    // (R1): relaxed; Handoff's release CAS and each ring's release store publish it.
    topic.refs[index].store(n, std::memory_order_relaxed);
    layout::BlockDescriptor handed;
    (void)topic.pool->Handoff(index, length, &handed);
    for (uint32_t i = 0; i < n; ++i) {
      LargeEntry& entry = topic.entries[targets[i]];
      const LargeDescriptor d{index, length, sequence, entry.lost.load(std::memory_order_relaxed)};
      if (sinks_[targets[i]].ring->TrySend(&d, sizeof d) == Status::kOk) {
        entry.sent.store(entry.sent.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      } else {
        // Cannot be full (credits); the ring was deleted or its consumer went: this
        // reference is never taken, and the next check finds the subscriber.
        topic.DropRef(index);
        sinks_[targets[i]].next_check = Clock::time_point{};
      }
    }
  }
  // Single writer; release so a reader of `published` sees a settled count.
  topic.header->published.store(sequence + 1, std::memory_order_release);
  return Status::kOk;
}

// --- LargeMessage / LargeSubscriber ------------------------------------------------------

LargeMessage& LargeMessage::operator=(LargeMessage&& other) noexcept {
  if (this != &other) {
    Release();
    state_ = std::move(other.state_);
    data_ = other.data_;
    index_ = other.index_;
    sequence_ = other.sequence_;
    lost_before_ = other.lost_before_;
  }
  return *this;
}

void LargeMessage::Release() noexcept {
  if (!state_) return;
  if (!state_->left) {
    const internal::LargeTopicShared& topic = *state_->shared;
    // Held bit first, then the reference: a kill in between leaks the block (the
    // documented window) rather than letting a reaper drop the reference twice.
    topic.Bitmap(state_->entry)[index_ / 64].fetch_and(~(uint64_t{1} << (index_ % 64)),
                                                       std::memory_order_relaxed);
    topic.DropRef(index_);
    // (T2): single writer; release so the publisher's credit follows the drop.
    std::atomic<uint64_t>& released = topic.entries[state_->entry].released;
    released.store(released.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  state_.reset();
  data_ = {};
}

LargeSubscriber& LargeSubscriber::operator=(LargeSubscriber&& other) noexcept {
  if (this != &other) {
    Leave();
    state_ = std::move(other.state_);
    received_ = other.received_;
    lost_ = other.lost_;
    last_lost_total_ = other.last_lost_total_;
  }
  return *this;
}

uint64_t LargeSubscriber::id() const { return state_ ? state_->id : 0; }
const Segment& LargeSubscriber::pool_segment() const { return state_->shared->pool->segment(); }

Result<LargeSubscriber> LargeSubscriber::Join(const ShmDir& dir, std::string_view name,
                                              const WaitOptions& wait) {
  auto shared = OpenTopic(dir, name, wait);
  if (!shared.ok()) return shared.error();
  internal::LargeTopicShared& topic = **shared;
  uint32_t e = 0;
  for (; e < kLargeTopicMaxSubscribers; ++e) {
    uint32_t expected = S(LargeEntryState::kFree);
    if (topic.entries[e].state.compare_exchange_strong(expected, S(LargeEntryState::kClaiming),
                                                       std::memory_order_acquire)) {
      break;
    }
  }
  if (e == kLargeTopicMaxSubscribers) {
    return Error(ErrorCode::kBusy, "large topic " + std::string(name) + " has " +
                                       std::to_string(kLargeTopicMaxSubscribers) +
                                       " subscribers already");
  }
  LargeEntry& entry = topic.entries[e];
  const uint64_t id = topic.header->next_id.fetch_add(1, std::memory_order_relaxed) + 1;
  const std::string ring_name = LargeTopicRingName(name, id);
  auto fail = [&](Error error) {
    (void)Segment::Remove(dir, ring_name);
    entry.state.store(S(LargeEntryState::kFree), std::memory_order_release);
    return error;
  };
  CreateOptions options;
  struct stat table_stat {};
  options.mode = fstat(topic.table->fd(), &table_stat) == 0 ? table_stat.st_mode & 0777 : 0600;
  auto ring = CreateSpscRing(dir, ring_name, {.capacity = RingCapacityFor(topic.depth)}, options);
  if (!ring.ok()) return fail(ring.error());
  auto consumer = SpscConsumer::Open(dir, ring_name, wait);
  if (!consumer.ok()) return fail(consumer.error());
  auto state = std::make_shared<internal::LargeSubscriberState>();
  state->shared = std::move(shared).value();
  state->entry = e;
  state->id = id;
  state->ring.emplace(std::move(consumer).value());
  entry.id.store(id, std::memory_order_relaxed);
  entry.released.store(0, std::memory_order_relaxed);
  entry.sent.store(0, std::memory_order_relaxed);
  entry.lost.store(0, std::memory_order_relaxed);
  // (T1): the ring exists and has its consumer before the entry says kLive.
  entry.state.store(S(LargeEntryState::kLive), std::memory_order_release);
  state->shared->header->generation.fetch_add(1, std::memory_order_release);
  return LargeSubscriber(std::move(state));
}

Status LargeSubscriber::Receive(LargeMessage* out, Nanos timeout) noexcept {
  if (!state_ || state_->left) return Status::kInvalidArgument;
  out->Release();
  SpscConsumer& ring = *state_->ring;
  MessageView view;
  Status s = timeout <= Nanos::zero() ? ring.TryPeek(&view) : ring.PeekFor(&view, timeout);
  if (s != Status::kOk) return s;
  const internal::LargeTopicShared& topic = *state_->shared;
  LargeDescriptor d{};
  if (view.size == sizeof d) std::memcpy(&d, view.data, sizeof d);
  if (view.size != sizeof d || d.index >= topic.blocks || d.length == 0 ||
      d.length > topic.pool->block_size() || d.lost_total < last_lost_total_) {
    ring.Release();
    return Status::kCorrupted;
  }
  // Held before the record goes: a reaper finds the block in the bitmap or in the ring
  // (or both: it drops one reference per block either way).
  topic.Bitmap(state_->entry)[d.index / 64].fetch_or(uint64_t{1} << (d.index % 64),
                                                     std::memory_order_relaxed);
  ring.Release();
  out->state_ = state_;
  out->data_ = {reinterpret_cast<const std::byte*>(topic.pool->segment().base() +
                                                   topic.pool->segment().params().blocks_offset +
                                                   uint64_t{d.index} * topic.pool->block_size()),
                d.length};
  out->index_ = d.index;
  out->sequence_ = d.sequence;
  out->lost_before_ = d.lost_total - last_lost_total_;
  last_lost_total_ = d.lost_total;
  lost_ += out->lost_before_;
  ++received_;
  return Status::kOk;
}

void LargeSubscriber::Leave() noexcept {
  if (!state_ || state_->left) return;
  internal::LargeSubscriberState& me = *state_;
  const internal::LargeTopicShared& topic = *me.shared;
  me.left = true;  // messages still held become inert: the reaper drops their references
  std::shared_ptr<Segment> ring_segment = me.ring->shared_segment();
  me.ring.reset();  // the consumer detaches: a reaper attaches as one to drain
  LargeEntry& entry = topic.entries[me.entry];
  uint32_t from = S(LargeEntryState::kLive);
  if (!entry.state.compare_exchange_strong(from, S(LargeEntryState::kLeaving),
                                           std::memory_order_acq_rel)) {
    return;  // a publisher took us for dead meanwhile and reaps (or has reaped) us
  }
  // (T3): after our kLeaving and this RMW, is a live publisher attached to the ring? If
  // so it reaps us at its next Publish (or when it closes); if not, we reap ourselves.
  topic.header->generation.fetch_add(1, std::memory_order_acq_rel);
  ClearDeadEndpoints(*ring_segment);
  if (HasLiveEndpoint(*ring_segment, layout::EndpointRole::kProducer)) return;
  from = S(LargeEntryState::kLeaving);
  if (entry.state.compare_exchange_strong(from, S(LargeEntryState::kReaping),
                                          std::memory_order_acq_rel)) {
    topic.ReapEntry(me.entry, me.id);
  }
}

}  // namespace shmd
