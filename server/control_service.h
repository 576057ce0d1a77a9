// The gRPC face of the Registry: a thin final adapter. Each method names the caller (from
// the peer table), calls the registry, and turns its Result into a grpc::Status.
#pragma once

#include <atomic>

#include "server/event_bus.h"
#include "server/registry.h"
#include "server/unix_listener.h"
#include "shmd/v1/control.grpc.pb.h"

namespace shmd::server {

// The one place data-plane and registry errors become gRPC status codes.
grpc::Status ToGrpcStatus(const Error& error);

class ControlService final : public v1::Control::Service {
 public:
  ControlService(Registry* registry, EventBus* events, const PeerTable* peers)
      : registry_(registry), events_(events), peers_(peers) {}

  // WatchEvents streams end (OK) when this is called: the daemon is shutting down.
  void Shutdown() { stopping_.store(true); }

  grpc::Status CreateRing(grpc::ServerContext* c, const v1::CreateRingRequest* r, v1::Ring* o) override;
  grpc::Status GetRing(grpc::ServerContext* c, const v1::GetRingRequest* r, v1::Ring* o) override;
  grpc::Status ListRings(grpc::ServerContext* c, const v1::ListRingsRequest* r,
                         v1::ListRingsResponse* o) override;
  grpc::Status DeleteRing(grpc::ServerContext* c, const v1::DeleteRingRequest* r,
                          google::protobuf::Empty* o) override;
  grpc::Status CreatePool(grpc::ServerContext* c, const v1::CreatePoolRequest* r, v1::Pool* o) override;
  grpc::Status GetPool(grpc::ServerContext* c, const v1::GetPoolRequest* r, v1::Pool* o) override;
  grpc::Status ListPools(grpc::ServerContext* c, const v1::ListPoolsRequest* r,
                         v1::ListPoolsResponse* o) override;
  grpc::Status DeletePool(grpc::ServerContext* c, const v1::DeletePoolRequest* r,
                          google::protobuf::Empty* o) override;
  grpc::Status CreateRegion(grpc::ServerContext* c, const v1::CreateRegionRequest* r,
                            v1::Region* o) override;
  grpc::Status GetRegion(grpc::ServerContext* c, const v1::GetRegionRequest* r, v1::Region* o) override;
  grpc::Status ListRegions(grpc::ServerContext* c, const v1::ListRegionsRequest* r,
                           v1::ListRegionsResponse* o) override;
  grpc::Status DeleteRegion(grpc::ServerContext* c, const v1::DeleteRegionRequest* r,
                            google::protobuf::Empty* o) override;
  grpc::Status ResizeRegion(grpc::ServerContext* c, const v1::ResizeRegionRequest* r,
                            v1::Region* o) override;
  grpc::Status Attach(grpc::ServerContext* c, const v1::AttachRequest* r, v1::Lease* o) override;
  grpc::Status Detach(grpc::ServerContext* c, const v1::DetachRequest* r,
                      google::protobuf::Empty* o) override;
  grpc::Status WatchEvents(grpc::ServerContext* c, const v1::WatchEventsRequest* r,
                           grpc::ServerWriter<v1::Event>* writer) override;
  grpc::Status GetServerStats(grpc::ServerContext* c, const v1::GetServerStatsRequest* r,
                              v1::ServerStats* o) override;

 private:
  Caller CallerOf(grpc::ServerContext* context) const { return peers_->Lookup(context->peer()); }

  Registry* registry_;
  EventBus* events_;
  const PeerTable* peers_;
  std::atomic<bool> stopping_{false};
};

}  // namespace shmd::server
