#include "server/registry.h"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>

#include <google/protobuf/util/time_util.h>

#include "server/describe.h"
#include "shmd/dataplane/endpoints.h"
#include "shmd/dataplane/process.h"

namespace shmd::server {
namespace {

using layout::ObjectKind;

constexpr int32_t kDefaultPageSize = 50;
constexpr int32_t kMaxPageSize = 1000;

bool InCollection(ObjectKind kind, std::string_view collection) {
  return collection == api::CollectionOf(kind);
}

// "ring 'orders'", "pool 'frames'".
std::string What(std::string_view collection, std::string_view id) {
  std::string noun(collection.substr(0, collection.size() - 1));
  return noun + " '" + std::string(id) + "'";
}

std::string ModeText(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%#o", mode);
  return buf;
}

// A lease id: a random 64-bit number, never 0 (an endpoint slot's "no lease").
std::string NewLeaseId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t n = 0;
  while (n == 0) n = rng();
  return api::LeaseIdText(n);
}

// Page tokens are the hex of the last id returned: opaque to callers, checked on the way in.
std::string EncodeToken(const std::string& id) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : id) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

Result<std::string> DecodeToken(const std::string& token) {
  auto bad = [&] {
    return Error(ErrorCode::kInvalidArgument,
                 "page_token '" + token +
                     "' is not one this daemon returned; pass next_page_token unchanged, or "
                     "leave it empty for the first page");
  };
  if (token.size() % 2 != 0) return bad();
  std::string out;
  for (size_t i = 0; i < token.size(); i += 2) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = nibble(token[i]), lo = nibble(token[i + 1]);
    if (hi < 0 || lo < 0) return bad();
    out += static_cast<char>(hi * 16 + lo);
  }
  if (!ValidateName(out).ok()) return bad();
  return out;
}

// Roles each kind accepts, and which of them one process at a time may hold.
VoidResult CheckRole(ObjectKind kind, v1::Role role, const std::string& what) {
  bool ok = false;
  std::string allowed;
  switch (kind) {
    case ObjectKind::kSpscRing:
    case ObjectKind::kMpmcRing:
    case ObjectKind::kBlockPool:
      ok = role == v1::ROLE_PRODUCER || role == v1::ROLE_CONSUMER;
      allowed = "ROLE_PRODUCER or ROLE_CONSUMER";
      break;
    case ObjectKind::kBroadcastRing:
      ok = role == v1::ROLE_PRODUCER || role == v1::ROLE_SUBSCRIBER;
      allowed = "ROLE_PRODUCER or ROLE_SUBSCRIBER";
      break;
    case ObjectKind::kRegion:
      ok = role == v1::ROLE_USER;
      allowed = "ROLE_USER";
      break;
    default:
      break;
  }
  if (ok) return Ok{};
  return Error(ErrorCode::kInvalidArgument, what + " is " + KindWithArticle(kind) +
                                                ": attach to it as " + allowed + ", not " +
                                                v1::Role_Name(role));
}

bool ExclusiveRole(ObjectKind kind, v1::Role role) {
  return kind == ObjectKind::kSpscRing ||
         (kind == ObjectKind::kBroadcastRing && role == v1::ROLE_PRODUCER);
}

Ownership OwnershipOf(const Segment& segment) {
  Ownership o;
  o.owner_uid = segment.header().creator_uid;
  struct stat st {};
  if (fstat(segment.fd(), &st) == 0) {
    o.file_gid = st.st_gid;
    o.mode = st.st_mode & 0777;
  }
  return o;
}

uint64_t MtimeNs(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000u +
         static_cast<uint64_t>(st.st_mtim.tv_nsec);
}

// Per-resource details the templates need.
template <class Resource>
struct ResourceTraits;
template <>
struct ResourceTraits<v1::Ring> {
  static void Describe(const ObjectFacts& f, v1::Ring* out) { DescribeRing(f, out); }
};
template <>
struct ResourceTraits<v1::Pool> {
  static void Describe(const ObjectFacts& f, v1::Pool* out) { DescribePool(f, out); }
};
template <>
struct ResourceTraits<v1::Region> {
  static void Describe(const ObjectFacts& f, v1::Region* out) { DescribeRegion(f, out); }
};

v1::Ring* AddTo(v1::ListRingsResponse* r) { return r->add_rings(); }
v1::Pool* AddTo(v1::ListPoolsResponse* r) { return r->add_pools(); }
v1::Region* AddTo(v1::ListRegionsResponse* r) { return r->add_regions(); }

template <class Request>
std::string Fingerprint(const char* method, Request request) {
  request.clear_request_id();
  std::string bytes;
  request.SerializeToString(&bytes);
  return std::string(method) + ":" + bytes;
}

v1::Event MakeEvent(v1::Event::Type type, std::string object) {
  v1::Event e;
  e.set_type(type);
  e.set_object(std::move(object));
  return e;
}

}  // namespace

Registry::Registry(Options options, EventBus* events, ProcessWatcher* watcher)
    : options_(std::move(options)), events_(events), watcher_(watcher) {}

Registry::~Registry() = default;

// --- directory ------------------------------------------------------------------------

std::string Registry::Adopt() {
  std::lock_guard lock(mu_);
  std::string report;
  SyncWithDirectory(&report);
  for (auto& [id, record] : objects_) WatchAttached(record);
  return report;
}

