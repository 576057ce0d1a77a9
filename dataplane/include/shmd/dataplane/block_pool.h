// A pool of fixed-size blocks in shared memory, for zero-copy messages of any size:
// allocate a block, write it, Handoff() its {index, length} descriptor through a ring;
// the receiver Accept()s it, reads in place, and frees it. Layout: layout.h ("Block pool").
//
// Thread safety: allocation and free are lock-free across processes and threads; a
// BlockPool handle (it owns an endpoint slot and its counters) is used by one thread at
// a time. Blocks are owned: by the endpoint that allocated or accepted them, or "in
// transit". When an endpoint's process dies, whoever clears its slot (the daemon, or
// any process through ClearDeadEndpoints) returns the blocks it owned to the pool.
// Blocks in transit stay with the ring that carries their descriptors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "shmd/dataplane/endpoints.h"
#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"
#include "shmd/dataplane/status.h"
#include "shmd/dataplane/wait.h"

namespace shmd {

struct BlockPoolSpec {
  uint32_t block_size = 4096;  // bytes, a multiple of 64
  uint32_t block_count = 256;
};

// Bytes of the data area a pool of this spec needs: the blocks, then their BlockMeta array.
uint64_t BlockPoolDataBytes(const BlockPoolSpec& spec);

Result<Segment> CreateBlockPool(const ShmDir& dir, std::string_view name, const BlockPoolSpec& spec,
                                const CreateOptions& options = {});

struct Block {
  uint32_t index = layout::kNilBlock;
  std::byte* data = nullptr;
  uint32_t size = 0;  // block_size
  std::span<std::byte> bytes() const { return {data, size}; }
};

class BlockPool {
 public:
  static Result<BlockPool> Attach(std::shared_ptr<Segment> segment, const WaitOptions& wait = {});
  static Result<BlockPool> Open(const ShmDir& dir, std::string_view name,
                                const WaitOptions& wait = {});

  BlockPool(BlockPool&& other) noexcept;
  BlockPool& operator=(BlockPool&& other) noexcept;
  ~BlockPool();  // detaches; blocks this handle still owns go back to the pool

  // kFull when every block is taken.
  Status TryAllocate(Block* out) noexcept;
  Status AllocateFor(Block* out, Nanos timeout) noexcept;
  // Returns a block this handle owns (or one in transit) to the pool. kInvalidArgument
  // for an index out of range or a block it does not hold: a double free is refused.
  Status Free(uint32_t index) noexcept;

  // Marks an owned block as travelling and returns its descriptor for a ring.
  Status Handoff(uint32_t index, uint32_t length, layout::BlockDescriptor* out) noexcept;
  // Takes ownership of a block received as a descriptor; checks the index, the length
  // and that the block really is in transit (kCorrupted otherwise).
  Status Accept(layout::BlockDescriptor descriptor, std::span<const std::byte>* out) noexcept;

  uint32_t block_size() const { return block_size_; }
  uint32_t block_count() const { return block_count_; }
  const Segment& segment() const { return *segment_; }

 private:
  BlockPool(std::shared_ptr<Segment> segment, uint32_t slot, const WaitOptions& wait);
  std::byte* BlockData(uint32_t index) const {
    return reinterpret_cast<std::byte*>(blocks_ + uint64_t{index} * block_size_);
  }
  void Push(uint32_t index) noexcept;
  void Count(layout::EndpointCounter counter) noexcept;
  void Detach() noexcept;

  std::shared_ptr<Segment> segment_;
  layout::PoolControl* control_ = nullptr;
  layout::BlockMeta* meta_ = nullptr;
  uint8_t* blocks_ = nullptr;
  uint32_t block_size_ = 0;
  uint32_t block_count_ = 0;
  uint32_t slot_ = layout::kMaxEndpoints;
  uint32_t owner_tag_ = layout::kNoOwner;  // slot + 1
  WaitOptions wait_;
  AdaptiveSpin spin_{std::chrono::microseconds(50)};
};

// Blocks currently allocated or in transit, derived from the counters (for metrics).
uint64_t PoolBlocksInUse(const Segment& pool);

}  // namespace shmd
