// The benchmark's messages: a fixed payload pattern with a sequence number in the first 8
// bytes, and the receiver-side check that touches every byte.
#ifndef SHMD_BENCH_IPC_MESSAGE_H_
#define SHMD_BENCH_IPC_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/ipc/mechanism.h"

namespace shmd::bench {

inline constexpr size_t kSequenceBytes = sizeof(uint64_t);

// Sum of the message read as little-endian 64-bit words (a zero-padded tail word last),
// modulo 2^64. Four accumulators so the adds are independent and the loop runs at load
// bandwidth; reading every word is what "the receiver touches every byte" means here.
inline uint64_t WordSum(const std::byte* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w[4];
    std::memcpy(w, p + i, sizeof(w));
    a0 += w[0];
    a1 += w[1];
    a2 += w[2];
    a3 += w[3];
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, sizeof(w));
    a0 += w;
  }
  if (i < n) {
    uint64_t w = 0;
    std::memcpy(&w, p + i, n - i);
    a0 += w;
  }
  return a0 + a1 + a2 + a3;
}

inline uint64_t ReadSequence(const std::byte* msg) {
  uint64_t seq;
  std::memcpy(&seq, msg, sizeof(seq));
  return seq;
}

inline void WriteSequence(std::byte* msg, uint64_t seq) { std::memcpy(msg, &seq, sizeof(seq)); }

// Fills a message with the payload pattern (nonzero, position-dependent, so a zeroed, shifted
// or truncated message fails the checksum) and sequence number 0.
inline void FillPayload(std::byte* msg, size_t size) {
  for (size_t i = 0; i < size; ++i) msg[i] = static_cast<std::byte>((i * 131 + 17) & 0xff);
  WriteSequence(msg, 0);
}

// A 64-byte-aligned message buffer holding the payload pattern.
class MessageBuffer {
 public:
  explicit MessageBuffer(size_t size)
      : size_(size), data_(static_cast<std::byte*>(std::aligned_alloc(64, RoundUp(size)))) {
    if (data_ == nullptr) std::abort();  // a benchmark without its buffer has nothing to do
    FillPayload(data_, size_);
  }
  ~MessageBuffer() { std::free(data_); }
  MessageBuffer(const MessageBuffer&) = delete;
  MessageBuffer& operator=(const MessageBuffer&) = delete;

  std::byte* data() { return data_; }
  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  void SetSequence(uint64_t seq) { WriteSequence(data_, seq); }
  uint64_t Sequence() const { return ReadSequence(data_); }

 private:
  static size_t RoundUp(size_t n) { return (n + 63) / 64 * 64; }
  size_t size_;
  std::byte* data_;
};

// Verifies received messages: message i must carry sequence number i, and its word sum must
// equal the pattern's plus i (the sequence word is the only part that changes). Every
// received byte is read.
class MessageChecker {
 public:
  explicit MessageChecker(size_t size) : size_(size) {
    MessageBuffer pattern(size);
    base_sum_ = WordSum(pattern.data(), size);
  }

  // True if `msg` is message number `expected`; otherwise *error says what arrived instead.
  bool Check(const std::byte* msg, uint64_t expected, Status* error) const {
    const uint64_t sum = WordSum(msg, size_);
    const uint64_t seq = ReadSequence(msg);
    if (seq == expected && sum == base_sum_ + expected) [[likely]]
      return true;
    *error = Describe(seq, sum, expected);
    return false;
  }

  // For paths that only check ordering (the ping-pong echo).
  static bool CheckSequence(const std::byte* msg, uint64_t expected, Status* error) {
    const uint64_t seq = ReadSequence(msg);
    if (seq == expected) [[likely]]
      return true;
    *error = Status::Error("message " + std::to_string(expected) + " carried sequence number " +
                           std::to_string(seq) + ": messages were lost, duplicated or reordered");
    return false;
  }

 private:
  Status Describe(uint64_t seq, uint64_t sum, uint64_t expected) const {
    if (seq != expected) {
      return Status::Error("message " + std::to_string(expected) + " carried sequence number " +
                           std::to_string(seq) + ": messages were lost, duplicated or reordered");
    }
    return Status::Error("message " + std::to_string(expected) + " (" + std::to_string(size_) +
                         " bytes) arrived corrupted: checksum " + std::to_string(sum) +
                         ", expected " + std::to_string(base_sum_ + expected));
  }

  size_t size_;
  uint64_t base_sum_;
};

}  // namespace shmd::bench

#endif  // SHMD_BENCH_IPC_MESSAGE_H_
