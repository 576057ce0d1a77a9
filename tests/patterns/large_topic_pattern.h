// What large_topic_test and its subscriber peer agree on: the message stream and sizes.
#pragma once

#include <cstdint>

#include "common/message_pattern.h"

namespace shmd::testing {

inline constexpr uint64_t kLargeStream = 61;
inline constexpr uint32_t kLargeMin = 64 * 1024;

// Message `seq` is 64 KiB to `max` bytes long (max >= 64 KiB).
inline uint32_t LargePatternSize(uint64_t seq, uint32_t max) {
  return kLargeMin + static_cast<uint32_t>(SplitMix64(kLargeStream ^ (seq << 8)) %
                                           (uint64_t{max} - kLargeMin + 1));
}

}  // namespace shmd::testing
