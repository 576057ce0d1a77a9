// Topic through the daemon: its broadcast ring asked for with CreateRing, each end opened
// with a lease on it (topic.h).
#include <memory>
#include <utility>

#include "shmd/client/client.h"
#include "shmd/client/topic.h"

namespace shmd {

VoidResult CreateTopic(Client& client, std::string_view name, const TopicSpec& spec) {
  Result<BroadcastRingSpec> g = TopicRingSpecFor(spec);
  if (!g.ok()) return g.error();
  v1::Ring ring;
  ring.set_kind(v1::RING_KIND_BROADCAST);
  // The daemon fits the largest power of two of slots into capacity_bytes: exactly depth.
  ring.set_capacity_bytes(uint64_t{g->slot_count} * layout::SlotSizeFor(g->max_message));
  ring.set_max_message_bytes(g->max_message);
  ring.set_mode(spec.mode);
  ring.set_policy(spec.policy == TopicPolicy::kLossless ? v1::BROADCAST_POLICY_LOSSLESS
                                                        : v1::BROADCAST_POLICY_LOSSY);
  if (auto r = client.CreateRing(TopicRingName(name), ring); !r.ok()) return r.error();
  return Ok{};
}

VoidResult DeleteTopic(Client& client, std::string_view name, bool force) {
  return client.DeleteRing(TopicRingName(name), {.force = force, .allow_missing = true});
}

Result<Publisher> Publisher::Open(Client& client, std::string_view name, const WaitOptions& wait) {
  auto ring = client.Open<BroadcastProducer>(TopicRingName(name), wait);
  if (!ring.ok()) return ring.error();
  auto parts = std::move(ring).value().Split();
  parts.handle.set_wait(wait);  // Client::Open attaches a producer without WaitOptions
  return Assemble(std::move(parts.lease), std::move(parts.handle));
}

Result<Subscriber> Subscriber::Open(Client& client, std::string_view name,
                                    const WaitOptions& wait) {
  auto ring = client.Open<BroadcastSubscriber>(TopicRingName(name), wait);
  if (!ring.ok()) return ring.error();
  auto parts = std::move(ring).value().Split();
  return Assemble(std::move(parts.lease), std::move(parts.handle));
}

}  // namespace shmd
