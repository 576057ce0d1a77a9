// Waiting on many rings at once: a WaitSet (poll(2) for shmd consumers, one timeout for
// all of them) and, for epoll/poll/io_uring loops, a file descriptor that becomes
// readable when one of them has something to say.
//
// Sources. A WaitSource is what the set needs to know about one consumer: the wait word
// its producers Wake() after publishing, a cheap `readable` test and an optional, costly
// `peer_gone` test. WaitSourceOf() builds one for the data-plane consumers; higher layers
// (channels, subscribers, RPC clients) can build their own. A source keeps the object's
// mapping alive (`keep_alive`), so destroying the handle first never makes the set read
// unmapped memory; the set then merely reports on an object nobody reads.
//
// Semantics, as poll(2): level-triggered. Wait() returns at once while any source is
// readable, gone or closed; `readable` is a hint (like POLLIN), the caller still calls
// TryReceive, which may find nothing (another consumer of an MPMC ring was faster).
// `peer_gone` is POLLHUP: the producer side left (detached, or its process died) and is
// reported, level-triggered, until a new producer attaches; messages it left are still
// `readable` (drain them, then Remove the source or wait for a new producer). `closed`:
// the object was deleted (Segment::Remove). Death is noticed within one sleep slice
// (WaitOptions::sleep_slice, 10 ms by default): a killed process wakes nobody, so the set
// asks the kernel at each slice; a clean detach wakes the set at once.
//
// How Wait() waits (the same three stages as WaitFor in wait.h): check every source; spin
// (AdaptiveSpin, up to WaitOptions::max_spin); then announce a sleeper on every distinct
// word, re-check every source, and sleep on all the words at once with futex_waitv(2)
// (Linux >= 5.16; shared futexes, the words live in files other processes map), in slices
// of sleep_slice. On an older kernel (ENOSYS) it sleeps on one word at a time for at most
// kFallbackSlice and re-polls: correct, with up to that much latency. futex_waitv takes
// at most 128 words; the set keeps one for itself (Add/Remove/Rearm/shutdown wake it), so
// a set holds at most kMaxSources = 127 sources (Add refuses the 128th with a clear
// error; use several sets, each with its notify fd in one epoll set, beyond that).
//
// The notify fd. NotifyFd() returns an eventfd (EFD_CLOEXEC | EFD_NONBLOCK) owned by the
// set, and starts one background thread per set (not per ring). The thread waits as
// Wait() does; when a source is readable, gone or closed it makes the eventfd readable
// and stops looking until the user re-arms:
//
//     poll/epoll says the fd is readable -> Wait(Nanos::zero(), &events) says which
//       sources (it never sleeps) -> drain them with TryReceive, Remove the gone ones
//       -> Rearm() -> back to poll.                    (reading the eventfd is optional)
//
// Rearm() clears the eventfd and makes the thread re-check every source at once, so a
// message that arrived during the drain makes the fd readable again: nothing is missed.
// Level-triggered like the rest: a gone or closed source left in the set makes the fd
// readable again right after every Rearm (as POLLHUP would), so remove it.
// Why a thread and not an eventfd the producer writes: no producer-side change (a
// producer publishes with a store and a load, never a syscall, unless someone sleeps), no
// descriptor passing (SCM_RIGHTS through the daemon), works in embedded mode and across
// pid namespaces, and the set already knows how to sleep on shared words. The price is
// one more thread wake-up (futex wake of the thread, then the eventfd write waking the
// loop) per notification, paid only when the loop was idle. bench/wait_set_wake, on 2
// shared cores (other builds running), send to receive of a sleeping consumer, p50/p99:
// blocking Receive 12/38 us; Wait on 1 ring 13/43 us, on 64 rings 24/51 us; poll on the
// notify fd, 1 ring 22-24/48-66 us, 64 rings 34/67-80 us. So the fd costs about 10 us
// more than Wait, and Wait on 64 rings about 10 us more than on one.
//
// Thread safety. Add, Remove, Rearm, NotifyFd and size may be called from any thread,
// concurrently with each other and with Wait. Wait is called by one thread at a time (it
// owns the set's spin state). The notifier thread runs concurrently with all of them: it
// calls every source's `readable` (so `readable` must read shared memory only, never a
// handle's private members, and be safe to run on two threads at once), and `peer_gone`,
// which the set never runs on two threads at once for one source (a per-source lock:
// PeerWatch and its kind are not thread-safe). The sources from WaitSourceOf keep their
// own watchers, never the handle's.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/status.h"
#include "shmd/dataplane/wait.h"

