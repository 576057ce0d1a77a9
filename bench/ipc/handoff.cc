// Floor row: what a copying transport can stream between these two CPUs when it does
// nothing but move the bytes. The sender copies each message into one of N fixed slots of a
// shared mapping and raises the slot's flag; the receiver waits for the flag, checks and
// sums every byte in place (MessageChecker, as every other row), and lowers it. No ring, no
// record headers, no positions, no counters, no waits beyond a spin: what is left is the copy
// in, the transfer between the cores' caches, and the read out. A copying ring does all of
// that plus its own bookkeeping, so it can match this figure but not go far beyond it (it
// can beat it a little: its records are contiguous, while these slots each have a flag on a
// line of its own). No round trip (the cacheline row is that floor).
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "bench/ipc/harness.h"
#include "bench/ipc/mechanism.h"
#include "bench/ipc/message.h"
#include "bench/ipc/shmd_common.h"

namespace shmd::bench {
namespace {

constexpr size_t kLine = 64;

// One flag per slot, each on its own cache line so a flag's traffic is that slot's alone.
// 0 at start; 2i+1 when message i is in the slot; 2i+2 once the receiver has read it (the
// slot is free for message i + slots).
struct alignas(kLine) SlotFlag {
  std::atomic<uint64_t> value;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

size_t SlotBytes(size_t size) { return (size + kLine - 1) / kLine * kLine; }

// As many bytes of slots as the copying rows' ring holds (SpscCapacityFor), at least 4
// slots, so the two rows keep the same amount of data in flight.
uint64_t SlotsFor(size_t size) {
  return std::max<uint64_t>(4, SpscCapacityFor(size) / SlotBytes(size));
}

Status NoProgress(uint64_t seq, const char* waiting_for) {
  return Status::Error("message " + std::to_string(seq) + ": waited 10 s for " + waiting_for +
                       " (is the peer running?)");
}

class HandoffEndpoint final : public Endpoint {
 public:
  HandoffEndpoint(SlotFlag* flags, std::byte* slots, uint64_t count, size_t slot_bytes)
      : flags_(flags), slots_(slots), count_(count), slot_bytes_(slot_bytes) {}

  Status StreamSend(const RunSpec& spec) override {
    MessageBuffer msg(spec.size);
    for (uint64_t seq = 0; seq < spec.count; ++seq) {
      const uint64_t slot = seq % count_;
      // Free when it never held a message, or once its last one (seq - count_) was read.
      const uint64_t free = seq < count_ ? 0 : 2 * (seq - count_) + 2;
      std::atomic<uint64_t>& flag = flags_[slot].value;
      // Acquire: the receiver's reads of the old message are done before we overwrite it.
      if (!SpinUntil([&] { return flag.load(std::memory_order_acquire) == free; }, true,
                     spec.shared_cpu)) [[unlikely]]
        return NoProgress(seq, "a free slot");
      msg.SetSequence(seq);
      std::memcpy(slots_ + slot * slot_bytes_, msg.data(), spec.size);
      // Release: publishes the copy above.
      flag.store(2 * seq + 1, std::memory_order_release);
    }
    return {};
  }

  Status StreamReceive(const RunSpec& spec, StreamTiming* timing) override {
    const MessageChecker checker(spec.size);
    Status error;
    for (uint64_t seq = 0; seq < spec.count; ++seq) {
      const uint64_t slot = seq % count_;
      std::atomic<uint64_t>& flag = flags_[slot].value;
      // Acquire: pairs with the sender's release, so the whole message is visible.
      if (!SpinUntil([&] { return flag.load(std::memory_order_acquire) == 2 * seq + 1; }, true,
                     spec.shared_cpu)) [[unlikely]]
        return NoProgress(seq, "the message");
      if (!checker.Check(slots_ + slot * slot_bytes_, seq, &error)) [[unlikely]]
        return error;
      // Release: our reads of the slot happen before the sender may reuse it.
      flag.store(2 * seq + 2, std::memory_order_release);
      if (seq == 0) timing->first_ns = NowNs();
    }
    timing->last_ns = NowNs();
    timing->messages = spec.count - 1;
    return {};
  }

 private:
  SlotFlag* flags_;
  std::byte* slots_;
  uint64_t count_;
  size_t slot_bytes_;
};

class HandoffMechanism final : public Mechanism {
 public:
  std::string_view name() const override { return "handoff"; }
  std::string_view note() const override {
    return "handoff: a copying transport with no logic at all, the floor of the copying rows: "
           "the sender copies each message into one of N slots of shared memory (as many "
           "bytes as the shmd rows' ring) and raises the slot's flag, the receiver checks every "
           "byte in place and lowers it (stream only)";
  }
  bool HasPingPong() const override { return false; }

  Status Prepare(const RunSpec& spec) override {
    slot_bytes_ = SlotBytes(spec.size);
    count_ = SlotsFor(spec.size);
    flags_bytes_ = count_ * sizeof(SlotFlag);
    bytes_ = flags_bytes_ + count_ * slot_bytes_;
    void* mapping =
        mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mapping == MAP_FAILED) return ErrnoError("mmap of " + std::to_string(bytes_) + " bytes");
    mapping_ = mapping;
    flags_ = new (mapping_) SlotFlag[count_]{};
    return {};
  }

  Status Open(Side, std::unique_ptr<Endpoint>* endpoint) override {
    std::byte* slots = static_cast<std::byte*>(mapping_) + flags_bytes_;
    *endpoint = std::make_unique<HandoffEndpoint>(flags_, slots, count_, slot_bytes_);
    return {};
  }

  void Teardown() override {
    if (mapping_ != nullptr) munmap(mapping_, bytes_);
    mapping_ = nullptr;
  }

 private:
  void* mapping_ = nullptr;
  SlotFlag* flags_ = nullptr;
  size_t bytes_ = 0;
  size_t flags_bytes_ = 0;
  size_t slot_bytes_ = 0;
  uint64_t count_ = 0;
};

}  // namespace

std::unique_ptr<Mechanism> MakeHandoff() { return std::make_unique<HandoffMechanism>(); }

}  // namespace shmd::bench
