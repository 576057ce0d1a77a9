// The interface every row of `ipc_compare` implements.
//
// A run moves messages between two processes forked by the harness:
//
//   parent:  mechanism.Prepare(spec)          create pipes, queues, sockets, shm objects
//            fork sender child, fork receiver child
//   child:   pin to its CPU
//            mechanism.Open(side, &endpoint)  attach to what Prepare made
//            wait at the start barrier
//            endpoint->StreamSend/StreamReceive or PingPongInitiate/PingPongEcho
//            _exit
//   parent:  wait for both children (with a deadline), mechanism.Teardown()
//
// So a mechanism that needs a shared-memory object creates it in Prepare (the parent, before
// fork) and maps or attaches to it in Open (each child, after fork). Everything an Endpoint
// does happens in a child, so it may keep process-local state freely.
//
// Adding a mechanism: write bench/ipc/<name>.cc defining `std::unique_ptr<Mechanism>
// Make<Name>()`, and add `X(<Name>)` to the list in bench/ipc/registry.cc. Byte streams and
// other "send a buffer / receive a buffer" transports only need a Channel (see
// channel_endpoint.h); transports with their own buffers (zero-copy rings, pools) implement
// Endpoint directly and use MessageChecker (message.h) to verify what they receive.
#ifndef SHMD_BENCH_IPC_MECHANISM_H_
#define SHMD_BENCH_IPC_MECHANISM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace shmd::bench {

// Outcome of an operation off the hot path: no message means success.
class Status {
 public:
  Status() = default;
  static Status Error(std::string message) {
    Status status;
    status.message_ = message.empty() ? "unknown error" : std::move(message);
    return status;
  }
  bool ok() const { return message_.empty(); }
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

// "what: strerror(errno)", reading errno at the call.
Status ErrnoError(std::string_view what);

enum class Mode {
  kStream,    // sender sends `count` messages as fast as it can; receiver verifies them
  kPingPong,  // sender sends one message, receiver echoes it, `warmup + count` times
};

// The two processes of a run. The sender also initiates (and times) the ping-pong; the
// receiver also echoes.
enum class Side { kSender, kReceiver };

struct RunSpec {
  Mode mode = Mode::kStream;
  size_t size = 0;          // bytes per message, >= 8 (the first 8 carry the sequence number)
  uint64_t count = 0;       // messages (stream) or timed round trips (ping-pong)
  uint64_t warmup = 0;      // untimed round trips before the timed ones (ping-pong: >= 1)
  bool shared_cpu = false;  // both processes on one CPU: spinners must yield to the peer
};

// What the stream receiver measured: `messages` messages arrived between first_ns and
// last_ns (CLOCK_MONOTONIC). The generic receiver stamps when the first message is complete
// and counts the count - 1 that follow.
struct StreamTiming {
  int64_t first_ns = 0;
  int64_t last_ns = 0;
  uint64_t messages = 0;
};

// One side of an opened mechanism, living in one child process. A mechanism that has no
// figure for a mode leaves its methods to these defaults.
class Endpoint {
 public:
  virtual ~Endpoint() = default;

  // Stream, sender side: send spec.count messages, message i carrying sequence number i.
  virtual Status StreamSend(const RunSpec& spec);
  // Stream, receiver side: receive every message, touch every byte, check the sequence
  // numbers and contents (MessageChecker), and say when the first and last arrived.
  virtual Status StreamReceive(const RunSpec& spec, StreamTiming* timing);
  // Ping-pong, sender side: warmup + count round trips; record `count` round-trip times in
  // rtt_ns (already sized to spec.count, so nothing allocates while timing). Read the clock
  // once per round trip, right after the send, and record the time since the previous
  // send's stamp: the loop's period, with the clock read overlapping the flight. The first
  // timed sample starts at the last warm-up send, hence warmup >= 1.
  virtual Status PingPongInitiate(const RunSpec& spec, std::vector<int64_t>* rtt_ns);
  // Ping-pong, receiver side: echo warmup + count messages, checking their sequence.
  virtual Status PingPongEcho(const RunSpec& spec);
};

class Mechanism {
 public:
  virtual ~Mechanism() = default;

  // Row name in the table and the JSON, and the --mechanisms filter key.
  virtual std::string_view name() const = 0;
  // One line printed under the table when this row runs (what it is, what it leaves out),
  // or empty.
  virtual std::string_view note() const { return {}; }
  // Which figures this row has; the others are null.
  virtual bool HasStream() const { return true; }
  virtual bool HasPingPong() const { return true; }
  // 2 for IPC; 1 for a single-process floor (only the receiver side is forked).
  virtual int processes() const { return 2; }
  // Nonzero: the figure does not depend on the message size, so the row is measured once at
  // this size instead of at every --sizes entry.
  virtual size_t fixed_size() const { return 0; }
  // True for the cacheline row: its round trip is what FloorWatch probes, so ipc_compare
  // counts each of its round-trip runs as a probe of the placement too.
  virtual bool is_placement_probe() const { return false; }
  // False when this machine cannot move `size`-byte messages this way; *why_not is then
  // printed as a note and the row's figures are null.
  virtual bool Supports(size_t size, std::string* why_not) const {
    (void)size;
    (void)why_not;
    return true;
  }

  // In the parent, before fork, for every run (pilot runs included).
  virtual Status Prepare(const RunSpec& spec) = 0;
  // In each child, after fork and pinning, before the start barrier. May block until the
  // peer shows up (a FIFO open, a TCP accept); the harness bounds the whole run.
  virtual Status Open(Side side, std::unique_ptr<Endpoint>* endpoint) = 0;
  // In the parent, after both children are gone (also after a failed run).
  virtual void Teardown() = 0;
};

// Every mechanism, in table order (bench/ipc/registry.cc).
std::vector<std::unique_ptr<Mechanism>> MakeAllMechanisms();

}  // namespace shmd::bench

#endif  // SHMD_BENCH_IPC_MECHANISM_H_
