#include "shmd/client/client.h"

#include <fcntl.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "health.grpc.pb.h"  // grpc.health.v1, generated in api/
#include "shmd/api/names.h"
#include "shmd/dataplane/segment.h"

namespace shmd {
namespace {

ErrorCode CodeOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return ErrorCode::kInvalidArgument;
    case grpc::StatusCode::NOT_FOUND:
      return ErrorCode::kNotFound;
    case grpc::StatusCode::ALREADY_EXISTS:
      return ErrorCode::kAlreadyExists;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return ErrorCode::kPermissionDenied;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return ErrorCode::kQuotaExceeded;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
      return ErrorCode::kFailedPrecondition;
    case grpc::StatusCode::UNAVAILABLE:
      return ErrorCode::kUnavailable;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return ErrorCode::kDeadlineExceeded;
    default:
      return ErrorCode::kSystem;
  }
}

Error FromStatus(const grpc::Status& status, const std::string& target) {
  std::string message = status.error_message();
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    message = "no shmd answers at " + target + " (" + message +
              "); is the daemon running? Start it with 'shmd --listen " + target +
              "', or point SHMD_LISTEN at it";
  } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    message = "shmd at " + target + " did not answer in time (" + message + ")";
  }
  return Error(CodeOf(status.error_code()), message);
}

template <class Response, class Call>
Result<Response> Invoke(const std::string& target, grpc::ClientContext* context, Call&& call) {
  Response response;
  grpc::Status status = call(context, &response);
  if (!status.ok()) return FromStatus(status, target);
  return response;
}

std::string Named(std::string_view collection, std::string_view name) {
  if (name.find('/') != std::string_view::npos) return std::string(name);
  return std::string(collection) + "/" + std::string(name);
}

template <class Response, class Item>
Result<std::vector<Item>> AllPages(
    const std::function<Result<Response>(const std::string&)>& page,
    const google::protobuf::RepeatedPtrField<Item>& (Response::*items)() const) {
  std::vector<Item> out;
  std::string token;
  do {
    Result<Response> r = page(token);
    if (!r.ok()) return r.error();
    for (const Item& item : ((*r).*items)()) out.push_back(item);
    token = r->next_page_token();
  } while (!token.empty());
  return out;
}

}  // namespace

std::string DefaultTarget() {
  if (const char* env = std::getenv("SHMD_LISTEN"); env && *env) {
    std::string all(env);
    return all.substr(0, all.find(','));
  }
  return std::string("unix://") + kDefaultSocketPath;
}

// --- EventStream ------------------------------------------------------------------------

struct EventStream::State {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReader<v1::Event>> reader;
  std::string target;
  // Reads block; a reader thread hands events over so Next can time out.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<v1::Event> queue;
  bool ended = false;
  grpc::Status status;
  std::thread thread;
};

EventStream::EventStream(std::unique_ptr<State> state) : state_(std::move(state)) {}
EventStream::EventStream(EventStream&&) noexcept = default;
EventStream& EventStream::operator=(EventStream&&) noexcept = default;

EventStream::~EventStream() {
  if (!state_) return;
  Cancel();
  if (state_->thread.joinable()) state_->thread.join();
}

void EventStream::Cancel() {
  if (state_) state_->context.TryCancel();
}

Result<v1::Event> EventStream::Next(std::chrono::milliseconds timeout) {
  std::unique_lock lock(state_->mu);
  state_->cv.wait_for(lock, timeout, [&] { return !state_->queue.empty() || state_->ended; });
  if (!state_->queue.empty()) {
    v1::Event e = std::move(state_->queue.front());
    state_->queue.pop_front();
    return e;
  }
  if (state_->ended) {
    if (state_->status.ok()) return Error(ErrorCode::kUnavailable, "the event stream ended");
    return FromStatus(state_->status, state_->target);
  }
  return Error(ErrorCode::kDeadlineExceeded,
               "no event within " + std::to_string(timeout.count()) + " ms");
}

// --- LeaseReturn --------------------------------------------------------------------------

namespace internal {

LeaseReturn& LeaseReturn::operator=(LeaseReturn&& other) noexcept {
  if (this != &other) {
    GiveBack();
    stub_ = std::move(other.stub_);
    lease_ = std::move(other.lease_);
  }
  return *this;
}

void LeaseReturn::GiveBack() {
  if (!stub_) return;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
  v1::DetachRequest request;
  request.set_name(lease_.name());
  request.set_allow_missing(true);
  google::protobuf::Empty empty;
  (void)stub_->Detach(&context, request, &empty);  // a daemon that is down: the lease ends
                                                   // when this process does
  stub_.reset();
}

}  // namespace internal

// --- Client -------------------------------------------------------------------------------

Client::Client(std::string target, ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : target_(std::move(target)),
      options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::Control::NewStub(channel_)) {}

