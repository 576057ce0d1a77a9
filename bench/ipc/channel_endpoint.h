// The benchmark loops, written once for every transport that can "send this buffer" and
// "fill this buffer". A Channel is any type with
//
//   bool Send(const std::byte* msg, size_t size);  // the whole message, or false
//   bool Receive(std::byte* msg, size_t size);     // exactly one whole message, or false
//   std::string Error() const;                     // why the last call returned false
//
// The loops are templates over the Channel so the hot path has no virtual call: the one
// virtual call per run is Endpoint's.
#ifndef SHMD_BENCH_IPC_CHANNEL_ENDPOINT_H_
#define SHMD_BENCH_IPC_CHANNEL_ENDPOINT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bench/ipc/harness.h"
#include "bench/ipc/mechanism.h"
#include "bench/ipc/message.h"

namespace shmd::bench {

template <typename Channel>
class ChannelEndpoint final : public Endpoint {
 public:
  explicit ChannelEndpoint(Channel channel) : channel_(std::move(channel)) {}

  Status StreamSend(const RunSpec& spec) override {
    MessageBuffer msg(spec.size);
    for (uint64_t seq = 0; seq < spec.count; ++seq) {
      msg.SetSequence(seq);
      if (!channel_.Send(msg.data(), spec.size)) [[unlikely]]
        return Failed("sending", seq);
    }
    return {};
  }

  Status StreamReceive(const RunSpec& spec, StreamTiming* timing) override {
    MessageBuffer msg(spec.size);
    const MessageChecker checker(spec.size);
    Status error;
    for (uint64_t seq = 0; seq < spec.count; ++seq) {
      if (!channel_.Receive(msg.data(), spec.size)) [[unlikely]]
        return Failed("receiving", seq);
      if (!checker.Check(msg.data(), seq, &error)) [[unlikely]]
        return error;
      // The clock starts when the first message is complete, so process start-up and the
      // sender's first wake-up are not counted; the count - 1 messages after it are.
      if (seq == 0) timing->first_ns = NowNs();
    }
    timing->last_ns = NowNs();
    timing->messages = spec.count - 1;
    return {};
  }

  Status PingPongInitiate(const RunSpec& spec, std::vector<int64_t>* rtt_ns) override {
    MessageBuffer out(spec.size);
    MessageBuffer in(spec.size);
    const uint64_t total = spec.warmup + spec.count;
    Status error;
    // One clock read per round trip, right after the send: it overlaps the message's flight
    // instead of delaying the next send, and each sample is one period of the loop.
    int64_t last_send = 0;
    for (uint64_t seq = 0; seq < total; ++seq) {
      out.SetSequence(seq);
      if (!channel_.Send(out.data(), spec.size)) [[unlikely]]
        return Failed("sending", seq);
      const int64_t sent = NowNs();
      if (seq >= spec.warmup) (*rtt_ns)[seq - spec.warmup] = sent - last_send;
      last_send = sent;
      if (!channel_.Receive(in.data(), spec.size)) [[unlikely]]
        return Failed("receiving the echo of", seq);
      if (!MessageChecker::CheckSequence(in.data(), seq, &error)) [[unlikely]]
        return error;
    }
    return {};
  }

  Status PingPongEcho(const RunSpec& spec) override {
    MessageBuffer msg(spec.size);
    const uint64_t total = spec.warmup + spec.count;
    Status error;
    for (uint64_t seq = 0; seq < total; ++seq) {
      if (!channel_.Receive(msg.data(), spec.size)) [[unlikely]]
        return Failed("receiving", seq);
      if (!MessageChecker::CheckSequence(msg.data(), seq, &error)) [[unlikely]]
        return error;
      if (!channel_.Send(msg.data(), spec.size)) [[unlikely]]
        return Failed("echoing", seq);
    }
    return {};
  }

 private:
  Status Failed(const char* doing, uint64_t seq) const {
    return Status::Error(std::string(doing) + " message " + std::to_string(seq) + ": " +
                         channel_.Error());
  }

  Channel channel_;
};

}  // namespace shmd::bench

#endif  // SHMD_BENCH_IPC_CHANNEL_ENDPOINT_H_
