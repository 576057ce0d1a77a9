#include "bench/ipc/shmd_spsc_ring.h"

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench/ipc/harness.h"
#include "bench/ipc/message.h"
#include "bench/ipc/shmd_common.h"
#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/spsc_ring.h"

namespace shmd::bench {
namespace {

constexpr std::string_view kForward = "fwd";    // sender to receiver
constexpr std::string_view kBackward = "back";  // receiver to sender (ping-pong only)

// How long the paced initiator waits after the echo side has announced its sleep (raised the
// ring's waiter count) before sending: enough for it to finish entering futex_wait (a
// membarrier and a futex syscall, a few microseconds here), so the send wakes a process that
// is really asleep rather than one still on its way.
constexpr int64_t kSettleNs = 20'000;

class SpscEndpoint final : public Endpoint {
 public:
  // `out` and `in` are this side's ends; a stream side has only one of them.
  SpscEndpoint(std::optional<SpscProducer> out, std::optional<SpscConsumer> in, RingWaits waits,
               bool paced)
      : out_(std::move(out)), in_(std::move(in)), waits_(waits), paced_(paced) {}

  Status StreamSend(const RunSpec& spec) override {
    MessageBuffer msg(spec.size);
    const std::span<const std::byte> bytes(msg.data(), spec.size);
    for (uint64_t seq = 0; seq < spec.count; ++seq) {
      msg.SetSequence(seq);
      const ::shmd::Status s = waits_.Send(*out_, bytes);
      if (s != ::shmd::Status::kOk) [[unlikely]]
        return ShmdCallError("sending", seq, s);
    }
    return {};
  }

  Status StreamReceive(const RunSpec& spec, StreamTiming* timing) override {
    const MessageChecker checker(spec.size);
    Status error;
    for (uint64_t seq = 0; seq < spec.count; ++seq) {
      MessageView view;
      const ::shmd::Status s = waits_.Peek(*in_, &view);
      if (s != ::shmd::Status::kOk) [[unlikely]]
        return ShmdCallError("receiving", seq, s);
      if (view.size != spec.size) [[unlikely]]
        return WrongSizeError(seq, view.size, spec.size);
      // Every byte is read where it lies in the ring, before the space is given back.
      if (!checker.Check(view.data, seq, &error)) [[unlikely]]
        return error;
      in_->Release();
      // As in ChannelEndpoint: the clock starts when the first message is complete.
      if (seq == 0) timing->first_ns = NowNs();
    }
    timing->last_ns = NowNs();
    timing->messages = spec.count - 1;
    return {};
  }

  Status PingPongInitiate(const RunSpec& spec, std::vector<int64_t>* rtt_ns) override {
    // On one shared CPU a wake-up is a context switch either way (the woken side runs when
    // the waker yields), so there the row runs the plain loop, as every other row does.
    if (paced_ && !spec.shared_cpu) return PacedInitiate(spec, rtt_ns);
    MessageBuffer msg(spec.size);
    const std::span<const std::byte> bytes(msg.data(), spec.size);
    const uint64_t total = spec.warmup + spec.count;
    Status error;
    int64_t last_send = 0;
    for (uint64_t seq = 0; seq < total; ++seq) {
      msg.SetSequence(seq);
      ::shmd::Status s = waits_.Send(*out_, bytes);
      if (s != ::shmd::Status::kOk) [[unlikely]]
        return ShmdCallError("sending", seq, s);
      // Stamped right after the send, as in ChannelEndpoint: the clock read overlaps the flight.
      const int64_t sent = NowNs();
      if (seq >= spec.warmup) (*rtt_ns)[seq - spec.warmup] = sent - last_send;
      last_send = sent;
      MessageView view;
      s = waits_.Peek(*in_, &view);
      if (s != ::shmd::Status::kOk) [[unlikely]]
        return ShmdCallError("receiving the echo of", seq, s);
      if (view.size != spec.size) [[unlikely]]
        return WrongSizeError(seq, view.size, spec.size);
      if (!MessageChecker::CheckSequence(view.data, seq, &error)) [[unlikely]]
        return error;
      in_->Release();
    }
    return {};
  }

  Status PingPongEcho(const RunSpec& spec) override {
    const uint64_t total = spec.warmup + spec.count;
    Status error;
    for (uint64_t seq = 0; seq < total; ++seq) {
      MessageView view;
      ::shmd::Status s = waits_.Peek(*in_, &view);
      if (s != ::shmd::Status::kOk) [[unlikely]]
        return ShmdCallError("receiving", seq, s);
      if (view.size != spec.size) [[unlikely]]
        return WrongSizeError(seq, view.size, spec.size);
      if (!MessageChecker::CheckSequence(view.data, seq, &error)) [[unlikely]]
        return error;
      // A copying send straight from the incoming ring; the bytes are released after.
      s = waits_.Send(*out_, view.bytes());
      if (s != ::shmd::Status::kOk) [[unlikely]]
        return ShmdCallError("echoing", seq, s);
      in_->Release();
    }
    return {};
  }

