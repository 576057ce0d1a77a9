#include "server/control_service.h"

#include <chrono>

namespace shmd::server {
namespace {

template <class T>
grpc::Status Answer(Result<T> result, T* out) {
  if (!result.ok()) return ToGrpcStatus(result.error());
  *out = std::move(result).value();
  return grpc::Status::OK;
}

grpc::Status Answer(VoidResult result, google::protobuf::Empty*) {
  return result.ok() ? grpc::Status::OK : ToGrpcStatus(result.error());
}

}  // namespace

grpc::Status ToGrpcStatus(const Error& error) {
  grpc::StatusCode code = grpc::StatusCode::INTERNAL;
  switch (error.code()) {
    case ErrorCode::kInvalidArgument:
      code = grpc::StatusCode::INVALID_ARGUMENT;
      break;
    case ErrorCode::kNotFound:
      code = grpc::StatusCode::NOT_FOUND;
      break;
    case ErrorCode::kAlreadyExists:
      code = grpc::StatusCode::ALREADY_EXISTS;
      break;
    case ErrorCode::kPermissionDenied:
      code = grpc::StatusCode::PERMISSION_DENIED;
      break;
    case ErrorCode::kNoSpace:
    case ErrorCode::kQuotaExceeded:
      code = grpc::StatusCode::RESOURCE_EXHAUSTED;
      break;
    case ErrorCode::kVersionMismatch:
    case ErrorCode::kWrongKind:
    case ErrorCode::kCorrupted:
    case ErrorCode::kBusy:
    case ErrorCode::kFailedPrecondition:
      code = grpc::StatusCode::FAILED_PRECONDITION;
      break;
    case ErrorCode::kNotReady:
    case ErrorCode::kUnavailable:
      code = grpc::StatusCode::UNAVAILABLE;
      break;
    case ErrorCode::kDeadlineExceeded:
      code = grpc::StatusCode::DEADLINE_EXCEEDED;
      break;
    case ErrorCode::kSystem:
      code = grpc::StatusCode::INTERNAL;
      break;
  }
  return grpc::Status(code, error.message());
}

grpc::Status ControlService::CreateRing(grpc::ServerContext* c, const v1::CreateRingRequest* r,
                                        v1::Ring* o) {
  return Answer(registry_->CreateRing(CallerOf(c), *r), o);
}
grpc::Status ControlService::GetRing(grpc::ServerContext* c, const v1::GetRingRequest* r,
                                     v1::Ring* o) {
  return Answer(registry_->GetRing(CallerOf(c), *r), o);
}
grpc::Status ControlService::ListRings(grpc::ServerContext* c, const v1::ListRingsRequest* r,
                                       v1::ListRingsResponse* o) {
  return Answer(registry_->ListRings(CallerOf(c), *r), o);
}
grpc::Status ControlService::DeleteRing(grpc::ServerContext* c, const v1::DeleteRingRequest* r,
                                        google::protobuf::Empty* o) {
  return Answer(registry_->DeleteRing(CallerOf(c), *r), o);
}
grpc::Status ControlService::CreatePool(grpc::ServerContext* c, const v1::CreatePoolRequest* r,
                                        v1::Pool* o) {
  return Answer(registry_->CreatePool(CallerOf(c), *r), o);
}
grpc::Status ControlService::GetPool(grpc::ServerContext* c, const v1::GetPoolRequest* r,
                                     v1::Pool* o) {
  return Answer(registry_->GetPool(CallerOf(c), *r), o);
}
grpc::Status ControlService::ListPools(grpc::ServerContext* c, const v1::ListPoolsRequest* r,
                                       v1::ListPoolsResponse* o) {
  return Answer(registry_->ListPools(CallerOf(c), *r), o);
}
grpc::Status ControlService::DeletePool(grpc::ServerContext* c, const v1::DeletePoolRequest* r,
                                        google::protobuf::Empty* o) {
  return Answer(registry_->DeletePool(CallerOf(c), *r), o);
}
grpc::Status ControlService::CreateRegion(grpc::ServerContext* c,
                                          const v1::CreateRegionRequest* r, v1::Region* o) {
  return Answer(registry_->CreateRegion(CallerOf(c), *r), o);
}
grpc::Status ControlService::GetRegion(grpc::ServerContext* c, const v1::GetRegionRequest* r,
                                       v1::Region* o) {
  return Answer(registry_->GetRegion(CallerOf(c), *r), o);
}
grpc::Status ControlService::ListRegions(grpc::ServerContext* c, const v1::ListRegionsRequest* r,
                                         v1::ListRegionsResponse* o) {
  return Answer(registry_->ListRegions(CallerOf(c), *r), o);
}
grpc::Status ControlService::DeleteRegion(grpc::ServerContext* c,
                                          const v1::DeleteRegionRequest* r,
                                          google::protobuf::Empty* o) {
  return Answer(registry_->DeleteRegion(CallerOf(c), *r), o);
}
grpc::Status ControlService::ResizeRegion(grpc::ServerContext* c,
                                          const v1::ResizeRegionRequest* r, v1::Region* o) {
  return Answer(registry_->ResizeRegion(CallerOf(c), *r), o);
}
grpc::Status ControlService::Attach(grpc::ServerContext* c, const v1::AttachRequest* r,
                                    v1::Lease* o) {
  return Answer(registry_->Attach(CallerOf(c), *r), o);
}
grpc::Status ControlService::Detach(grpc::ServerContext* c, const v1::DetachRequest* r,
                                    google::protobuf::Empty* o) {
  return Answer(registry_->Detach(CallerOf(c), *r), o);
}
grpc::Status ControlService::GetServerStats(grpc::ServerContext*,
                                            const v1::GetServerStatsRequest*,
                                            v1::ServerStats* o) {
  *o = registry_->Stats();
  return grpc::Status::OK;
}

grpc::Status ControlService::WatchEvents(grpc::ServerContext* c, const v1::WatchEventsRequest* r,
                                         grpc::ServerWriter<v1::Event>* writer) {
  // Subscribe before listing what exists, so nothing falls between the two.
  std::shared_ptr<EventBus::Subscription> sub = events_->Subscribe();
  struct Unsubscribe {
    EventBus::Subscription* s;
    ~Unsubscribe() { s->Unsubscribe(); }
  } unsubscribe{sub.get()};
  if (r->include_existing()) {
    for (const v1::Event& e : registry_->ExistingObjects(CallerOf(c))) {
      if (!writer->Write(e)) return grpc::Status::OK;
    }
  }
  // Wake up now and then to notice a cancelled call or a stopping daemon.
  constexpr std::chrono::milliseconds kPoll{200};
  v1::Event event;
  while (!c->IsCancelled() && !stopping_.load()) {
    switch (sub->Wait(kPoll, &event)) {
      case EventBus::Subscription::Next::kEvent:
        if (!writer->Write(event)) return grpc::Status::OK;  // the client went away
        break;
      case EventBus::Subscription::Next::kTimeout:
        break;
      case EventBus::Subscription::Next::kClosed:
        return grpc::Status::OK;
      case EventBus::Subscription::Next::kOverflow:
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            "this watcher fell more than " +
                                std::to_string(EventBus::kMaxBacklog) +
                                " events behind and was cut off; list the objects again, then "
                                "watch again");
    }
  }
  return grpc::Status::OK;
}

}  // namespace shmd::server
