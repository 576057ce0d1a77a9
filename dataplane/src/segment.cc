#include "shmd/dataplane/segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "shmd/dataplane/slot_ring.h"
#include "shmd/dataplane/wait.h"

namespace shmd {
namespace {

using layout::ObjectKind;

constexpr uint64_t kMaxObjectSize = uint64_t{1} << 40;  // 1 TiB: far beyond any shm mount
constexpr uint64_t kMaxSlots = uint64_t{1} << 24;
constexpr uint64_t kMaxSlotPayload = uint64_t{1} << 24;
constexpr uint64_t kMaxBlocks = uint64_t{1} << 24;
constexpr uint64_t kMaxBlockSize = uint64_t{1} << 30;

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

Error SysError(int err, const std::string& what) {
  ErrorCode code = ErrorCode::kSystem;
  if (err == EACCES || err == EPERM) code = ErrorCode::kPermissionDenied;
  if (err == ENOENT) code = ErrorCode::kNotFound;
  if (err == EEXIST) code = ErrorCode::kAlreadyExists;
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) code = ErrorCode::kNoSpace;
  return Error(code, what + ": " + ErrnoText(err));
}

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

uint64_t PoolMetaBytes(uint64_t block_count) {
  return (block_count * sizeof(layout::BlockMeta) + layout::kPad - 1) & ~uint64_t{layout::kPad - 1};
}

std::string FilesystemUsage(const std::string& dir) {
  struct statvfs vfs {};
  if (statvfs(dir.c_str(), &vfs) != 0) return "";
  uint64_t total = uint64_t{vfs.f_blocks} * vfs.f_frsize;
  uint64_t avail = uint64_t{vfs.f_bavail} * vfs.f_frsize;
  return " (" + std::to_string(avail) + " of " + std::to_string(total) + " bytes free in " + dir +
         ")";
}

Error Geometry(const std::string& what) { return Error(ErrorCode::kInvalidArgument, what); }

VoidResult ValidateKindGeometry(ObjectKind kind, const layout::ObjectParams& p, uint64_t data_size);

}  // namespace

const char* KindName(ObjectKind kind) {
  switch (kind) {
    case ObjectKind::kNone:
      return "none";
    case ObjectKind::kRegion:
      return "region";
    case ObjectKind::kSpscRing:
      return "spsc ring";
    case ObjectKind::kMpmcRing:
      return "mpmc ring";
    case ObjectKind::kBroadcastRing:
      return "broadcast ring";
    case ObjectKind::kBlockPool:
      return "block pool";
  }
  return "unknown";
}

std::string KindWithArticle(ObjectKind kind) {
  // "an spsc ring", "an mpmc ring": the letters are read out.
  const bool an = kind == ObjectKind::kSpscRing || kind == ObjectKind::kMpmcRing;
  return std::string(an ? "an " : "a ") + KindName(kind);
}

VoidResult ValidateName(std::string_view name, std::string_view what) {
  if (name.empty() || name.size() > 200) {
    return Error(
        ErrorCode::kInvalidArgument,
        std::string(what) + " must be 1 to 200 characters, got " + std::to_string(name.size()));
  }
  if (name == "." || name == "..") {
    return Error(ErrorCode::kInvalidArgument, std::string(what) + " may not be \".\" or \"..\"");
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return Error(ErrorCode::kInvalidArgument,
                   std::string(what) + " " + Quote(name) +
                       " has a character outside [A-Za-z0-9._-]; use only those");
    }
  }
  return Ok{};
}

std::string ObjectPath(const ShmDir& dir, std::string_view name) {
  std::string path = dir.path;
  if (!path.empty() && path.back() != '/') path += '/';
  return path + "shmd." + dir.ns + "." + std::string(name);
}

VoidResult ValidateGeometry(ObjectKind kind, const layout::ObjectParams& p, uint64_t data_size) {
  // The kind's own checks come first: their messages name the fields of the caller's spec.
  if (auto r = ValidateKindGeometry(kind, p, data_size); !r.ok()) return r;
  if (data_size == 0 || data_size > kMaxObjectSize - layout::kDataOffset) {
    return Geometry("data size " + std::to_string(data_size) + " is outside 1 byte to 1 TiB");
  }
  return Ok{};
}

