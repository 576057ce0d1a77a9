// The metrics of shmd's objects, built at scrape time from their headers (the same
// counters the data path keeps anyway: nothing is added to the hot path). A deleted
// object is simply absent from the next scrape.
//
// Names follow Prometheus conventions: prefix shmd_, base units, _total on counters, one
// label per object (ring, pool or region), nothing per message or per process.
#pragma once

#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "server/registry.h"

namespace shmd::server {

struct BuildInfo {
  std::string version;
  std::string revision;
};

class ObjectCollector final : public prometheus::Collectable {
 public:
  ObjectCollector(Registry* registry, BuildInfo build) : registry_(registry), build_(build) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  Registry* registry_;
  BuildInfo build_;
};

}  // namespace shmd::server
