#include "bench/control/measure.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "bench/control/daemon.h"

namespace shmd::bench {
namespace {

constexpr uint64_t kRoundTripCapacity = 64 << 10;
constexpr uint64_t kListCapacity = 4096;  // the smallest SPSC ring

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

v1::Ring SpscSpec(uint64_t capacity_bytes) {
  v1::Ring spec;
  spec.set_kind(v1::RING_KIND_SPSC);
  spec.set_capacity_bytes(capacity_bytes);
  return spec;
}

Error Failed(const std::string& what, const Error& error) {
  return Error(error.code(), what + ": " + error.message());
}

Error Interrupted() { return Error(ErrorCode::kUnavailable, "interrupted"); }

// Zero-padded, so the daemon's name order is our creation order.
std::string ListId(int i) {
  char id[32];
  std::snprintf(id, sizeof(id), "list-%06d", i);
  return id;
}

// Creates and deletes `count` fresh rings after `warmup` untimed pairs. Fresh ids: a
// repeated one could be answered from whatever the daemon kept of the last one.
VoidResult CreateDeletePairs(Client& client, const std::string& prefix, int warmup, int count,
                             std::vector<int64_t>* create_ns, std::vector<int64_t>* delete_ns,
                             std::vector<int64_t>* pair_ns) {
  const v1::Ring spec = SpscSpec(kRoundTripCapacity);
  for (int i = 0; i < warmup + count; ++i) {
    if (StopRequested()) return Interrupted();
    const std::string id = prefix + std::to_string(i);
    const int64_t start = NowNs();
    Result<v1::Ring> ring = client.CreateRing(id, spec);
    const int64_t created = NowNs();
    if (!ring.ok()) return Failed("CreateRing " + id, ring.error());
    VoidResult deleted = client.DeleteRing(id);
    const int64_t end = NowNs();
    if (!deleted.ok()) return Failed("DeleteRing " + id, deleted.error());
    if (i < warmup) continue;
    create_ns->push_back(created - start);
    delete_ns->push_back(end - created);
    if (pair_ns != nullptr) pair_ns->push_back(end - start);
  }
  return Ok{};
}

// ListAllRings, checked against the rings we made: exactly ListId(0..n-1), in order.
VoidResult ListAndCheck(Client& client, int n, int64_t* took_ns) {
  const int64_t start = NowNs();
  Result<std::vector<v1::Ring>> rings = client.ListAllRings();
  *took_ns = NowNs() - start;
  if (!rings.ok()) return Failed("ListAllRings", rings.error());
  if (rings->size() != static_cast<size_t>(n)) {
    return Error(ErrorCode::kSystem, "ListAllRings returned " + std::to_string(rings->size()) +
                                         " rings; " + std::to_string(n) + " exist");
  }
  for (int i = 0; i < n; ++i) {
    if ((*rings)[i].name() != "rings/" + ListId(i)) {
      return Error(ErrorCode::kSystem, "ListAllRings returned " + (*rings)[i].name() +
                                           " at position " + std::to_string(i) +
                                           "; expected rings/" + ListId(i));
    }
  }
  return Ok{};
}

}  // namespace

VoidResult MeasureCreateDelete(Client& client, const Plan& plan, std::vector<Record>* out) {
  std::vector<int64_t> create_ns, delete_ns, pair_ns;
  VoidResult r = CreateDeletePairs(client, "rt-", plan.warmup, plan.round_trips, &create_ns,
                                   &delete_ns, &pair_ns);
  if (!r.ok()) return r;
  out->push_back(Summarize("CreateRing 64 KiB", std::move(create_ns)));
  out->push_back(Summarize("DeleteRing", std::move(delete_ns)));
  out->push_back(Summarize("CreateRing+DeleteRing", std::move(pair_ns)));
  return Ok{};
}

VoidResult MeasureList(Client& client, const Plan& plan, std::vector<Record>* out) {
  const int n = plan.list_objects;
  const std::string n_text = std::to_string(n);

  std::vector<int64_t> fill_ns;
  const v1::Ring spec = SpscSpec(kListCapacity);
  for (int i = 0; i < n; ++i) {
    if (StopRequested()) return Interrupted();
    const std::string id = ListId(i);
    const int64_t start = NowNs();
    Result<v1::Ring> ring = client.CreateRing(id, spec);
    fill_ns.push_back(NowNs() - start);
    if (!ring.ok()) return Failed("CreateRing " + id + " (filling)", ring.error());
  }
  out->push_back(Summarize("CreateRing 4 KiB, filling to " + n_text, std::move(fill_ns)));

  // The first list is the warm-up (and the first check of what the daemon lists).
  std::vector<int64_t> list_ns;
  for (int run = 0; run <= plan.list_runs; ++run) {
    if (StopRequested()) return Interrupted();
    int64_t took_ns = 0;
    if (VoidResult r = ListAndCheck(client, n, &took_ns); !r.ok()) return r;
    if (run > 0) list_ns.push_back(took_ns);
  }
  Record list = Summarize("ListAllRings, " + n_text + " rings", std::move(list_ns));
  Record per_ring;
  per_ring.operation = "ListAllRings, per ring";
  per_ring.count = static_cast<uint64_t>(n);
  if (list.p50_us) per_ring.p50_us = *list.p50_us / n;
  if (list.mean_us) per_ring.mean_us = *list.mean_us / n;
  out->push_back(list);
  out->push_back(per_ring);

  // Does a crowded daemon answer Create and Delete as fast as an empty one?
  std::vector<int64_t> create_ns, delete_ns;
  VoidResult r = CreateDeletePairs(client, "crowd-", std::min(plan.warmup, 20),
                                   plan.crowded_round_trips, &create_ns, &delete_ns, nullptr);
  if (!r.ok()) return r;
  out->push_back(Summarize("CreateRing 64 KiB, " + n_text + " present", std::move(create_ns)));
  out->push_back(Summarize("DeleteRing, " + n_text + " present", std::move(delete_ns)));

  std::vector<int64_t> drain_ns;
  for (int i = 0; i < n; ++i) {
    if (StopRequested()) return Interrupted();
    const std::string id = ListId(i);
    const int64_t start = NowNs();
    VoidResult deleted = client.DeleteRing(id);
    drain_ns.push_back(NowNs() - start);
    if (!deleted.ok()) return Failed("DeleteRing " + id + " (emptying)", deleted.error());
  }
  out->push_back(Summarize("DeleteRing, emptying " + n_text, std::move(drain_ns)));
  return Ok{};
}

VoidResult MeasureAttach(Client& client, const Plan& plan, std::vector<Record>* out) {
  const std::string id = "attach-target";
  const std::string object = "rings/" + id;
  if (Result<v1::Ring> ring = client.CreateRing(id, SpscSpec(kRoundTripCapacity)); !ring.ok()) {
    return Failed("CreateRing " + id, ring.error());
  }
  // The producer role of an SPSC ring is exclusive, so a Detach that did not let go would
  // fail the next Attach: the loop checks Detach as it goes.
  std::vector<int64_t> attach_ns, detach_ns, pair_ns;
  for (int i = 0; i < plan.warmup + plan.round_trips; ++i) {
    if (StopRequested()) return Interrupted();
    const int64_t start = NowNs();
    Result<v1::Lease> lease = client.Attach(object, v1::ROLE_PRODUCER);
    const int64_t attached = NowNs();
    if (!lease.ok()) {
      return Failed("Attach " + object + " (call " + std::to_string(i) + ")", lease.error());
    }
    VoidResult detached = client.Detach(lease->name(), /*allow_missing=*/false);
    const int64_t end = NowNs();
    if (!detached.ok()) return Failed("Detach " + lease->name(), detached.error());
    if (lease->object() != object || lease->pid() != static_cast<uint32_t>(getpid())) {
      return Error(ErrorCode::kSystem,
                   "Attach " + object + " returned a lease of " + lease->object() + " for pid " +
                       std::to_string(lease->pid()) + "; expected pid " + std::to_string(getpid()));
    }
    if (i < plan.warmup) continue;
    attach_ns.push_back(attached - start);
    detach_ns.push_back(end - attached);
    pair_ns.push_back(end - start);
  }
  if (VoidResult r = client.DeleteRing(id); !r.ok()) return Failed("DeleteRing " + id, r.error());
  out->push_back(Summarize("Attach (producer)", std::move(attach_ns)));
  out->push_back(Summarize("Detach", std::move(detach_ns)));
  out->push_back(Summarize("Attach+Detach", std::move(pair_ns)));
  return Ok{};
}

}  // namespace shmd::bench
