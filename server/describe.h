// An object's file, as the API shows it: Ring, Pool and Region messages filled from the
// headers of a mapped segment (the same figures the metrics export).
#pragma once

#include <cstdint>

#include "server/caller.h"
#include "shmd/dataplane/segment.h"
#include "shmd/v1/resources.pb.h"

namespace shmd::server {

struct ObjectFacts {
  const Segment* segment = nullptr;
  Ownership ownership;
  uint32_t lease_count = 0;
};

void DescribeRing(const ObjectFacts& facts, v1::Ring* out);
void DescribePool(const ObjectFacts& facts, v1::Pool* out);
void DescribeRegion(const ObjectFacts& facts, v1::Region* out);

v1::Role RoleOf(layout::EndpointRole role);
layout::EndpointRole EndpointRoleOf(v1::Role role);

}  // namespace shmd::server
