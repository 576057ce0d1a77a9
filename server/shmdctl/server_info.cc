// stats and health: the daemon's own state.
#include "health.pb.h"  // grpc.health.v1, generated in api/
#include "server/shmdctl/commands.h"
#include "server/shmdctl/format.h"
#include "server/shmdctl/output.h"
#include "server/shmdctl/table.h"

namespace shmd::ctl {
namespace {

std::string LimitOrNone(uint64_t limit, const std::string& text) {
  return limit ? text : "no limit";
}

// "1 ring", "3 rings".
std::string Counted(uint32_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string StatsText(const v1::ServerStats& s) {
  Fields f;
  f.Add("version", s.version());
  f.Add("pid", std::to_string(s.pid()));
  f.Add("uptime", Duration(s.uptime()));
  f.Add("shm dir", s.shm_dir());
  f.Add("namespace", s.namespace_());
  f.Add("objects", Counted(s.ring_count(), "ring") + ", " + Counted(s.pool_count(), "pool") + ", " +
                       Counted(s.region_count(), "region"));
  f.Add("allocated", BytesExact(s.allocated_bytes()));
  f.Add("quota", s.quota_bytes() ? Bytes(s.quota_bytes()) + " (" +
                                       Percent(s.allocated_bytes(), s.quota_bytes()) + " used)"
                                 : "none");
  f.Add("max object size", LimitOrNone(s.max_object_bytes(), Bytes(s.max_object_bytes())));
  f.Add("max objects per uid",
        LimitOrNone(s.max_objects_per_uid(), std::to_string(s.max_objects_per_uid())));
  f.Add("filesystem",
        Bytes(s.filesystem_free_bytes()) + " free of " + Bytes(s.filesystem_size_bytes()));
  f.Add("leases", std::to_string(s.lease_count()));
  f.Add("watched processes", std::to_string(s.watched_processes()));
  return f.Render();
}

}  // namespace

int Stats(Context& ctx) { return Answer(ctx.args.json, ctx.client.GetServerStats(), StatsText); }

int Health(Context& ctx) {
  const std::string& service = ctx.args.operand;  // "" asks about the whole daemon
  Result<std::string> status = ctx.client.CheckHealth(service);
  if (!status.ok() && status.error().code() == ErrorCode::kNotFound) {
    // gRPC's own words ("service name unknown") do not say which names there are.
    return Fail(Error(ErrorCode::kNotFound,
                      "the daemon has no health status for service '" + service + "' (" +
                          status.error().message() +
                          "); ask about the whole daemon ('shmdctl health') or shmd.v1.Control"));
  }
  if (!status.ok()) return Fail(status.error());
  int printed;
  if (ctx.args.json) {
    // The standard response message, so the JSON is what grpc.health.v1 clients know.
    grpc::health::v1::HealthCheckResponse response;
    grpc::health::v1::HealthCheckResponse::ServingStatus value;
    if (grpc::health::v1::HealthCheckResponse::ServingStatus_Parse(*status, &value)) {
      response.set_status(value);
    }
    printed = PrintJson(response);
  } else {
    printed = Print(*status + "\n");
  }
  if (printed != kExitOk) return printed;
  // Scripts and probes test the exit status: only SERVING is healthy.
  return *status == "SERVING" ? kExitOk : kExitFailed;
}

}  // namespace shmd::ctl
