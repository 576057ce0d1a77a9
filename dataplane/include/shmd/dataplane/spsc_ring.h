// Single-producer single-consumer ring of variable-length messages (1 byte up to the
// ring's max_message), every message contiguous and readable in place. Layout and
// record format: layout.h ("SPSC byte ring").
//
// Thread safety: one SpscProducer and one SpscConsumer per ring at a time (the endpoint
// table enforces it across processes); each handle is used by one thread at a time.
// Blocking calls return kPeerGone when the other side has died or detached and nothing
// is left to read (or no room will ever come), and kClosed when the ring was deleted.
//
// Memory ordering, by label:
//   (A) the producer's release store of a record header publishes the payload, the
//       zeroed header slot after it, and any records of the same batch;
//   (B) the consumer's acquire load of that header pairs with (A);
//   (C) the consumer's release store of consumer_position tells the producer it has
//       finished reading the bytes before it;
//   (D) the producer's acquire load of consumer_position pairs with (C) before it
//       overwrites those bytes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

#include "shmd/dataplane/endpoints.h"
#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/message_view.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"
#include "shmd/dataplane/status.h"
#include "shmd/dataplane/wait.h"

namespace shmd {

struct SpscRingSpec {
  uint64_t capacity = 1 << 20;  // bytes of the data area: a power of two, >= 4096
  uint32_t max_message = 0;     // 0: the largest the capacity allows (capacity/2 - 16)
};

// Creates the ring's file in `dir`. The ring is empty and has no endpoints.
Result<Segment> CreateSpscRing(const ShmDir& dir, std::string_view name, const SpscRingSpec& spec,
                               const CreateOptions& options = {});

enum class Publish : uint8_t {
  kNow,       // the consumer may see the message as soon as Commit returns
  kDeferred,  // held back until Flush(), or the next kNow commit: one release per batch
};

class SpscProducer {
 public:
  static Result<SpscProducer> Attach(std::shared_ptr<Segment> segment,
                                     const WaitOptions& wait = {});
  static Result<SpscProducer> Open(const ShmDir& dir, std::string_view name,
                                   const WaitOptions& wait = {});

  SpscProducer(SpscProducer&& other) noexcept;
  SpscProducer& operator=(SpscProducer&& other) noexcept;
  ~SpscProducer();  // flushes a pending batch and detaches

  // Copying sends. kTooLarge if the message exceeds max_message; kInvalidArgument if empty.
  Status TrySend(std::span<const std::byte> message) noexcept;
  Status Send(std::span<const std::byte> message) noexcept {
    Status s = TrySend(message);
    return s == Status::kFull ? SendUntil(message, Clock::time_point::max()) : s;
  }
  Status SendFor(std::span<const std::byte> message, Nanos timeout) noexcept {
    // The clock is read only when the fast path fails: it costs as much as a send.
    Status s = TrySend(message);
    return s == Status::kFull ? SendUntil(message, Clock::now() + timeout) : s;
  }
  Status TrySend(const void* data, size_t size) noexcept {
    return TrySend({static_cast<const std::byte*>(data), size});
  }

  // Sends as many of `messages` as fit, in order, published with one release store.
  // *sent says how many went; kFull if not all of them did.
  Status TrySendBatch(std::span<const std::span<const std::byte>> messages, size_t* sent) noexcept;

  // Zero-copy: reserve `size` bytes in the ring, write them, then Commit (with a size up
  // to the reserved one). One reservation at a time.
  Status TryReserve(uint32_t size, std::span<std::byte>* out) noexcept;
  Status ReserveFor(uint32_t size, Nanos timeout, std::span<std::byte>* out) noexcept;
  void Commit(uint32_t size, Publish publish = Publish::kNow) noexcept;
  // Publishes every deferred commit at once.
  void Flush() noexcept;

  uint32_t max_message() const { return max_message_; }
  uint64_t capacity() const { return capacity_; }
  const Segment& segment() const { return *segment_; }

 private:
  SpscProducer(std::shared_ptr<Segment> segment, uint32_t slot, const WaitOptions& wait);
  Status SendUntil(std::span<const std::byte> message, Clock::time_point deadline) noexcept;
  Status ReserveUntil(uint32_t size, Clock::time_point deadline,
                      std::span<std::byte>* out) noexcept;
  bool HasRoom(uint64_t record_size) noexcept;
  std::atomic<uint64_t>& HeaderAt(uint64_t position) const {
    return *reinterpret_cast<std::atomic<uint64_t>*>(data_ + (position & mask_));
  }
  void StoreHeader(uint64_t position, uint64_t header) noexcept;
  void Detach() noexcept;