Result<Registry::Record*> Registry::AdoptFile(const std::string& id, uint64_t inode) {
  Result<Segment> segment = Segment::Open(options_.dir, id);
  if (!segment.ok()) return segment.error();
  Record record;
  record.segment = std::make_shared<Segment>(std::move(segment).value());
  record.name = {api::CollectionOf(record.segment->kind()), id};
  record.inode = inode;
  record.ownership = OwnershipOf(*record.segment);
  auto [it, inserted] = objects_.insert_or_assign(id, std::move(record));
  return &it->second;
}

void Registry::SyncWithDirectory(std::string* report, bool force) {
  const uint64_t mtime = MtimeNs(options_.dir.path);
  if (!force && mtime != 0 && mtime == dir_mtime_ns_) return;  // nothing came or went
  dir_mtime_ns_ = mtime;
  DIR* dir = opendir(options_.dir.path.c_str());
  if (!dir) return;
  const std::string prefix = "shmd." + options_.dir.ns + ".";
  std::map<std::string, uint64_t> present;  // id -> inode
  while (dirent* entry = readdir(dir)) {
    std::string file = entry->d_name;
    if (file.rfind(prefix, 0) != 0 || file.size() == prefix.size()) continue;
    present.emplace(file.substr(prefix.size()), entry->d_ino);
  }
  closedir(dir);
  // Gone (or replaced) behind our back.
  for (auto it = objects_.begin(); it != objects_.end();) {
    auto p = present.find(it->first);
    if (p != present.end() && p->second == it->second.inode) {
      ++it;
      continue;
    }
    events_->Publish(MakeEvent(v1::Event::TYPE_OBJECT_DELETED, it->second.name.Full()));
    for (auto l = leases_.begin(); l != leases_.end();) {
      l = l->second.object_id == it->first ? leases_.erase(l) : std::next(l);
    }
    it = objects_.erase(it);
  }
  for (auto it = broken_.begin(); it != broken_.end();) {
    it = present.count(it->first) ? std::next(it) : broken_.erase(it);
  }
  // New: made by a program in embedded mode, or by the daemon's previous run.
  for (const auto& [id, inode] : present) {
    if (objects_.count(id)) continue;
    if (!ValidateName(id).ok()) continue;
    Result<Record*> record = AdoptFile(id, inode);
    if (!record.ok()) {
      // Not ready yet (an embedded creator mid-way) is retried on the next sync.
      if (record.error().code() == ErrorCode::kNotReady) dir_mtime_ns_ = 0;
      auto [it, fresh] = broken_.insert_or_assign(id, record.error().message());
      if (fresh && report) *report += "not adopted: " + record.error().message() + "\n";
      continue;
    }
    broken_.erase(id);
    if (report) *report += "adopted " + (*record)->name.Full() + "\n";
    v1::Event e = MakeEvent(v1::Event::TYPE_OBJECT_ADOPTED, (*record)->name.Full());
    e.set_uid((*record)->ownership.owner_uid);
    events_->Publish(std::move(e));
  }
}

void Registry::NoteOwnChange(uint64_t mtime_before) {
  // In step with the directory before this change: still in step after it, so the next
  // sync need not read the whole directory again (with 10,000 objects that costs
  // milliseconds). A change by someone else in the same instant is picked up by the
  // sweeper's periodic full look.
  if (mtime_before != 0 && mtime_before == dir_mtime_ns_) {
    dir_mtime_ns_ = MtimeNs(options_.dir.path);
  }
}

Registry::Record* Registry::Known(const std::string& id) {
  auto it = objects_.find(id);
  if (it == objects_.end()) return nullptr;
  // Deleted by a program in embedded mode: forget it.
  if (static_cast<layout::ObjectState>(it->second.segment->header().state.load(
          std::memory_order_acquire)) == layout::ObjectState::kDeleted) {
    objects_.erase(it);
    return nullptr;
  }
  return &it->second;
}

Result<Registry::Record*> Registry::Find(const api::ObjectName& name) {
  Record* found = Known(name.id);
  if (!found) {
    SyncWithDirectory(nullptr);
    found = Known(name.id);
  }
  if (!found) {
    if (auto b = broken_.find(name.id); b != broken_.end()) {
      return Error(ErrorCode::kFailedPrecondition,
                   "the file of " + What(name.collection, name.id) +
                       " is not a usable shmd object: " + b->second);
    }
    return Error(ErrorCode::kNotFound, "no " + What(name.collection, name.id) + " in " +
                                           options_.dir.path + " (namespace '" + options_.dir.ns +
                                           "'); list them with 'shmdctl list'");
  }
  Record& record = *found;
  if (!InCollection(record.segment->kind(), name.collection)) {
    return Error(ErrorCode::kNotFound, "no " + What(name.collection, name.id) + ": '" + name.id +
                                           "' is " + KindWithArticle(record.segment->kind()) +
                                           " (" + record.name.Full() + ")");
  }
  return &record;
}

uint32_t Registry::LeaseCount(const std::string& id) const {
  uint32_t n = 0;
  for (const auto& [name, lease] : leases_) n += lease.object_id == id;
  return n;
}

template <class Resource>
void Registry::Describe(const Record& record, Resource* out) const {
  ObjectFacts facts{record.segment.get(), record.ownership, LeaseCount(record.name.id)};
  ResourceTraits<Resource>::Describe(facts, out);
}

