// Topic: publish/subscribe. One publisher, any number of subscribers joining and leaving
// at any time, each reading every message published after it joined, at its own pace:
//
//   Publisher pub = ...;                              // Open(client, "news") or embedded
//   pub.Publish(bytes, 100ms);                        // a copy into the topic's ring
//
//   Subscriber sub = ...;
//   std::vector<std::byte> buffer(sub.max_message());
//   for (;;) {
//     TopicReceive r = sub.Receive(buffer, 1s);
//     if (r.status == Status::kLapped) { Note(r.lost); continue; }  // lossy: it fell behind
//     if (r.status != Status::kOk) break;                          // kTimeout, kPeerGone...
//     Consume(std::span(buffer).first(r.size));
//   }
//
// Behind a topic "news" is one object, the broadcast ring "news" (rings/news through the
// daemon; broadcast_ring.h): `depth` slots of max_message bytes. A message is copied into
// a slot and out again by each subscriber; a slot holds up to 16 MiB, so large messages
// work the same way (each subscriber copies them once).
//
// Slow subscribers, per topic (TopicSpec::policy):
//   kLossy     the publisher never waits. A subscriber that falls `depth` messages behind
//              is lapped: its next Receive returns kLapped with the exact number of
//              messages it will never see (TopicReceive::lost, summed in lost()), and it
//              reads on from the oldest message still held.
//   kLossless  nobody loses anything: Publish waits (up to its timeout) while a live
//              subscriber is `depth` messages behind, then returns kTimeout (kFull with no
//              timeout). Subscribers that died are cleared while it waits, so a killed one
//              holds it back for at most a sleep slice (WaitOptions::sleep_slice) beyond
//              the moment its death can be seen. Each wait counts as a full event in the
//              ring's metrics (full_events, shmd_ring_full_total).
// Either way a subscriber joins at the publisher's `published` count: it sees what is
// published after it joined, never older messages.
//
// End of stream: once the publisher has left (detached or died) and a subscriber has
// read what is left, Receive returns kPeerGone (a subscriber that has seen nothing yet
// waits for a first publisher instead). kClosed: the topic was deleted.
//
// Copies. A message is copied into its slot and out by each subscriber: a lapped
// subscriber may read a slot while the publisher rewrites it (the seqlock), so every slot
// access is an atomic word access, and a loaned slot written with plain stores would be a
// data race. For large messages read in place by every subscriber (zero copies), use a
// LargeTopic (large_topic.h: a block pool plus one descriptor ring per subscriber).
//
// Thread safety: a Publisher or a Subscriber is used by one thread at a time. One
// Publisher per topic at a time (a second gets kBusy).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "shmd/dataplane/broadcast_ring.h"
#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"
#include "shmd/dataplane/status.h"
#include "shmd/dataplane/wait.h"

namespace shmd {

class Client;  // shmd/client/client.h: the daemon-facing factories below take one

using TopicPolicy = layout::BroadcastPolicy;  // kLossy or kLossless

struct TopicSpec {
  uint32_t max_message = 4096;  // bytes of the largest message: 1 to 16 MiB
  uint32_t depth = 256;         // slots: a power of two, 2 to 16777216
  TopicPolicy policy = TopicPolicy::kLossy;
  uint32_t mode = 0600;  // file mode (0660: the group may attach)
};

// The object behind topic `name` (the broadcast ring of the same name).
std::string TopicRingName(std::string_view name);

// The ring spec for `spec` (checked: kInvalidArgument says what is wrong).
Result<BroadcastRingSpec> TopicRingSpecFor(const TopicSpec& spec);

// Embedded mode: creates the topic's ring in `dir` (it must not exist).
VoidResult CreateTopic(const ShmDir& dir, std::string_view name, const TopicSpec& spec,
                       const CreateOptions& options = {});
// Removes it (a missing one is not an error).
VoidResult RemoveTopic(const ShmDir& dir, std::string_view name);

// Through the daemon: asks it for the ring (the same spec again is a no-op, so either
// side may create), and deletes it.
VoidResult CreateTopic(Client& client, std::string_view name, const TopicSpec& spec);
VoidResult DeleteTopic(Client& client, std::string_view name, bool force = false);

class Publisher {
 public:
  static Result<Publisher> Open(const ShmDir& dir, std::string_view name,
                                const WaitOptions& wait = {});
  static Result<Publisher> Open(Client& client, std::string_view name,
                                const WaitOptions& wait = {});
  // From a handle already attached; `keepalive` (a lease, say) is let go after it.
  static Result<Publisher> Assemble(std::shared_ptr<void> keepalive, BroadcastProducer ring);