  std::shared_ptr<Segment> segment_;
  layout::SpscControl* control_ = nullptr;
  uint8_t* data_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t mask_ = 0;
  uint32_t max_message_ = 0;
  uint32_t slot_ = layout::kMaxEndpoints;
  // Process-local state, never in shared memory.
  uint64_t position_ = 0;          // where the next record goes
  uint64_t cached_consumer_ = 0;   // last consumer_position seen: refreshed when "full"
  uint64_t pending_position_ = 0;  // first unpublished header of the batch...
  uint64_t pending_header_ = 0;    // ...and its value (0: nothing pending)
  uint64_t reserved_ = 0;          // payload bytes of the open reservation (0: none)
  uint64_t messages_ = 0;          // totals mirrored into the shared counters on publish
  uint64_t bytes_ = 0;
  uint64_t full_events_ = 0;
  WaitOptions wait_;
  AdaptiveSpin spin_{std::chrono::microseconds(50)};
  PeerWatch consumer_;
};

class SpscConsumer {
 public:
  static Result<SpscConsumer> Attach(std::shared_ptr<Segment> segment,
                                     const WaitOptions& wait = {});
  static Result<SpscConsumer> Open(const ShmDir& dir, std::string_view name,
                                   const WaitOptions& wait = {});

  SpscConsumer(SpscConsumer&& other) noexcept;
  SpscConsumer& operator=(SpscConsumer&& other) noexcept;
  ~SpscConsumer();  // detaches (an unreleased peek is left for the next consumer)

  // Zero-copy: look at the next message in place, then Release it.
  Status TryPeek(MessageView* out) noexcept;
  Status Peek(MessageView* out) noexcept { return PeekUntil(out, Clock::time_point::max()); }
  Status PeekFor(MessageView* out, Nanos timeout) noexcept {
    Status s = TryPeek(out);
    return s == Status::kEmpty ? PeekUntil(out, Clock::now() + timeout) : s;
  }
  void Release() noexcept;

  // Copying receives. kTooLarge (and the message stays in the ring) if `buffer` is smaller
  // than the message: nothing is ever truncated.
  Status TryReceive(std::span<std::byte> buffer, size_t* size) noexcept;
  Status Receive(std::span<std::byte> buffer, size_t* size) noexcept {
    return ReceiveUntil(buffer, size, Clock::time_point::max());
  }
  Status ReceiveFor(std::span<std::byte> buffer, size_t* size, Nanos timeout) noexcept {
    Status s = TryReceive(buffer, size);
    return s == Status::kEmpty ? ReceiveUntil(buffer, size, Clock::now() + timeout) : s;
  }

  uint32_t max_message() const { return max_message_; }
  const Segment& segment() const { return *segment_; }
  // The mapping itself, for whoever must keep it alive past this handle (wait_set.h).
  const std::shared_ptr<Segment>& shared_segment() const { return segment_; }

 private:
  SpscConsumer(std::shared_ptr<Segment> segment, uint32_t slot, const WaitOptions& wait);
  Status PeekUntil(MessageView* out, Clock::time_point deadline) noexcept;
  Status ReceiveUntil(std::span<std::byte> buffer, size_t* size,
                      Clock::time_point deadline) noexcept;
  const std::atomic<uint64_t>& HeaderAt(uint64_t position) const {
    return *reinterpret_cast<const std::atomic<uint64_t>*>(data_ + (position & mask_));
  }
  void Detach() noexcept;
  bool ProducerLeftAfterWriting() const noexcept;

