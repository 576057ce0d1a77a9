#include "shmd/dataplane/block_pool.h"

#include <utility>

namespace shmd {
namespace {

using layout::BlockMeta;
using layout::kNilBlock;

constexpr uint64_t Pack(uint32_t tag, uint32_t index) { return (uint64_t{tag} << 32) | index; }
constexpr uint32_t IndexOf(uint64_t head) { return static_cast<uint32_t>(head); }
constexpr uint32_t TagOf(uint64_t head) { return static_cast<uint32_t>(head >> 32); }

BlockMeta* MetaOf(const Segment& segment) {
  return reinterpret_cast<BlockMeta*>(segment.base() + segment.params().meta_offset);
}

// Pushes `index` on the free list. The release CAS publishes meta.next (and the block's
// kNoOwner) to the allocator that pops it with acquire.
void PushFree(layout::PoolControl& control, BlockMeta* meta, uint32_t index) {
  uint64_t head = control.free_head.load(std::memory_order_relaxed);
  for (;;) {
    meta[index].next.store(IndexOf(head), std::memory_order_relaxed);
    if (control.free_head.compare_exchange_weak(head, Pack(TagOf(head) + 1, index),
                                                std::memory_order_release,
                                                std::memory_order_relaxed)) {
      return;
    }
  }
}

}  // namespace

namespace internal {

uint64_t ReclaimPoolBlocks(const Segment& segment, uint32_t slot) {
  auto& control = segment.control<layout::PoolControl>();
  BlockMeta* meta = MetaOf(segment);
  const uint32_t dead_owner = slot + 1;
  uint64_t reclaimed = 0;
  for (uint32_t i = 0; i < segment.params().block_count; ++i) {
    uint32_t owner = dead_owner;
    // The owner is dead, so only another reclaimer could race us: the CAS picks one.
    if (meta[i].owner.compare_exchange_strong(owner, layout::kNoOwner, std::memory_order_acq_rel)) {
      PushFree(control, meta, i);
      ++reclaimed;
    }
  }
  if (reclaimed != 0) WakeAll(control.block_freed);
  return reclaimed;
}

}  // namespace internal

uint64_t BlockPoolDataBytes(const BlockPoolSpec& spec) {
  const uint64_t blocks_bytes = uint64_t{spec.block_count} * spec.block_size;
  const uint64_t meta_bytes = (uint64_t{spec.block_count} * sizeof(BlockMeta) + layout::kPad - 1) &
                              ~uint64_t{layout::kPad - 1};
  return blocks_bytes + meta_bytes;
}

Result<Segment> CreateBlockPool(const ShmDir& dir, std::string_view name, const BlockPoolSpec& spec,
                                const CreateOptions& options) {
  layout::ObjectParams params{};
  params.block_size = spec.block_size;
  params.block_count = spec.block_count;
  params.blocks_offset = layout::kDataOffset;
  const uint64_t blocks_bytes = uint64_t{spec.block_count} * spec.block_size;
  params.meta_offset = layout::kDataOffset + blocks_bytes;
  return Segment::Create(dir, name, layout::ObjectKind::kBlockPool, params,
                         BlockPoolDataBytes(spec), options, [](Segment& segment) {
                           // Chain every block: 0 -> 1 -> ... -> n-1 -> nil, head at 0.
                           BlockMeta* meta = MetaOf(segment);
                           const uint32_t n = segment.params().block_count;
                           for (uint32_t i = 0; i < n; ++i) {
                             meta[i].next.store(i + 1 < n ? i + 1 : kNilBlock,
                                                std::memory_order_relaxed);
                             meta[i].owner.store(layout::kNoOwner, std::memory_order_relaxed);
                           }
                           segment.control<layout::PoolControl>().free_head.store(
                               Pack(0, 0), std::memory_order_relaxed);
                         });
}

BlockPool::BlockPool(std::shared_ptr<Segment> segment, uint32_t slot, const WaitOptions& wait)
    : segment_(std::move(segment)),
      control_(&segment_->control<layout::PoolControl>()),
      meta_(MetaOf(*segment_)),
      blocks_(segment_->base() + segment_->params().blocks_offset),
      block_size_(segment_->params().block_size),
      block_count_(segment_->params().block_count),
      slot_(slot),
      owner_tag_(slot + 1),
      wait_(wait),
      spin_(wait.max_spin) {}

Result<BlockPool> BlockPool::Attach(std::shared_ptr<Segment> segment, const WaitOptions& wait) {
  if (auto r = CheckAttachable(segment, layout::ObjectKind::kBlockPool); !r.ok()) return r.error();
  Result<uint32_t> slot =
      ClaimEndpoint(*segment, layout::EndpointRole::kProducer, /*exclusive=*/false);
  if (!slot.ok()) return slot.error();
  return BlockPool(std::move(segment), *slot, wait);
}

Result<BlockPool> BlockPool::Open(const ShmDir& dir, std::string_view name,
                                  const WaitOptions& wait) {
  auto segment = OpenShared(dir, name, layout::ObjectKind::kBlockPool);
  if (!segment.ok()) return segment.error();
  return Attach(std::move(segment).value(), wait);
}

BlockPool::BlockPool(BlockPool&& other) noexcept : spin_(other.spin_) { *this = std::move(other); }

BlockPool& BlockPool::operator=(BlockPool&& other) noexcept {
  if (this != &other) {
    Detach();
    segment_ = std::move(other.segment_);
    control_ = other.control_;
    meta_ = other.meta_;
    blocks_ = other.blocks_;
    block_size_ = other.block_size_;
    block_count_ = other.block_count_;
    slot_ = std::exchange(other.slot_, layout::kMaxEndpoints);
    owner_tag_ = other.owner_tag_;
    wait_ = other.wait_;
    spin_ = other.spin_;
  }
  return *this;
}

BlockPool::~BlockPool() { Detach(); }

void BlockPool::Detach() noexcept {
  if (!segment_) return;
  if (slot_ < layout::kMaxEndpoints) {
    // Blocks still held go back, as they would if this process had died.
    uint64_t returned = internal::ReclaimPoolBlocks(*segment_, slot_);
    auto& slot = segment_->endpoints().slots[slot_];
    slot.counters[layout::kCounterFreed].store(
        slot.counters[layout::kCounterFreed].load(std::memory_order_relaxed) + returned,
        std::memory_order_relaxed);
    ReleaseEndpoint(*segment_, slot_);
  }
  slot_ = layout::kMaxEndpoints;
  segment_.reset();
}

void BlockPool::Count(layout::EndpointCounter counter) noexcept {
  // Single writer (this handle): a plain load and store, no locked instruction.
  auto& c = segment_->endpoints().slots[slot_].counters[counter];
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

Status BlockPool::TryAllocate(Block* out) noexcept {
  // Acquire pairs with PushFree's release: meta[index].next below is the pusher's value.
  uint64_t head = control_->free_head.load(std::memory_order_acquire);
  for (;;) {
    const uint32_t index = IndexOf(head);
    if (index == kNilBlock) {
      Count(layout::kCounterFull);
      return Status::kFull;
    }
    if (index >= block_count_) return Status::kCorrupted;
    // May be stale if another process pops and pushes `index` meanwhile; then the tag
    // has moved on and the CAS below fails (the ABA guard).
    const uint32_t next = meta_[index].next.load(std::memory_order_relaxed);
    if (control_->free_head.compare_exchange_weak(head, Pack(TagOf(head) + 1, next),
                                                  std::memory_order_acquire,
                                                  std::memory_order_acquire)) {
      meta_[index].owner.store(owner_tag_, std::memory_order_relaxed);
      Count(layout::kCounterMessages);
      *out = Block{index, BlockData(index), block_size_};
      return Status::kOk;
    }
  }
}

Status BlockPool::AllocateFor(Block* out, Nanos timeout) noexcept {
  Status s = TryAllocate(out);
  if (s != Status::kFull) return s;
  auto& slot = segment_->endpoints().slots[slot_];
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    s = WaitFor(
        control_->block_freed, wait_, spin_, deadline, &slot.counters[layout::kCounterWaits],
        [&] { return IndexOf(control_->free_head.load(std::memory_order_acquire)) != kNilBlock; },
        [] { return false; });
    if (s != Status::kOk) return s;
    s = TryAllocate(out);
    if (s != Status::kFull) return s;  // another allocator may have been faster
  }
}

void BlockPool::Push(uint32_t index) noexcept {
  PushFree(*control_, meta_, index);
  Count(layout::kCounterFreed);
  Wake(control_->block_freed);
}

Status BlockPool::Free(uint32_t index) noexcept {
  if (index >= block_count_) return Status::kInvalidArgument;
  uint32_t owner = meta_[index].owner.load(std::memory_order_relaxed);
  if (owner != owner_tag_ && owner != layout::kInTransit) return Status::kInvalidArgument;
  // The CAS makes a concurrent double free (or a reclaim) lose cleanly.
  if (!meta_[index].owner.compare_exchange_strong(owner, layout::kNoOwner,
                                                  std::memory_order_relaxed)) {
    return Status::kInvalidArgument;
  }
  Push(index);
  return Status::kOk;
}

Status BlockPool::Handoff(uint32_t index, uint32_t length, layout::BlockDescriptor* out) noexcept {
  if (index >= block_count_ || length > block_size_) return Status::kInvalidArgument;
  uint32_t owner = owner_tag_;
  // Release: the block's contents travel with the descriptor (the ring's own release
  // store publishes them too; this keeps the owner change ordered after the writes).
  if (!meta_[index].owner.compare_exchange_strong(owner, layout::kInTransit,
                                                  std::memory_order_release)) {
    return Status::kInvalidArgument;
  }
  *out = layout::BlockDescriptor{index, length};
  return Status::kOk;
}

Status BlockPool::Accept(layout::BlockDescriptor d, std::span<const std::byte>* out) noexcept {
  if (d.index >= block_count_ || d.length > block_size_) return Status::kCorrupted;
  uint32_t owner = layout::kInTransit;
  if (!meta_[d.index].owner.compare_exchange_strong(owner, owner_tag_, std::memory_order_acquire)) {
    return Status::kCorrupted;
  }
  *out = {BlockData(d.index), d.length};
  return Status::kOk;
}

uint64_t PoolBlocksInUse(const Segment& pool) {
  const uint64_t allocated = SumEndpointCounter(pool, layout::kCounterMessages);
  const uint64_t freed = SumEndpointCounter(pool, layout::kCounterFreed) +
                         pool.header_page().totals.reclaimed_blocks.load(std::memory_order_relaxed);
  return allocated > freed ? allocated - freed : 0;
}

}  // namespace shmd