namespace shmd {

class SpscConsumer;
class MpmcConsumer;
class BroadcastSubscriber;

struct WaitSource {
  // Woken (Wake/WakeAll, wait.h) after whatever makes `readable` or `peer_gone` true, and
  // when the object is deleted (its `closed` field is read too). Required.
  layout::WaitWord* word = nullptr;
  // Cheap, side-effect free, thread-safe; reads shared memory only. Required.
  std::function<bool()> readable;
  // May be costly (kernel liveness checks); called once per sleep slice at most, and after
  // a wake-up that made nothing readable; never concurrently for one source. May be empty.
  std::function<bool()> peer_gone;
  // Keeps `word` and whatever the functions read mapped (the handle's shared Segment).
  std::shared_ptr<const void> keep_alive;
};

// Sources for the data-plane consumers. `readable`:
//   SPSC       the record header at consumer_position is published (non-zero);
//   MPMC       the head slot (dequeue_position) holds a published message;
//   broadcast  published > the subscriber's cursor as mirrored in its endpoint slot.
// `peer_gone`: SPSC and broadcast, the producer this source saw has gone, or the role is
// vacant after a producer published something; MPMC, no producer attached any more after
// one was seen (abandoned slots of dead producers are recovered on the way, so the ring
// keeps moving without a blocking receive). The handle must be attached (kInvalidArgument
// for a moved-from one).
Result<WaitSource> WaitSourceOf(const SpscConsumer& consumer);
Result<WaitSource> WaitSourceOf(const MpmcConsumer& consumer);
Result<WaitSource> WaitSourceOf(const BroadcastSubscriber& subscriber);

struct WaitEvent {
  uint64_t tag = 0;
  bool readable = false;   // POLLIN: try a receive
  bool peer_gone = false;  // POLLHUP: the producer side left
  bool closed = false;     // the object was deleted
};

namespace internal {
// For tests: behave as on a kernel without futex_waitv (the ENOSYS fallback), or not.
void SetFutexWaitvDisabledForTesting(bool disabled);
}  // namespace internal

class WaitSet {
 public:
  // futex_waitv's limit (FUTEX_WAITV_MAX, 128) minus the set's own word.
  static constexpr size_t kMaxSources = 127;
  // Sleep length when futex_waitv is missing (ENOSYS), sleeping on one word at a time.
  static constexpr Nanos kFallbackSlice = std::chrono::milliseconds(1);

  explicit WaitSet(const WaitOptions& options = {});
  ~WaitSet();  // stops and joins the notifier thread (within a futex wake), closes the fd
  WaitSet(const WaitSet&) = delete;
  WaitSet& operator=(const WaitSet&) = delete;

  // kInvalidArgument: no word or no readable function, or a tag already in the set;
  // kQuotaExceeded: the set holds kMaxSources already.
  VoidResult Add(WaitSource source, uint64_t tag);
  // False if no source has that tag.
  bool Remove(uint64_t tag);
  size_t size() const;

  // Fills *out (cleared first) with one event per source that is readable, gone or
  // closed, in the order the sources were added; kOk if there is at least one, kTimeout
  // once `timeout` passed (Nanos::max(): no limit; zero: check once, never sleep: then
  // peer_gone is the last answer the set got, by this call or the notifier thread, and
  // only a source already gone is asked again). kInvalidArgument if out is null.
  Status Wait(Nanos timeout, std::vector<WaitEvent>* out);

  // The eventfd described above (the same one on every call; the set owns it: never
  // close it). Armed when first returned. kSystem if eventfd or the thread cannot start.
  Result<int> NotifyFd();
  // After draining: clears the eventfd and lets the thread report again (checking at once).
  void Rearm();

  // Futex sleeps taken by Wait() and by the notifier thread (for tests and metrics).
  uint64_t sleeps() const { return sleeps_.load(std::memory_order_relaxed); }
  // Notifications the thread delivered through the eventfd.
  uint64_t notifications() const { return notifications_.load(std::memory_order_relaxed); }

  struct Entry;  // wait_set.cc

 private:
  using Snapshot = std::vector<std::shared_ptr<Entry>>;
  Snapshot Take(uint32_t* generation) const;
  // The check/spin/sleep loop shared by Wait() and the notifier. Returns kOk (events in
  // *out), kTimeout, or kEmpty when the set's word moved past `generation` (sources added
  // or removed, re-armed, shutting down): the caller takes a new snapshot.
  Status Run(const Snapshot& sources, uint32_t generation, Clock::time_point deadline,
             AdaptiveSpin& spin, std::vector<WaitEvent>* out);
  void Notifier();
  void Bump();  // changes the set's word and wakes whoever sleeps on it

  const WaitOptions options_;
  mutable std::mutex mutex_;  // guards sources_, fd_, thread_
  Snapshot sources_;
  // The set's own wait word: process-local, bumped on every change. Sleepers include it
  // in their futex_waitv, so a change (or the destructor) wakes them at once.
  layout::WaitWord control_{};
  AdaptiveSpin spin_;  // Wait()'s; the notifier thread has its own
  std::atomic<bool> armed_{false};
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> sleeps_{0};
  std::atomic<uint64_t> notifications_{0};
  int fd_ = -1;
  std::thread thread_;
};

}  // namespace shmd