Result<Client> Client::Connect(const ClientOptions& options) {
  std::string target = options.target.empty() ? DefaultTarget() : options.target;
  // No socket file: say so now rather than after the whole deadline.
  if (target.rfind("unix://", 0) == 0 && access(target.c_str() + 7, F_OK) != 0) {
    return Error(ErrorCode::kUnavailable,
                 "no shmd answers at " + target + ": there is no socket at " + target.substr(7) +
                     "; is the daemon running? Start it with 'shmd --listen " + target +
                     "', or point SHMD_LISTEN at it");
  }
  // A connection of its own: gRPC would otherwise share one among every Client of the
  // process, and the daemon names callers by connection.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + options.deadline)) {
    return Error(ErrorCode::kUnavailable,
                 "no shmd answers at " + target + " (waited " +
                     std::to_string(options.deadline.count()) +
                     " ms); is the daemon running? Start it with 'shmd --listen " + target +
                     "', or point SHMD_LISTEN at it");
  }
  return Client(std::move(target), options, std::move(channel));
}

void Client::Prepare(grpc::ClientContext* context) const {
  context->set_deadline(std::chrono::system_clock::now() + options_.deadline);
}

#define SHMD_CALL(Response, Method, request)                                              \
  grpc::ClientContext context;                                                            \
  Prepare(&context);                                                                      \
  return Invoke<Response>(target_, &context, [&](grpc::ClientContext* c, Response* out) { \
    return stub_->Method(c, request, out);                                                \
  })

Result<v1::Ring> Client::CreateRing(std::string_view id, const v1::Ring& spec,
                                    std::string_view request_id) {
  v1::CreateRingRequest request;
  request.set_ring_id(std::string(id));
  *request.mutable_ring() = spec;
  request.set_request_id(std::string(request_id));
  SHMD_CALL(v1::Ring, CreateRing, request);
}

Result<v1::Ring> Client::GetRing(std::string_view name) {
  v1::GetRingRequest request;
  request.set_name(Named("rings", name));
  SHMD_CALL(v1::Ring, GetRing, request);
}

Result<v1::ListRingsResponse> Client::ListRings(int32_t page_size, std::string_view page_token) {
  v1::ListRingsRequest request;
  request.set_page_size(page_size);
  request.set_page_token(std::string(page_token));
  SHMD_CALL(v1::ListRingsResponse, ListRings, request);
}

Result<std::vector<v1::Ring>> Client::ListAllRings() {
  return AllPages<v1::ListRingsResponse, v1::Ring>(
      [&](const std::string& token) { return ListRings(1000, token); },
      &v1::ListRingsResponse::rings);
}

VoidResult Client::DeleteRing(std::string_view name, DeleteOptions options) {
  v1::DeleteRingRequest request;
  request.set_name(Named("rings", name));
  request.set_force(options.force);
  request.set_allow_missing(options.allow_missing);
  Result<google::protobuf::Empty> r = [&]() -> Result<google::protobuf::Empty> {
    SHMD_CALL(google::protobuf::Empty, DeleteRing, request);
  }();
  if (!r.ok()) return r.error();
  return Ok{};
}

Result<v1::Pool> Client::CreatePool(std::string_view id, const v1::Pool& spec,
                                    std::string_view request_id) {
  v1::CreatePoolRequest request;
  request.set_pool_id(std::string(id));
  *request.mutable_pool() = spec;
  request.set_request_id(std::string(request_id));
  SHMD_CALL(v1::Pool, CreatePool, request);
}

Result<v1::Pool> Client::GetPool(std::string_view name) {
  v1::GetPoolRequest request;
  request.set_name(Named("pools", name));
  SHMD_CALL(v1::Pool, GetPool, request);
}

Result<v1::ListPoolsResponse> Client::ListPools(int32_t page_size, std::string_view page_token) {
  v1::ListPoolsRequest request;
  request.set_page_size(page_size);
  request.set_page_token(std::string(page_token));
  SHMD_CALL(v1::ListPoolsResponse, ListPools, request);
}

Result<std::vector<v1::Pool>> Client::ListAllPools() {
  return AllPages<v1::ListPoolsResponse, v1::Pool>(
      [&](const std::string& token) { return ListPools(1000, token); },
      &v1::ListPoolsResponse::pools);
}

VoidResult Client::DeletePool(std::string_view name, DeleteOptions options) {
  v1::DeletePoolRequest request;
  request.set_name(Named("pools", name));
  request.set_force(options.force);
  request.set_allow_missing(options.allow_missing);
  Result<google::protobuf::Empty> r = [&]() -> Result<google::protobuf::Empty> {
    SHMD_CALL(google::protobuf::Empty, DeletePool, request);
  }();
  if (!r.ok()) return r.error();
  return Ok{};
}

Result<v1::Region> Client::CreateRegion(std::string_view id, const v1::Region& spec,
                                        std::string_view request_id) {
  v1::CreateRegionRequest request;
  request.set_region_id(std::string(id));
  *request.mutable_region() = spec;
  request.set_request_id(std::string(request_id));
  SHMD_CALL(v1::Region, CreateRegion, request);
}

Result<v1::Region> Client::GetRegion(std::string_view name) {
  v1::GetRegionRequest request;
  request.set_name(Named("regions", name));
  SHMD_CALL(v1::Region, GetRegion, request);
}

