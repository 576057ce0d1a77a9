#include "server/server.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

namespace shmd::server {
namespace {

constexpr char kUnixScheme[] = "unix://";

// One descriptor per mapped object: lift the soft limit to the hard one.
void RaiseFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

// Two daemons on one directory and namespace would each think they own its objects.
Result<int> LockInstance(const ShmDir& dir) {
  const std::string path = dir.path + "/.shmd." + dir.ns + ".lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Error(ErrorCode::kSystem, "cannot open " + path + ": " + ErrnoText(errno) +
                                         " (is --shm-dir a writable directory?)");
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    close(fd);
    return Error(ErrorCode::kBusy, "another shmd serves namespace '" + dir.ns + "' in " +
                                       dir.path + " (it holds " + path +
                                       "); stop it, or pick another --namespace");
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Start(ServerOptions options) {
  std::unique_ptr<Server> s(new Server());
  s->options_ = std::move(options);
  const ServerOptions& o = s->options_;
  if (auto r = ValidateName(o.dir.ns, "namespace"); !r.ok()) return r.error();
  struct stat st {};
  if (stat(o.dir.path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Error(ErrorCode::kInvalidArgument,
                 "--shm-dir " + o.dir.path + " is not a directory; create it (a tmpfs such as "
                 "/dev/shm, or a Kubernetes emptyDir with medium Memory)");
  }
  if (o.listen.empty()) {
    return Error(ErrorCode::kInvalidArgument, "nothing to listen on: give --listen");
  }
  RaiseFileLimit();
  Result<int> lock = LockInstance(o.dir);
  if (!lock.ok()) return lock.error();
  s->instance_lock_fd_ = *lock;

  std::vector<std::string> tcp;
  for (const std::string& address : o.listen) {
    if (address.rfind(kUnixScheme, 0) != 0) {
      tcp.push_back(address);
      continue;
    }
    std::string path = address.substr(sizeof kUnixScheme - 1);
    if (path.empty() || path[0] != '/') {
      return Error(ErrorCode::kInvalidArgument,
                   "--listen " + address + ": a Unix address is unix:///absolute/path");
    }
    Result<std::unique_ptr<UnixListener>> listener = UnixListener::Bind(path, o.socket_mode);
    if (!listener.ok()) return listener.error();
    s->listeners_.push_back(std::move(listener).value());
  }

  s->watcher_ = std::make_unique<ProcessWatcher>(
      [raw = s.get()](uint32_t pid) { raw->registry_->OnProcessExit(pid); });
  Registry::Options ro;
  ro.dir = o.dir;
  ro.limits = o.limits;
  ro.admin_uid = static_cast<uint32_t>(geteuid());
  ro.version = kVersion;
  s->registry_ = std::make_unique<Registry>(ro, &s->events_, s->watcher_.get());
  if (auto r = s->watcher_->Start(); !r.ok()) return r.error();
  s->adoption_report_ = s->registry_->Adopt();
  s->service_ = std::make_unique<ControlService>(s->registry_.get(), &s->events_, &s->peers_);

  // The standard health service on every server; reflection only on the main one: the
  // plugin applies to builders made after it is registered, so the health-only server
  // is built first.
  grpc::EnableDefaultHealthCheckService(true);
  if (!o.health_address.empty()) {
    grpc::ServerBuilder health;
    health.AddListeningPort(o.health_address, grpc::InsecureServerCredentials());
    s->health_ = health.BuildAndStart();
    if (!s->health_) {
      return Error(ErrorCode::kSystem, "cannot serve health on --health-address " +
                                           o.health_address + " (in use, or not host:port?)");
    }
  }
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(s->grpc_metrics_.InterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  for (const std::string& address : tcp) {
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
  }
  builder.RegisterService(s->service_.get());
  s->grpc_ = builder.BuildAndStart();
  if (!s->grpc_) {
    std::string all;
    for (const auto& t : tcp) all += " " + t;
    return Error(ErrorCode::kSystem, "cannot start the gRPC server (TCP addresses:" + all +
                                         "; in use, or not host:port?)");
  }
  // "" (the whole server) is SERVING by default; the service's own name is too, on both.
  for (grpc::Server* server : {s->grpc_.get(), s->health_.get()}) {
    if (server) {
      server->GetHealthCheckService()->SetServingStatus(v1::Control::service_full_name(), true);
    }
  }
  for (auto& listener : s->listeners_) listener->Start(s->grpc_.get(), &s->peers_);
  if (!o.metrics_address.empty()) {
    s->collector_ = std::make_shared<ObjectCollector>(s->registry_.get(),
                                                      BuildInfo{kVersion, SHMD_REVISION});
    Result<std::unique_ptr<MetricsHttpServer>> metrics =
        MetricsHttpServer::Start(o.metrics_address, {s->collector_, s->grpc_metrics_.registry()});
    if (!metrics.ok()) return metrics.error();
    s->metrics_ = std::move(metrics).value();
    const std::string host = o.metrics_address.substr(0, o.metrics_address.rfind(':'));
    s->metrics_url_ =
        "http://" + host + ":" + std::to_string(s->metrics_->port()) + "/metrics";
  }
  s->sweeper_ = std::thread([raw = s.get()] { raw->SweepLoop(); });
  return s;
}

void Server::SweepLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, options_.sweep_interval, [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    registry_->Sweep();
    lock.lock();
  }
}

void Server::Shutdown() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (grpc::Server* server : {grpc_.get(), health_.get()}) {
    if (server && server->GetHealthCheckService()) {
      server->GetHealthCheckService()->SetServingStatus(false);
    }
  }
  service_->Shutdown();
  events_.Close();
  for (auto& listener : listeners_) listener->Stop();
  // Calls in flight take microseconds; idle connections would hold Shutdown for its whole
  // deadline (they were handed over by descriptor, not accepted by gRPC), so keep it short.
  const auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(300);
  grpc_->Shutdown(deadline);
  if (health_) health_->Shutdown(deadline);
  if (sweeper_.joinable()) sweeper_.join();
}

void Server::Wait() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return stopping_; });
}

Server::~Server() {
  if (grpc_) Shutdown();
  metrics_.reset();  // no scrape may run while what it reads goes away
  listeners_.clear();  // removes the sockets
  watcher_.reset();    // its thread may call into the registry: stop it first
  registry_.reset();
  if (instance_lock_fd_ >= 0) close(instance_lock_fd_);
}

}  // namespace shmd::server