namespace {

VoidResult ValidateKindGeometry(ObjectKind kind, const layout::ObjectParams& p,
                                uint64_t data_size) {
  switch (kind) {
    case ObjectKind::kRegion:
      return Ok{};
    case ObjectKind::kSpscRing:
      if (!IsPowerOfTwo(p.capacity) || p.capacity < layout::kMinSpscCapacity ||
          p.capacity > layout::kMaxSpscCapacity) {
        return Geometry("ring capacity " + std::to_string(p.capacity) +
                        " must be a power of two from 4096 bytes to 1 TiB");
      }
      if (data_size != p.capacity) {
        return Geometry("ring data size " + std::to_string(data_size) + " != capacity " +
                        std::to_string(p.capacity));
      }
      if (p.max_message == 0 || p.max_message > layout::MaxSpscMessage(p.capacity)) {
        return Geometry("max message " + std::to_string(p.max_message) + " must be 1 to " +
                        std::to_string(layout::MaxSpscMessage(p.capacity)) +
                        " bytes for a ring of " + std::to_string(p.capacity) +
                        " bytes (capacity/2 - 16); raise the capacity");
      }
      return Ok{};
    case ObjectKind::kMpmcRing:
    case ObjectKind::kBroadcastRing: {
      if (!IsPowerOfTwo(p.capacity) || p.capacity < 2 || p.capacity > kMaxSlots) {
        return Geometry("slot count " + std::to_string(p.capacity) +
                        " must be a power of two from 2 to 16777216");
      }
      if (p.max_message == 0 || p.max_message > kMaxSlotPayload) {
        return Geometry("max message " + std::to_string(p.max_message) +
                        " must be 1 to 16777216 bytes");
      }
      if (p.slot_size != layout::SlotSizeFor(p.max_message)) {
        return Geometry("slot size " + std::to_string(p.slot_size) +
                        " does not match max message " + std::to_string(p.max_message));
      }
      if (data_size != p.capacity * p.slot_size) {
        return Geometry("data size " + std::to_string(data_size) + " != slots x slot size");
      }
      if (kind == ObjectKind::kBroadcastRing &&
          p.policy != static_cast<uint32_t>(layout::BroadcastPolicy::kLossy) &&
          p.policy != static_cast<uint32_t>(layout::BroadcastPolicy::kLossless)) {
        return Geometry("unknown broadcast policy " + std::to_string(p.policy));
      }
      return Ok{};
    }
    case ObjectKind::kBlockPool: {
      if (p.block_size == 0 || p.block_size % layout::kCacheLine != 0 ||
          p.block_size > kMaxBlockSize) {
        return Geometry("block size " + std::to_string(p.block_size) +
                        " must be a multiple of 64 from 64 bytes to 1 GiB");
      }
      if (p.block_count == 0 || p.block_count > kMaxBlocks) {
        return Geometry("block count " + std::to_string(p.block_count) + " must be 1 to 16777216");
      }
      uint64_t blocks_bytes = uint64_t{p.block_count} * p.block_size;
      if (p.blocks_offset != layout::kDataOffset ||
          p.meta_offset != layout::kDataOffset + blocks_bytes ||
          data_size != blocks_bytes + PoolMetaBytes(p.block_count)) {
        return Geometry("pool offsets do not match its block size and count");
      }
      return Ok{};
    }
    case ObjectKind::kNone:
      break;
  }
  return Geometry("unknown object kind " + std::to_string(static_cast<uint32_t>(kind)));
}

}  // namespace

