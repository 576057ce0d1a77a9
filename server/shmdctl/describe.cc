#include "server/shmdctl/describe.h"

#include "server/shmdctl/format.h"
#include "server/shmdctl/table.h"

namespace shmd::ctl {
namespace {

std::string Owner(uint32_t mode, const v1::ObjectInfo& info) {
  return "mode " + Mode(mode) + ", owner uid " + std::to_string(info.owner_uid());
}

// What every kind has, after the kind's own fields.
std::string WithInfo(Fields fields, const v1::ObjectInfo& info) {
  fields.Add("owner uid", std::to_string(info.owner_uid()));
  fields.Add("group gid", std::to_string(info.group_gid()));
  fields.Add("file", info.path());
  fields.Add("file size", BytesExact(info.file_bytes()));
  fields.Add("layout version", std::to_string(info.layout_version()));
  fields.Add("generation", std::to_string(info.generation()));
  fields.Add("created", Time(info.create_time()));
  fields.Add("leases", std::to_string(info.lease_count()));
  fields.Add("endpoints",
             info.endpoints().empty() ? "none" : std::to_string(info.endpoints().size()));
  if (!info.endpoints().empty()) {
    Table table({{"SLOT", Table::Align::kRight},
                 {"ROLE"},
                 {"PID", Table::Align::kRight},
                 {"UID", Table::Align::kRight},
                 {"STATE"}});
    for (const v1::Endpoint& e : info.endpoints()) {
      table.AddRow({std::to_string(e.slot()), RoleName(e.role()),
                    e.pid() ? std::to_string(e.pid()) : "-", std::to_string(e.uid()),
                    StateName(e.state())});
    }
    fields.Append(table.Render("  "));
  }
  return fields.Render();
}

}  // namespace

std::string OneLine(const v1::Ring& ring) {
  return ring.name() + ": " + KindName(ring.kind()) + " ring, capacity " +
         Bytes(ring.capacity_bytes()) + ", largest message " +
         BytesExact(ring.max_message_bytes()) + ", " + Owner(ring.mode(), ring.info());
}

std::string OneLine(const v1::Pool& pool) {
  const uint64_t total = uint64_t{pool.block_size_bytes()} * pool.block_count();
  return pool.name() + ": " + std::to_string(pool.block_count()) + " blocks of " +
         Bytes(pool.block_size_bytes()) + " (" + Bytes(total) + "), " +
         Owner(pool.mode(), pool.info());
}

std::string OneLine(const v1::Region& region) {
  return region.name() + ": " + Bytes(region.size_bytes()) + ", " +
         Owner(region.mode(), region.info()) + ", generation " +
         std::to_string(region.info().generation());
}

std::string Details(const v1::Ring& ring) {
  const v1::RingUsage& u = ring.usage();
  Fields f;
  f.Add("name", ring.name());
  f.Add("kind", KindName(ring.kind()));
  f.Add("capacity", BytesExact(ring.capacity_bytes()));
  f.Add("largest message", BytesExact(ring.max_message_bytes()));
  if (ring.kind() != v1::RING_KIND_SPSC) f.Add("slots", std::to_string(ring.slot_count()));
  if (ring.kind() == v1::RING_KIND_BROADCAST) {
    f.Add("policy", ring.policy() == v1::BROADCAST_POLICY_LOSSLESS
                        ? "lossless (the producer waits for the slowest subscriber)"
                        : "lossy (slow subscribers are lapped)");
  }
  f.Add("mode", Mode(ring.mode()));
  f.Add("used", BytesExact(u.used_bytes()) + ", " + Percent(u.used_bytes(), ring.capacity_bytes()));
  f.Add("messages written", std::to_string(u.messages_written()));
  f.Add("messages read", std::to_string(u.messages_read()));
  f.Add("bytes written", BytesExact(u.bytes_written()));
  f.Add("bytes read", BytesExact(u.bytes_read()));
  f.Add("full events", std::to_string(u.full_events()));
  if (ring.kind() == v1::RING_KIND_BROADCAST) {
    f.Add("lapped messages", std::to_string(u.lapped_messages()));
  }
  return WithInfo(std::move(f), ring.info());
}

std::string Details(const v1::Pool& pool) {
  const v1::PoolUsage& u = pool.usage();
  Fields f;
  f.Add("name", pool.name());
  f.Add("block size", BytesExact(pool.block_size_bytes()));
  f.Add("blocks", std::to_string(pool.block_count()));
  f.Add("mode", Mode(pool.mode()));
  f.Add("blocks in use",
        std::to_string(u.blocks_in_use()) + ", " + Percent(u.blocks_in_use(), pool.block_count()));
  f.Add("alloc failures", std::to_string(u.alloc_failures()));
  f.Add("reclaimed blocks", std::to_string(u.reclaimed_blocks()));
  return WithInfo(std::move(f), pool.info());
}

std::string Details(const v1::Region& region) {
  Fields f;
  f.Add("name", region.name());
  f.Add("size", BytesExact(region.size_bytes()));
  f.Add("mode", Mode(region.mode()));
  return WithInfo(std::move(f), region.info());
}

std::string EndpointSummary(const v1::ObjectInfo& info, bool region) {
  if (region) return info.lease_count() ? std::to_string(info.lease_count()) + "U" : "-";
  struct Count {
    v1::Role role;
    const char* letter;
    int n = 0;
  };
  Count counts[] = {{v1::ROLE_PRODUCER, "P"}, {v1::ROLE_CONSUMER, "C"}, {v1::ROLE_SUBSCRIBER, "S"}};
  int dead = 0;
  for (const v1::Endpoint& e : info.endpoints()) {
    if (e.state() == v1::ENDPOINT_STATE_DEAD) {
      ++dead;
      continue;
    }
    for (Count& c : counts) c.n += c.role == e.role();
  }
  std::string out;
  for (const Count& c : counts) {
    if (c.n) out += (out.empty() ? "" : " ") + std::to_string(c.n) + c.letter;
  }
  if (dead) out += (out.empty() ? "" : " ") + std::string("+") + std::to_string(dead) + " dead";
  return out.empty() ? "-" : out;
}

}  // namespace shmd::ctl