  std::shared_ptr<Segment> segment_;
  layout::SpscControl* control_ = nullptr;
  const uint8_t* data_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t mask_ = 0;
  uint32_t max_message_ = 0;
  uint32_t slot_ = layout::kMaxEndpoints;
  uint64_t position_ = 0;           // start of the next record to read
  uint64_t attached_position_ = 0;  // position_ at Attach: has this consumer read anything?
  uint64_t peeked_ = 0;             // record size of the message handed out by TryPeek (0: none)
  uint32_t peeked_len_ = 0;
  uint64_t messages_ = 0;
  uint64_t bytes_ = 0;
  WaitOptions wait_;
  AdaptiveSpin spin_{std::chrono::microseconds(50)};
  PeerWatch producer_;
};

// --- hot path, inline ------------------------------------------------------------------

inline bool SpscProducer::HasRoom(uint64_t needed) noexcept {
  // `needed` counts the record(s) plus the 8-byte header slot zeroed after them.
  if (position_ + needed - cached_consumer_ <= capacity_) return true;
  // (D): pairs with the consumer's (C); after it the bytes before cached_consumer_ are
  // no longer read by the consumer and may be overwritten.
  cached_consumer_ = control_->consumer_position.load(std::memory_order_acquire);
  return position_ + needed - cached_consumer_ <= capacity_;
}

inline void SpscProducer::StoreHeader(uint64_t position, uint64_t header) noexcept {
  if (pending_header_ == 0) {
    // First header of a publication: held back and stored last, with release, by Flush.
    pending_position_ = position;
    pending_header_ = header;
  } else {
    // Unreachable until the pending header is released: relaxed is enough.
    HeaderAt(position).store(header, std::memory_order_relaxed);
  }
}

inline Status SpscProducer::TryReserve(uint32_t size, std::span<std::byte>* out) noexcept {
  if (size == 0 || reserved_ != 0) return Status::kInvalidArgument;
  if (size > max_message_) return Status::kTooLarge;
  const uint64_t record = layout::RecordSize(size);
  const uint64_t offset = position_ & mask_;
  const uint64_t tail = capacity_ - offset;
  const bool wraps = record > tail;
  if (!HasRoom((wraps ? tail : 0) + record + layout::kRecordHeaderSize)) {
    ++full_events_;
    control_->full_events.store(full_events_, std::memory_order_relaxed);
    return Status::kFull;
  }
  if (wraps) {
    // A padding record fills the tail so the message starts at offset 0, contiguous. The
    // message's own header there is written by Commit, before anything is published.
    StoreHeader(position_,
                layout::PackRecordHeader(static_cast<uint32_t>(tail - layout::kRecordHeaderSize),
                                         layout::RecordType::kPadding));
    position_ += tail;
  }
  reserved_ = size;
  *out = {reinterpret_cast<std::byte*>(data_ + (position_ & mask_) + layout::kRecordHeaderSize),
          size};
  return Status::kOk;
}

inline void SpscProducer::Commit(uint32_t size, Publish publish) noexcept {
  if (size == 0 || size > reserved_) size = static_cast<uint32_t>(reserved_);
  reserved_ = 0;
  const uint64_t record = layout::RecordSize(size);
  // The next record's header slot must read 0 until that record is published, or the
  // consumer could take an earlier lap's bytes for a header. Ordered by (A).
  HeaderAt(position_ + record).store(0, std::memory_order_relaxed);
  StoreHeader(position_, layout::PackRecordHeader(size, layout::RecordType::kMessage));
  position_ += record;
  ++messages_;
  bytes_ += size;
  if (publish == Publish::kNow) Flush();
}

inline void SpscProducer::Flush() noexcept {
  if (pending_header_ == 0) return;
  // (A): publishes every byte written since the last flush.
  HeaderAt(pending_position_).store(pending_header_, std::memory_order_release);
  pending_header_ = 0;
  // For metrics and for a producer that replaces us: the published position and totals.
  // Single writer, so plain stores; relaxed because nothing is published through them.
  control_->producer_position.store(position_, std::memory_order_relaxed);
  control_->messages_written.store(messages_, std::memory_order_relaxed);
  control_->bytes_written.store(bytes_, std::memory_order_relaxed);
  Wake(control_->data_ready);
}

inline Status SpscProducer::TrySend(std::span<const std::byte> message) noexcept {
  if (message.size() > max_message_) return Status::kTooLarge;
  std::span<std::byte> room;
  Status s = TryReserve(static_cast<uint32_t>(message.size()), &room);
  if (s != Status::kOk) return s;
  std::memcpy(room.data(), message.data(), message.size());
  Commit(static_cast<uint32_t>(message.size()));
  return Status::kOk;
}

inline Status SpscConsumer::TryPeek(MessageView* out) noexcept {
  for (;;) {
    const uint64_t offset = position_ & mask_;
    // (B): pairs with the producer's (A).
    const uint64_t header = HeaderAt(position_).load(std::memory_order_acquire);
    if (header == 0) return Status::kEmpty;
    const uint32_t length = layout::RecordLength(header);
    const uint32_t type = layout::RecordTypeOf(header);
    if (type == static_cast<uint32_t>(layout::RecordType::kMessage)) {
      const uint64_t record = layout::RecordSize(length);
      // Never trust a length from shared memory: it must fit the ring and the limit.
      if (length == 0 || length > max_message_ || offset + record > capacity_) {
        return Status::kCorrupted;
      }
      out->data = reinterpret_cast<const std::byte*>(data_ + offset + layout::kRecordHeaderSize);
      out->size = length;
      peeked_ = record;
      peeked_len_ = length;
      return Status::kOk;
    }
    // Padding must run to the end of the data area, and never starts at offset 0: there the
    // whole area is free, and every record fits (max_message < capacity / 2). Padding at 0
    // would send this loop round the ring forever (the fuzzer found it).
    if (type != static_cast<uint32_t>(layout::RecordType::kPadding) || offset == 0 ||
        offset + layout::kRecordHeaderSize + length != capacity_) {
      return Status::kCorrupted;
    }
    // Padding to the end of the data area: the message is at offset 0, published with it.
    position_ += capacity_ - offset;
  }
}

inline void SpscConsumer::Release() noexcept {
  if (peeked_ == 0) return;
  position_ += peeked_;
  peeked_ = 0;
  ++messages_;
  bytes_ += peeked_len_;
  control_->messages_read.store(messages_, std::memory_order_relaxed);
  control_->bytes_read.store(bytes_, std::memory_order_relaxed);
  // (C): the bytes before position_ are read; the producer may reuse them.
  control_->consumer_position.store(position_, std::memory_order_release);
  Wake(control_->space_ready);
}

inline Status SpscConsumer::TryReceive(std::span<std::byte> buffer, size_t* size) noexcept {
  MessageView view;
  Status s = TryPeek(&view);
  if (s != Status::kOk) return s;
  if (view.size > buffer.size()) {
    peeked_ = 0;  // leave it in the ring for a larger buffer
    *size = view.size;
    return Status::kTooLarge;
  }
  std::memcpy(buffer.data(), view.data, view.size);
  *size = view.size;
  Release();
  return Status::kOk;
}

}  // namespace shmd
