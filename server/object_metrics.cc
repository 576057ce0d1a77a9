#include "server/object_metrics.h"

#include <chrono>
#include <map>

#include <google/protobuf/util/time_util.h>

#include "shmd/dataplane/stats.h"

namespace shmd::server {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// One family being filled: its name, help and type, then one sample per label set.
class Family {
 public:
  Family(std::string name, std::string help, MetricType type) {
    family_.name = std::move(name);
    family_.help = std::move(help);
    family_.type = type;
  }
  void Add(std::vector<ClientMetric::Label> labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    if (family_.type == MetricType::Counter) {
      m.counter.value = value;
    } else {
      m.gauge.value = value;
    }
    family_.metric.push_back(std::move(m));
  }
  MetricFamily Take() { return std::move(family_); }

 private:
  MetricFamily family_;
};

const char* RingKind(layout::ObjectKind kind) {
  switch (kind) {
    case layout::ObjectKind::kSpscRing:
      return "spsc";
    case layout::ObjectKind::kMpmcRing:
      return "mpmc";
    default:
      return "broadcast";
  }
}

const char* RoleName(uint32_t role) {
  switch (static_cast<layout::EndpointRole>(role)) {
    case layout::EndpointRole::kProducer:
      return "producer";
    case layout::EndpointRole::kConsumer:
      return "consumer";
    case layout::EndpointRole::kSubscriber:
      return "subscriber";
    default:
      return "none";
  }
}

// Endpoints by role and state, from the slots' own states: the daemon clears a dead
// process's slots the moment it dies, so "dead" is what it has not cleared yet.
std::map<std::pair<std::string, std::string>, int> EndpointCounts(const Segment& s) {
  std::map<std::pair<std::string, std::string>, int> counts;
  for (const auto& slot : s.endpoints().slots) {
    const auto state = static_cast<layout::EndpointState>(slot.state.load(std::memory_order_acquire));
    if (state != layout::EndpointState::kLive && state != layout::EndpointState::kDead) continue;
    ++counts[{RoleName(slot.role.load(std::memory_order_relaxed)),
              state == layout::EndpointState::kLive ? "live" : "dead"}];
  }
  return counts;
}

}  // namespace

