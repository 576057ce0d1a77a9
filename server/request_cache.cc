#include "server/request_cache.h"

namespace shmd::server {

RequestCache::Lookup RequestCache::Find(uint32_t uid, const std::string& request_id,
                                        const std::string& fingerprint, std::string* response) {
  std::lock_guard lock(mu_);
  auto it = entries_.find({uid, request_id});
  if (it == entries_.end()) return Lookup::kMiss;
  if (it->second.fingerprint != fingerprint) return Lookup::kMismatch;
  *response = it->second.response;
  return Lookup::kHit;
}

void RequestCache::Store(uint32_t uid, const std::string& request_id, std::string fingerprint,
                         std::string response) {
  std::lock_guard lock(mu_);
  Key key{uid, request_id};
  auto [it, inserted] = entries_.try_emplace(key);
  it->second = {std::move(fingerprint), std::move(response)};
  if (!inserted) return;
  order_.push_back(std::move(key));
  if (order_.size() > kCapacity) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
}

}  // namespace shmd::server