 private:
  // The round trip of a consumer that was asleep (shmd-spsc-sleep). Unpaced, a round trip
  // (under 0.5 us at 64 B) ends inside the ~1 us the data plane's wait loop always polls
  // before it can sleep (64 polls with a pause each before its first clock check, even with
  // max_spin = 0), so nobody would ever sleep and the row would repeat shmd-spsc.
  // Paced: before each send the initiator waits until the echo side has gone to sleep on the
  // forward ring's futex word, and a sample runs from just after the send to the echo's
  // arrival (the wait for the sleep is not counted, so the loop period cannot be the sample).
  // The initiator's own wait for the echo outlasts that short poll too, so it sleeps as well:
  // every round trip is two futex wake-ups of sleeping processes, as a pipe's is two reader
  // wake-ups.
  Status PacedInitiate(const RunSpec& spec, std::vector<int64_t>* rtt_ns) {
    MessageBuffer msg(spec.size);
    const std::span<const std::byte> bytes(msg.data(), spec.size);
    const uint64_t total = spec.warmup + spec.count;
    const std::atomic<uint32_t>& echo_sleeping =
        out_->segment().control<layout::SpscControl>().data_ready.waiters;
    Status error;
    for (uint64_t seq = 0; seq < total; ++seq) {
      const bool asleep = SpinUntil(
          [&] { return echo_sleeping.load(std::memory_order_acquire) != 0; }, true, false);
      if (!asleep) [[unlikely]]
        return Status::Error("message " + std::to_string(seq) +
                             ": the echo side did not go to sleep within 10 s");
      const int64_t settled = NowNs() + kSettleNs;
      while (NowNs() < settled) CpuRelax();
      msg.SetSequence(seq);
      ::shmd::Status s = waits_.Send(*out_, bytes);
      if (s != ::shmd::Status::kOk) [[unlikely]]
        return ShmdCallError("sending", seq, s);
      const int64_t sent = NowNs();
      MessageView view;
      s = waits_.Peek(*in_, &view);
      const int64_t received = NowNs();
      if (s != ::shmd::Status::kOk) [[unlikely]]
        return ShmdCallError("receiving the echo of", seq, s);
      if (seq >= spec.warmup) (*rtt_ns)[seq - spec.warmup] = received - sent;
      if (view.size != spec.size) [[unlikely]]
        return WrongSizeError(seq, view.size, spec.size);
      if (!MessageChecker::CheckSequence(view.data, seq, &error)) [[unlikely]]
        return error;
      in_->Release();
    }
    return {};
  }

  std::optional<SpscProducer> out_;
  std::optional<SpscConsumer> in_;
  RingWaits waits_;
  bool paced_ = false;
};

class SpscMechanism final : public Mechanism {
 public:
  SpscMechanism(std::string_view name, std::string_view note, const WaitOptions& wait, bool paced)
      : name_(name), note_(note), wait_(wait), paced_(paced) {}

  std::string_view name() const override { return name_; }
  std::string_view note() const override { return note_; }

  Status Prepare(const RunSpec& spec) override {
    spec_ = spec;
    objects_ = ShmdObjects();
    const uint64_t capacity = SpscCapacityFor(spec.size);
    Status status = objects_.CreateRing(kForward, capacity);
    if (status.ok() && spec.mode == Mode::kPingPong) {
      status = objects_.CreateRing(kBackward, capacity);
    }
    return status;
  }

  Status Open(Side side, std::unique_ptr<Endpoint>* endpoint) override {
    const bool sender = side == Side::kSender;
    const bool pingpong = spec_.mode == Mode::kPingPong;
    std::optional<SpscProducer> out;
    std::optional<SpscConsumer> in;
    // The sender produces on "fwd" (and consumes "back"), the receiver the other way round.
    if (sender || pingpong) {
      const std::string_view ring = sender ? kForward : kBackward;
      Result<SpscProducer> producer = SpscProducer::Open(objects_.dir(), ring, wait_);
      if (!producer.ok()) {
        return ShmdSetupError("opening '" + std::string(ring) + "' as producer", producer.error());
      }
      out.emplace(std::move(producer).value());
    }
    if (!sender || pingpong) {
      const std::string_view ring = sender ? kBackward : kForward;
      Result<SpscConsumer> consumer = SpscConsumer::Open(objects_.dir(), ring, wait_);
      if (!consumer.ok()) {
        return ShmdSetupError("opening '" + std::string(ring) + "' as consumer", consumer.error());
      }
      in.emplace(std::move(consumer).value());
    }
    *endpoint = std::make_unique<SpscEndpoint>(
        std::move(out), std::move(in), RingWaits(wait_.busy_poll, spec_.shared_cpu), paced_);
    return {};
  }

  void Teardown() override { objects_.RemoveAll(); }

 private:
  std::string_view name_;
  std::string_view note_;
  WaitOptions wait_;
  bool paced_;
  RunSpec spec_;
  ShmdObjects objects_;
};

}  // namespace

std::unique_ptr<Mechanism> MakeShmdSpscRow(std::string_view name, std::string_view note,
                                           const WaitOptions& wait, bool paced) {
  return std::make_unique<SpscMechanism>(name, note, wait, paced);
}

}  // namespace shmd::bench