std::vector<MetricFamily> ObjectCollector::Collect() const {
  const auto start = std::chrono::steady_clock::now();
  constexpr auto G = MetricType::Gauge;
  constexpr auto C = MetricType::Counter;

  Family ring_info("shmd_ring_info", "A ring and its kind (spsc, mpmc, broadcast); always 1.", G);
  Family ring_capacity("shmd_ring_capacity_bytes", "Bytes of the ring's data area.", G);
  Family ring_used("shmd_ring_used_bytes",
                   "Bytes written and not yet read (broadcast: the slowest subscriber's backlog).",
                   G);
  Family ring_msgs_w("shmd_ring_messages_written_total", "Messages written into the ring.", C);
  Family ring_msgs_r("shmd_ring_messages_read_total",
                     "Messages read from the ring (broadcast: summed over subscribers).", C);
  Family ring_bytes_w("shmd_ring_bytes_written_total", "Payload bytes written into the ring.", C);
  Family ring_bytes_r("shmd_ring_bytes_read_total", "Payload bytes read from the ring.", C);
  Family ring_full("shmd_ring_full_total", "Sends that found the ring full.", C);
  Family ring_lapped("shmd_ring_lapped_messages_total",
                     "Broadcast: messages subscribers lost by being lapped.", C);
  Family ring_waits("shmd_ring_waits_total", "Times a producer or consumer slept (futex).", C);
  Family ring_endpoints("shmd_ring_endpoints", "Attached endpoints by role and state.", G);
  Family pool_blocks("shmd_pool_blocks", "Blocks in the pool.", G);
  Family pool_in_use("shmd_pool_blocks_in_use", "Blocks allocated and not yet freed.", G);
  Family pool_block_size("shmd_pool_block_size_bytes", "Bytes per block.", G);
  Family pool_failures("shmd_pool_alloc_failures_total", "Allocations that found the pool empty.",
                       C);
  Family pool_reclaimed("shmd_pool_reclaimed_blocks_total",
                        "Blocks returned from processes that died holding them.", C);
  Family pool_endpoints("shmd_pool_endpoints", "Attached pool users by state.", G);
  Family region_size("shmd_region_size_bytes", "Bytes of the region.", G);

  std::map<std::string, int> objects = {{"ring", 0}, {"pool", 0}, {"region", 0}};
  registry_->Visit([&](const Registry::ObjectView& o) {
    const Segment& s = o.segment;
    const std::string& id = o.name.id;
    if (o.name.collection == "regions") {
      ++objects["region"];
      region_size.Add({{"region", id}}, static_cast<double>(s.header().data_size));
      return;
    }
    const ObjectStats st = ReadStats(s, /*check_processes=*/false);
    const auto endpoints = EndpointCounts(s);
    if (o.name.collection == "pools") {
      ++objects["pool"];
      const std::vector<ClientMetric::Label> l = {{"pool", id}};
      pool_blocks.Add(l, st.pool_blocks);
      pool_in_use.Add(l, static_cast<double>(st.pool_blocks_in_use));
      pool_block_size.Add(l, st.pool_block_size);
      pool_failures.Add(l, static_cast<double>(st.pool_alloc_failures));
      pool_reclaimed.Add(l, static_cast<double>(st.pool_reclaimed_blocks));
      int live = 0, dead = 0;
      for (const auto& [key, n] : endpoints) (key.second == "live" ? live : dead) += n;
      pool_endpoints.Add({{"pool", id}, {"state", "live"}}, live);
      pool_endpoints.Add({{"pool", id}, {"state", "dead"}}, dead);
      return;
    }
    ++objects["ring"];
    const std::vector<ClientMetric::Label> l = {{"ring", id}};
    ring_info.Add({{"ring", id}, {"kind", RingKind(s.kind())}}, 1);
    ring_capacity.Add(l, static_cast<double>(st.capacity_bytes));
    ring_used.Add(l, static_cast<double>(st.used_bytes));
    ring_msgs_w.Add(l, static_cast<double>(st.messages_written));
    ring_msgs_r.Add(l, static_cast<double>(st.messages_read));
    ring_bytes_w.Add(l, static_cast<double>(st.bytes_written));
    ring_bytes_r.Add(l, static_cast<double>(st.bytes_read));
    ring_full.Add(l, static_cast<double>(st.full_events));
    ring_lapped.Add(l, static_cast<double>(st.lapped_messages));
    ring_waits.Add(l, static_cast<double>(st.waits));
    // Every role the kind has, live and dead, even at 0: a panel shows "no consumer".
    std::vector<const char*> roles = {"producer", "consumer"};
    if (s.kind() == layout::ObjectKind::kBroadcastRing) roles = {"producer", "subscriber"};
    for (const char* role : roles) {
      for (const char* state : {"live", "dead"}) {
        auto it = endpoints.find({role, state});
        ring_endpoints.Add({{"ring", id}, {"role", role}, {"state", state}},
                           it == endpoints.end() ? 0 : it->second);
      }
    }
  });

  const v1::ServerStats server = registry_->Stats();
  Family objects_family("shmd_objects", "Objects the daemon serves, by kind.", G);
  for (const auto& [kind, n] : objects) objects_family.Add({{"kind", kind}}, n);
  Family allocated("shmd_shm_allocated_bytes", "Bytes of every object's file together.", G);
  allocated.Add({}, static_cast<double>(server.allocated_bytes()));
  Family quota("shmd_shm_quota_bytes", "The daemon's quota of bytes (0: no quota).", G);
  quota.Add({}, static_cast<double>(server.quota_bytes()));
  Family fs_size("shmd_shm_filesystem_size_bytes", "Size of the shm directory's filesystem.", G);
  fs_size.Add({}, static_cast<double>(server.filesystem_size_bytes()));
  Family fs_free("shmd_shm_filesystem_free_bytes",
                 "Bytes of the shm directory's filesystem available to the daemon.", G);
  fs_free.Add({}, static_cast<double>(server.filesystem_free_bytes()));
  Family leases("shmd_leases", "Leases held (Attach without Detach).", G);
  leases.Add({}, server.lease_count());
  Family died("shmd_endpoints_died_total",
              "Endpoints the daemon cleared because their process died.", C);
  died.Add({}, static_cast<double>(registry_->endpoints_died()));
  Family uptime("shmd_uptime_seconds", "Seconds since the daemon started.", G);
  uptime.Add({}, static_cast<double>(google::protobuf::util::TimeUtil::DurationToMilliseconds(
                     server.uptime())) / 1000.0);
  Family build("shmd_build_info", "The daemon's version and source revision; always 1.", G);
  build.Add({{"version", build_.version}, {"revision", build_.revision}}, 1);

  std::vector<MetricFamily> out;
  for (Family* f : {&ring_info, &ring_capacity, &ring_used, &ring_msgs_w, &ring_msgs_r,
                    &ring_bytes_w, &ring_bytes_r, &ring_full, &ring_lapped, &ring_waits,
                    &ring_endpoints, &pool_blocks, &pool_in_use, &pool_block_size, &pool_failures,
                    &pool_reclaimed, &pool_endpoints, &region_size, &objects_family, &allocated,
                    &quota, &fs_size, &fs_free, &leases, &died, &uptime, &build}) {
    MetricFamily family = f->Take();
    if (!family.metric.empty()) out.push_back(std::move(family));  // no pools: no pool lines
  }
  Family scrape("shmd_scrape_duration_seconds",
                "Seconds this scrape spent reading the objects' headers.", G);
  scrape.Add({}, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  out.push_back(scrape.Take());
  return out;
}

}  // namespace shmd::server