uint64_t Registry::AllocatedBytes() const {
  uint64_t total = 0;
  for (const auto& [id, record] : objects_) total += record.segment->header().total_size;
  return total;
}

VoidResult Registry::CheckLimits(const Caller& caller, uint64_t file_bytes) const {
  const Limits& l = options_.limits;
  if (l.max_object_bytes != 0 && file_bytes > l.max_object_bytes) {
    return Error(ErrorCode::kQuotaExceeded,
                 "the object would take " + Bytes(file_bytes) +
                     " (headers included), more than this daemon's largest object, " +
                     Bytes(l.max_object_bytes) + " (--max-object-bytes); ask for less");
  }
  const uint64_t allocated = l.quota_bytes != 0 ? AllocatedBytes() : 0;
  if (l.quota_bytes != 0 && allocated + file_bytes > l.quota_bytes) {
    return Error(ErrorCode::kQuotaExceeded,
                 "the object would take " + Bytes(file_bytes) + ", and " + Bytes(allocated) +
                     " of the quota of " + Bytes(l.quota_bytes) +
                     " (--quota-bytes) are in use; delete objects or ask for less");
  }
  if (l.max_objects_per_uid != 0) {
    uint32_t owned = 0;
    for (const auto& [id, record] : objects_) owned += record.ownership.owner_uid == caller.uid;
    if (owned >= l.max_objects_per_uid) {
      return Error(ErrorCode::kQuotaExceeded,
                   "uid " + std::to_string(caller.uid) + " owns " + std::to_string(owned) +
                       " objects, the most one uid may (--max-objects-per-uid); delete some first");
    }
  }
  return Ok{};
}

// --- create / get / list / delete ---------------------------------------------------------

template <class Resource>
Result<Resource> Registry::Create(const Caller& caller, std::string_view collection,
                                  const std::string& id, const Result<ObjectSpec>& spec,
                                  const std::string& request_id, const std::string& fingerprint) {
  if (id.find('/') != std::string::npos) {
    return Error(ErrorCode::kInvalidArgument,
                 "the id is the last part of the name only ('orders', not 'rings/orders'); got '" +
                     id + "'");
  }
  Result<api::ObjectName> name = api::ParseObjectName(id, collection);
  if (!name.ok()) return name.error();
  if (!spec.ok()) return spec.error();
  const std::string what = What(collection, id);
  if (!caller.identified) {
    return Error(ErrorCode::kPermissionDenied,
                 "cannot create " + what + ": " + caller.Describe() +
                     " carries no identity to own it; create objects over the Unix socket");
  }
  std::string cached;
  if (!request_id.empty()) {
    switch (requests_.Find(caller.uid, request_id, fingerprint, &cached)) {
      case RequestCache::Lookup::kHit: {
        Resource out;
        out.ParseFromString(cached);
        return out;
      }
      case RequestCache::Lookup::kMismatch:
        return Error(ErrorCode::kInvalidArgument,
                     "request_id '" + request_id +
                         "' was already used for another request; use a new id for each request");
      case RequestCache::Lookup::kMiss:
        break;
    }
  }

  // The same id again: the same spec is the existing object (AIP-133), if the caller may
  // use it; anything else is ALREADY_EXISTS saying how it differs.
  auto answer_existing = [&](const Record& record) -> Result<Resource> {
    std::string difference;
    if (!InCollection(record.segment->kind(), collection) ||
        !SameSpec(*spec, *record.segment, record.ownership.mode, &difference)) {
      if (difference.empty()) difference = "it is " + KindWithArticle(record.segment->kind());
      return Error(ErrorCode::kAlreadyExists, "'" + id + "' already exists and " + difference +
                                                  "; delete it first, or pick another id");
    }
    if (auto r = CheckAccess(caller, record.ownership, Access::kAttach, what, options_.admin_uid);
        !r.ok()) {
      return Error(ErrorCode::kAlreadyExists, "'" + id + "' already exists and belongs to uid " +
                                                  std::to_string(record.ownership.owner_uid) +
                                                  "; pick another id");
    }
    Resource out;
    Describe(record, &out);
    return out;
  };

  std::lock_guard lock(mu_);
  if (broken_.count(id)) return Find(*name).error();
  if (Record* known = Known(id)) return answer_existing(*known);
  if (auto r = CheckLimits(caller, spec->file_bytes); !r.ok()) return r.error();

  CreateOptions create;
  create.mode = spec->mode;
  create.owner_uid = caller.uid;
  const uint32_t self = static_cast<uint32_t>(geteuid());
  if (caller.uid != self) {
    if (self == 0) {
      create.file_uid = caller.uid;
      struct stat dir {};
      const bool setgid_dir = stat(options_.dir.path.c_str(), &dir) == 0 && (dir.st_mode & S_ISGID);
      if (!setgid_dir) create.file_gid = caller.gid;
    } else if ((spec->mode & 0066) == 0) {
      return Error(ErrorCode::kFailedPrecondition,
                   "cannot create " + what + " with mode " + ModeText(spec->mode) +
                       ": this daemon runs as uid " + std::to_string(self) +
                       " without the right to give files away, so only its own uid could open "
                       "it; ask for mode 0660 (the group of the shm directory, " +
                       options_.dir.path + ", then shares it)");
    }
  }
  const uint64_t mtime_before = MtimeNs(options_.dir.path);
  Result<Segment> segment = CreateFromSpec(options_.dir, id, *spec, create);
  if (!segment.ok()) {
    if (segment.error().code() != ErrorCode::kAlreadyExists) return segment.error();
    // A file the registry has not seen yet (made in embedded mode since the last look).
    struct stat st {};
    if (stat(ObjectPath(options_.dir, id).c_str(), &st) != 0) return segment.error();
    Result<Record*> adopted = AdoptFile(id, st.st_ino);
    if (!adopted.ok()) return adopted.error();
    return answer_existing(**adopted);
  }
  struct stat st {};
  fstat(segment->fd(), &st);
  Record record;
  record.name = *name;
  record.segment = std::make_shared<Segment>(std::move(segment).value());
  record.inode = st.st_ino;
  record.ownership = OwnershipOf(*record.segment);
  Record& stored = objects_.insert_or_assign(id, std::move(record)).first->second;
  NoteOwnChange(mtime_before);
  v1::Event e = MakeEvent(v1::Event::TYPE_OBJECT_CREATED, name->Full());
  e.set_uid(caller.uid);
  e.set_pid(caller.pid);
  events_->Publish(std::move(e));
  Resource out;
  Describe(stored, &out);
  if (!request_id.empty()) {
    requests_.Store(caller.uid, request_id, fingerprint, out.SerializeAsString());
  }
  return out;
}

