// Channel: the thing a service asks for. A named, one-way, one-sender one-receiver
// channel for messages of up to max_message bytes, with zero copies at any size:
//
//   ChannelSender tx = ...;                        // Open(client, "frames") or embedded
//   ChannelLoan loan;
//   tx.Loan(frame_bytes, &loan, 1s);               // a block of shared memory, yours
//   Render(loan.bytes());                          // write the message in place
//   tx.Publish(std::move(loan), 1s);               // hand it over: 16 bytes travel
//
//   ChannelMessage m;
//   while (rx.Receive(&m, 1s) == Status::kOk) {    // m.bytes() is the sender's block
//     Consume(m.bytes());
//   }                                              // each block is freed when m moves on
//
// Behind a channel "frames" are two objects: the SPSC ring "frames", which carries the
// messages' records in order, and the block pool "frames.blocks" (depth blocks of
// max_message bytes rounded up to 64), which holds loaned messages. A loaned message
// travels as a 16-byte record naming its block; a small message sent with Send() (up to
// inline_max bytes, where a copy costs less than a pool round trip) is copied into the
// ring record itself and out again on the other side. Either way the receiver gets a
// ChannelMessage, and may keep as many as it likes: a loaned one holds its block until it
// is destroyed (or reused by Receive), an inline one holds its own copy.
//
// Record format (the payload of each ring record; fixed width, little-endian host):
//   ChannelFrame{kind, length} then, for kInline, `length` bytes of message;
//   for kBlock, a layout::BlockDescriptor{index, length}.
// A record that is not one of these is reported as kCorrupted and skipped, never read.
//
// Back-pressure: Loan waits (up to its timeout) for a free block when `depth` messages
// are in flight or held by the receiver; Publish and Send wait for room in the ring.
// Dead peers: a receiver whose sender has gone gets everything that was published, then
// kPeerGone; a sender whose receiver has gone gets kPeerGone once the ring is full. Blocks
// held by a process that died go back to the pool when its endpoint is cleared (by the
// daemon, or by any attached process that finds it dead). Blocks whose records are in the
// ring belong to the ring: a new receiver reads them. One gap: a sender killed in the few
// instructions between handing a block off and committing its record leaves that block
// "in transit" with no record naming it; it is lost until the channel is recreated.
//
// Thread safety: a ChannelSender, its loans, a ChannelReceiver and its messages are used
// by one thread at a time (the sender's thread, the receiver's thread).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"
#include "shmd/dataplane/spsc_ring.h"
#include "shmd/dataplane/status.h"
#include "shmd/dataplane/wait.h"

namespace shmd {

class Client;  // shmd/client/client.h: the daemon-facing factories below take one

struct ChannelSpec {
  uint32_t max_message = 64 * 1024;  // bytes of the largest message (a pool block)
  uint32_t depth = 64;               // messages in flight or held at once (pool blocks)
  uint32_t inline_max = 256;         // Send() copies up to this into the ring: 8 to 1024
                                     // (less is taken as 8)
  uint32_t mode = 0600;              // file mode of both objects (0660: the group may attach)
};

// Names of the two objects behind channel `name`.
std::string ChannelRingName(std::string_view name);  // name
std::string ChannelPoolName(std::string_view name);  // name + ".blocks"

// What the two objects must be for `spec` (checked: kInvalidArgument says what is wrong).
struct ChannelGeometry {
  SpscRingSpec ring;
  BlockPoolSpec pool;
};
Result<ChannelGeometry> ChannelGeometryFor(const ChannelSpec& spec);

// Embedded mode: creates both objects in `dir` (neither may exist).
VoidResult CreateChannel(const ShmDir& dir, std::string_view name, const ChannelSpec& spec,
                         const CreateOptions& options = {});
// Removes both objects (a missing one is not an error).
VoidResult RemoveChannel(const ShmDir& dir, std::string_view name);

// Through the daemon: asks it for both objects (the same spec again is a no-op, so either
// side may create), and deletes them.
VoidResult CreateChannel(Client& client, std::string_view name, const ChannelSpec& spec);
VoidResult DeleteChannel(Client& client, std::string_view name, bool force = false);

// On the wire, ahead of each record's payload.
struct ChannelFrame {
  uint32_t kind;    // 0  ChannelFrameKind
  uint32_t length;  // 4  message bytes
};
static_assert(sizeof(ChannelFrame) == 8);
enum ChannelFrameKind : uint32_t {
  kChannelInline = 0x43484931,  // "CHI1": the message follows
  kChannelBlock = 0x43484231,   // "CHB1": a BlockDescriptor follows
};
inline constexpr uint32_t kChannelInlineLimit = 1024;

// A block loaned from the channel's pool: write the message into bytes(), then
// ChannelSender::Publish. Dropped unpublished, the block goes back to the pool.
class ChannelLoan {
 public:
  ChannelLoan() = default;
  ChannelLoan(ChannelLoan&& other) noexcept { *this = std::move(other); }
  ChannelLoan& operator=(ChannelLoan&& other) noexcept;
  ~ChannelLoan() { Reset(); }

  std::span<std::byte> bytes() const { return {block_.data, size_}; }  // the loaned size
  uint32_t size() const { return size_; }
  bool valid() const { return pool_ != nullptr; }
  void Reset() noexcept;  // gives the block back unpublished

