#include "bench/ipc/shmd_common.h"

#include <unistd.h>

#include <algorithm>
#include <bit>

#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/layout.h"

namespace shmd::bench {

ShmDir BenchShmDir() {
  ShmDir dir;
  dir.path = "/dev/shm";
  dir.ns = "bench-" + std::to_string(getpid());
  return dir;
}

uint64_t SpscCapacityFor(size_t size) {
  constexpr uint64_t kDefault = uint64_t{1} << 20;  // SpscRingSpec's default capacity
  // Larger messages: four records deep (max_message, capacity / 2 - 16, then admits them).
  return std::max(kDefault, std::bit_ceil(4 * layout::RecordSize(size)));
}

Status ShmdSetupError(std::string_view doing, const ::shmd::Error& error) {
  return Status::Error(std::string(doing) + ": " + ErrorCodeName(error.code()) + ": " +
                       error.message());
}

Status ShmdCallError(std::string_view doing, uint64_t seq, ::shmd::Status status) {
  std::string text =
      std::string(doing) + " message " + std::to_string(seq) + ": " + ::shmd::StatusName(status);
  if (status == ::shmd::Status::kTimeout) {
    text +=
        " (nothing moved for " + std::to_string(kShmdTimeout.count()) + " s: is the peer running?)";
  }
  return Status::Error(text);
}

Status WrongSizeError(uint64_t seq, size_t got, size_t want) {
  return Status::Error("message " + std::to_string(seq) + " arrived with " + std::to_string(got) +
                       " bytes, expected " + std::to_string(want));
}

Status ShmdObjects::CreateRing(std::string_view name, uint64_t capacity) {
  SpscRingSpec spec;
  spec.capacity = capacity;
  Result<Segment> ring = CreateSpscRing(dir_, name, spec);
  if (!ring.ok()) {
    return ShmdSetupError("creating SPSC ring '" + std::string(name) + "' of " +
                              std::to_string(capacity) + " bytes in " + dir_.path + " (namespace " +
                              dir_.ns + ")",
                          ring.error());
  }
  names_.emplace_back(name);
  return {};  // the parent keeps no mapping: the children open the object by name
}

Status ShmdObjects::CreatePool(std::string_view name, uint32_t block_size, uint32_t block_count) {
  BlockPoolSpec spec;
  spec.block_size = block_size;
  spec.block_count = block_count;
  Result<Segment> pool = CreateBlockPool(dir_, name, spec);
  if (!pool.ok()) {
    return ShmdSetupError("creating block pool '" + std::string(name) + "' of " +
                              std::to_string(block_count) + " blocks of " +
                              std::to_string(block_size) + " bytes in " + dir_.path +
                              " (namespace " + dir_.ns + ")",
                          pool.error());
  }
  names_.emplace_back(name);
  return {};
}

void ShmdObjects::RemoveAll() {
  for (const std::string& name : names_) (void)Segment::Remove(dir_, name);
  names_.clear();
}

}  // namespace shmd::bench
