// Plumbing shared by the shmd rows (shmd_spsc_busy.cc, shmd_spsc.cc, shmd_spsc_sleep.cc,
// shmd_pool.cc): where their objects live, how their rings are sized, how a data-plane
// failure becomes a benchmark error, and the waits, every one of them bounded.
//
// Two Status types meet here: shmd::bench::Status (this benchmark's error with a message)
// and ::shmd::Status (the data plane's hot-path enum), always spelled with its "::shmd::".
#ifndef SHMD_BENCH_IPC_SHMD_COMMON_H_
#define SHMD_BENCH_IPC_SHMD_COMMON_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bench/ipc/harness.h"
#include "bench/ipc/mechanism.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"
#include "shmd/dataplane/spsc_ring.h"
#include "shmd/dataplane/status.h"

namespace shmd::bench {

// Every blocking data-plane call is given this much: a benchmark must never hang (the same
// bound as the harness's own spins).
inline constexpr std::chrono::seconds kShmdTimeout{10};

// The shm directory of this ipc_compare process: /dev/shm, namespace "bench-<pid>", so two
// runs on one machine (or a leftover of a killed one) never collide. Objects are created in
// Prepare (the parent) and removed in Teardown.
ShmDir BenchShmDir();

// Data area of an SPSC ring carrying `size`-byte messages: 1 MiB, the library's default, at
// every size the table uses (14,563 messages of 64 B deep, 15 of 64 KiB); only messages above
// 256 KiB get more, four records' worth. Measured on a 2-CPU KVM guest (64 KiB
// stream, medians of 5, three alternating rounds): 512 KiB 10.3-11.8 GB/s, 1 MiB 10.4-12.7,
// 2 MiB 9.8-10.6 (a deeper ring churns more of each core's 4 MiB L2); at 64 B, rings of
// 64 KiB to 4 MiB were all within the run-to-run spread (17-40 M msgs/s).
uint64_t SpscCapacityFor(size_t size);

// "creating ring 'fwd': kAlreadyExists: ..." for setup failures.
Status ShmdSetupError(std::string_view doing, const ::shmd::Error& error);
// "receiving message 12: kTimeout" for hot-path failures (off the hot path: only on error).
Status ShmdCallError(std::string_view doing, uint64_t seq, ::shmd::Status status);
Status WrongSizeError(uint64_t seq, size_t got, size_t want);

// Creates a ring (or pool) object in Prepare and remembers its name for Teardown.
class ShmdObjects {
 public:
  Status CreateRing(std::string_view name, uint64_t capacity);
  Status CreatePool(std::string_view name, uint32_t block_size, uint32_t block_count);
  // Removes every object created so far (Segment::Remove), ignoring what is already gone.
  void RemoveAll();
  const ShmDir& dir() const { return dir_; }

 private:
  ShmDir dir_ = BenchShmDir();
  std::vector<std::string> names_;
};

// The waits of one row's ring endpoints. With the library's waits (everything but busy-poll
// on a shared CPU) each call is one SendFor / PeekFor. A busy-polling handle never yields,
// so when both sides share one CPU (--cpus A,A) it would hold the CPU until preempted; there
// the row polls the Try* calls itself and yields every 1024 polls, like the cacheline row.
class RingWaits {
 public:
  RingWaits() = default;
  RingWaits(bool busy_poll, bool shared_cpu) : yield_(busy_poll && shared_cpu) {}

  ::shmd::Status Send(SpscProducer& out, std::span<const std::byte> message) const {
    if (!yield_) [[likely]]
      return out.SendFor(message, kShmdTimeout);
    ::shmd::Status s = ::shmd::Status::kOk;
    const bool done =
        SpinUntil([&] { return (s = out.TrySend(message)) != ::shmd::Status::kFull; }, true, true);
    return done ? s : ::shmd::Status::kTimeout;
  }

  ::shmd::Status Peek(SpscConsumer& in, MessageView* view) const {
    if (!yield_) [[likely]]
      return in.PeekFor(view, kShmdTimeout);
    ::shmd::Status s = ::shmd::Status::kOk;
    const bool done =
        SpinUntil([&] { return (s = in.TryPeek(view)) != ::shmd::Status::kEmpty; }, true, true);
    return done ? s : ::shmd::Status::kTimeout;
  }

 private:
  bool yield_ = false;
};

}  // namespace shmd::bench

#endif  // SHMD_BENCH_IPC_SHMD_COMMON_H_
