// What a Create call asks for, in data-plane terms: converted from the API's Ring, Pool
// and Region messages, checked, sized (for the limits, before any memory is reserved),
// created, and compared with an object that already exists (Create is idempotent).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/broadcast_ring.h"
#include "shmd/dataplane/mpmc_ring.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"
#include "shmd/dataplane/spsc_ring.h"
#include "shmd/v1/resources.pb.h"

namespace shmd::server {

struct ObjectSpec {
  layout::ObjectKind kind = layout::ObjectKind::kNone;
  uint32_t mode = 0600;
  SpscRingSpec spsc;   // kSpscRing
  MpmcRingSpec slots;  // kMpmcRing and kBroadcastRing (same two fields)
  layout::BroadcastPolicy broadcast_policy = layout::BroadcastPolicy::kLossy;  // kBroadcastRing
  BlockPoolSpec pool;                                                          // kBlockPool
  uint64_t region_bytes = 0;                                                   // kRegion
  uint64_t file_bytes = 0;  // the whole file this spec makes
};

// Each checks what it can without creating anything; messages name the field.
Result<ObjectSpec> SpecFromRing(const v1::Ring& ring);
Result<ObjectSpec> SpecFromPool(const v1::Pool& pool);
Result<ObjectSpec> SpecFromRegion(const v1::Region& region);

// Creates the object's file as the data plane does for its kind.
Result<Segment> CreateFromSpec(const ShmDir& dir, std::string_view id, const ObjectSpec& spec,
                               const CreateOptions& options);

// Whether `existing` is what `spec` would create (kind, geometry, mode), and if not, a
// sentence saying how they differ.
bool SameSpec(const ObjectSpec& spec, const Segment& existing, uint32_t existing_mode,
              std::string* difference);

// "1 MiB", "4096 bytes": sizes in messages.
std::string Bytes(uint64_t n);

}  // namespace shmd::server
