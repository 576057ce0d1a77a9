// Resource names of the control plane (AIP-122): "rings/{ring}", "pools/{pool}",
// "regions/{region}", and leases below them ("rings/orders/leases/7f3a09c2").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/result.h"

namespace shmd::api {

struct ObjectName {
  std::string collection;  // "rings", "pools" or "regions"
  std::string id;          // the object's name in the data plane ("orders")
  std::string Full() const { return collection + "/" + id; }
};

// The collection of a kind: "rings" for every ring kind, "pools", "regions".
const char* CollectionOf(layout::ObjectKind kind);

// Parses "rings/orders". With a non-empty `collection`, a bare id ("orders") is taken to
// be in it, and a name in another collection is an error that says which one was wanted.
// The id is validated as the data plane does (ValidateName).
Result<ObjectName> ParseObjectName(std::string_view name, std::string_view collection = {});

// "rings/orders/leases/7f3a09c2" -> object "rings/orders", lease id "7f3a09c2".
struct LeaseName {
  ObjectName object;
  std::string lease_id;
  std::string Full() const { return object.Full() + "/leases/" + lease_id; }
};
Result<LeaseName> ParseLeaseName(std::string_view name);

// A lease id is a 64-bit number written as 16 lowercase hex digits. The number is what an
// endpoint slot records (layout::EndpointSlot::lease_id), so that the daemon can end the
// lease of an endpoint that died. LeaseNumber gives 0 for text that is not such a number.
std::string LeaseIdText(uint64_t number);
uint64_t LeaseNumber(std::string_view lease_id);

}  // namespace shmd::api