VoidResult ValidateObject(const void* base, uint64_t size, ObjectKind expected,
                          std::string_view what) {
  const std::string name = Quote(what);
  if (size < layout::kDataOffset) {
    return Error(ErrorCode::kCorrupted, name + " is truncated: " + std::to_string(size) +
                                            " bytes, but every shmd object has at least " +
                                            std::to_string(layout::kDataOffset) +
                                            "; remove it and create it again");
  }
  const auto& page = *static_cast<const layout::HeaderPage*>(base);
  const auto& h = page.header;
  if (h.magic != layout::kMagic) {
    return Error(ErrorCode::kCorrupted, name + " is not a shmd object (bad magic number)");
  }
  uint32_t version = h.layout_version.load(std::memory_order_acquire);
  if (version == 0) {
    return Error(ErrorCode::kNotReady,
                 name +
                     " is still being created, or its creator died before finishing; "
                     "retry, or remove it");
  }
  if (version != layout::kLayoutVersion) {
    return Error(ErrorCode::kVersionMismatch,
                 name + " has layout version " + std::to_string(version) +
                     " but this library reads layout version " +
                     std::to_string(layout::kLayoutVersion) +
                     "; use a shmd build of the same layout version, or recreate the object");
  }
  auto kind = static_cast<ObjectKind>(h.kind);
  if (kind == ObjectKind::kNone || h.kind > static_cast<uint32_t>(ObjectKind::kBlockPool)) {
    return Error(ErrorCode::kCorrupted, name + " has an unknown kind " + std::to_string(h.kind));
  }
  if (expected != ObjectKind::kNone && kind != expected) {
    return Error(ErrorCode::kWrongKind,
                 name + " is " + KindWithArticle(kind) + ", not " + KindWithArticle(expected));
  }
  if (h.total_size != size || h.data_offset != layout::kDataOffset ||
      h.data_size != size - layout::kDataOffset) {
    return Error(ErrorCode::kCorrupted, name + " claims " + std::to_string(h.total_size) +
                                            " bytes but its file has " + std::to_string(size) +
                                            "; it was truncated or overwritten");
  }
  if (h.max_endpoints != layout::kMaxEndpoints) {
    return Error(ErrorCode::kCorrupted, name + " has an impossible endpoint count");
  }
  uint32_t state = h.state.load(std::memory_order_acquire);
  if (state == static_cast<uint32_t>(layout::ObjectState::kDeleted)) {
    return Error(ErrorCode::kNotFound, name + " has been deleted");
  }
  if (state != static_cast<uint32_t>(layout::ObjectState::kReady)) {
    return Error(ErrorCode::kCorrupted, name + " has an impossible state " + std::to_string(state));
  }
  VoidResult geometry = ValidateGeometry(kind, page.params, h.data_size);
  if (!geometry.ok()) {
    return Error(ErrorCode::kCorrupted,
                 name + " has a corrupted geometry: " + geometry.error().message());
  }
  return Ok{};
}

namespace internal {

VoidResult CheckSlotRingSpec(std::string_view kind, std::string_view name, uint32_t slot_count,
                             uint32_t max_message) {
  const std::string what = std::string(kind) + " " + Quote(name) + ": ";
  if (!IsPowerOfTwo(slot_count) || slot_count < 2 || slot_count > kMaxSlots) {
    return Error(ErrorCode::kInvalidArgument,
                 what + "slot count " + std::to_string(slot_count) +
                     " must be a power of two from 2 to 16777216 (e.g. 1024)");
  }
  if (max_message == 0) {
    return Error(ErrorCode::kInvalidArgument,
                 what + "max message must be at least 1 byte (every slot holds this many)");
  }
  return Ok{};
}

}  // namespace internal

Result<std::shared_ptr<Segment>> OpenShared(const ShmDir& dir, std::string_view name,
                                            ObjectKind kind) {
  Result<Segment> segment = Segment::Open(dir, name, kind);
  if (!segment.ok()) return segment.error();
  return std::make_shared<Segment>(std::move(segment).value());
}

VoidResult CheckAttachable(const std::shared_ptr<Segment>& segment, ObjectKind kind) {
  if (!segment || !segment->valid()) {
    return Error(ErrorCode::kInvalidArgument, "no segment to attach to");
  }
  if (segment->kind() != kind) {
    return Error(ErrorCode::kWrongKind, Quote(segment->name()) + " is " +
                                            KindWithArticle(segment->kind()) + ", not " +
                                            KindWithArticle(kind));
  }
  return Ok{};
}

// --- Segment ----------------------------------------------------------------------------

Segment::Segment(int fd, uint8_t* base, uint64_t size, std::string name, std::string path)
    : fd_(fd), base_(base), size_(size), name_(std::move(name)), path_(std::move(path)) {}

Segment::Segment(Segment&& other) noexcept { *this = std::move(other); }

Segment& Segment::operator=(Segment&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = std::exchange(other.fd_, -1);
    base_ = std::exchange(other.base_, nullptr);
    size_ = std::exchange(other.size_, 0);
    lease_id_ = std::exchange(other.lease_id_, 0);
    name_ = std::move(other.name_);
    path_ = std::move(other.path_);
  }
  return *this;
}

Segment::~Segment() { Reset(); }

void Segment::Reset() {
  if (base_ != nullptr) munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
  base_ = nullptr;
  fd_ = -1;
  size_ = 0;
}

