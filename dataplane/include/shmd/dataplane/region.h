// A raw shared region: bytes for the caller to lay out (a shared buffer, a table). shmd
// reserves and names it; synchronization inside it is the caller's. Map it with
// Segment::Open(dir, name, ObjectKind::kRegion); the bytes are Segment::data().
#pragma once

#include <cstdint>
#include <string_view>

#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"

namespace shmd {

Result<Segment> CreateRegion(const ShmDir& dir, std::string_view name, uint64_t size,
                             const CreateOptions& options = {});

}  // namespace shmd
