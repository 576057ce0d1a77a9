// Fan-out of control-plane events to WatchEvents streams. Publishing never blocks: each
// watcher has a bounded queue, and a watcher that falls too far behind is cut off (told
// so by Next) rather than slowing the daemon or growing without bound.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>

#include <google/protobuf/timestamp.pb.h>

#include "shmd/v1/events.pb.h"

namespace shmd::server {

// Now, to the nanosecond (protobuf 3.21's TimeUtil::GetCurrentTime has whole seconds).
google::protobuf::Timestamp Now();

class EventBus {
 public:
  static constexpr size_t kMaxBacklog = 4096;

  class Subscription;

  // Stamps the event (sequence, time) and queues it for every subscription.
  void Publish(v1::Event event);
  std::shared_ptr<Subscription> Subscribe();
  // Ends every subscription (their Next returns kClosed): the daemon is stopping.
  void Close();

 private:
  std::mutex mu_;
  uint64_t sequence_ = 0;
  bool closed_ = false;
  std::set<std::shared_ptr<Subscription>> subscriptions_;
  friend class Subscription;
};

class EventBus::Subscription {
 public:
  enum class Next { kEvent, kTimeout, kClosed, kOverflow };
  explicit Subscription(EventBus* bus) : bus_(bus) {}
  ~Subscription();
  // Waits up to `timeout` for the next event.
  Next Wait(std::chrono::milliseconds timeout, v1::Event* out);
  void Unsubscribe();

 private:
  friend class EventBus;
  EventBus* bus_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::Event> queue_;
  bool overflow_ = false;
  bool closed_ = false;
};

}  // namespace shmd::server