Result<Segment> Segment::Create(const ShmDir& dir, std::string_view name, ObjectKind kind,
                                const layout::ObjectParams& params, uint64_t data_size,
                                const CreateOptions& options, const InitFn& init) {
  if (auto r = ValidateName(dir.ns, "namespace"); !r.ok()) return r.error();
  if (auto r = ValidateName(name); !r.ok()) return r.error();
  if (auto r = ValidateGeometry(kind, params, data_size); !r.ok()) return r.error();
  if ((options.mode & ~0777u) != 0 || (options.mode & 0600u) != 0600u) {
    return Error(ErrorCode::kInvalidArgument,
                 "file mode " + std::to_string(options.mode) +
                     " must be within 0777 and let the owner read and write (0600)");
  }
  const std::string path = ObjectPath(dir, name);
  const uint64_t total = layout::kDataOffset + data_size;

  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, options.mode);
  if (fd < 0) {
    int err = errno;
    if (err == EEXIST) {
      return Error(ErrorCode::kAlreadyExists, std::string(KindName(kind)) + " " + Quote(name) +
                                                  " already exists at " + path +
                                                  "; open it, or remove it first");
    }
    return SysError(err, "cannot create " + path);
  }
  auto fail = [&](Error e) -> Result<Segment> {
    unlink(path.c_str());
    close(fd);
    return e;
  };
  // The umask may have removed group bits the caller asked for.
  if (fchmod(fd, options.mode) != 0) return fail(SysError(errno, "cannot chmod " + path));
  const uid_t uid = options.file_uid == kSameAsProcess ? static_cast<uid_t>(-1)
                                                       : static_cast<uid_t>(options.file_uid);
  const gid_t gid = options.file_gid == kSameAsProcess ? static_cast<gid_t>(-1)
                                                       : static_cast<gid_t>(options.file_gid);
  if ((uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) &&
      fchown(fd, uid, gid) != 0) {
    return fail(Error(ErrorCode::kPermissionDenied,
                      "cannot give " + path + " to uid " + std::to_string(options.file_uid) +
                          " gid " + std::to_string(options.file_gid) + ": " + ErrnoText(errno) +
                          " (that needs CAP_CHOWN)"));
  }
  // fchown clears the set-id bits, not the rw bits: the mode set above stands.
  // Reserve every page now: on tmpfs ftruncate alone reserves nothing, and a full
  // filesystem would then kill us (or a peer) with SIGBUS on first touch.
  int rc = posix_fallocate(fd, 0, static_cast<off_t>(total));
  if (rc != 0) {
    if (rc == ENOSPC || rc == EFBIG || rc == EDQUOT) {
      return fail(Error(ErrorCode::kNoSpace,
                        "no space for " + std::string(KindName(kind)) + " " + Quote(name) +
                            ": it needs " + std::to_string(total) + " bytes" +
                            FilesystemUsage(dir.path) +
                            "; free some objects, make it smaller or enlarge the filesystem"));
    }
    return fail(SysError(rc, "cannot reserve " + std::to_string(total) + " bytes for " + path));
  }
  void* base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) return fail(SysError(errno, "cannot map " + path));

  Segment segment(fd, static_cast<uint8_t*>(base), total, std::string(name), path);
  auto& page = segment.header_page();
  page.header.magic = layout::kMagic;
  page.header.kind = static_cast<uint32_t>(kind);
  page.header.total_size = total;
  page.header.data_offset = layout::kDataOffset;
  page.header.data_size = data_size;
  page.header.created_unix_ns =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  page.header.generation.store(1, std::memory_order_relaxed);
  page.header.creator_uid =
      options.owner_uid == kSameAsProcess ? static_cast<uint32_t>(geteuid()) : options.owner_uid;
  page.header.creator_pid = static_cast<uint32_t>(getpid());
  page.header.max_endpoints = layout::kMaxEndpoints;
  page.params = params;
  if (init) init(segment);
  page.header.state.store(static_cast<uint32_t>(layout::ObjectState::kReady),
                          std::memory_order_relaxed);
  // Publishes everything above: an opener that reads this version (acquire, in
  // ValidateObject) sees a complete header, params and initialized control block.
  page.header.layout_version.store(layout::kLayoutVersion, std::memory_order_release);
  return segment;
}

