// Answers remembered by request_id (AIP-155), so that a retried Create returns what the
// first attempt returned instead of failing or creating twice. Bounded: the oldest
// answers are forgotten first. Thread-safe.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace shmd::server {

class RequestCache {
 public:
  static constexpr size_t kCapacity = 10000;

  enum class Lookup {
    kMiss,      // never seen: do the work, then Store
    kHit,       // seen with the same request: *response is the first answer
    kMismatch,  // seen with another request: the id was reused
  };
  // `fingerprint` identifies the request (method and fields, request_id excluded).
  Lookup Find(uint32_t uid, const std::string& request_id, const std::string& fingerprint,
              std::string* response);
  void Store(uint32_t uid, const std::string& request_id, std::string fingerprint,
             std::string response);

 private:
  using Key = std::pair<uint32_t, std::string>;
  struct Entry {
    std::string fingerprint;
    std::string response;
  };
  std::mutex mu_;
  std::map<Key, Entry> entries_;
  std::deque<Key> order_;  // oldest first
};

}  // namespace shmd::server
