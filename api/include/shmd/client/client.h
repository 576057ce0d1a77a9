// shmd::Client: the control plane (the shmd daemon's gRPC API) from C++, and the step
// from an Attach answer to a mapped data-plane handle.
//
//   auto client = shmd::Client::Connect().value();          // unix:///run/shmd/shmd.sock
//   shmd::v1::Ring spec;
//   spec.set_kind(shmd::v1::RING_KIND_SPSC);
//   spec.set_capacity_bytes(1 << 20);
//   client.CreateRing("orders", spec);                        // same spec again: no-op
//   auto producer = client.Open<shmd::SpscProducer>("orders").value();
//   producer->Send(bytes);                                    // no daemon on this path
//
// Every call carries a deadline (ClientOptions::deadline) and returns a value or an Error
// whose code is the gRPC status turned into shmd::ErrorCode and whose message is the
// daemon's. A Client is cheap to copy (copies share one channel) and safe to use from
// several threads at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shmd/client/attached.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/wait.h"
#include "shmd/v1/control.grpc.pb.h"

namespace shmd {

// Where a daemon listens when nobody says otherwise.
inline constexpr char kDefaultSocketPath[] = "/run/shmd/shmd.sock";

// The first address of $SHMD_LISTEN (comma-separated, as the daemon reads it) when set,
// else "unix:///run/shmd/shmd.sock".
std::string DefaultTarget();

struct ClientOptions {
  std::string target;  // "unix:///path" or "host:port"; "" means DefaultTarget()
  std::chrono::milliseconds deadline{5000};  // of every call
  // Where this process sees the daemon's shm directory, when it differs from where the
  // daemon sees it (another mount point); "" means the same path.
  std::string shm_dir;
};

struct DeleteOptions {
  bool force = false;          // delete even while endpoints are attached
  bool allow_missing = false;  // a missing object is success
};

// A WatchEvents stream. Next() blocks until an event comes, the stream ends, or the
// timeout passes (then it returns kDeadlineExceeded and the stream stays open).
class EventStream {
 public:
  EventStream(EventStream&&) noexcept;
  EventStream& operator=(EventStream&&) noexcept;
  ~EventStream();  // cancels the call
  Result<v1::Event> Next(std::chrono::milliseconds timeout);
  void Cancel();

 private:
  friend class Client;
  struct State;
  explicit EventStream(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

class Client {
 public:
  // Makes the channel and waits (up to the deadline) until the daemon answers; fails
  // with kUnavailable, saying where it looked, when nothing does.
  static Result<Client> Connect(const ClientOptions& options = {});

  const std::string& target() const { return target_; }

  // Object names may be given whole ("rings/orders") or as the bare id ("orders").
  Result<v1::Ring> CreateRing(std::string_view id, const v1::Ring& spec,
                              std::string_view request_id = {});
  Result<v1::Ring> GetRing(std::string_view name);
  Result<v1::ListRingsResponse> ListRings(int32_t page_size = 0, std::string_view page_token = {});
  Result<std::vector<v1::Ring>> ListAllRings();  // every page
  VoidResult DeleteRing(std::string_view name, DeleteOptions options = {});

  Result<v1::Pool> CreatePool(std::string_view id, const v1::Pool& spec,
                              std::string_view request_id = {});
  Result<v1::Pool> GetPool(std::string_view name);
  Result<v1::ListPoolsResponse> ListPools(int32_t page_size = 0, std::string_view page_token = {});
  Result<std::vector<v1::Pool>> ListAllPools();
  VoidResult DeletePool(std::string_view name, DeleteOptions options = {});

  Result<v1::Region> CreateRegion(std::string_view id, const v1::Region& spec,
                                  std::string_view request_id = {});
  Result<v1::Region> GetRegion(std::string_view name);
  Result<v1::ListRegionsResponse> ListRegions(int32_t page_size = 0,
                                              std::string_view page_token = {});
  Result<std::vector<v1::Region>> ListAllRegions();
  VoidResult DeleteRegion(std::string_view name, DeleteOptions options = {});
  Result<v1::Region> ResizeRegion(std::string_view name, uint64_t size_bytes);

  // `object` is a full name ("pools/frames"): leases cover every kind.
  Result<v1::Lease> Attach(std::string_view object, v1::Role role);
  VoidResult Detach(std::string_view lease, bool allow_missing = true);

  Result<v1::ServerStats> GetServerStats();
  // The standard grpc.health.v1 answer for `service` ("" is the whole server):
  // "SERVING", "NOT_SERVING", ...
  Result<std::string> CheckHealth(std::string_view service = {});
  Result<EventStream> WatchEvents(bool include_existing = false);

  // Attach, map and become the handle's role in one step: Open<SpscProducer>("orders"),
  // Open<BlockPool>("frames"), Open<Segment>("table") for a region. The lease is given
  // back when the Attached is destroyed, after the handle has let go of the object.
  template <class Handle>
  Result<Attached<Handle>> Open(std::string_view id, const WaitOptions& wait = {});

  // The generated stub, for what this class does not wrap.
  v1::Control::Stub& stub() { return *stub_; }

 private:
  Client(std::string target, ClientOptions options, std::shared_ptr<grpc::Channel> channel);
  void Prepare(grpc::ClientContext* context) const;
  Result<std::shared_ptr<Segment>> MapLease(const v1::Lease& lease, layout::ObjectKind kind);
  Result<internal::LeaseReturn> LeaseFor(std::string_view object, v1::Role role,
                                         layout::ObjectKind kind,
                                         std::shared_ptr<Segment>* segment);

  std::string target_;
  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<v1::Control::Stub> stub_;
};

template <class Handle>
Result<Attached<Handle>> Client::Open(std::string_view id, const WaitOptions& wait) {
  using Traits = internal::HandleTraits<Handle>;
  std::shared_ptr<Segment> segment;
  Result<internal::LeaseReturn> lease =
      LeaseFor(std::string(Traits::kCollection) + "/" + std::string(id), Traits::kRole,
               Traits::kKind, &segment);
  if (!lease.ok()) return lease.error();
  Result<Handle> handle = Traits::Attach(std::move(segment), wait);
  if (!handle.ok()) return handle.error();  // ~LeaseReturn gives the lease back
  return Attached<Handle>(std::move(handle).value(), std::move(lease).value());
}

}  // namespace shmd
