// Sizes as people write them: "4096", "64KiB", "1MiB", "2GiB" (also "64K", "1M", "2G",
// which mean the same powers of 1024; "KB"/"MB"/"GB" are powers of 1000).
#pragma once

#include <cstdint>
#include <string_view>

#include "shmd/dataplane/result.h"

namespace shmd::server {

Result<uint64_t> ParseByteSize(std::string_view text, std::string_view what);

}  // namespace shmd::server
