// A shmd object's file and its mapping: create (reserving the memory), open (checking the
// header before trusting anything), map from a descriptor, remove.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/result.h"

namespace shmd {

// Where objects live: files "<path>/shmd.<ns>.<name>". Any directory works (a Kubernetes
// emptyDir with medium Memory, a test's tmpfs); /dev/shm is what shm_open uses.
struct ShmDir {
  std::string path = "/dev/shm";
  std::string ns = "default";
};

inline constexpr uint32_t kSameAsProcess = 0xffffffffu;

struct CreateOptions {
  uint32_t mode = 0600;  // file mode; 0660 lets a group share the object
  // The uid recorded as the object's owner in its header (creator_uid): the daemon
  // creates objects on behalf of its callers. kSameAsProcess: this process's uid.
  uint32_t owner_uid = kSameAsProcess;
  // The file's owner and group, given with fchown when not kSameAsProcess (changing the
  // owner needs CAP_CHOWN). kSameAsProcess leaves what open() chose: this process's uid,
  // and its gid or a setgid directory's group (what a Kubernetes fsGroup volume relies on).
  uint32_t file_uid = kSameAsProcess;
  uint32_t file_gid = kSameAsProcess;
};

// Names and namespaces: [A-Za-z0-9._-], 1 to 200 characters, never "." or "..".
VoidResult ValidateName(std::string_view name, std::string_view what = "object name");
// "<dir.path>/shmd.<dir.ns>.<name>" (the name is not validated here).
std::string ObjectPath(const ShmDir& dir, std::string_view name);

const char* KindName(layout::ObjectKind kind);
std::string KindWithArticle(layout::ObjectKind kind);  // "an spsc ring", "a block pool"

// Checks a kind's geometry (params plus data size) for internal consistency. The same
// check serves the creator (is this spec sane?) and the opener (is this file sane?).
VoidResult ValidateGeometry(layout::ObjectKind kind, const layout::ObjectParams& params,
                            uint64_t data_size);

// Checks the first `size` bytes at `base` as a shmd object of kind `expected` (kNone:
// any kind). Reads nothing beyond `size`. `what` names the object in messages.
VoidResult ValidateObject(const void* base, uint64_t size, layout::ObjectKind expected,
                          std::string_view what);

class Segment {
 public:
  // Fills in the kind's control block and data (the file is zero-filled) before the header
  // is published. Runs in the creating process only.
  using InitFn = std::function<void(Segment&)>;

  Segment() = default;
  Segment(Segment&& other) noexcept;
  Segment& operator=(Segment&& other) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();

  // Creates the object, reserves all its memory (a full filesystem fails here, never as
  // SIGBUS later), initializes it and publishes its header. Fails with kAlreadyExists if
  // the file exists, kNoSpace if the filesystem is full, kInvalidArgument for a bad name
  // or geometry.
  static Result<Segment> Create(const ShmDir& dir, std::string_view name, layout::ObjectKind kind,
                                const layout::ObjectParams& params, uint64_t data_size,
                                const CreateOptions& options, const InitFn& init = {});
  // Opens and maps an existing object, checking magic, version, kind, size and geometry.
  static Result<Segment> Open(const ShmDir& dir, std::string_view name,
                              layout::ObjectKind expected = layout::ObjectKind::kNone);
  // Maps the object behind `fd` (the descriptor is duplicated; the caller keeps its own).
  static Result<Segment> FromFd(int fd, layout::ObjectKind expected, std::string_view what);
  // Marks the object deleted (waking every sleeper with kClosed) and unlinks its file.
  // Processes that have it mapped keep a valid mapping until they unmap it.
  static VoidResult Remove(const ShmDir& dir, std::string_view name);

  bool valid() const { return base_ != nullptr; }
  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  // The descriptor stays open as long as the Segment: endpoints claimed through this
  // mapping hold their liveness locks (layout::kLivenessLockHeld) on its open file
  // description, so they last exactly as long as this Segment or the process.
  int fd() const { return fd_; }
  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }

  layout::HeaderPage& header_page() const { return *reinterpret_cast<layout::HeaderPage*>(base_); }
  layout::ObjectHeader& header() const { return header_page().header; }
  const layout::ObjectParams& params() const { return header_page().params; }
  layout::ObjectKind kind() const { return static_cast<layout::ObjectKind>(header().kind); }
  layout::EndpointTable& endpoints() const {
    return *reinterpret_cast<layout::EndpointTable*>(base_ + layout::kEndpointTableOffset);
  }
  template <class Control>
  Control& control() const {
    return *reinterpret_cast<Control*>(base_ + layout::kControlOffset);
  }
  uint8_t* data() const { return base_ + layout::kDataOffset; }
  uint64_t data_size() const { return header().data_size; }

  // The daemon lease that covers endpoints claimed through this mapping (the 64-bit
  // number in the lease's name), recorded in their slots so the daemon can end the lease
  // when they die; 0 (the default) in embedded mode. Process-local: not in the object.
  void set_lease_id(uint64_t id) { lease_id_ = id; }
  uint64_t lease_id() const { return lease_id_; }

  // Regions: changes the data size (the file is reserved first, so a full filesystem is
  // an error) and bumps the generation; other mappings see the new size after Remap().
  VoidResult Resize(uint64_t new_data_size);
  // Maps the file again if another process resized it (generation changed).
  VoidResult Remap();

 private:
  Segment(int fd, uint8_t* base, uint64_t size, std::string name, std::string path);
  void Reset();

  int fd_ = -1;
  uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  uint64_t lease_id_ = 0;
  std::string name_;
  std::string path_;
};

// For the handles' Open and Attach: a shared mapping of `name`, which must be of `kind`;
// and whether an already mapped segment is of `kind`.
Result<std::shared_ptr<Segment>> OpenShared(const ShmDir& dir, std::string_view name,
                                            layout::ObjectKind kind);
VoidResult CheckAttachable(const std::shared_ptr<Segment>& segment, layout::ObjectKind kind);

// Calls fn(layout::WaitWord&) for each wait word of the segment's kind.
template <class Fn>
void ForEachWaitWord(const Segment& segment, Fn&& fn) {
  const layout::WaitWordList list = layout::WaitWordsOf(segment.kind());
  for (uint32_t i = 0; i < list.count; ++i) {
    fn(*reinterpret_cast<layout::WaitWord*>(segment.base() + layout::kControlOffset +
                                            list.offsets[i]));
  }
}

}  // namespace shmd
