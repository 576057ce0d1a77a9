// Request/response through the daemon: the service's ring and each client's reply ring
// asked for with CreateRing, every end opened with a lease (rpc.h).
#include <memory>
#include <utility>

#include "shmd/client/client.h"
#include "shmd/client/rpc.h"

namespace shmd {
namespace {

// A client's two leases, let go together once its handles have detached.
struct RpcClientLeases {
  std::shared_ptr<void> requests;
  std::shared_ptr<void> replies;
};

}  // namespace

VoidResult CreateRpcService(Client& client, std::string_view service, const RpcSpec& spec) {
  Result<MpmcRingSpec> g = RpcRequestRingSpec(spec);
  if (!g.ok()) return g.error();
  v1::Ring ring;
  ring.set_kind(v1::RING_KIND_MPMC);
  ring.set_capacity_bytes(uint64_t{g->slot_count} * layout::SlotSizeFor(g->max_message));
  ring.set_max_message_bytes(g->max_message);
  ring.set_mode(spec.mode);
  if (auto r = client.CreateRing(service, ring); !r.ok()) return r.error();
  return Ok{};
}

VoidResult DeleteRpcService(Client& client, std::string_view service, bool force) {
  return client.DeleteRing(service, DeleteOptions{.force = force, .allow_missing = true});
}

Result<RpcClient> RpcClient::Open(Client& client, std::string_view service,
                                  const RpcClientOptions& options) {
  Result<SpscRingSpec> spec = RpcReplyRingSpec(options);
  if (!spec.ok()) return spec.error();
  auto requests = client.Open<MpmcProducer>(service, options.wait);
  if (!requests.ok()) return requests.error();
  std::string suffix = internal::NewRpcSuffix();
  std::string name = RpcReplyRingName(service, suffix);
  v1::Ring ring;
  ring.set_kind(v1::RING_KIND_SPSC);
  ring.set_capacity_bytes(spec->capacity);
  ring.set_max_message_bytes(spec->max_message);
  ring.set_mode(options.mode);
  if (auto r = client.CreateRing(name, ring); !r.ok()) return r.error();
  // The Client must outlive this RpcClient (rpc.h): the ring is deleted through it.
  auto remove = [&client, name] {
    (void)client.DeleteRing(name, DeleteOptions{.force = true, .allow_missing = true});
  };
  auto replies = client.Open<SpscConsumer>(name, options.wait);
  if (!replies.ok()) {
    remove();
    return replies.error();
  }
  auto request_parts = std::move(requests).value().Split();
  auto reply_parts = std::move(replies).value().Split();
  auto leases = std::make_shared<RpcClientLeases>(
      RpcClientLeases{std::move(request_parts.lease), std::move(reply_parts.lease)});
  return internal::AssembleRpcClient(std::move(leases), std::move(request_parts.handle),
                                     std::move(reply_parts.handle), std::move(suffix), remove,
                                     options);
}

Result<RpcServer> RpcServer::Open(Client& client, std::string_view service,
                                  const RpcServerOptions& options) {
  auto requests = client.Open<MpmcConsumer>(service, options.wait);
  if (!requests.ok()) return requests.error();
  auto parts = std::move(requests).value().Split();
  const WaitOptions wait = options.wait;
  // The Client must outlive this RpcServer (rpc.h): reply rings are opened through it.
  auto open = [&client, wait](const std::string& name) -> Result<internal::RpcReplyEnd> {
    auto p = client.Open<SpscProducer>(name, wait);
    if (!p.ok()) return p.error();
    auto split = std::move(p).value().Split();
    return internal::RpcReplyEnd{
        std::move(split.lease), std::make_unique<SpscProducer>(std::move(split.handle)),
        [&client, name] {
          (void)client.DeleteRing(name, DeleteOptions{.force = true, .allow_missing = true});
        }};
  };
  return internal::AssembleRpcServer(std::move(parts.lease), std::move(parts.handle),
                                     std::string(service), std::move(open), options);
}

}  // namespace shmd
