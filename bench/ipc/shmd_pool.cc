// shmd-pool: shmd's zero-copy path. A BlockPool holds the messages; an SPSC ring carries
// only their 8-byte layout::BlockDescriptor. Default WaitOptions on the pool and the rings
// (adaptive spin, then futex), as a user gets them.
//
// Stream: the sender allocates a block (AllocateFor), writes the message into it (it is the
// sender's job to produce the bytes, as in every row: a memcpy of the sequence-stamped
// pattern), Handoff()s it and sends the descriptor; the receiver takes the descriptor,
// Accept()s the block, checks every byte in place with MessageChecker, and Free()s it.
//
// Ping-pong: the point of the zero-copy path is that a round trip costs the same at any size,
// because no payload moves. So the initiator allocates one block and fills the whole message
// once, before the timed loop; each round trip then writes the 8-byte sequence number into
// it, hands it off through the "fwd" descriptor ring, and gets it back through "back". The
// echo side Accept()s it, checks the sequence number in place and hands the same block back.
// Per round trip: two descriptors, two Handoffs and two Accepts (each a compare-exchange on
// the block's owner word), and the cache line holding the sequence number; no payload copy.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench/ipc/harness.h"
#include "bench/ipc/mechanism.h"
#include "bench/ipc/message.h"
#include "bench/ipc/shmd_common.h"
#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/spsc_ring.h"

namespace shmd::bench {
namespace {

constexpr std::string_view kPool = "pool";
constexpr std::string_view kForward = "fwd";    // descriptors, sender to receiver
constexpr std::string_view kBackward = "back";  // descriptors, receiver to sender (ping-pong)

constexpr uint64_t kDescriptorRecord = layout::RecordSize(sizeof(layout::BlockDescriptor));

uint32_t BlockSizeFor(size_t size) { return static_cast<uint32_t>((size + 63) / 64 * 64); }

// Stream: as many bytes of blocks as the copying rows' ring has (1 MiB: 16,384 blocks of
// 64 B, 16 of 64 KiB), at least 16 blocks. Ping-pong uses one.
uint32_t BlockCountFor(const RunSpec& spec) {
  if (spec.mode == Mode::kPingPong) return 4;
  const uint64_t bytes = SpscCapacityFor(spec.size);
  return static_cast<uint32_t>(std::max<uint64_t>(16, bytes / BlockSizeFor(spec.size)));
}

// A descriptor ring never fills before the pool empties: room for every block, plus one.
uint64_t DescriptorRingFor(uint32_t blocks) {
  return std::max<uint64_t>(layout::kMinSpscCapacity,
                            std::bit_ceil(kDescriptorRecord * (uint64_t{blocks} + 2)));
}

Status BadDescriptor(uint64_t seq, size_t size) {
  return Status::Error("message " + std::to_string(seq) + ": a descriptor of " +
                       std::to_string(size) + " bytes arrived, expected " +
                       std::to_string(sizeof(layout::BlockDescriptor)));
}

class PoolEndpoint final : public Endpoint {
 public:
  PoolEndpoint(BlockPool pool, std::optional<SpscProducer> out, std::optional<SpscConsumer> in)
      : pool_(std::move(pool)), out_(std::move(out)), in_(std::move(in)) {}

  Status StreamSend(const RunSpec& spec) override {
    MessageBuffer msg(spec.size);
    const uint32_t length = static_cast<uint32_t>(spec.size);
    for (uint64_t seq = 0; seq < spec.count; ++seq) {
      Block block;
      ::shmd::Status s = pool_.AllocateFor(&block, kShmdTimeout);
      if (s != ::shmd::Status::kOk) [[unlikely]]
        return ShmdCallError("allocating a block for", seq, s);
      msg.SetSequence(seq);
      std::memcpy(block.data, msg.data(), spec.size);
      if (Status st = HandOver(block.index, length, seq); !st.ok()) [[unlikely]]
        return st;
    }
    return {};
  }

