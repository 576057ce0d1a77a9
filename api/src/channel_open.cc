// Channel through the daemon: its two objects asked for with CreateRing and CreatePool,
// each end opened with leases on both (channel.h).
#include <memory>
#include <utility>

#include "shmd/client/channel.h"
#include "shmd/client/client.h"

namespace shmd {
namespace {

// Both leases, let go together once the channel's handles have detached.
struct ChannelLeases {
  std::shared_ptr<void> ring;
  std::shared_ptr<void> pool;
};

template <class End, class RingHandle>
Result<End> OpenEnd(Client& client, std::string_view name, const WaitOptions& wait) {
  auto ring = client.Open<RingHandle>(ChannelRingName(name), wait);
  if (!ring.ok()) return ring.error();
  auto pool = client.Open<BlockPool>(ChannelPoolName(name), wait);
  if (!pool.ok()) return pool.error();
  auto ring_parts = std::move(ring).value().Split();
  auto pool_parts = std::move(pool).value().Split();
  auto leases = std::make_shared<ChannelLeases>(
      ChannelLeases{std::move(ring_parts.lease), std::move(pool_parts.lease)});
  return End::Assemble(std::move(leases), std::move(ring_parts.handle),
                       std::move(pool_parts.handle));
}

}  // namespace

VoidResult CreateChannel(Client& client, std::string_view name, const ChannelSpec& spec) {
  Result<ChannelGeometry> g = ChannelGeometryFor(spec);
  if (!g.ok()) return g.error();
  v1::Ring ring;
  ring.set_kind(v1::RING_KIND_SPSC);
  ring.set_capacity_bytes(g->ring.capacity);
  ring.set_max_message_bytes(g->ring.max_message);
  ring.set_mode(spec.mode);
  if (auto r = client.CreateRing(ChannelRingName(name), ring); !r.ok()) return r.error();
  v1::Pool pool;
  pool.set_block_size_bytes(g->pool.block_size);
  pool.set_block_count(g->pool.block_count);
  pool.set_mode(spec.mode);
  if (auto r = client.CreatePool(ChannelPoolName(name), pool); !r.ok()) return r.error();
  return Ok{};
}

VoidResult DeleteChannel(Client& client, std::string_view name, bool force) {
  DeleteOptions options{.force = force, .allow_missing = true};
  VoidResult ring = client.DeleteRing(ChannelRingName(name), options);
  VoidResult pool = client.DeletePool(ChannelPoolName(name), options);
  return ring.ok() ? pool : ring;
}

Result<ChannelSender> ChannelSender::Open(Client& client, std::string_view name,
                                          const WaitOptions& wait) {
  return OpenEnd<ChannelSender, SpscProducer>(client, name, wait);
}

Result<ChannelReceiver> ChannelReceiver::Open(Client& client, std::string_view name,
                                              const WaitOptions& wait) {
  return OpenEnd<ChannelReceiver, SpscConsumer>(client, name, wait);
}

}  // namespace shmd