template <class Resource>
Result<Resource> Registry::Get(const Caller& caller, std::string_view collection,
                               const std::string& name) {
  Result<api::ObjectName> parsed = api::ParseObjectName(name, collection);
  if (!parsed.ok()) return parsed.error();
  std::lock_guard lock(mu_);
  Result<Record*> record = Find(*parsed);
  if (!record.ok()) return record.error();
  if (auto r = CheckAccess(caller, (*record)->ownership, Access::kRead,
                           What(collection, parsed->id), options_.admin_uid);
      !r.ok()) {
    return r.error();
  }
  Resource out;
  Describe(**record, &out);
  return out;
}

template <class Response>
Result<Response> Registry::List(const Caller& caller, std::string_view collection,
                                int32_t page_size, const std::string& page_token) {
  if (page_size < 0) {
    return Error(ErrorCode::kInvalidArgument,
                 "page_size must not be negative; got " + std::to_string(page_size));
  }
  if (page_size == 0) page_size = kDefaultPageSize;
  page_size = std::min(page_size, kMaxPageSize);
  std::string after;
  if (!page_token.empty()) {
    Result<std::string> decoded = DecodeToken(page_token);
    if (!decoded.ok()) return decoded.error();
    after = std::move(decoded).value();
  }
  std::lock_guard lock(mu_);
  SyncWithDirectory(nullptr);
  Response out;
  auto it = after.empty() ? objects_.begin() : objects_.upper_bound(after);
  int32_t count = 0;
  std::string last;
  for (; it != objects_.end(); ++it) {
    const Record& record = it->second;
    if (!InCollection(record.segment->kind(), collection)) continue;
    if (!CheckAccess(caller, record.ownership, Access::kRead, "", options_.admin_uid).ok())
      continue;
    if (count == page_size) {
      out.set_next_page_token(EncodeToken(last));
      break;
    }
    Describe(record, AddTo(&out));
    last = it->first;
    ++count;
  }
  return out;
}

VoidResult Registry::Delete(const Caller& caller, std::string_view collection,
                            const std::string& name, bool force, bool allow_missing) {
  Result<api::ObjectName> parsed = api::ParseObjectName(name, collection);
  if (!parsed.ok()) return parsed.error();
  const std::string what = What(collection, parsed->id);
  std::lock_guard lock(mu_);
  Result<Record*> found = Find(*parsed);
  if (!found.ok()) {
    if (found.error().code() == ErrorCode::kNotFound && allow_missing) return Ok{};
    return found.error();
  }
  Record& record = **found;
  if (auto r = CheckAccess(caller, record.ownership, Access::kOwn, what, options_.admin_uid);
      !r.ok()) {
    return r.error();
  }
  if (!force) {
    ClearDeadEndpoints(*record.segment);
    std::string attached;
    uint32_t count = 0;
    const layout::EndpointTable& table = record.segment->endpoints();
    for (const auto& slot : table.slots) {
      if (slot.state.load(std::memory_order_acquire) !=
          static_cast<uint32_t>(layout::EndpointState::kLive)) {
        continue;
      }
      ++count;
      if (count <= 3) {
        attached += std::string(count > 1 ? ", " : "") +
                    v1::Role_Name(RoleOf(static_cast<layout::EndpointRole>(slot.role.load()))) +
                    " pid " + std::to_string(slot.pid.load());
      }
    }
    const uint32_t leases = LeaseCount(parsed->id);
    if (count != 0 || leases != 0) {
      return Error(ErrorCode::kFailedPrecondition,
                   what + " is in use: " + std::to_string(count) + " attached endpoint(s)" +
                       (attached.empty() ? "" : " (" + attached + ")") + " and " +
                       std::to_string(leases) +
                       " lease(s); detach them first, or delete with force (they then see "
                       "the object closed)");
    }
  }
  const uint64_t mtime_before = MtimeNs(options_.dir.path);
  if (auto r = Segment::Remove(options_.dir, parsed->id);
      !r.ok() && r.error().code() != ErrorCode::kNotFound) {
    return r.error();
  }
  for (auto l = leases_.begin(); l != leases_.end();) {
    l = l->second.object_id == parsed->id ? leases_.erase(l) : std::next(l);
  }
  v1::Event e = MakeEvent(v1::Event::TYPE_OBJECT_DELETED, record.name.Full());
  objects_.erase(parsed->id);  // `record` dies here
  NoteOwnChange(mtime_before);
  e.set_uid(caller.uid);
  e.set_pid(caller.pid);
  events_->Publish(std::move(e));
  return Ok{};
}