  Status StreamReceive(const RunSpec& spec, StreamTiming* timing) override {
    const MessageChecker checker(spec.size);
    Status error;
    for (uint64_t seq = 0; seq < spec.count; ++seq) {
      layout::BlockDescriptor descriptor;
      std::span<const std::byte> bytes;
      if (Status st = TakeOver(seq, &descriptor, &bytes); !st.ok()) [[unlikely]]
        return st;
      if (bytes.size() != spec.size) [[unlikely]]
        return WrongSizeError(seq, bytes.size(), spec.size);
      if (!checker.Check(bytes.data(), seq, &error)) [[unlikely]]
        return error;
      const ::shmd::Status s = pool_.Free(descriptor.index);
      if (s != ::shmd::Status::kOk) [[unlikely]]
        return ShmdCallError("freeing the block of", seq, s);
      if (seq == 0) timing->first_ns = NowNs();
    }
    timing->last_ns = NowNs();
    timing->messages = spec.count - 1;
    return {};
  }

  Status PingPongInitiate(const RunSpec& spec, std::vector<int64_t>* rtt_ns) override {
    Block block;
    ::shmd::Status s = pool_.AllocateFor(&block, kShmdTimeout);
    if (s != ::shmd::Status::kOk) return ShmdCallError("allocating the block for", 0, s);
    // The whole message is written once; from here on only its sequence number changes.
    FillPayload(block.data, spec.size);
    const uint32_t length = static_cast<uint32_t>(spec.size);
    const uint64_t total = spec.warmup + spec.count;
    Status error;
    int64_t last_send = 0;
    uint32_t index = block.index;
    std::byte* data = block.data;
    for (uint64_t seq = 0; seq < total; ++seq) {
      WriteSequence(data, seq);
      if (Status st = HandOver(index, length, seq); !st.ok()) [[unlikely]]
        return st;
      const int64_t sent = NowNs();  // after the send, overlapping the flight
      if (seq >= spec.warmup) (*rtt_ns)[seq - spec.warmup] = sent - last_send;
      last_send = sent;
      layout::BlockDescriptor descriptor;
      std::span<const std::byte> bytes;
      if (Status st = TakeOver(seq, &descriptor, &bytes); !st.ok()) [[unlikely]]
        return st;
      if (bytes.size() != spec.size) [[unlikely]]
        return WrongSizeError(seq, bytes.size(), spec.size);
      if (!MessageChecker::CheckSequence(bytes.data(), seq, &error)) [[unlikely]]
        return error;
      index = descriptor.index;
      data = const_cast<std::byte*>(bytes.data());  // ours again, after Accept
    }
    s = pool_.Free(index);
    if (s != ::shmd::Status::kOk) return ShmdCallError("freeing the block after", total, s);
    return {};
  }

  Status PingPongEcho(const RunSpec& spec) override {
    const uint64_t total = spec.warmup + spec.count;
    Status error;
    for (uint64_t seq = 0; seq < total; ++seq) {
      layout::BlockDescriptor descriptor;
      std::span<const std::byte> bytes;
      if (Status st = TakeOver(seq, &descriptor, &bytes); !st.ok()) [[unlikely]]
        return st;
      if (bytes.size() != spec.size) [[unlikely]]
        return WrongSizeError(seq, bytes.size(), spec.size);
      if (!MessageChecker::CheckSequence(bytes.data(), seq, &error)) [[unlikely]]
        return error;
      if (Status st = HandOver(descriptor.index, descriptor.length, seq); !st.ok()) [[unlikely]]
        return st;
    }
    return {};
  }

 private:
  // Handoff + send of the 8-byte descriptor.
  Status HandOver(uint32_t index, uint32_t length, uint64_t seq) {
    layout::BlockDescriptor descriptor;
    ::shmd::Status s = pool_.Handoff(index, length, &descriptor);
    if (s != ::shmd::Status::kOk) [[unlikely]]
      return ShmdCallError("handing off the block of", seq, s);
    s = out_->SendFor({reinterpret_cast<const std::byte*>(&descriptor), sizeof(descriptor)},
                      kShmdTimeout);
    if (s != ::shmd::Status::kOk) [[unlikely]]
      return ShmdCallError("sending the descriptor of", seq, s);
    return {};
  }

