// create ring|pool|region: the spec from the flags; the answer is the object as the
// daemon made it (or as it was, when one of the same spec existed: the daemon does not say
// which, so neither does the output).
#include "server/shmdctl/commands.h"
#include "server/shmdctl/describe.h"
#include "server/shmdctl/output.h"

namespace shmd::ctl {
namespace {

constexpr auto kOneLine = [](const auto& object) { return OneLine(object); };

v1::RingKind RingKindOf(const std::string& kind) {
  if (kind == "mpmc") return v1::RING_KIND_MPMC;
  if (kind == "broadcast") return v1::RING_KIND_BROADCAST;
  return v1::RING_KIND_SPSC;  // ParseArgs lets nothing else through
}

}  // namespace

// ParseArgs keeps every number within its field: the casts below lose nothing.

int CreateRing(Context& ctx) {
  const Args& a = ctx.args;
  v1::Ring spec;
  spec.set_kind(RingKindOf(a.kind));
  // The daemon refuses a lossless policy on a ring that is not broadcast, and says why.
  spec.set_policy(a.policy == "lossless" ? v1::BROADCAST_POLICY_LOSSLESS
                                         : v1::BROADCAST_POLICY_LOSSY);
  spec.set_capacity_bytes(a.capacity);
  spec.set_max_message_bytes(static_cast<uint32_t>(a.max_message));
  spec.set_mode(static_cast<uint32_t>(a.mode));
  return Answer(a.json, ctx.client.CreateRing(a.object.id, spec, a.request_id), kOneLine);
}

int CreatePool(Context& ctx) {
  const Args& a = ctx.args;
  v1::Pool spec;
  spec.set_block_size_bytes(static_cast<uint32_t>(a.block_size));
  spec.set_block_count(static_cast<uint32_t>(a.blocks));
  spec.set_mode(static_cast<uint32_t>(a.mode));
  return Answer(a.json, ctx.client.CreatePool(a.object.id, spec, a.request_id), kOneLine);
}

int CreateRegion(Context& ctx) {
  const Args& a = ctx.args;
  v1::Region spec;
  spec.set_size_bytes(a.size);
  spec.set_mode(static_cast<uint32_t>(a.mode));
  return Answer(a.json, ctx.client.CreateRegion(a.object.id, spec, a.request_id), kOneLine);
}

}  // namespace shmd::ctl
