#include "shmd/dataplane/stats.h"

#include <algorithm>

#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/endpoints.h"

namespace shmd {
namespace {

using layout::EndpointCounter;
using layout::EndpointRole;
using layout::ObjectKind;

constexpr auto kRelaxed = std::memory_order_relaxed;

EndpointCensus Census(const Segment& segment, bool check_processes) {
  EndpointCensus census;
  for (uint32_t i = 0; i < layout::kMaxEndpoints; ++i) {
    const layout::EndpointSlot& slot = segment.endpoints().slots[i];
    const uint32_t state = slot.state.load(std::memory_order_acquire);
    if (state == static_cast<uint32_t>(layout::EndpointState::kDead) ||
        (state == static_cast<uint32_t>(layout::EndpointState::kLive) && check_processes &&
         EndpointLiveness(segment, i) == Liveness::kDead)) {
      ++census.dead;
      continue;
    }
    if (state != static_cast<uint32_t>(layout::EndpointState::kLive)) continue;
    switch (static_cast<EndpointRole>(slot.role.load(std::memory_order_relaxed))) {
      case EndpointRole::kProducer:
        ++census.producers;
        break;
      case EndpointRole::kConsumer:
        ++census.consumers;
        break;
      case EndpointRole::kSubscriber:
        ++census.subscribers;
        break;
      case EndpointRole::kNone:
        break;
    }
  }
  return census;
}

uint64_t Sum(const Segment& s, EndpointCounter c, EndpointRole side) {
  return SumEndpointCounter(s, c, side);
}

void ReadSpsc(const Segment& s, ObjectStats& st) {
  const auto& c = s.control<layout::SpscControl>();
  const uint64_t produced = c.producer_position.load(kRelaxed);
  const uint64_t consumed = c.consumer_position.load(kRelaxed);
  st.used_bytes = produced > consumed ? std::min(produced - consumed, st.capacity_bytes) : 0;
  st.messages_written = c.messages_written.load(kRelaxed);
  st.messages_read = c.messages_read.load(kRelaxed);
  st.bytes_written = c.bytes_written.load(kRelaxed);
  st.bytes_read = c.bytes_read.load(kRelaxed);
  st.full_events = c.full_events.load(kRelaxed);
  st.waits = c.producer_waits.load(kRelaxed) + c.consumer_waits.load(kRelaxed);
}

void ReadMpmc(const Segment& s, ObjectStats& st) {
  const auto& c = s.control<layout::MpmcControl>();
  const uint64_t enqueued = c.enqueue_position.load(kRelaxed);
  const uint64_t dequeued = c.dequeue_position.load(kRelaxed);
  const uint64_t slots =
      enqueued > dequeued ? std::min(enqueued - dequeued, s.params().capacity) : 0;
  st.used_bytes = slots * s.params().slot_size;
  st.messages_written = Sum(s, layout::kCounterMessages, EndpointRole::kProducer);
  st.messages_read = Sum(s, layout::kCounterMessages, EndpointRole::kConsumer);
  st.bytes_written = Sum(s, layout::kCounterBytes, EndpointRole::kProducer);
  st.bytes_read = Sum(s, layout::kCounterBytes, EndpointRole::kConsumer);
  st.full_events = Sum(s, layout::kCounterFull, EndpointRole::kProducer);
  st.waits = Sum(s, layout::kCounterWaits, EndpointRole::kNone);
}

void ReadBroadcast(const Segment& s, ObjectStats& st) {
  const auto& c = s.control<layout::BroadcastControl>();
  const uint64_t published = c.published.load(kRelaxed);
  st.messages_written = published;
  st.bytes_written = c.bytes_written.load(kRelaxed);
  st.messages_read = Sum(s, layout::kCounterMessages, EndpointRole::kConsumer);
  st.bytes_read = Sum(s, layout::kCounterBytes, EndpointRole::kConsumer);
  st.lapped_messages = Sum(s, layout::kCounterLapped, EndpointRole::kConsumer);
  // Lossless: sends that found a subscriber a whole ring behind (lossy: always 0).
  st.full_events = Sum(s, layout::kCounterFull, EndpointRole::kProducer);
  st.waits = Sum(s, layout::kCounterWaits, EndpointRole::kNone);
  // Backlog of the slowest live subscriber, at most the whole ring.
  uint64_t backlog = 0;
  for (const layout::EndpointSlot& slot : s.endpoints().slots) {
    if (slot.state.load(std::memory_order_acquire) !=
            static_cast<uint32_t>(layout::EndpointState::kLive) ||
        slot.role != static_cast<uint32_t>(EndpointRole::kSubscriber)) {
      continue;
    }
    const uint64_t cursor = slot.cursor.load(kRelaxed);
    if (published > cursor) backlog = std::max(backlog, published - cursor);
  }
  st.used_bytes = std::min(backlog, s.params().capacity) * s.params().slot_size;
}

void ReadPool(const Segment& s, ObjectStats& st) {
  st.pool_blocks = s.params().block_count;
  st.pool_block_size = s.params().block_size;
  st.capacity_bytes = uint64_t{st.pool_blocks} * st.pool_block_size;
  st.pool_blocks_in_use = std::min<uint64_t>(PoolBlocksInUse(s), st.pool_blocks);
  st.used_bytes = st.pool_blocks_in_use * st.pool_block_size;
  st.pool_alloc_failures = Sum(s, layout::kCounterFull, EndpointRole::kNone);
  st.pool_reclaimed_blocks = s.header_page().totals.reclaimed_blocks.load(kRelaxed);
  st.waits = Sum(s, layout::kCounterWaits, EndpointRole::kNone);
}

}  // namespace

ObjectStats ReadStats(const Segment& segment, bool check_processes) {
  ObjectStats st;
  st.kind = segment.kind();
  st.file_bytes = segment.size();
  st.capacity_bytes = segment.data_size();
  switch (st.kind) {
    case ObjectKind::kSpscRing:
      ReadSpsc(segment, st);
      break;
    case ObjectKind::kMpmcRing:
      ReadMpmc(segment, st);
      break;
    case ObjectKind::kBroadcastRing:
      ReadBroadcast(segment, st);
      break;
    case ObjectKind::kBlockPool:
      ReadPool(segment, st);
      break;
    case ObjectKind::kRegion:
    case ObjectKind::kNone:
      break;
  }
  st.endpoints = Census(segment, check_processes);
  return st;
}

}  // namespace shmd