Result<v1::Ring> Registry::CreateRing(const Caller& caller, const v1::CreateRingRequest& request) {
  return Create<v1::Ring>(caller, "rings", request.ring_id(), SpecFromRing(request.ring()),
                          request.request_id(), Fingerprint("CreateRing", request));
}
Result<v1::Ring> Registry::GetRing(const Caller& caller, const v1::GetRingRequest& request) {
  return Get<v1::Ring>(caller, "rings", request.name());
}
Result<v1::ListRingsResponse> Registry::ListRings(const Caller& caller,
                                                  const v1::ListRingsRequest& request) {
  return List<v1::ListRingsResponse>(caller, "rings", request.page_size(), request.page_token());
}
VoidResult Registry::DeleteRing(const Caller& caller, const v1::DeleteRingRequest& request) {
  return Delete(caller, "rings", request.name(), request.force(), request.allow_missing());
}

Result<v1::Pool> Registry::CreatePool(const Caller& caller, const v1::CreatePoolRequest& request) {
  return Create<v1::Pool>(caller, "pools", request.pool_id(), SpecFromPool(request.pool()),
                          request.request_id(), Fingerprint("CreatePool", request));
}
Result<v1::Pool> Registry::GetPool(const Caller& caller, const v1::GetPoolRequest& request) {
  return Get<v1::Pool>(caller, "pools", request.name());
}
Result<v1::ListPoolsResponse> Registry::ListPools(const Caller& caller,
                                                  const v1::ListPoolsRequest& request) {
  return List<v1::ListPoolsResponse>(caller, "pools", request.page_size(), request.page_token());
}
VoidResult Registry::DeletePool(const Caller& caller, const v1::DeletePoolRequest& request) {
  return Delete(caller, "pools", request.name(), request.force(), request.allow_missing());
}

Result<v1::Region> Registry::CreateRegion(const Caller& caller,
                                          const v1::CreateRegionRequest& request) {
  return Create<v1::Region>(caller, "regions", request.region_id(),
                            SpecFromRegion(request.region()), request.request_id(),
                            Fingerprint("CreateRegion", request));
}
Result<v1::Region> Registry::GetRegion(const Caller& caller, const v1::GetRegionRequest& request) {
  return Get<v1::Region>(caller, "regions", request.name());
}
Result<v1::ListRegionsResponse> Registry::ListRegions(const Caller& caller,
                                                      const v1::ListRegionsRequest& request) {
  return List<v1::ListRegionsResponse>(caller, "regions", request.page_size(),
                                       request.page_token());
}
VoidResult Registry::DeleteRegion(const Caller& caller, const v1::DeleteRegionRequest& request) {
  return Delete(caller, "regions", request.name(), request.force(), request.allow_missing());
}

Result<v1::Region> Registry::ResizeRegion(const Caller& caller,
                                          const v1::ResizeRegionRequest& request) {
  Result<api::ObjectName> parsed = api::ParseObjectName(request.name(), "regions");
  if (!parsed.ok()) return parsed.error();
  const std::string what = What("regions", parsed->id);
  std::lock_guard lock(mu_);
  Result<Record*> found = Find(*parsed);
  if (!found.ok()) return found.error();
  Record& record = **found;
  if (auto r = CheckAccess(caller, record.ownership, Access::kOwn, what, options_.admin_uid);
      !r.ok()) {
    return r.error();
  }
  v1::Region wanted;
  wanted.set_size_bytes(request.size_bytes());
  wanted.set_mode(record.ownership.mode);
  Result<ObjectSpec> spec = SpecFromRegion(wanted);
  if (!spec.ok()) return spec.error();
  const uint64_t old_bytes = record.segment->header().total_size;
  if (spec->file_bytes > old_bytes) {
    // Check the limits as if the region were new, without counting its current size twice.
    Limits l = options_.limits;
    if (l.max_object_bytes != 0 && spec->file_bytes > l.max_object_bytes) {
      return CheckLimits(caller, spec->file_bytes).error();
    }
    if (l.quota_bytes != 0 && AllocatedBytes() - old_bytes + spec->file_bytes > l.quota_bytes) {
      return Error(ErrorCode::kQuotaExceeded,
                   "growing " + what + " to " + Bytes(request.size_bytes()) +
                       " would pass the quota of " + Bytes(l.quota_bytes) + " (" +
                       Bytes(AllocatedBytes()) + " in use); delete objects or grow it less");
    }
  }
  if (auto r = record.segment->Resize(request.size_bytes()); !r.ok()) return r.error();
  v1::Event e = MakeEvent(v1::Event::TYPE_OBJECT_RESIZED, record.name.Full());
  e.set_uid(caller.uid);
  events_->Publish(std::move(e));
  v1::Region out;
  Describe(record, &out);
  return out;
}

