// The shmd daemon as an object: Options in, Start, Wait, Shutdown (tensorflow-serving's
// shape). main.cc is flags -> Options -> Server.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/server.h>

#include "server/control_service.h"
#include "server/event_bus.h"
#include "server/grpc_metrics.h"
#include "server/metrics_http.h"
#include "server/object_metrics.h"
#include "server/process_watcher.h"
#include "server/registry.h"
#include "server/unix_listener.h"
#include "shmd/dataplane/result.h"

namespace shmd::server {

inline constexpr char kVersion[] = "0.1.0";

struct ServerOptions {
  // "unix:///path" (served with peer credentials) or "host:port" (TCP, anonymous callers).
  std::vector<std::string> listen = {"unix:///run/shmd/shmd.sock"};
  uint32_t socket_mode = 0660;
  ShmDir dir;
  std::string health_address;  // "host:port" serving only grpc.health.v1; "" for none
  // "host:port" of the Prometheus endpoint (/metrics); "" for none. Port 0: any free port.
  std::string metrics_address = "127.0.0.1:9478";
  Limits limits;
  std::chrono::milliseconds sweep_interval{500};
};

class Server {
 public:
  static Result<std::unique_ptr<Server>> Start(ServerOptions options);
  ~Server();

  // Stops serving: watchers' streams end, new connections are refused, calls in flight
  // get a moment to finish. Deletes nothing. Safe to call twice.
  void Shutdown();
  // Blocks until Shutdown has been called (from another thread or a signal handler's
  // thread).
  void Wait();

  const std::string& adoption_report() const { return adoption_report_; }
  // "http://127.0.0.1:9478/metrics", or "" when metrics are off.
  const std::string& metrics_url() const { return metrics_url_; }
  Registry& registry() { return *registry_; }

 private:
  Server() = default;
  void SweepLoop();

  ServerOptions options_;
  std::string adoption_report_;
  std::string metrics_url_;
  int instance_lock_fd_ = -1;
  EventBus events_;
  PeerTable peers_;
  std::unique_ptr<ProcessWatcher> watcher_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<ControlService> service_;
  std::vector<std::unique_ptr<UnixListener>> listeners_;
  std::unique_ptr<grpc::Server> grpc_;
  std::unique_ptr<grpc::Server> health_;
  GrpcMetrics grpc_metrics_;
  std::shared_ptr<ObjectCollector> collector_;
  std::unique_ptr<MetricsHttpServer> metrics_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread sweeper_;
};

}  // namespace shmd::server
