#include "shmd/api/names.h"

#include <cstdio>

#include "shmd/dataplane/segment.h"

namespace shmd::api {
namespace {

constexpr std::string_view kCollections[] = {"rings", "pools", "regions"};

bool IsCollection(std::string_view s) {
  for (std::string_view c : kCollections) {
    if (s == c) return true;
  }
  return false;
}

Error BadName(std::string_view name, std::string_view want) {
  return Error(ErrorCode::kInvalidArgument,
               "'" + std::string(name) + "' is not a resource name: expected " + std::string(want));
}

}  // namespace

const char* CollectionOf(layout::ObjectKind kind) {
  switch (kind) {
    case layout::ObjectKind::kBlockPool:
      return "pools";
    case layout::ObjectKind::kRegion:
      return "regions";
    default:
      return "rings";
  }
}

Result<ObjectName> ParseObjectName(std::string_view name, std::string_view collection) {
  const std::string want = collection.empty()
                               ? std::string("'rings/<id>', 'pools/<id>' or 'regions/<id>'")
                               : "'" + std::string(collection) + "/<id>' (or the bare id)";
  ObjectName out;
  const size_t slash = name.find('/');
  if (slash == std::string_view::npos) {
    if (collection.empty()) return BadName(name, want);
    out.collection = std::string(collection);
    out.id = std::string(name);
  } else {
    out.collection = std::string(name.substr(0, slash));
    out.id = std::string(name.substr(slash + 1));
    if (!IsCollection(out.collection)) return BadName(name, want);
    if (!collection.empty() && out.collection != collection) {
      return Error(ErrorCode::kInvalidArgument,
                   "'" + std::string(name) + "' names one of the " + out.collection +
                       ", but this call takes one of the " + std::string(collection) + ": " + want);
    }
  }
  if (auto r = ValidateName(out.id, "id"); !r.ok()) {
    return Error(ErrorCode::kInvalidArgument,
                 "bad name '" + std::string(name) + "': " + r.error().message());
  }
  return out;
}

Result<LeaseName> ParseLeaseName(std::string_view name) {
  constexpr std::string_view kLeases = "/leases/";
  const size_t at = name.rfind(kLeases);
  if (at == std::string_view::npos || at + kLeases.size() == name.size()) {
    return BadName(name, "'<collection>/<id>/leases/<lease>', as Attach returned it");
  }
  Result<ObjectName> object = ParseObjectName(name.substr(0, at));
  if (!object.ok()) return object.error();
  LeaseName out{std::move(object).value(), std::string(name.substr(at + kLeases.size()))};
  for (char c : out.lease_id) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!hex) return BadName(name, "a lease id of lowercase hex digits");
  }
  return out;
}

std::string LeaseIdText(uint64_t number) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(number));
  return buf;
}

uint64_t LeaseNumber(std::string_view lease_id) {
  if (lease_id.empty() || lease_id.size() > 16) return 0;
  uint64_t n = 0;
  for (char c : lease_id) {
    int digit = -1;
    if (c >= '0' && c <= '9') digit = c - '0';
    if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    if (digit < 0) return 0;
    n = n << 4 | static_cast<uint64_t>(digit);
  }
  return n;
}

}  // namespace shmd::api