Result<Segment> Segment::FromFd(int fd, ObjectKind expected, std::string_view what) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return SysError(errno, "cannot stat " + std::string(what));
  if (!S_ISREG(st.st_mode)) {
    return Error(ErrorCode::kInvalidArgument, Quote(what) + " is not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < layout::kDataOffset) {
    return ValidateObject(nullptr, size, expected, what).error();
  }
  int own_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own_fd < 0) return SysError(errno, "cannot duplicate the descriptor of " + std::string(what));
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, own_fd, 0);
  if (base == MAP_FAILED) {
    int err = errno;
    close(own_fd);
    return SysError(err, "cannot map " + std::string(what));
  }
  Segment segment(own_fd, static_cast<uint8_t*>(base), size, std::string(what), "");
  if (auto r = ValidateObject(base, size, expected, what); !r.ok()) return r.error();
  return segment;
}

Result<Segment> Segment::Open(const ShmDir& dir, std::string_view name, ObjectKind expected) {
  if (auto r = ValidateName(dir.ns, "namespace"); !r.ok()) return r.error();
  if (auto r = ValidateName(name); !r.ok()) return r.error();
  const std::string path = ObjectPath(dir, name);
  // A creator publishes its header within microseconds; give it a moment before
  // reporting "not ready".
  const auto give_up = Clock::now() + std::chrono::milliseconds(200);
  for (;;) {
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      int err = errno;
      if (err == ENOENT) {
        return Error(ErrorCode::kNotFound, "no object " + Quote(name) + " in " + dir.path +
                                               " (namespace " + Quote(dir.ns) +
                                               "); create it first");
      }
      return SysError(err, "cannot open " + path);
    }
    Result<Segment> segment = FromFd(fd, expected, name);
    close(fd);
    if (segment.ok()) {
      segment->path_ = path;
      return segment;
    }
    if (segment.error().code() != ErrorCode::kNotReady || Clock::now() >= give_up) {
      return segment.error();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

VoidResult Segment::Remove(const ShmDir& dir, std::string_view name) {
  if (auto r = ValidateName(dir.ns, "namespace"); !r.ok()) return r.error();
  if (auto r = ValidateName(name); !r.ok()) return r.error();
  const std::string path = ObjectPath(dir, name);
  Result<Segment> segment = Open(dir, name);
  if (segment.ok()) {
    auto& h = segment->header();
    h.state.store(static_cast<uint32_t>(layout::ObjectState::kDeleted), std::memory_order_release);
    h.generation.fetch_add(1, std::memory_order_acq_rel);
    ForEachWaitWord(*segment, [](layout::WaitWord& word) {
      word.closed.store(1, std::memory_order_release);
      WakeAll(word);
    });
  }
  if (unlink(path.c_str()) != 0) {
    int err = errno;
    if (err == ENOENT) {
      return Error(ErrorCode::kNotFound, "no object " + Quote(name) + " in " + dir.path);
    }
    return SysError(err, "cannot remove " + path);
  }
  return Ok{};
}

VoidResult Segment::Resize(uint64_t new_data_size) {
  if (kind() != ObjectKind::kRegion) {
    return Error(ErrorCode::kInvalidArgument, std::string("only regions can be resized; ") +
                                                  Quote(name_) + " is " + KindWithArticle(kind()));
  }
  if (auto r = ValidateGeometry(ObjectKind::kRegion, params(), new_data_size); !r.ok()) {
    return r.error();
  }
  const uint64_t total = layout::kDataOffset + new_data_size;
  if (total > size_) {
    int rc = posix_fallocate(fd_, 0, static_cast<off_t>(total));
    if (rc != 0) {
      return Error(rc == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kSystem,
                   "cannot grow region " + Quote(name_) + " to " + std::to_string(total) +
                       " bytes: " + ErrnoText(rc));
    }
  }
  auto& h = header();
  h.total_size = total;
  h.data_size = new_data_size;
  if (total < size_ && ftruncate(fd_, static_cast<off_t>(total)) != 0) {
    return SysError(errno, "cannot shrink region " + Quote(name_));
  }
  // Release: a process that sees the new generation (acquire) sees the new sizes.
  h.generation.fetch_add(1, std::memory_order_release);
  return Remap();
}

VoidResult Segment::Remap() {
  struct stat st {};
  if (fstat(fd_, &st) != 0) return SysError(errno, "cannot stat " + Quote(name_));
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size == size_) return Ok{};
  void* base = mremap(base_, size_, size, MREMAP_MAYMOVE);
  if (base == MAP_FAILED) return SysError(errno, "cannot remap " + Quote(name_));
  base_ = static_cast<uint8_t*>(base);
  size_ = size;
  return ValidateObject(base_, size_, ObjectKind::kNone, name_);
}

}  // namespace shmd
