// Attached<Handle>: a data-plane handle (SpscProducer, BlockPool, a region's Segment...)
// together with the daemon lease that covers it, as Client::Open returns them.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/broadcast_ring.h"
#include "shmd/dataplane/mpmc_ring.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"
#include "shmd/dataplane/spsc_ring.h"
#include "shmd/dataplane/wait.h"
#include "shmd/v1/control.grpc.pb.h"

namespace shmd {
namespace internal {

// Owns a lease: gives it back (Detach, allow_missing, one-second deadline) when destroyed.
// A daemon that is down by then only means the lease ends when the process does.
class LeaseReturn {
 public:
  LeaseReturn(std::shared_ptr<v1::Control::Stub> stub, v1::Lease lease)
      : stub_(std::move(stub)), lease_(std::move(lease)) {}
  LeaseReturn(LeaseReturn&& other) noexcept = default;
  LeaseReturn& operator=(LeaseReturn&& other) noexcept;
  LeaseReturn(const LeaseReturn&) = delete;
  LeaseReturn& operator=(const LeaseReturn&) = delete;
  ~LeaseReturn() { GiveBack(); }

  const v1::Lease& lease() const { return lease_; }
  void GiveBack();

 private:
  std::shared_ptr<v1::Control::Stub> stub_;
  v1::Lease lease_;
};

// What Client::Open needs to know of each handle type.
template <class Handle>
struct HandleTraits;

template <class Handle, layout::ObjectKind K, v1::Role R>
struct RingTraits {
  static constexpr const char* kCollection = "rings";
  static constexpr layout::ObjectKind kKind = K;
  static constexpr v1::Role kRole = R;
  static Result<Handle> Attach(std::shared_ptr<Segment> segment, const WaitOptions& wait) {
    return Handle::Attach(std::move(segment), wait);
  }
};

template <>
struct HandleTraits<SpscProducer>
    : RingTraits<SpscProducer, layout::ObjectKind::kSpscRing, v1::ROLE_PRODUCER> {};
template <>
struct HandleTraits<SpscConsumer>
    : RingTraits<SpscConsumer, layout::ObjectKind::kSpscRing, v1::ROLE_CONSUMER> {};
template <>
struct HandleTraits<MpmcProducer>
    : RingTraits<MpmcProducer, layout::ObjectKind::kMpmcRing, v1::ROLE_PRODUCER> {};
template <>
struct HandleTraits<MpmcConsumer>
    : RingTraits<MpmcConsumer, layout::ObjectKind::kMpmcRing, v1::ROLE_CONSUMER> {};
template <>
struct HandleTraits<BroadcastSubscriber>
    : RingTraits<BroadcastSubscriber, layout::ObjectKind::kBroadcastRing, v1::ROLE_SUBSCRIBER> {};
template <>
struct HandleTraits<BroadcastProducer>
    : RingTraits<BroadcastProducer, layout::ObjectKind::kBroadcastRing, v1::ROLE_PRODUCER> {
  // The broadcast producer never waits: it overwrites.
  static Result<BroadcastProducer> Attach(std::shared_ptr<Segment> segment, const WaitOptions&) {
    return BroadcastProducer::Attach(std::move(segment));
  }
};
template <>
struct HandleTraits<BlockPool> {
  static constexpr const char* kCollection = "pools";
  static constexpr layout::ObjectKind kKind = layout::ObjectKind::kBlockPool;
  static constexpr v1::Role kRole = v1::ROLE_PRODUCER;
  static Result<BlockPool> Attach(std::shared_ptr<Segment> segment, const WaitOptions& wait) {
    return BlockPool::Attach(std::move(segment), wait);
  }
};
// A region: the mapping itself is the handle (Segment::data(), Segment::Remap()).
template <>
struct HandleTraits<Segment> {
  static constexpr const char* kCollection = "regions";
  static constexpr layout::ObjectKind kKind = layout::ObjectKind::kRegion;
  static constexpr v1::Role kRole = v1::ROLE_USER;
  static Result<Segment> Attach(std::shared_ptr<Segment> segment, const WaitOptions&) {
    return std::move(*segment);  // Client::Open holds the only reference
  }
};

}  // namespace internal

template <class Handle>
class Attached {
 public:
  Attached(Handle handle, internal::LeaseReturn lease)
      : lease_(std::move(lease)), handle_(std::move(handle)) {}

  Handle& operator*() { return handle_; }
  Handle* operator->() { return &handle_; }
  const v1::Lease& lease() const { return lease_.lease(); }

  // For an object that keeps several handles (a channel's ring and pool): the handle and
  // the lease as a shared keep-alive, which the owner must destroy after the handle
  // (declare it first).
  struct Parts {
    Handle handle;
    std::shared_ptr<void> lease;
  };
  Parts Split() && {
    return Parts{std::move(handle_), std::make_shared<internal::LeaseReturn>(std::move(lease_))};
  }

 private:
  // Declared first, destroyed last: the handle leaves the object before the lease ends.
  internal::LeaseReturn lease_;
  Handle handle_;
};

}  // namespace shmd