// --- leases ------------------------------------------------------------------------------

Result<v1::Lease> Registry::Attach(const Caller& caller, const v1::AttachRequest& request) {
  Result<api::ObjectName> parsed = api::ParseObjectName(request.object());
  if (!parsed.ok()) return parsed.error();
  const std::string what = What(parsed->collection, parsed->id);
  if (!caller.identified) {
    return Error(ErrorCode::kPermissionDenied,
                 "cannot attach to " + what + ": " + caller.Describe() +
                     " is not a process on this host the daemon can name; attach over the Unix "
                     "socket");
  }
  std::lock_guard lock(mu_);
  Result<Record*> found = Find(*parsed);
  if (!found.ok()) return found.error();
  Record& record = **found;
  if (auto r = CheckRole(record.segment->kind(), request.role(), what); !r.ok()) return r.error();
  if (auto r = CheckAccess(caller, record.ownership, Access::kAttach, what, options_.admin_uid);
      !r.ok()) {
    return r.error();
  }
  if (ExclusiveRole(record.segment->kind(), request.role())) {
    ClearDeadEndpoints(*record.segment);
    const layout::EndpointRole role = EndpointRoleOf(request.role());
    for (const auto& slot : record.segment->endpoints().slots) {
      if (slot.state.load(std::memory_order_acquire) ==
              static_cast<uint32_t>(layout::EndpointState::kLive) &&
          slot.role.load() == static_cast<uint32_t>(role) && slot.pid.load() != caller.pid) {
        return Error(ErrorCode::kFailedPrecondition,
                     what + " already has a " + v1::Role_Name(request.role()) + " (pid " +
                         std::to_string(slot.pid.load()) +
                         "), and it takes one at a time; detach that one first");
      }
    }
    for (const auto& [lease_name, lease] : leases_) {
      if (lease.object_id == parsed->id && lease.lease.role() == request.role() &&
          lease.lease.pid() != caller.pid) {
        return Error(ErrorCode::kFailedPrecondition,
                     what + " is already leased as " + v1::Role_Name(request.role()) + " to pid " +
                         std::to_string(lease.lease.pid()) + " (" + lease_name +
                         "), and it takes one at a time; that lease must end first");
      }
    }
  }
  LeaseRecord lease;
  lease.object_id = parsed->id;
  v1::Lease& l = lease.lease;
  l.set_name(record.name.Full() + "/leases/" + NewLeaseId());
  l.set_object(record.name.Full());
  l.set_role(request.role());
  l.set_path(record.segment->path());
  l.set_file_bytes(record.segment->header().total_size);
  l.set_layout_version(record.segment->header().layout_version.load(std::memory_order_acquire));
  l.set_generation(record.segment->header().generation.load(std::memory_order_acquire));
  l.set_pid(caller.pid);
  l.set_uid(caller.uid);
  *l.mutable_create_time() = Now();
  if (caller.pid != 0) {
    bool gone = false;
    lease.start_time = ReadProcessStartTime(caller.pid, &gone);
    if (watcher_ && !gone) {
      Result<ProcessWatcher::Watch> w = watcher_->Add(caller.pid, lease.start_time);
      gone = w.ok() && *w == ProcessWatcher::Watch::kAlreadyGone;
    }
    if (gone) {
      return Error(ErrorCode::kFailedPrecondition,
                   "pid " + std::to_string(caller.pid) + " exited before its lease was granted");
    }
  }
  v1::Lease out = l;
  leases_.emplace(l.name(), std::move(lease));
  v1::Event e = MakeEvent(v1::Event::TYPE_ENDPOINT_ATTACHED, out.object());
  e.set_lease(out.name());
  e.set_role(out.role());
  e.set_pid(out.pid());
  e.set_uid(out.uid());
  events_->Publish(std::move(e));
  return out;
}

VoidResult Registry::Detach(const Caller& caller, const v1::DetachRequest& request) {
  Result<api::LeaseName> parsed = api::ParseLeaseName(request.name());
  if (!parsed.ok()) return parsed.error();
  std::lock_guard lock(mu_);
  auto it = leases_.find(request.name());
  if (it == leases_.end()) {
    if (request.allow_missing()) return Ok{};
    return Error(ErrorCode::kNotFound,
                 "no lease '" + request.name() +
                     "': it was given back, its process died, or the daemon restarted since");
  }
  const v1::Lease& lease = it->second.lease;
  if (caller.uid != lease.uid() && caller.uid != 0 && caller.uid != options_.admin_uid) {
    return Error(ErrorCode::kPermissionDenied, "lease '" + request.name() + "' belongs to uid " +
                                                   std::to_string(lease.uid()) + "; " +
                                                   caller.Describe() + " may not give it back");
  }
  v1::Event e = MakeEvent(v1::Event::TYPE_ENDPOINT_DETACHED, lease.object());
  e.set_lease(lease.name());
  e.set_role(lease.role());
  e.set_pid(lease.pid());
  e.set_uid(lease.uid());
  leases_.erase(it);
  events_->Publish(std::move(e));
  return Ok{};
}

