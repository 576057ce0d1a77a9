#include "shmd/dataplane/region.h"

namespace shmd {

Result<Segment> CreateRegion(const ShmDir& dir, std::string_view name, uint64_t size,
                             const CreateOptions& options) {
  return Segment::Create(dir, name, layout::ObjectKind::kRegion, layout::ObjectParams{}, size,
                         options);
}

}  // namespace shmd
