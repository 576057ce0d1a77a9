// Control-plane metrics under the names users know from grpc-ecosystem's interceptors
// (go-grpc-prometheus): grpc_server_started_total, grpc_server_handled_total (with
// grpc_code) and the grpc_server_handling_seconds histogram, by grpc_type, grpc_service
// and grpc_method. A server interceptor counts every call of the server it is given to.
#pragma once

#include <memory>

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace shmd::server {

class GrpcMetrics {
 public:
  GrpcMetrics();
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // For ServerBuilder::experimental().SetInterceptorCreators.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

  prometheus::Family<prometheus::Counter>& started() { return started_; }
  prometheus::Family<prometheus::Counter>& handled() { return handled_; }
  prometheus::Family<prometheus::Histogram>& handling_seconds() { return handling_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& handling_;
};

}  // namespace shmd::server
