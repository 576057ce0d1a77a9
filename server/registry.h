// The control plane's logic, with no gRPC in it: the objects of one shm directory and
// namespace, who may do what to them, the limits, the leases, and what happens when a
// leaseholder dies. ControlService (control_service.h) adapts it to gRPC; tests drive it
// directly.
//
// The directory is the truth: every object is a file, and a restarted daemon re-adopts
// what it finds (Adopt). What only the daemon knows (leases, request ids) is lost on a
// restart; liveness is not, because the endpoint tables in the files say who is attached.
//
// Thread safety: every method may be called from any thread; one mutex guards the
// registry (control calls are rare and short; the data path never comes here).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/caller.h"
#include "server/event_bus.h"
#include "server/object_spec.h"
#include "server/process_watcher.h"
#include "server/request_cache.h"
#include "shmd/api/names.h"
#include "shmd/dataplane/endpoints.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"
#include "shmd/v1/control.pb.h"
#include "shmd/v1/server_stats.pb.h"

namespace shmd::server {

struct Limits {
  uint64_t quota_bytes = 0;          // all objects' files together; 0: no limit
  uint64_t max_object_bytes = 0;     // one object's file; 0: no limit
  uint32_t max_objects_per_uid = 0;  // objects one uid owns; 0: no limit
};

class Registry {
 public:
  struct Options {
    ShmDir dir;
    Limits limits;
    uint32_t admin_uid = 0;  // the daemon's own uid: may do anything, as root may
    std::string version;     // for ServerStats
  };

  // `watcher` may be null (unit tests): then deaths are found by Sweep alone.
  Registry(Options options, EventBus* events, ProcessWatcher* watcher);
  ~Registry();

  // Maps every object found in the directory (a restart re-adopts what the last run
  // served) and starts watching the processes attached to them. Files that are not
  // valid objects are reported in the returned text and left alone.
  std::string Adopt();

  Result<v1::Ring> CreateRing(const Caller& caller, const v1::CreateRingRequest& request);
  Result<v1::Ring> GetRing(const Caller& caller, const v1::GetRingRequest& request);
  Result<v1::ListRingsResponse> ListRings(const Caller& caller,
                                          const v1::ListRingsRequest& request);
  VoidResult DeleteRing(const Caller& caller, const v1::DeleteRingRequest& request);

  Result<v1::Pool> CreatePool(const Caller& caller, const v1::CreatePoolRequest& request);
  Result<v1::Pool> GetPool(const Caller& caller, const v1::GetPoolRequest& request);
  Result<v1::ListPoolsResponse> ListPools(const Caller& caller,
                                          const v1::ListPoolsRequest& request);
  VoidResult DeletePool(const Caller& caller, const v1::DeletePoolRequest& request);

  Result<v1::Region> CreateRegion(const Caller& caller, const v1::CreateRegionRequest& request);
  Result<v1::Region> GetRegion(const Caller& caller, const v1::GetRegionRequest& request);
  Result<v1::ListRegionsResponse> ListRegions(const Caller& caller,
                                              const v1::ListRegionsRequest& request);
  VoidResult DeleteRegion(const Caller& caller, const v1::DeleteRegionRequest& request);
  Result<v1::Region> ResizeRegion(const Caller& caller, const v1::ResizeRegionRequest& request);

  Result<v1::Lease> Attach(const Caller& caller, const v1::AttachRequest& request);
  VoidResult Detach(const Caller& caller, const v1::DetachRequest& request);

  v1::ServerStats Stats();

  // For the metrics collector, at scrape time: calls `fn` for every object under the
  // registry's lock (so keep it to reading headers), then reports the server's figures.
  struct ObjectView {
    const api::ObjectName& name;
    const Segment& segment;
  };
  void Visit(const std::function<void(const ObjectView&)>& fn);
  uint64_t endpoints_died() const { return endpoints_died_.load(std::memory_order_relaxed); }
  // One TYPE_OBJECT_ADOPTED event per object, for WatchEvents(include_existing).
  std::vector<v1::Event> ExistingObjects(const Caller& caller);

  // The process `pid` has exited: clear its endpoints (waking its peers), reclaim its
  // pool blocks, end its leases, and tell the watchers.
  void OnProcessExit(uint32_t pid);
  // Periodic: picks up objects made or removed behind the daemon's back, clears dead
  // endpoints, and watches every attached process not yet watched.
  void Sweep();

 private:
  struct Record {
    api::ObjectName name;
    std::shared_ptr<Segment> segment;
    uint64_t inode = 0;
    Ownership ownership;
  };
  struct LeaseRecord {
    v1::Lease lease;
    std::string object_id;
    uint64_t start_time = 0;
  };
  using Generic = api::ObjectName;

  template <class Resource>
  Result<Resource> Create(const Caller& caller, std::string_view collection, const std::string& id,
                          const Result<ObjectSpec>& spec, const std::string& request_id,
                          const std::string& fingerprint);
  template <class Resource>
  Result<Resource> Get(const Caller& caller, std::string_view collection, const std::string& name);
  template <class Response>
  Result<Response> List(const Caller& caller, std::string_view collection, int32_t page_size,
                        const std::string& page_token);
  VoidResult Delete(const Caller& caller, std::string_view collection, const std::string& name,
                    bool force, bool allow_missing);

  // Requires mu_.
  Result<Record*> Find(const api::ObjectName& name);  // syncs with the directory on a miss
  Record* Known(const std::string& id);               // what the registry knows, no sync
  void NoteOwnChange(uint64_t mtime_before);
  Result<Record*> AdoptFile(const std::string& id, uint64_t inode);
  void SyncWithDirectory(std::string* report, bool force = false);
  uint32_t LeaseCount(const std::string& id) const;
  template <class Resource>
  void Describe(const Record& record, Resource* out) const;
  // Clears the dead endpoints of `pid` (of the daemon's pid namespace) and those whose
  // slots record one of `leases` (the ended leases of that pid), and reports the death.
  void ClearDead(Record& record, uint32_t pid, const std::vector<std::string>& leases);
  // Reports an endpoint of another pid namespace found dead (cleared here, or by a peer
  // first): ends the lease its slot recorded and publishes TYPE_ENDPOINT_DIED.
  void ReportDeath(Record& record, const EndpointDeath& death, bool cleared_here,
                   uint64_t reclaimed);
  // Same namespace: clears the dead by pid and watches the living; other namespaces:
  // clears those whose liveness lock is gone; then reports other namespaces' deaths.
  void WatchAttached(Record& record);
  VoidResult CheckLimits(const Caller& caller, uint64_t file_bytes) const;
  uint64_t AllocatedBytes() const;

  const Options options_;
  EventBus* const events_;
  ProcessWatcher* const watcher_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  RequestCache requests_;

  std::mutex mu_;
  std::map<std::string, Record> objects_;      // by id (ids are unique across kinds)
  std::map<std::string, std::string> broken_;  // id -> why it could not be adopted
  std::map<std::string, LeaseRecord> leases_;  // by lease name
  uint64_t dir_mtime_ns_ = 0;                  // of the directory when last read whole
  uint64_t sweeps_ = 0;
  std::atomic<uint64_t> endpoints_died_{0};  // cleared because their process died
};

}  // namespace shmd::server