Result<v1::ListRegionsResponse> Client::ListRegions(int32_t page_size,
                                                    std::string_view page_token) {
  v1::ListRegionsRequest request;
  request.set_page_size(page_size);
  request.set_page_token(std::string(page_token));
  SHMD_CALL(v1::ListRegionsResponse, ListRegions, request);
}

Result<std::vector<v1::Region>> Client::ListAllRegions() {
  return AllPages<v1::ListRegionsResponse, v1::Region>(
      [&](const std::string& token) { return ListRegions(1000, token); },
      &v1::ListRegionsResponse::regions);
}

VoidResult Client::DeleteRegion(std::string_view name, DeleteOptions options) {
  v1::DeleteRegionRequest request;
  request.set_name(Named("regions", name));
  request.set_force(options.force);
  request.set_allow_missing(options.allow_missing);
  Result<google::protobuf::Empty> r = [&]() -> Result<google::protobuf::Empty> {
    SHMD_CALL(google::protobuf::Empty, DeleteRegion, request);
  }();
  if (!r.ok()) return r.error();
  return Ok{};
}

Result<v1::Region> Client::ResizeRegion(std::string_view name, uint64_t size_bytes) {
  v1::ResizeRegionRequest request;
  request.set_name(Named("regions", name));
  request.set_size_bytes(size_bytes);
  SHMD_CALL(v1::Region, ResizeRegion, request);
}

Result<v1::Lease> Client::Attach(std::string_view object, v1::Role role) {
  v1::AttachRequest request;
  request.set_object(std::string(object));
  request.set_role(role);
  SHMD_CALL(v1::Lease, Attach, request);
}

VoidResult Client::Detach(std::string_view lease, bool allow_missing) {
  v1::DetachRequest request;
  request.set_name(std::string(lease));
  request.set_allow_missing(allow_missing);
  Result<google::protobuf::Empty> r = [&]() -> Result<google::protobuf::Empty> {
    SHMD_CALL(google::protobuf::Empty, Detach, request);
  }();
  if (!r.ok()) return r.error();
  return Ok{};
}

Result<v1::ServerStats> Client::GetServerStats() {
  v1::GetServerStatsRequest request;
  SHMD_CALL(v1::ServerStats, GetServerStats, request);
}

#undef SHMD_CALL

Result<std::string> Client::CheckHealth(std::string_view service) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(std::string(service));
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  Prepare(&context);
  grpc::Status status = health->Check(&context, request, &response);
  if (!status.ok()) return FromStatus(status, target_);
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

Result<EventStream> Client::WatchEvents(bool include_existing) {
  auto state = std::make_unique<EventStream::State>();
  state->target = target_;
  v1::WatchEventsRequest request;
  request.set_include_existing(include_existing);
  state->reader = stub_->WatchEvents(&state->context, request);
  EventStream::State* s = state.get();
  s->thread = std::thread([s] {
    v1::Event event;
    while (s->reader->Read(&event)) {
      std::lock_guard lock(s->mu);
      s->queue.push_back(event);
      s->cv.notify_all();
    }
    grpc::Status status = s->reader->Finish();
    std::lock_guard lock(s->mu);
    s->status = status;
    s->ended = true;
    s->cv.notify_all();
  });
  return EventStream(std::move(state));
}

// --- data plane ---------------------------------------------------------------------------

Result<std::shared_ptr<Segment>> Client::MapLease(const v1::Lease& lease, layout::ObjectKind kind) {
  std::string path = lease.path();
  if (!options_.shm_dir.empty()) {
    path = options_.shm_dir + "/" + path.substr(path.rfind('/') + 1);
  }
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    const int err = errno;
    return Error(err == EACCES ? ErrorCode::kPermissionDenied : ErrorCode::kNotFound,
                 "cannot open " + path + " for " + lease.object() + ": " + ErrnoText(err) +
                     (err == ENOENT ? " (does this process see the daemon's shm directory at "
                                      "the same path? set ClientOptions::shm_dir)"
                                    : ""));
  }
  Result<Segment> segment = Segment::FromFd(fd, kind, lease.object());
  close(fd);
  if (!segment.ok()) return segment.error();
  // Endpoints claimed through this mapping record the lease, so the daemon can end it when
  // they die even if it cannot see this process (another pid namespace: it knows us as pid 0).
  if (Result<api::LeaseName> name = api::ParseLeaseName(lease.name()); name.ok()) {
    segment->set_lease_id(api::LeaseNumber(name->lease_id));
  }
  return std::make_shared<Segment>(std::move(segment).value());
}

Result<internal::LeaseReturn> Client::LeaseFor(std::string_view object, v1::Role role,
                                               layout::ObjectKind kind,
                                               std::shared_ptr<Segment>* segment) {
  Result<v1::Lease> lease = Attach(object, role);
  if (!lease.ok()) return lease.error();
  internal::LeaseReturn held(stub_, std::move(lease).value());
  Result<std::shared_ptr<Segment>> mapped = MapLease(held.lease(), kind);
  if (!mapped.ok()) return mapped.error();
  *segment = std::move(mapped).value();
  return held;
}

}  // namespace shmd
