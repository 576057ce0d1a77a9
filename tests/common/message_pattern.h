// Messages whose size and every byte follow from a sequence number, so a receiver can
// check that nothing was lost, duplicated, reordered or corrupted without a side channel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

namespace shmd::testing {

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Sizes skewed like real traffic: mostly small, some medium, a few up to `max`.
inline uint32_t PatternSize(uint64_t stream, uint64_t seq, uint32_t max) {
  uint64_t r = SplitMix64(stream * 0x100000001b3ULL ^ seq);
  uint32_t bucket = r % 100;
  uint32_t limit = bucket < 70 ? 128 : bucket < 95 ? 2048 : max;
  if (limit > max) limit = max;
  return 1 + static_cast<uint32_t>((r >> 8) % limit);
}

// Byte i of message `seq`: one SplitMix64 per 8 bytes, so filling and checking run at
// memory speed rather than dominating the figures of a stress run.
inline uint64_t PatternWord(uint64_t stream, uint64_t seq, size_t word) {
  return SplitMix64((stream << 40) ^ (seq << 12) ^ word);
}

// The first 8 bytes (when there is room) carry the sequence number itself, which makes
// a mismatch easy to report; the rest are pattern words.
inline void FillPattern(uint64_t stream, uint64_t seq, std::span<std::byte> out) {
  size_t i = 0;
  if (out.size() >= 8) {
    std::memcpy(out.data(), &seq, 8);
    i = 8;
  }
  for (; i < out.size(); i += 8) {
    uint64_t w = PatternWord(stream, seq, i >> 3);
    std::memcpy(out.data() + i, &w, out.size() - i < 8 ? out.size() - i : 8);
  }
}

// Empty string when `got` is message `seq` of `stream`; otherwise what is wrong.
inline std::string CheckPattern(uint64_t stream, uint64_t seq, uint32_t expected_size,
                                std::span<const std::byte> got) {
  if (got.size() >= 8) {
    uint64_t got_seq;
    std::memcpy(&got_seq, got.data(), 8);
    if (got_seq != seq) {
      return "expected message " + std::to_string(seq) + ", got message " + std::to_string(got_seq);
    }
  }
  if (got.size() != expected_size) {
    return "message " + std::to_string(seq) + ": expected " + std::to_string(expected_size) +
           " bytes, got " + std::to_string(got.size());
  }
  for (size_t i = got.size() >= 8 ? 8 : 0; i < got.size(); i += 8) {
    uint64_t w = PatternWord(stream, seq, i >> 3);
    if (std::memcmp(got.data() + i, &w, got.size() - i < 8 ? got.size() - i : 8) != 0) {
      return "message " + std::to_string(seq) + ": bytes " + std::to_string(i) + ".." +
             std::to_string(i + 7) + " are corrupted";
    }
  }
  return "";
}

}  // namespace shmd::testing