// --- liveness ----------------------------------------------------------------------------
//
// Two ways to learn of a death. An endpoint in the daemon's own pid namespace is known by
// its pid: the watcher tells the moment it exits (OnProcessExit), and its leases are
// keyed by the same pid. An endpoint in another pid namespace (a container of the same
// pod, say) has a pid that means nothing here, and its caller came over the socket as
// pid 0: it is found dead by its liveness lock (EndpointLiveness) at each sweep, and its
// lease is the one its slot records (lease_id). Slots of other namespaces are never
// matched by pid: theirs could name an unrelated process here.

void Registry::ClearDead(Record& record, uint32_t pid, const std::vector<std::string>& leases) {
  const Segment& s = *record.segment;
  const uint64_t reclaimed_before = s.header_page().totals.reclaimed_blocks.load();
  const uint64_t own_namespace = OwnPidNamespace();
  std::vector<uint64_t> lease_numbers;
  for (const std::string& lease : leases) {
    Result<api::LeaseName> name = api::ParseLeaseName(lease);
    if (name.ok()) lease_numbers.push_back(api::LeaseNumber(name->lease_id));
  }
  uint32_t cleared = 0;
  v1::Role role = v1::ROLE_UNSPECIFIED;
  uint32_t uid = 0;
  for (uint32_t i = 0; i < layout::kMaxEndpoints; ++i) {
    const layout::EndpointSlot& slot = s.endpoints().slots[i];
    const uint64_t lease_id = slot.lease_id.load(std::memory_order_relaxed);
    const bool ours = slot.pid_namespace.load(std::memory_order_relaxed) == own_namespace &&
                      slot.pid.load(std::memory_order_relaxed) == pid;
    // A process the daemon sees by pid may still have attached from a pid namespace of
    // its own (a child namespace of the daemon's): its slot then carries its lease.
    const bool leased = lease_id != 0 && std::find(lease_numbers.begin(), lease_numbers.end(),
                                                   lease_id) != lease_numbers.end();
    if (!ours && !leased) continue;
    const v1::Role slot_role = RoleOf(static_cast<layout::EndpointRole>(slot.role.load()));
    const uint32_t slot_uid = slot.uid.load();
    if (ClearIfDead(s, i)) {
      ++cleared;
      role = slot_role;
      uid = slot_uid;
      EndpointDeath taken;
      TakeEndpointDeath(s, i, &taken);  // reported here, not again by the sweep
    }
  }
  if (cleared == 0 && leases.empty()) return;
  endpoints_died_.fetch_add(cleared, std::memory_order_relaxed);
  v1::Event e = MakeEvent(v1::Event::TYPE_ENDPOINT_DIED, record.name.Full());
  e.set_lease(leases.empty() ? "" : leases.front());
  e.set_pid(pid);
  e.set_role(role);
  e.set_uid(uid);
  e.set_cleared_endpoints(cleared);
  e.set_reclaimed_blocks(s.header_page().totals.reclaimed_blocks.load() - reclaimed_before);
  events_->Publish(std::move(e));
}

void Registry::ReportDeath(Record& record, const EndpointDeath& death, bool cleared_here,
                           uint64_t reclaimed) {
  std::string lease_name;
  uint32_t pid = 0;  // the caller's pid as the daemon saw it: 0 for another namespace
  if (death.lease_id != 0) {
    auto it = leases_.find(record.name.Full() + "/leases/" + api::LeaseIdText(death.lease_id));
    if (it != leases_.end()) {
      lease_name = it->first;
      pid = it->second.lease.pid();
      leases_.erase(it);
    }
  }
  // A peer cleared an endpoint the daemon holds no lease for (embedded mode, or its lease
  // already ended): nothing happened that the daemon did or knew of.
  if (!cleared_here && lease_name.empty()) return;
  if (cleared_here) endpoints_died_.fetch_add(1, std::memory_order_relaxed);
  v1::Event e = MakeEvent(v1::Event::TYPE_ENDPOINT_DIED, record.name.Full());
  e.set_lease(lease_name);
  e.set_pid(pid);
  e.set_role(RoleOf(static_cast<layout::EndpointRole>(death.role)));
  e.set_uid(death.uid);
  e.set_cleared_endpoints(cleared_here ? 1 : 0);
  e.set_reclaimed_blocks(reclaimed);
  events_->Publish(std::move(e));
}

void Registry::OnProcessExit(uint32_t pid) {
  std::lock_guard lock(mu_);
  for (auto& [id, record] : objects_) {
    std::vector<std::string> leases;
    for (auto l = leases_.begin(); l != leases_.end();) {
      if (l->second.object_id == id && l->second.lease.pid() == pid) {
        leases.push_back(l->first);
        l = leases_.erase(l);
      } else {
        ++l;
      }
    }
    ClearDead(record, pid, leases);
  }
}