  // Publishes a copy of `message` (1 to max_message bytes: else kInvalidArgument or
  // kTooLarge). Lossy: never waits, always kOk. Lossless: waits up to `timeout` for the
  // slowest live subscriber, then kTimeout (kFull if timeout is 0); kClosed if the topic
  // was deleted meanwhile. Nothing was published unless kOk.
  Status Publish(std::span<const std::byte> message, Nanos timeout = Nanos::zero()) noexcept;
  Status Publish(std::string_view message, Nanos timeout = Nanos::zero()) noexcept {
    return Publish(std::as_bytes(std::span(message.data(), message.size())), timeout);
  }

  // Messages published on this topic so far (by every publisher it has had).
  uint64_t published() const { return ring_.published(); }
  // Subscribers attached right now (live endpoints; a dead one counts until cleared).
  // A publisher that must not start before its audience has joined waits for this.
  uint32_t subscribers() const;
  uint32_t max_message() const { return ring_.max_message(); }
  uint64_t depth() const { return ring_.slot_count(); }
  TopicPolicy policy() const { return ring_.policy(); }
  const BroadcastProducer& ring() const { return ring_; }

 private:
  Publisher(std::shared_ptr<void> keepalive, BroadcastProducer ring)
      : keepalive_(std::move(keepalive)), ring_(std::move(ring)) {}

  std::shared_ptr<void> keepalive_;  // first: the daemon's lease outlives the handle
  BroadcastProducer ring_;
};

// What one Receive did.
struct TopicReceive {
  // kOk (`size` bytes in the buffer); kLapped (lossy: `lost` messages skipped, none in
  // the buffer; call again to read on); kEmpty (timeout 0) or kTimeout; kPeerGone (the
  // publisher left and everything is read); kClosed (deleted); kTooLarge (the buffer is
  // smaller than the message: `size` says how large; it stays for a larger buffer);
  // kCorrupted (a slot that is not a message, skipped: the next call reads on).
  Status status = Status::kEmpty;
  size_t size = 0;
  uint64_t lost = 0;
};

class Subscriber {
 public:
  static Result<Subscriber> Open(const ShmDir& dir, std::string_view name,
                                 const WaitOptions& wait = {});
  static Result<Subscriber> Open(Client& client, std::string_view name,
                                 const WaitOptions& wait = {});
  static Result<Subscriber> Assemble(std::shared_ptr<void> keepalive, BroadcastSubscriber ring);

  // The next message into `buffer`, waiting up to `timeout` for one (see TopicReceive).
  TopicReceive Receive(std::span<std::byte> buffer, Nanos timeout) noexcept;
  TopicReceive TryReceive(std::span<std::byte> buffer) noexcept {
    return Receive(buffer, Nanos::zero());
  }

  uint64_t received() const { return received_; }  // messages delivered to this subscriber
  uint64_t lost() const { return lost_; }          // messages it lost by being lapped
  // Sequence number of the next message it reads. For every subscriber, at any time:
  //   received + lost + corrupted = cursor - cursor when it joined.
  uint64_t cursor() const { return ring_.cursor(); }
  uint32_t max_message() const { return ring_.max_message(); }
  uint64_t depth() const { return ring_.slot_count(); }
  TopicPolicy policy() const { return ring_.policy(); }
  // The ring's subscriber, e.g. for a WaitSet (wait_set.h).
  const BroadcastSubscriber& ring() const { return ring_; }

 private:
  Subscriber(std::shared_ptr<void> keepalive, BroadcastSubscriber ring)
      : keepalive_(std::move(keepalive)), ring_(std::move(ring)) {}

  std::shared_ptr<void> keepalive_;  // first: the daemon's lease outlives the handle
  BroadcastSubscriber ring_;
  uint64_t received_ = 0;
  uint64_t lost_ = 0;
};

}  // namespace shmd