 private:
  friend class ChannelSender;
  std::shared_ptr<BlockPool> pool_;
  Block block_;
  uint32_t size_ = 0;
};

class ChannelSender {
 public:
  static Result<ChannelSender> Attach(std::shared_ptr<Segment> ring, std::shared_ptr<Segment> pool,
                                      const WaitOptions& wait = {});
  static Result<ChannelSender> Open(const ShmDir& dir, std::string_view name,
                                    const WaitOptions& wait = {});
  static Result<ChannelSender> Open(Client& client, std::string_view name,
                                    const WaitOptions& wait = {});
  // From handles already attached; `keepalive` (leases, say) is let go after them.
  static Result<ChannelSender> Assemble(std::shared_ptr<void> keepalive, SpscProducer ring,
                                        BlockPool pool);

  // A block for a message of `size` bytes (1 to max_message). kFull if every block is
  // taken at the deadline (timeout 0: do not wait), kTooLarge, kInvalidArgument (0 bytes).
  Status Loan(uint32_t size, ChannelLoan* out, Nanos timeout = Nanos::zero()) noexcept;
  // Hands the loan's first `length` bytes (all of them if 0) to the receiver. kFull or
  // kTimeout if the ring had no room by then, kPeerGone if the receiver has gone: the
  // loan is still yours (publish it again, or drop it).
  Status Publish(ChannelLoan&& loan, Nanos timeout = Nanos::zero(), uint32_t length = 0) noexcept;
  // Copies `message` in: into the ring record itself up to inline_max bytes, through a
  // loaned block above. Same results as Loan and Publish.
  Status Send(std::span<const std::byte> message, Nanos timeout = Nanos::zero()) noexcept;

  uint32_t max_message() const { return max_message_; }  // the pool's block size
  uint32_t inline_max() const { return inline_max_; }    // the ring's record room - 8

 private:
  ChannelSender(std::shared_ptr<void> keepalive, SpscProducer ring,
                std::shared_ptr<BlockPool> pool);
  Status ReserveRecord(uint32_t payload, Nanos timeout, std::span<std::byte>* out) noexcept;

  std::shared_ptr<void> keepalive_;  // first: the daemon's leases outlive the handles
  SpscProducer ring_;
  std::shared_ptr<BlockPool> pool_;
  uint32_t max_message_ = 0;
  uint32_t inline_max_ = 0;
};

// A received message. Holds its bytes until destroyed or passed to Receive again.
class ChannelMessage {
 public:
  ChannelMessage() = default;
  ChannelMessage(ChannelMessage&& other) noexcept { *this = std::move(other); }
  ChannelMessage& operator=(ChannelMessage&& other) noexcept;
  ~ChannelMessage() { Reset(); }

  std::span<const std::byte> bytes() const { return bytes_; }
  size_t size() const { return bytes_.size(); }
  bool zero_copy() const { return pool_ != nullptr; }  // a pool block, not an inline copy
  void Reset() noexcept;                               // frees the block now

 private:
  friend class ChannelReceiver;
  std::shared_ptr<BlockPool> pool_;  // set while it holds a block
  uint32_t index_ = layout::kNilBlock;
  std::vector<std::byte> copy_;  // an inline message's bytes (capacity kept across reuse)
  std::span<const std::byte> bytes_;
};

class ChannelReceiver {
 public:
  static Result<ChannelReceiver> Attach(std::shared_ptr<Segment> ring,
                                        std::shared_ptr<Segment> pool,
                                        const WaitOptions& wait = {});
  static Result<ChannelReceiver> Open(const ShmDir& dir, std::string_view name,
                                      const WaitOptions& wait = {});
  static Result<ChannelReceiver> Open(Client& client, std::string_view name,
                                      const WaitOptions& wait = {});
  static Result<ChannelReceiver> Assemble(std::shared_ptr<void> keepalive, SpscConsumer ring,
                                          BlockPool pool);

  // The next message into *out (whatever *out held is let go first). kEmpty (timeout 0)
  // or kTimeout, kPeerGone once the sender has gone and everything is read, kClosed if
  // the channel was deleted, kCorrupted for a record that is not a channel message (it
  // is skipped: the next call reads on).
  Status Receive(ChannelMessage* out, Nanos timeout = Nanos::zero()) noexcept;
  // Copy-out for small messages: kTooLarge (*size = its length, the message stays) if
  // `buffer` is too small.
  Status Receive(std::span<std::byte> buffer, size_t* size, Nanos timeout = Nanos::zero()) noexcept;

  // The ring's consumer, e.g. for a WaitSet: WaitSourceOf(receiver.ring()) (wait_set.h)
  // is readable when a message is waiting, peer_gone when the sender has left.
  const SpscConsumer& ring() const { return ring_; }

 private:
  ChannelReceiver(std::shared_ptr<void> keepalive, SpscConsumer ring,
                  std::shared_ptr<BlockPool> pool);
  Status Next(MessageView* view, Nanos timeout) noexcept;

  std::shared_ptr<void> keepalive_;  // first: the daemon's leases outlive the handles
  SpscConsumer ring_;
  std::shared_ptr<BlockPool> pool_;
};

}  // namespace shmd
