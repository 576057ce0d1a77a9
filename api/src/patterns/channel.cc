// Channel: an SPSC ring of ChannelFrame records plus a block pool (channel.h).
#include "shmd/client/channel.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <utility>

namespace shmd {
namespace {

// "Wait forever" as a timeout that Clock::now() + timeout cannot overflow.
Nanos Bounded(Nanos timeout) { return std::min<Nanos>(timeout, std::chrono::hours(24 * 365 * 10)); }

// A block record's payload: the frame, then the descriptor.
constexpr uint32_t kBlockRecordPayload = sizeof(ChannelFrame) + sizeof(layout::BlockDescriptor);

// Either end, embedded: its ring handle and a pool handle on the two mapped objects...
template <class End, class RingHandle>
Result<End> AttachEnd(std::shared_ptr<Segment> ring, std::shared_ptr<Segment> pool,
                      const WaitOptions& wait) {
  Result<RingHandle> handle = RingHandle::Attach(std::move(ring), wait);
  if (!handle.ok()) return handle.error();
  Result<BlockPool> blocks = BlockPool::Attach(std::move(pool), wait);
  if (!blocks.ok()) return blocks.error();
  return End::Assemble(nullptr, std::move(handle).value(), std::move(blocks).value());
}

// ...and the two objects of channel `name` in `dir`, mapped.
template <class End>
Result<End> OpenEnd(const ShmDir& dir, std::string_view name, const WaitOptions& wait) {
  auto ring = OpenShared(dir, ChannelRingName(name), layout::ObjectKind::kSpscRing);
  if (!ring.ok()) return ring.error();
  auto pool = OpenShared(dir, ChannelPoolName(name), layout::ObjectKind::kBlockPool);
  if (!pool.ok()) return pool.error();
  return End::Attach(std::move(ring).value(), std::move(pool).value(), wait);
}

}  // namespace

std::string ChannelRingName(std::string_view name) { return std::string(name); }
std::string ChannelPoolName(std::string_view name) { return std::string(name) + ".blocks"; }

Result<ChannelGeometry> ChannelGeometryFor(const ChannelSpec& spec) {
  if (spec.max_message == 0 || spec.max_message > (1u << 30)) {
    return Error(ErrorCode::kInvalidArgument, "channel max_message must be 1 byte to 1 GiB, not " +
                                                  std::to_string(spec.max_message));
  }
  if (spec.depth == 0 || spec.depth > 65536) {
    return Error(ErrorCode::kInvalidArgument,
                 "channel depth must be 1 to 65536 messages, not " + std::to_string(spec.depth));
  }
  if (spec.inline_max > kChannelInlineLimit) {
    return Error(ErrorCode::kInvalidArgument, "channel inline_max must be at most " +
                                                  std::to_string(kChannelInlineLimit) +
                                                  " bytes, not " + std::to_string(spec.inline_max));
  }
  ChannelGeometry g;
  // A block record (16 bytes of payload) must fit too, so the room is at least that.
  const uint32_t inline_max = std::min(spec.inline_max, spec.max_message);
  const uint32_t record_room =
      std::max<uint32_t>(sizeof(ChannelFrame) + inline_max, kBlockRecordPayload);
  // Room for `depth` of the largest records, plus one more for the padding at a wrap.
  const uint64_t bytes = (uint64_t{spec.depth} + 1) * layout::RecordSize(record_room);
  g.ring.capacity = std::bit_ceil(std::max<uint64_t>(4096, bytes));
  g.ring.max_message = record_room;
  g.pool.block_size = (spec.max_message + 63) / 64 * 64;
  g.pool.block_count = spec.depth;
  return g;
}

VoidResult CreateChannel(const ShmDir& dir, std::string_view name, const ChannelSpec& spec,
                         const CreateOptions& options) {
  Result<ChannelGeometry> g = ChannelGeometryFor(spec);
  if (!g.ok()) return g.error();
  CreateOptions with_mode = options;
  with_mode.mode = spec.mode;
  Result<Segment> ring = CreateSpscRing(dir, ChannelRingName(name), g->ring, with_mode);
  if (!ring.ok()) return ring.error();
  Result<Segment> pool = CreateBlockPool(dir, ChannelPoolName(name), g->pool, with_mode);
  if (!pool.ok()) {
    (void)Segment::Remove(dir, ChannelRingName(name));  // no half-made channel left behind
    return pool.error();
  }
  return Ok{};
}

VoidResult RemoveChannel(const ShmDir& dir, std::string_view name) {
  VoidResult ring = Segment::Remove(dir, ChannelRingName(name));
  VoidResult pool = Segment::Remove(dir, ChannelPoolName(name));
  for (const VoidResult* r : {&ring, &pool}) {
    if (!r->ok() && r->error().code() != ErrorCode::kNotFound) return r->error();
  }
  return Ok{};
}

// --- ChannelLoan ---------------------------------------------------------------------

ChannelLoan& ChannelLoan::operator=(ChannelLoan&& other) noexcept {
  if (this != &other) {
    Reset();
    pool_ = std::move(other.pool_);
    block_ = other.block_;
    size_ = other.size_;
    other.size_ = 0;
  }
  return *this;
}

void ChannelLoan::Reset() noexcept {
  if (pool_ != nullptr) (void)pool_->Free(block_.index);
  pool_.reset();
  size_ = 0;
}

// --- ChannelSender -------------------------------------------------------------------

ChannelSender::ChannelSender(std::shared_ptr<void> keepalive, SpscProducer ring,
                             std::shared_ptr<BlockPool> pool)
    : keepalive_(std::move(keepalive)),
      ring_(std::move(ring)),
      pool_(std::move(pool)),
      max_message_(pool_->block_size()),
      inline_max_(ring_.max_message() - sizeof(ChannelFrame)) {}

Result<ChannelSender> ChannelSender::Assemble(std::shared_ptr<void> keepalive, SpscProducer ring,
                                              BlockPool pool) {
  if (ring.max_message() < kBlockRecordPayload) {
    return Error(ErrorCode::kInvalidArgument,
                 "ring " + ring.segment().name() + " is not a channel's ring: its records " +
                     "hold " + std::to_string(ring.max_message()) + " bytes, a channel's " +
                     "at least " + std::to_string(kBlockRecordPayload));
  }
  return ChannelSender(std::move(keepalive), std::move(ring),
                       std::make_shared<BlockPool>(std::move(pool)));
}

Result<ChannelSender> ChannelSender::Attach(std::shared_ptr<Segment> ring,
                                            std::shared_ptr<Segment> pool,
                                            const WaitOptions& wait) {
  return AttachEnd<ChannelSender, SpscProducer>(std::move(ring), std::move(pool), wait);
}

Result<ChannelSender> ChannelSender::Open(const ShmDir& dir, std::string_view name,
                                          const WaitOptions& wait) {
  return OpenEnd<ChannelSender>(dir, name, wait);
}

Status ChannelSender::Loan(uint32_t size, ChannelLoan* out, Nanos timeout) noexcept {
  out->Reset();
  if (size == 0) return Status::kInvalidArgument;
  if (size > max_message_) return Status::kTooLarge;
  Block block;
  Status s = timeout <= Nanos::zero() ? pool_->TryAllocate(&block)
                                      : pool_->AllocateFor(&block, Bounded(timeout));
  if (s != Status::kOk) return s;
  out->pool_ = pool_;
  out->block_ = block;
  out->size_ = size;
  return Status::kOk;
}

Status ChannelSender::ReserveRecord(uint32_t payload, Nanos timeout,
                                    std::span<std::byte>* out) noexcept {
  return timeout <= Nanos::zero() ? ring_.TryReserve(payload, out)
                                  : ring_.ReserveFor(payload, Bounded(timeout), out);
}

Status ChannelSender::Publish(ChannelLoan&& loan, Nanos timeout, uint32_t length) noexcept {
  if (loan.pool_ != pool_) return Status::kInvalidArgument;  // empty, or another channel's
  if (length == 0) length = loan.size_;
  if (length > loan.size_) return Status::kTooLarge;
  // Room in the ring first: if there is none, the loan stays the caller's, untouched.
  std::span<std::byte> record;
  Status s = ReserveRecord(kBlockRecordPayload, timeout, &record);
  if (s != Status::kOk) return s;
  layout::BlockDescriptor descriptor;
  // Cannot fail: the block is this handle's (Loan checked it), and length <= block size.
  // Its release CAS orders the message's bytes before the owner change; the ring's
  // release store of the record header (Commit) publishes both to the receiver.
  (void)pool_->Handoff(loan.block_.index, length, &descriptor);
  const ChannelFrame frame{kChannelBlock, length};
  std::memcpy(record.data(), &frame, sizeof(frame));
  std::memcpy(record.data() + sizeof(frame), &descriptor, sizeof(descriptor));
  ring_.Commit(kBlockRecordPayload);
  loan.pool_.reset();  // now in transit: the receiver frees it
  loan.size_ = 0;
  return Status::kOk;
}

Status ChannelSender::Send(std::span<const std::byte> message, Nanos timeout) noexcept {
  if (message.empty()) return Status::kInvalidArgument;
  if (message.size() > max_message_) return Status::kTooLarge;
  const uint32_t size = static_cast<uint32_t>(message.size());
  if (size > inline_max_) {
    ChannelLoan loan;
    Status s = Loan(size, &loan, timeout);
    if (s != Status::kOk) return s;
    std::memcpy(loan.bytes().data(), message.data(), size);
    return Publish(std::move(loan), timeout);
  }
  std::span<std::byte> record;
  Status s = ReserveRecord(sizeof(ChannelFrame) + size, timeout, &record);
  if (s != Status::kOk) return s;
  const ChannelFrame frame{kChannelInline, size};
  std::memcpy(record.data(), &frame, sizeof(frame));
  std::memcpy(record.data() + sizeof(frame), message.data(), size);
  ring_.Commit(sizeof(ChannelFrame) + size);
  return Status::kOk;
}

// --- ChannelMessage ------------------------------------------------------------------

ChannelMessage& ChannelMessage::operator=(ChannelMessage&& other) noexcept {
  if (this != &other) {
    Reset();
    pool_ = std::move(other.pool_);
    index_ = other.index_;
    const bool inline_copy = !other.bytes_.empty() && pool_ == nullptr;
    copy_ = std::move(other.copy_);
    bytes_ = inline_copy ? std::span<const std::byte>(copy_) : other.bytes_;
    other.bytes_ = {};
  }
  return *this;
}

void ChannelMessage::Reset() noexcept {
  if (pool_ != nullptr) (void)pool_->Free(index_);
  pool_.reset();
  index_ = layout::kNilBlock;
  bytes_ = {};
}

// --- ChannelReceiver -----------------------------------------------------------------

ChannelReceiver::ChannelReceiver(std::shared_ptr<void> keepalive, SpscConsumer ring,
                                 std::shared_ptr<BlockPool> pool)
    : keepalive_(std::move(keepalive)), ring_(std::move(ring)), pool_(std::move(pool)) {}

Result<ChannelReceiver> ChannelReceiver::Assemble(std::shared_ptr<void> keepalive,
                                                  SpscConsumer ring, BlockPool pool) {
  return ChannelReceiver(std::move(keepalive), std::move(ring),
                         std::make_shared<BlockPool>(std::move(pool)));
}

Result<ChannelReceiver> ChannelReceiver::Attach(std::shared_ptr<Segment> ring,
                                                std::shared_ptr<Segment> pool,
                                                const WaitOptions& wait) {
  return AttachEnd<ChannelReceiver, SpscConsumer>(std::move(ring), std::move(pool), wait);
}

Result<ChannelReceiver> ChannelReceiver::Open(const ShmDir& dir, std::string_view name,
                                              const WaitOptions& wait) {
  return OpenEnd<ChannelReceiver>(dir, name, wait);
}

Status ChannelReceiver::Next(MessageView* view, Nanos timeout) noexcept {
  Status s = timeout <= Nanos::zero() ? ring_.TryPeek(view) : ring_.PeekFor(view, Bounded(timeout));
  if (s != Status::kOk) return s;
  ChannelFrame frame;
  if (view->size < sizeof(frame)) {
    ring_.Release();
    return Status::kCorrupted;
  }
  std::memcpy(&frame, view->data, sizeof(frame));
  const bool inline_ok = frame.kind == kChannelInline && frame.length == view->size - sizeof(frame);
  layout::BlockDescriptor descriptor{};
  if (view->size == kBlockRecordPayload) {
    std::memcpy(&descriptor, view->data + sizeof(frame), sizeof(descriptor));
  }
  const bool block_ok = frame.kind == kChannelBlock && view->size == kBlockRecordPayload &&
                        descriptor.length == frame.length && frame.length != 0;
  if (!inline_ok && !block_ok) {
    ring_.Release();  // never read: a record that is not a channel message is skipped
    return Status::kCorrupted;
  }
  return Status::kOk;
}

Status ChannelReceiver::Receive(ChannelMessage* out, Nanos timeout) noexcept {
  out->Reset();
  MessageView view;
  Status s = Next(&view, timeout);
  if (s != Status::kOk) return s;
  ChannelFrame frame;
  std::memcpy(&frame, view.data, sizeof(frame));
  if (frame.kind == kChannelInline) {
    out->copy_.assign(view.data + sizeof(frame), view.data + view.size);
    out->bytes_ = out->copy_;
    ring_.Release();
    return Status::kOk;
  }
  layout::BlockDescriptor descriptor;
  std::memcpy(&descriptor, view.data + sizeof(frame), sizeof(descriptor));
  ring_.Release();  // the descriptor is copied out: the ring's room can be reused
  std::span<const std::byte> bytes;
  // Accept checks index, length and that the block is in transit (kCorrupted if not);
  // its acquire CAS pairs with the sender's release Handoff.
  s = pool_->Accept(descriptor, &bytes);
  if (s != Status::kOk) return s;
  out->pool_ = pool_;
  out->index_ = descriptor.index;
  out->bytes_ = bytes;
  return Status::kOk;
}

Status ChannelReceiver::Receive(std::span<std::byte> buffer, size_t* size, Nanos timeout) noexcept {
  MessageView view;
  Status s = Next(&view, timeout);
  if (s != Status::kOk) return s;
  ChannelFrame frame;
  std::memcpy(&frame, view.data, sizeof(frame));
  *size = frame.length;
  if (frame.length > buffer.size()) {
    // Left for a larger buffer: a peek that is not released is peeked again next call.
    return Status::kTooLarge;
  }
  if (frame.kind == kChannelInline) {
    std::memcpy(buffer.data(), view.data + sizeof(frame), frame.length);
    ring_.Release();
    return Status::kOk;
  }
  layout::BlockDescriptor descriptor;
  std::memcpy(&descriptor, view.data + sizeof(frame), sizeof(descriptor));
  ring_.Release();
  std::span<const std::byte> bytes;
  s = pool_->Accept(descriptor, &bytes);
  if (s != Status::kOk) return s;
  std::memcpy(buffer.data(), bytes.data(), bytes.size());
  (void)pool_->Free(descriptor.index);
  return Status::kOk;
}

}  // namespace shmd