void Registry::WatchAttached(Record& record) {
  const Segment& s = *record.segment;
  const uint64_t own_namespace = OwnPidNamespace();
  uint64_t reclaimed[layout::kMaxEndpoints] = {};
  uint32_t cleared_here = 0;  // bit i: this sweep cleared slot i
  for (uint32_t i = 0; i < layout::kMaxEndpoints; ++i) {
    const layout::EndpointSlot& slot = s.endpoints().slots[i];
    const auto state =
        static_cast<layout::EndpointState>(slot.state.load(std::memory_order_acquire));
    const bool same_namespace = slot.pid_namespace.load() == own_namespace;
    if (!same_namespace) {
      // Judged by its lock; the death (and the lease to end) is taken below, from the
      // trace ClearIfDead leaves, the same way as when a peer cleared it first.
      if (state != layout::EndpointState::kLive) continue;
      const uint64_t before = s.header_page().totals.reclaimed_blocks.load();
      if (ClearIfDead(s, i)) {
        cleared_here |= 1u << i;
        reclaimed[i] = s.header_page().totals.reclaimed_blocks.load() - before;
      }
      continue;
    }
    if (state == layout::EndpointState::kDead) {
      ClearDead(record, slot.pid.load(), {});
      continue;
    }
    if (state != layout::EndpointState::kLive) continue;
    const uint32_t pid = slot.pid.load();
    const Liveness liveness = EndpointLiveness(s, i);
    if (liveness == Liveness::kDead) {
      ClearDead(record, pid, {});
      continue;
    }
    if (!watcher_ || liveness != Liveness::kAlive || watcher_->IsWatched(pid)) continue;
    Result<ProcessWatcher::Watch> w = watcher_->Add(pid, slot.start_time.load());
    if (w.ok() && *w == ProcessWatcher::Watch::kAlreadyGone) ClearDead(record, pid, {});
  }
  // Deaths of other namespaces' endpoints, cleared just now or by a peer since the last
  // sweep (a producer blocked on the ring clears its dead consumer within a sleep slice,
  // long before this runs). Same-namespace traces are taken too, and dropped: those
  // deaths were reported by pid.
  for (uint32_t i = 0; i < layout::kMaxEndpoints; ++i) {
    EndpointDeath death;
    if (!TakeEndpointDeath(s, i, &death) || death.pid_namespace == own_namespace) continue;
    ReportDeath(record, death, (cleared_here >> i) & 1u, reclaimed[i]);
  }
}

void Registry::Sweep() {
  std::lock_guard lock(mu_);
  // Every 20th sweep reads the directory whatever its mtime says (see NoteOwnChange).
  SyncWithDirectory(nullptr, ++sweeps_ % 20 == 0);
  for (auto& [id, record] : objects_) WatchAttached(record);
  // Leases whose process died before it was watched (or with no watcher at all).
  for (auto l = leases_.begin(); l != leases_.end();) {
    const LeaseRecord& lease = l->second;
    bool gone = false;
    if (lease.lease.pid() != 0) {
      const uint64_t start = ReadProcessStartTime(lease.lease.pid(), &gone);
      gone = gone || start != lease.start_time;
    }
    if (!gone) {
      ++l;
      continue;
    }
    const std::string name = l->first;
    const uint32_t pid = lease.lease.pid();
    auto record = objects_.find(lease.object_id);
    l = leases_.erase(l);
    if (record != objects_.end()) ClearDead(record->second, pid, {name});
  }
}

// --- stats -------------------------------------------------------------------------------

v1::ServerStats Registry::Stats() {
  std::lock_guard lock(mu_);
  SyncWithDirectory(nullptr);
  v1::ServerStats s;
  s.set_version(options_.version);
  s.set_shm_dir(options_.dir.path);
  s.set_namespace_(options_.dir.ns);
  for (const auto& [id, record] : objects_) {
    const std::string_view c = record.name.collection;
    if (c == "rings") s.set_ring_count(s.ring_count() + 1);
    if (c == "pools") s.set_pool_count(s.pool_count() + 1);
    if (c == "regions") s.set_region_count(s.region_count() + 1);
  }
  s.set_allocated_bytes(AllocatedBytes());
  s.set_quota_bytes(options_.limits.quota_bytes);
  s.set_max_object_bytes(options_.limits.max_object_bytes);
  s.set_max_objects_per_uid(options_.limits.max_objects_per_uid);
  struct statvfs fs {};
  if (statvfs(options_.dir.path.c_str(), &fs) == 0) {
    s.set_filesystem_size_bytes(uint64_t{fs.f_blocks} * fs.f_frsize);
    s.set_filesystem_free_bytes(uint64_t{fs.f_bavail} * fs.f_frsize);
  }
  *s.mutable_uptime() = google::protobuf::util::TimeUtil::NanosecondsToDuration(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                           started_)
          .count());
  s.set_lease_count(static_cast<uint32_t>(leases_.size()));
  s.set_watched_processes(watcher_ ? static_cast<uint32_t>(watcher_->size()) : 0);
  s.set_pid(static_cast<uint32_t>(getpid()));
  return s;
}

void Registry::Visit(const std::function<void(const ObjectView&)>& fn) {
  std::lock_guard lock(mu_);
  SyncWithDirectory(nullptr);
  for (const auto& [id, record] : objects_) fn(ObjectView{record.name, *record.segment});
}

std::vector<v1::Event> Registry::ExistingObjects(const Caller& caller) {
  std::lock_guard lock(mu_);
  SyncWithDirectory(nullptr);
  std::vector<v1::Event> out;
  for (const auto& [id, record] : objects_) {
    if (!CheckAccess(caller, record.ownership, Access::kRead, "", options_.admin_uid).ok())
      continue;
    v1::Event e = MakeEvent(v1::Event::TYPE_OBJECT_ADOPTED, record.name.Full());
    e.set_uid(record.ownership.owner_uid);
    *e.mutable_time() = Now();  // sequence stays 0: a snapshot, not an event that happened
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace shmd::server