  // Receipt of a descriptor (copied out, its ring space released at once) + Accept.
  Status TakeOver(uint64_t seq, layout::BlockDescriptor* descriptor,
                  std::span<const std::byte>* bytes) {
    MessageView view;
    ::shmd::Status s = in_->PeekFor(&view, kShmdTimeout);
    if (s != ::shmd::Status::kOk) [[unlikely]]
      return ShmdCallError("receiving the descriptor of", seq, s);
    if (view.size != sizeof(*descriptor)) [[unlikely]]
      return BadDescriptor(seq, view.size);
    std::memcpy(descriptor, view.data, sizeof(*descriptor));
    in_->Release();
    s = pool_.Accept(*descriptor, bytes);
    if (s != ::shmd::Status::kOk) [[unlikely]]
      return ShmdCallError("accepting the block of", seq, s);
    return {};
  }

  BlockPool pool_;
  std::optional<SpscProducer> out_;
  std::optional<SpscConsumer> in_;
};

class PoolMechanism final : public Mechanism {
 public:
  std::string_view name() const override { return "shmd-pool"; }
  std::string_view note() const override {
    return "shmd-pool: zero-copy, default waits: a BlockPool of max(16, 1 MiB / size) blocks "
           "(size rounded to 64) + an SPSC ring of 8-byte descriptors. Stream: the sender "
           "allocates, writes the message, hands off; the receiver accepts, checks every byte "
           "in place, frees. Round trip: one block, filled once before timing, goes back and "
           "forth (sequence number written and checked, the payload never copied)";
  }

  Status Prepare(const RunSpec& spec) override {
    spec_ = spec;
    objects_ = ShmdObjects();
    const uint32_t blocks = BlockCountFor(spec);
    Status status = objects_.CreatePool(kPool, BlockSizeFor(spec.size), blocks);
    if (status.ok()) status = objects_.CreateRing(kForward, DescriptorRingFor(blocks));
    if (status.ok() && spec.mode == Mode::kPingPong) {
      status = objects_.CreateRing(kBackward, DescriptorRingFor(blocks));
    }
    return status;
  }

  Status Open(Side side, std::unique_ptr<Endpoint>* endpoint) override {
    const bool sender = side == Side::kSender;
    const bool pingpong = spec_.mode == Mode::kPingPong;
    Result<BlockPool> pool = BlockPool::Open(objects_.dir(), kPool);
    if (!pool.ok()) return ShmdSetupError("opening the block pool", pool.error());
    std::optional<SpscProducer> out;
    std::optional<SpscConsumer> in;
    if (sender || pingpong) {
      const std::string_view ring = sender ? kForward : kBackward;
      Result<SpscProducer> producer = SpscProducer::Open(objects_.dir(), ring);
      if (!producer.ok()) {
        return ShmdSetupError("opening '" + std::string(ring) + "' as producer", producer.error());
      }
      out.emplace(std::move(producer).value());
    }
    if (!sender || pingpong) {
      const std::string_view ring = sender ? kBackward : kForward;
      Result<SpscConsumer> consumer = SpscConsumer::Open(objects_.dir(), ring);
      if (!consumer.ok()) {
        return ShmdSetupError("opening '" + std::string(ring) + "' as consumer", consumer.error());
      }
      in.emplace(std::move(consumer).value());
    }
    *endpoint =
        std::make_unique<PoolEndpoint>(std::move(pool).value(), std::move(out), std::move(in));
    return {};
  }

  void Teardown() override { objects_.RemoveAll(); }

 private:
  RunSpec spec_;
  ShmdObjects objects_;
};

}  // namespace

std::unique_ptr<Mechanism> MakeShmdPool() { return std::make_unique<PoolMechanism>(); }

}  // namespace shmd::bench
