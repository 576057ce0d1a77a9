// A message seen in place by a consumer (SPSC or MPMC ring): valid until Release().
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace shmd {

struct MessageView {
  const std::byte* data = nullptr;
  uint32_t size = 0;
  std::span<const std::byte> bytes() const { return {data, size}; }
};

}  // namespace shmd
