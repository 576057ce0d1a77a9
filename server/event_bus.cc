#include "server/event_bus.h"

#include <google/protobuf/util/time_util.h>

#include <chrono>

namespace shmd::server {

google::protobuf::Timestamp Now() {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
}

void EventBus::Publish(v1::Event event) {
  std::lock_guard lock(mu_);
  if (closed_) return;
  event.set_sequence(++sequence_);
  *event.mutable_time() = Now();
  for (const auto& sub : subscriptions_) {
    std::lock_guard sub_lock(sub->mu_);
    if (sub->overflow_) continue;
    if (sub->queue_.size() >= kMaxBacklog) {
      sub->overflow_ = true;
      sub->queue_.clear();
    } else {
      sub->queue_.push_back(event);
    }
    sub->cv_.notify_one();
  }
}

std::shared_ptr<EventBus::Subscription> EventBus::Subscribe() {
  auto sub = std::make_shared<Subscription>(this);
  std::lock_guard lock(mu_);
  if (closed_) {
    sub->closed_ = true;
  } else {
    subscriptions_.insert(sub);
  }
  return sub;
}

void EventBus::Close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  for (const auto& sub : subscriptions_) {
    std::lock_guard sub_lock(sub->mu_);
    sub->closed_ = true;
    sub->cv_.notify_all();
  }
  subscriptions_.clear();
}

EventBus::Subscription::~Subscription() = default;

void EventBus::Subscription::Unsubscribe() {
  std::lock_guard lock(bus_->mu_);
  for (auto it = bus_->subscriptions_.begin(); it != bus_->subscriptions_.end(); ++it) {
    if (it->get() == this) {
      bus_->subscriptions_.erase(it);
      break;
    }
  }
}

EventBus::Subscription::Next EventBus::Subscription::Wait(std::chrono::milliseconds timeout,
                                                          v1::Event* out) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || overflow_ || closed_; });
  if (overflow_) return Next::kOverflow;
  if (!queue_.empty()) {
    *out = std::move(queue_.front());
    queue_.pop_front();
    return Next::kEvent;
  }
  return closed_ ? Next::kClosed : Next::kTimeout;
}

}  // namespace shmd::server
