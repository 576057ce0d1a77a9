#include "server/object_spec.h"

#include <bit>
#include <cstdio>

#include "shmd/dataplane/region.h"

namespace shmd::server {
namespace {

constexpr uint32_t kModeBits = 0666;             // nothing is executed: no x bits
constexpr uint64_t kMaxSlotMessage = 16u << 20;  // as CheckSlotRingSpec allows

Error Invalid(std::string message) {
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

Result<uint32_t> ModeOf(uint32_t mode) {
  if (mode == 0) return 0600u;
  if ((mode & ~kModeBits) != 0) {
    char buf[112];
    std::snprintf(buf, sizeof buf, "mode %#o has bits other than read and write permissions (0666)",
                  mode);
    return Invalid(buf);
  }
  if ((mode & 0600) != 0600) {
    char buf[128];
    std::snprintf(buf, sizeof buf,
                  "mode %#o does not let the owner read and write; use 0600, 0660 or 0666", mode);
    return Invalid(buf);
  }
  return mode;
}

}  // namespace

std::string Bytes(uint64_t n) {
  constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (n < 1024 || n % 1024 != 0) return std::to_string(n) + " bytes";
  uint64_t v = n / 1024;
  int unit = 0;
  while (v % 1024 == 0 && v >= 1024 && unit < 3) {
    v /= 1024;
    ++unit;
  }
  return std::to_string(v) + " " + kUnits[unit];
}

Result<ObjectSpec> SpecFromRing(const v1::Ring& ring) {
  ObjectSpec spec;
  Result<uint32_t> mode = ModeOf(ring.mode());
  if (!mode.ok()) return mode.error();
  spec.mode = *mode;
  const uint64_t capacity = ring.capacity_bytes();
  const uint64_t max_message = ring.max_message_bytes();
  if (ring.policy() != v1::BROADCAST_POLICY_LOSSY && ring.kind() != v1::RING_KIND_BROADCAST) {
    return Invalid(
        "policy is for broadcast rings only (an spsc or mpmc producer always waits "
        "for room)");
  }
  switch (ring.kind()) {
    case v1::RING_KIND_SPSC: {
      if (capacity < 4096 || !std::has_single_bit(capacity) || capacity > (uint64_t{1} << 40)) {
        return Invalid(
            "capacity_bytes of an spsc ring must be a power of two from 4096 to 1 TiB; "
            "got " +
            std::to_string(capacity));
      }
      if (max_message > layout::MaxSpscMessage(capacity)) {
        return Invalid("max_message_bytes " + std::to_string(max_message) +
                       " does not fit an spsc ring of " + Bytes(capacity) + " (at most " +
                       std::to_string(layout::MaxSpscMessage(capacity)) +
                       "); raise capacity_bytes or use a pool for large messages");
      }
      spec.kind = layout::ObjectKind::kSpscRing;
      spec.spsc = {capacity, static_cast<uint32_t>(max_message)};
      spec.file_bytes = layout::kDataOffset + capacity;
      return spec;
    }
    case v1::RING_KIND_MPMC:
    case v1::RING_KIND_BROADCAST: {
      if (max_message == 0 || max_message > kMaxSlotMessage) {
        return Invalid(std::string("max_message_bytes of ") +
                       (ring.kind() == v1::RING_KIND_MPMC ? "an mpmc" : "a broadcast") +
                       " ring is required: 1 to 16 MiB (each slot holds one message); got " +
                       std::to_string(max_message));
      }
      const uint64_t slot_size = layout::SlotSizeFor(max_message);
      const uint64_t fit = capacity / slot_size;
      if (fit < 2) {
        return Invalid("capacity_bytes " + std::to_string(capacity) +
                       " holds fewer than 2 slots of " + std::to_string(slot_size) +
                       " bytes (max_message_bytes " + std::to_string(max_message) +
                       " plus the slot header); ask for at least " + std::to_string(2 * slot_size));
      }
      const uint64_t slots = std::min<uint64_t>(std::bit_floor(fit), uint64_t{1} << 24);
      spec.kind = ring.kind() == v1::RING_KIND_MPMC ? layout::ObjectKind::kMpmcRing
                                                    : layout::ObjectKind::kBroadcastRing;
      if (ring.kind() == v1::RING_KIND_BROADCAST) {
        if (ring.policy() != v1::BROADCAST_POLICY_LOSSY &&
            ring.policy() != v1::BROADCAST_POLICY_LOSSLESS) {
          return Invalid("unknown broadcast policy " + std::to_string(ring.policy()) +
                         ": BROADCAST_POLICY_LOSSY or BROADCAST_POLICY_LOSSLESS");
        }
        spec.broadcast_policy = ring.policy() == v1::BROADCAST_POLICY_LOSSLESS
                                    ? layout::BroadcastPolicy::kLossless
                                    : layout::BroadcastPolicy::kLossy;
      }
      spec.slots = {static_cast<uint32_t>(slots), static_cast<uint32_t>(max_message)};
      spec.file_bytes = layout::kDataOffset + slots * slot_size;
      return spec;
    }
    default:
      return Invalid(
          "ring kind is required: RING_KIND_SPSC, RING_KIND_MPMC or RING_KIND_BROADCAST");
  }
}

Result<ObjectSpec> SpecFromPool(const v1::Pool& pool) {
  ObjectSpec spec;
  Result<uint32_t> mode = ModeOf(pool.mode());
  if (!mode.ok()) return mode.error();
  spec.mode = *mode;
  if (pool.block_size_bytes() < 64 || pool.block_size_bytes() % 64 != 0) {
    return Invalid("block_size_bytes must be a multiple of 64, at least 64; got " +
                   std::to_string(pool.block_size_bytes()));
  }
  if (pool.block_count() == 0 || pool.block_count() >= layout::kInTransit) {
    return Invalid("block_count must be from 1 to " + std::to_string(layout::kInTransit - 1) +
                   "; got " + std::to_string(pool.block_count()));
  }
  spec.kind = layout::ObjectKind::kBlockPool;
  spec.pool = {pool.block_size_bytes(), pool.block_count()};
  spec.file_bytes = layout::kDataOffset + BlockPoolDataBytes(spec.pool);
  return spec;
}

Result<ObjectSpec> SpecFromRegion(const v1::Region& region) {
  ObjectSpec spec;
  Result<uint32_t> mode = ModeOf(region.mode());
  if (!mode.ok()) return mode.error();
  spec.mode = *mode;
  if (region.size_bytes() == 0 || region.size_bytes() > (uint64_t{1} << 40)) {
    return Invalid("size_bytes of a region must be from 1 to 1 TiB; got " +
                   std::to_string(region.size_bytes()));
  }
  spec.kind = layout::ObjectKind::kRegion;
  spec.region_bytes = region.size_bytes();
  spec.file_bytes = layout::kDataOffset + region.size_bytes();
  return spec;
}

Result<Segment> CreateFromSpec(const ShmDir& dir, std::string_view id, const ObjectSpec& spec,
                               const CreateOptions& options) {
  switch (spec.kind) {
    case layout::ObjectKind::kSpscRing:
      return CreateSpscRing(dir, id, spec.spsc, options);
    case layout::ObjectKind::kMpmcRing:
      return CreateMpmcRing(dir, id, spec.slots, options);
    case layout::ObjectKind::kBroadcastRing:
      return CreateBroadcastRing(
          dir, id, {spec.slots.slot_count, spec.slots.max_message, spec.broadcast_policy}, options);
    case layout::ObjectKind::kBlockPool:
      return CreateBlockPool(dir, id, spec.pool, options);
    case layout::ObjectKind::kRegion:
      return CreateRegion(dir, id, spec.region_bytes, options);
    default:
      return Invalid("nothing to create");
  }
}

bool SameSpec(const ObjectSpec& spec, const Segment& existing, uint32_t existing_mode,
              std::string* difference) {
  const layout::ObjectParams& p = existing.params();
  std::string want, have;
  if (existing.kind() != spec.kind) {
    want = KindWithArticle(spec.kind);
    have = KindWithArticle(existing.kind());
  } else {
    switch (spec.kind) {
      case layout::ObjectKind::kSpscRing: {
        const uint64_t want_max = spec.spsc.max_message
                                      ? spec.spsc.max_message
                                      : layout::MaxSpscMessage(spec.spsc.capacity);
        if (p.capacity != spec.spsc.capacity || p.max_message != want_max) {
          want = Bytes(spec.spsc.capacity) + ", messages up to " + std::to_string(want_max);
          have = Bytes(p.capacity) + ", messages up to " + std::to_string(p.max_message);
        }
        break;
      }
      case layout::ObjectKind::kMpmcRing:
      case layout::ObjectKind::kBroadcastRing:
        if (spec.kind == layout::ObjectKind::kBroadcastRing &&
            p.policy != static_cast<uint32_t>(spec.broadcast_policy)) {
          want = spec.broadcast_policy == layout::BroadcastPolicy::kLossless ? "a lossless ring"
                                                                             : "a lossy ring";
          have = p.policy == static_cast<uint32_t>(layout::BroadcastPolicy::kLossless)
                     ? "a lossless ring"
                     : "a lossy ring";
        } else if (p.capacity != spec.slots.slot_count || p.max_message != spec.slots.max_message) {
          want = std::to_string(spec.slots.slot_count) + " slots of up to " +
                 std::to_string(spec.slots.max_message) + " bytes";
          have = std::to_string(p.capacity) + " slots of up to " + std::to_string(p.max_message) +
                 " bytes";
        }
        break;
      case layout::ObjectKind::kBlockPool:
        if (p.block_size != spec.pool.block_size || p.block_count != spec.pool.block_count) {
          want =
              std::to_string(spec.pool.block_count) + " blocks of " + Bytes(spec.pool.block_size);
          have = std::to_string(p.block_count) + " blocks of " + Bytes(p.block_size);
        }
        break;
      case layout::ObjectKind::kRegion:
        if (existing.data_size() != spec.region_bytes) {
          want = Bytes(spec.region_bytes);
          have = Bytes(existing.data_size());
        }
        break;
      default:
        break;
    }
    if (want.empty() && existing_mode != spec.mode) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "mode %#o", spec.mode);
      want = buf;
      std::snprintf(buf, sizeof buf, "mode %#o", existing_mode);
      have = buf;
    }
  }
  if (want.empty()) return true;
  if (difference) *difference = "it is " + have + ", not " + want;
  return false;
}

}  // namespace shmd::server
