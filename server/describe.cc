#include "server/describe.h"

#include <google/protobuf/util/time_util.h>

#include "shmd/api/names.h"
#include "shmd/dataplane/endpoints.h"
#include "shmd/dataplane/stats.h"

namespace shmd::server {
namespace {

using google::protobuf::util::TimeUtil;

v1::EndpointState StateOf(const Segment& segment, uint32_t slot) {
  switch (EndpointLiveness(segment, slot)) {
    case Liveness::kAlive:
      return v1::ENDPOINT_STATE_LIVE;
    case Liveness::kDead:
      return v1::ENDPOINT_STATE_DEAD;
    case Liveness::kUnknown:
      return v1::ENDPOINT_STATE_UNKNOWN;
  }
  return v1::ENDPOINT_STATE_UNSPECIFIED;
}

void DescribeInfo(const ObjectFacts& facts, v1::ObjectInfo* info) {
  const Segment& s = *facts.segment;
  const layout::ObjectHeader& h = s.header();
  info->set_owner_uid(facts.ownership.owner_uid);
  info->set_group_gid(facts.ownership.file_gid);
  info->set_path(s.path());
  info->set_file_bytes(h.total_size);
  info->set_layout_version(h.layout_version.load(std::memory_order_acquire));
  info->set_generation(h.generation.load(std::memory_order_acquire));
  *info->mutable_create_time() =
      TimeUtil::NanosecondsToTimestamp(static_cast<int64_t>(h.created_unix_ns));
  info->set_lease_count(facts.lease_count);
  const layout::EndpointTable& table = s.endpoints();
  for (uint32_t i = 0; i < layout::kMaxEndpoints; ++i) {
    const layout::EndpointSlot& slot = table.slots[i];
    const auto state =
        static_cast<layout::EndpointState>(slot.state.load(std::memory_order_acquire));
    if (state != layout::EndpointState::kLive && state != layout::EndpointState::kDead) continue;
    v1::Endpoint* e = info->add_endpoints();
    e->set_slot(i);
    e->set_role(
        RoleOf(static_cast<layout::EndpointRole>(slot.role.load(std::memory_order_relaxed))));
    e->set_pid(slot.pid.load(std::memory_order_relaxed));
    e->set_uid(slot.uid.load(std::memory_order_relaxed));
    e->set_state(state == layout::EndpointState::kDead ? v1::ENDPOINT_STATE_DEAD : StateOf(s, i));
  }
}

}  // namespace

v1::Role RoleOf(layout::EndpointRole role) {
  switch (role) {
    case layout::EndpointRole::kProducer:
      return v1::ROLE_PRODUCER;
    case layout::EndpointRole::kConsumer:
      return v1::ROLE_CONSUMER;
    case layout::EndpointRole::kSubscriber:
      return v1::ROLE_SUBSCRIBER;
    default:
      return v1::ROLE_UNSPECIFIED;
  }
}

layout::EndpointRole EndpointRoleOf(v1::Role role) {
  switch (role) {
    case v1::ROLE_PRODUCER:
      return layout::EndpointRole::kProducer;
    case v1::ROLE_CONSUMER:
      return layout::EndpointRole::kConsumer;
    case v1::ROLE_SUBSCRIBER:
      return layout::EndpointRole::kSubscriber;
    default:
      return layout::EndpointRole::kNone;
  }
}

void DescribeRing(const ObjectFacts& facts, v1::Ring* out) {
  const Segment& s = *facts.segment;
  const layout::ObjectParams& p = s.params();
  out->set_name(std::string("rings/") + s.name());
  switch (s.kind()) {
    case layout::ObjectKind::kSpscRing:
      out->set_kind(v1::RING_KIND_SPSC);
      break;
    case layout::ObjectKind::kMpmcRing:
      out->set_kind(v1::RING_KIND_MPMC);
      out->set_slot_count(static_cast<uint32_t>(p.capacity));
      break;
    case layout::ObjectKind::kBroadcastRing:
      out->set_kind(v1::RING_KIND_BROADCAST);
      out->set_slot_count(static_cast<uint32_t>(p.capacity));
      out->set_policy(p.policy == static_cast<uint32_t>(layout::BroadcastPolicy::kLossless)
                          ? v1::BROADCAST_POLICY_LOSSLESS
                          : v1::BROADCAST_POLICY_LOSSY);
      break;
    default:
      break;
  }
  out->set_capacity_bytes(s.data_size());
  out->set_max_message_bytes(p.max_message);
  out->set_mode(facts.ownership.mode);
  DescribeInfo(facts, out->mutable_info());
  const ObjectStats st = ReadStats(s);
  v1::RingUsage* u = out->mutable_usage();
  u->set_used_bytes(st.used_bytes);
  u->set_messages_written(st.messages_written);
  u->set_messages_read(st.messages_read);
  u->set_bytes_written(st.bytes_written);
  u->set_bytes_read(st.bytes_read);
  u->set_full_events(st.full_events);
  u->set_lapped_messages(st.lapped_messages);
}

void DescribePool(const ObjectFacts& facts, v1::Pool* out) {
  const Segment& s = *facts.segment;
  out->set_name(std::string("pools/") + s.name());
  out->set_block_size_bytes(s.params().block_size);
  out->set_block_count(s.params().block_count);
  out->set_mode(facts.ownership.mode);
  DescribeInfo(facts, out->mutable_info());
  const ObjectStats st = ReadStats(s);
  v1::PoolUsage* u = out->mutable_usage();
  u->set_blocks_in_use(st.pool_blocks_in_use);
  u->set_alloc_failures(st.pool_alloc_failures);
  u->set_reclaimed_blocks(st.pool_reclaimed_blocks);
}

void DescribeRegion(const ObjectFacts& facts, v1::Region* out) {
  const Segment& s = *facts.segment;
  out->set_name(std::string("regions/") + s.name());
  out->set_size_bytes(s.data_size());
  out->set_mode(facts.ownership.mode);
  DescribeInfo(facts, out->mutable_info());
}

}  // namespace shmd::server
