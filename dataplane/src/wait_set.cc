#include "shmd/dataplane/wait_set.h"

#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <ctime>
#include <string>
#include <system_error>

#include "shmd/dataplane/barrier.h"
#include "shmd/dataplane/broadcast_ring.h"
#include "shmd/dataplane/endpoints.h"
#include "shmd/dataplane/futex.h"
#include "shmd/dataplane/mpmc_ring.h"
#include "shmd/dataplane/spsc_ring.h"

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32 0x02
#endif
#ifndef FUTEX_WAITV_MAX
#define FUTEX_WAITV_MAX 128
#endif

namespace shmd {

static_assert(WaitSet::kMaxSources + 1 == FUTEX_WAITV_MAX,
              "the set's own word plus every source's fits one futex_waitv call");

struct WaitSet::Entry {
  WaitSource source;
  uint64_t tag = 0;
  std::mutex gone_mutex;  // peer_gone() never runs on two threads at once (PeerWatch)
  // Last answer of peer_gone(); read by Wait() and the notifier, written under gone_mutex.
  std::atomic<bool> gone{false};
};

namespace {

// The layout of struct futex_waitv (linux/futex.h, 5.16), spelt out so this builds
// against older headers too; the kernel ABI is fixed.
struct FutexWaitv {
  uint64_t val;
  uint64_t uaddr;
  uint32_t flags;
  uint32_t reserved;
};
static_assert(sizeof(FutexWaitv) == 24);

std::atomic<bool> g_no_futex_waitv{false};  // set once the kernel said ENOSYS

// Sleeps until one word of `waiters` is woken (or no longer holds its val), or `slice`
// passes. EINTR, EAGAIN and ETIMEDOUT all send the caller back to re-check.
void SleepOnAll(std::vector<FutexWaitv>& waiters, Nanos slice, size_t* round_robin) {
  if (slice <= Nanos::zero() || waiters.empty()) return;
  if (!g_no_futex_waitv.load(std::memory_order_relaxed)) {
    // futex_waitv takes an absolute timeout on the clock it is given: steady_clock is
    // CLOCK_MONOTONIC on Linux.
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const int64_t end_ns = now.tv_nsec + slice.count() % 1000000000;
    timespec end{now.tv_sec + static_cast<time_t>(slice.count() / 1000000000) +
                     static_cast<time_t>(end_ns / 1000000000),
                 static_cast<long>(end_ns % 1000000000)};
    long rc = syscall(SYS_futex_waitv, waiters.data(), static_cast<unsigned>(waiters.size()), 0u,
                      &end, CLOCK_MONOTONIC);
    if (rc >= 0 || errno != ENOSYS) return;
    g_no_futex_waitv.store(true, std::memory_order_relaxed);
  }
  // Older kernel: one word at a time, briefly, then the caller re-polls every source.
  const FutexWaitv& w = waiters[(*round_robin)++ % waiters.size()];
  const Nanos fallback = std::min(slice, WaitSet::kFallbackSlice);
  timespec ts{static_cast<time_t>(fallback.count() / 1000000000),
              static_cast<long>(fallback.count() % 1000000000)};
  (void)FutexWait(reinterpret_cast<std::atomic<uint32_t>*>(w.uaddr), static_cast<uint32_t>(w.val),
                  &ts);
}

}  // namespace

void internal::SetFutexWaitvDisabledForTesting(bool disabled) {
  g_no_futex_waitv.store(disabled, std::memory_order_relaxed);
}

namespace {

// Asks peer_gone() (one thread at a time per source) and caches the answer.
void RefreshGone(WaitSet::Entry& e) {
  if (!e.source.peer_gone) return;
  std::lock_guard lock(e.gone_mutex);
  // Release, with Collect's acquire: a thread that reads "gone" also sees what this one saw
  // to decide it (the dropped role, hence the producer's last messages).
  e.gone.store(e.source.peer_gone(), std::memory_order_release);
}

// One event per source that is readable, gone or closed; true if there is any.
bool Collect(const std::vector<std::shared_ptr<WaitSet::Entry>>& sources,
             std::vector<WaitEvent>* out) {
  out->clear();
  for (const auto& e : sources) {
    WaitEvent ev;
    ev.tag = e->tag;
    // Acquire pairs with Segment::Remove's release of `closed` (before its WakeAll).
    ev.closed = e->source.word->closed.load(std::memory_order_acquire) != 0;
    // `gone` was computed before this readable() call: a producer's last messages are
    // published before its role is dropped (acq_rel), so an event that says gone and not
    // readable means drained.
    ev.peer_gone = e->gone.load(std::memory_order_acquire);
    ev.readable = e->source.readable();
    if (ev.readable || ev.peer_gone || ev.closed) out->push_back(ev);
  }
  return !out->empty();
}

Clock::time_point DeadlineAfter(Nanos timeout) {
  const Clock::time_point now = Clock::now();
  if (timeout >= Clock::time_point::max() - now) return Clock::time_point::max();
  return now + std::max(timeout, Nanos::zero());
}

}  // namespace

WaitSet::WaitSet(const WaitOptions& options) : options_(options), spin_(options.max_spin) {}

WaitSet::~WaitSet() {
  std::thread thread;
  {
    std::lock_guard lock(mutex_);
    thread = std::move(thread_);
  }
  if (thread.joinable()) {
    stop_.store(true, std::memory_order_release);
    Bump();  // the thread sleeps with the set's word in its futex_waitv: it wakes at once
    thread.join();
  }
  if (fd_ >= 0) close(fd_);
}

void WaitSet::Bump() {
  // Release: a sleeper that sees the new value (acquire, in Take or changed()) also sees
  // the sources_ change, `armed_` or `stop_` stored before the bump. Bumping before the
  // wake makes a sleeper that read the old value but is not yet in the kernel return at
  // once (futex compares the word); the wake catches those already asleep.
  control_.seq.fetch_add(1, std::memory_order_release);
  FutexWake(&control_.seq, INT_MAX);
}

VoidResult WaitSet::Add(WaitSource source, uint64_t tag) {
  if (source.word == nullptr || !source.readable) {
    return Error(ErrorCode::kInvalidArgument,
                 "wait set: a source needs a wait word and a readable function (tag " +
                     std::to_string(tag) + ")");
  }
  std::lock_guard lock(mutex_);
  for (const auto& e : sources_) {
    if (e->tag == tag) {
      return Error(ErrorCode::kInvalidArgument,
                   "wait set: tag " + std::to_string(tag) + " is already in the set");
    }
  }
  if (sources_.size() >= kMaxSources) {
    return Error(ErrorCode::kQuotaExceeded,
                 "wait set: at most " + std::to_string(kMaxSources) +
                     " sources (futex_waitv sleeps on at most 128 words, one is the set's own); "
                     "use several sets");
  }
  auto entry = std::make_shared<Entry>();
  entry->source = std::move(source);
  entry->tag = tag;
  sources_.push_back(std::move(entry));
  Bump();
  return Ok();
}

bool WaitSet::Remove(uint64_t tag) {
  std::lock_guard lock(mutex_);
  auto it =
      std::find_if(sources_.begin(), sources_.end(), [&](const auto& e) { return e->tag == tag; });
  if (it == sources_.end()) return false;
  // A thread asleep on the source's word keeps its own reference (its snapshot) until it
  // wakes, which the bump makes immediate; the mapping stays alive until then.
  sources_.erase(it);
  Bump();
  return true;
}

size_t WaitSet::size() const {
  std::lock_guard lock(mutex_);
  return sources_.size();
}

WaitSet::Snapshot WaitSet::Take(uint32_t* generation) const {
  std::lock_guard lock(mutex_);
  // Under the lock that Add/Remove bump under: the generation and the list agree.
  *generation = control_.seq.load(std::memory_order_acquire);
  return sources_;
}

Status WaitSet::Wait(Nanos timeout, std::vector<WaitEvent>* out) {
  if (out == nullptr) return Status::kInvalidArgument;
  const Clock::time_point deadline = DeadlineAfter(timeout);
  for (;;) {
    uint32_t generation = 0;
    Snapshot sources = Take(&generation);
    Status s = Run(sources, generation, deadline, spin_, out);
    if (s != Status::kEmpty) return s;
    // The set changed (or was re-armed): look again with the new list, same deadline.
  }
}

Status WaitSet::Run(const Snapshot& sources, uint32_t generation, Clock::time_point deadline,
                    AdaptiveSpin& spin, std::vector<WaitEvent>* out) {
  auto changed = [&] { return control_.seq.load(std::memory_order_acquire) != generation; };
  auto refresh_all = [&] {
    for (const auto& e : sources) RefreshGone(*e);
  };
  // Level-triggered: a source that was gone is asked again (cheap once its role is vacant),
  // so one whose new producer attached stops being reported.
  for (const auto& e : sources) {
    if (e->gone.load(std::memory_order_relaxed)) RefreshGone(*e);
  }
  if (Collect(sources, out)) return Status::kOk;
  if (changed()) return Status::kEmpty;

  // Spin: catches a producer that answers within microseconds, without a syscall.
  const Clock::time_point start = Clock::now();
  if (start >= deadline) return Status::kTimeout;
  const Clock::time_point spin_end =
      options_.busy_poll ? Clock::time_point::max() : start + spin.budget();
  Clock::time_point next_check = start + options_.sleep_slice;
  for (uint32_t i = 1;; ++i) {
    if (Collect(sources, out)) return Status::kOk;
    CpuRelax();
    if ((i & 63) != 0) continue;
    const Clock::time_point now = Clock::now();
    if (now >= deadline) return Status::kTimeout;
    if (changed()) return Status::kEmpty;
    if (now >= next_check) {
      refresh_all();
      if (Collect(sources, out)) return Status::kOk;
      next_check = now + options_.sleep_slice;
    }
    if (now >= spin_end) break;
  }

  // However this wait ends from here, its length teaches the spin budget.
  struct Learn {
    AdaptiveSpin& spin;
    Clock::time_point start;
    ~Learn() { spin.AfterSleep(Clock::now() - start); }
  } learn{spin, start};

  // The distinct words (two subscribers of one broadcast ring share its word).
  std::vector<layout::WaitWord*> words;
  words.reserve(sources.size());
  for (const auto& e : sources) {
    if (std::find(words.begin(), words.end(), e->source.word) == words.end()) {
      words.push_back(e->source.word);
    }
  }
  std::vector<FutexWaitv> waiters(words.size() + 1);
  size_t round_robin = 0;
  auto cancel = [&] {
    for (layout::WaitWord* w : words) internal::CancelSleep(*w);
  };
  for (;;) {
    // Announce a sleeper on every word, then read each word's seq. This is
    // internal::PrepareSleep for many words with one HeavyBarrier instead of one each:
    //   waiters += 1 (relaxed) ; seq (acquire) ; ... ; HeavyBarrier ; re-check sources
    // pairs with the waker's Wake(): publish ; LightBarrier ; load waiters. Either the
    // waker sees our waiters != 0 and bumps seq and wakes (futex_waitv then returns at
    // once, EAGAIN, or is woken), or our re-check below sees what it published. The seq is
    // read before the re-check, so a wake landing between the re-check and the syscall
    // still changes the value futex_waitv compares.
    // Shared futexes (no FUTEX_PRIVATE_FLAG): the words are in files other processes map.
    for (size_t i = 0; i < words.size(); ++i) {
      words[i]->waiters.fetch_add(1, std::memory_order_relaxed);
      waiters[i + 1] = {words[i]->seq.load(std::memory_order_acquire),
                        reinterpret_cast<uintptr_t>(&words[i]->seq), FUTEX2_SIZE_U32, 0};
    }
    // The set's own word: compared against the generation of this snapshot, so a change
    // made after Take() returns at once. Bump always wakes (no waiters count needed).
    waiters[0] = {generation, reinterpret_cast<uintptr_t>(&control_.seq), FUTEX2_SIZE_U32, 0};
    HeavyBarrier();
    if (Collect(sources, out)) {
      cancel();
      return Status::kOk;
    }
    if (changed()) {
      cancel();
      return Status::kEmpty;
    }
    const Clock::time_point now = Clock::now();
    if (now >= deadline) {
      cancel();
      return Status::kTimeout;
    }
    sleeps_.fetch_add(1, std::memory_order_relaxed);
    SleepOnAll(waiters, std::min<Nanos>(options_.sleep_slice, deadline - now), &round_robin);
    cancel();
    if (Collect(sources, out)) return Status::kOk;
    if (changed()) return Status::kEmpty;
    // Woken with nothing to read (a peer left, the object was deleted) or a slice passed:
    // the moment to ask the costly question.
    refresh_all();
    if (Collect(sources, out)) return Status::kOk;
  }
}

Result<int> WaitSet::NotifyFd() {
  std::lock_guard lock(mutex_);
  if (fd_ >= 0) return fd_;
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    return Error(ErrorCode::kSystem, std::string("wait set: eventfd: ") + std::strerror(errno));
  }
  armed_.store(true, std::memory_order_relaxed);
  fd_ = fd;  // before the thread starts (which orders it for the thread)
  try {
    thread_ = std::thread([this] { Notifier(); });
  } catch (const std::system_error& e) {
    fd_ = -1;
    close(fd);
    return Error(ErrorCode::kSystem, std::string("wait set: notifier thread: ") + e.what());
  }
  return fd_;
}

void WaitSet::Rearm() {
  int fd;
  {
    std::lock_guard lock(mutex_);
    fd = fd_;
  }
  if (fd < 0) return;
  // Clear first, then arm: a notification the thread makes after this read is kept (the
  // thread disarms before it writes, so a write racing this call leaves the fd readable
  // and at worst reports the same sources once more).
  uint64_t count;
  (void)!read(fd, &count, sizeof count);
  armed_.store(true, std::memory_order_relaxed);
  Bump();  // release: the thread that sees the bump sees armed_
}

void WaitSet::Notifier() {
  AdaptiveSpin spin(options_.max_spin);
  std::vector<WaitEvent> events;
  const int fd = fd_;  // set before the thread started (under mutex_), never changed
  while (!stop_.load(std::memory_order_acquire)) {
    uint32_t generation = 0;
    Snapshot sources = Take(&generation);  // acquire: sees armed_/stop_ of that bump
    if (stop_.load(std::memory_order_acquire)) break;
    if (!armed_.load(std::memory_order_relaxed)) {
      // Reported; wait for Rearm (or a change, or the destructor) to move the word.
      (void)FutexWait(&control_.seq, generation, nullptr);
      continue;
    }
    Status s = Run(sources, generation, Clock::time_point::max(), spin, &events);
    if (s != Status::kOk) continue;  // the set changed: new snapshot
    armed_.store(false, std::memory_order_relaxed);
    notifications_.fetch_add(1, std::memory_order_relaxed);  // counted before the loop sees it
    const uint64_t one = 1;
    (void)!write(fd, &one, sizeof one);  // EAGAIN only at a counter of 2^64 - 2: still readable
  }
}

// --- sources of the data-plane consumers ------------------------------------------------

namespace {

Error NotAttached(const char* what) {
  return Error(ErrorCode::kInvalidArgument,
               std::string("wait set: the ") + what + " is not attached (moved from?)");
}

// Gone as the blocking receives judge it, with watchers of the source's own: the holder
// this source saw left (PeerWatch, asking the kernel and clearing a dead one), or nobody
// holds the role after something was published.
struct ExclusivePeer {
  PeerWatch watch;
  bool Gone(const Segment& segment, bool published_any) {
    if (watch.Gone(/*check_process=*/true)) return true;
    const auto role = static_cast<uint32_t>(layout::EndpointRole::kProducer);
    // Acquire pairs with the release (acq_rel CAS) that drops the role at detach.
    return published_any &&
           segment.header_page().roles.owner[role].load(std::memory_order_acquire) == 0;
  }
};

}  // namespace

Result<WaitSource> WaitSourceOf(const SpscConsumer& consumer) {
  const std::shared_ptr<Segment>& segment = consumer.shared_segment();
  if (!segment) return NotAttached("SPSC consumer");
  layout::SpscControl* control = &segment->control<layout::SpscControl>();
  const uint8_t* data = segment->data();
  const uint64_t mask = segment->params().capacity - 1;
  WaitSource source;
  source.word = &control->data_ready;
  source.readable = [control, data, mask] {
    // Acquire pairs with the consumer's release of consumer_position (C): the header slot
    // there is the next record the consumer reads (a message, or padding before one
    // published with it). Non-zero means published: (B) on the producer's (A). A racing
    // consumer on another thread can make this briefly stale (a hint), never make a
    // published record look unpublished to a check that follows the sleeper's barrier.
    const uint64_t position = control->consumer_position.load(std::memory_order_acquire);
    return reinterpret_cast<const std::atomic<uint64_t>*>(data + (position & mask))
               ->load(std::memory_order_acquire) != 0;
  };
  auto peer = std::make_shared<ExclusivePeer>();
  peer->watch = PeerWatch(segment.get(), layout::EndpointRole::kProducer);
  const Segment* seg = segment.get();
  source.peer_gone = [peer, seg, control] {
    return peer->Gone(*seg, control->messages_written.load(std::memory_order_relaxed) != 0);
  };
  source.keep_alive = segment;
  return source;
}

Result<WaitSource> WaitSourceOf(const MpmcConsumer& consumer) {
  const std::shared_ptr<Segment>& segment = consumer.shared_segment();
  if (!segment) return NotAttached("MPMC consumer");
  internal::MpmcRingView ring(segment.get());
  WaitSource source;
  source.word = &ring.control->data_ready;
  source.readable = [ring] {
    // The head slot's sequence reads p + 1 once message p (or its abandoned marker) is
    // published: acquire pairs with (A) / (R). If the head moved on while we looked
    // (another consumer took p), read it again; after a few tries say "readable" and let
    // TryReceive sort it out.
    for (int tries = 0; tries < 4; ++tries) {
      const uint64_t p = ring.control->dequeue_position.load(std::memory_order_acquire);
      const uint64_t seq = ring.HeaderAt(p).sequence.load(std::memory_order_acquire);
      const int64_t diff = static_cast<int64_t>(seq - (p + 1));
      if (diff == 0) return true;
      if (diff < 0) return false;
    }
    return true;
  };
  struct Producers {
    internal::RolePresence presence;
  };
  auto producers = std::make_shared<Producers>();
  producers->presence = internal::RolePresence(segment.get(), layout::EndpointRole::kProducer,
                                               &ring.control->enqueue_position);
  const Segment* seg = segment.get();
  source.peer_gone = [producers, seg] {
    // A consumer that only waits here never runs the blocking receive's recovery: take
    // over slots whose claimer died, so the head can become readable again.
    RecoverAbandonedSlots(*seg);
    return producers->presence.Gone(/*check_process=*/true);
  };
  source.keep_alive = segment;
  return source;
}

Result<WaitSource> WaitSourceOf(const BroadcastSubscriber& subscriber) {
  const std::shared_ptr<Segment>& segment = subscriber.shared_segment();
  if (!segment || subscriber.endpoint_slot() >= layout::kMaxEndpoints) {
    return NotAttached("broadcast subscriber");
  }
  auto* control = &segment->control<layout::BroadcastControl>();
  const auto* cursor = &segment->endpoints().slots[subscriber.endpoint_slot()].cursor;
  WaitSource source;
  source.word = &control->data_ready;
  source.readable = [control, cursor] {
    // The subscriber mirrors its cursor into its endpoint slot at every advance (single
    // writer; a release store, which the lossless producer's acquire pairs with; here the
    // value is all that matters). `published` is stored with release after each message's
    // slot is done: published > cursor means TryReceive has a message (or kLapped) to
    // return. Read on another thread than the subscriber's, the cursor may lag: a brief
    // false "readable", never a missed one (the cursor only grows).
    return control->published.load(std::memory_order_acquire) >
           cursor->load(std::memory_order_acquire);
  };
  auto peer = std::make_shared<ExclusivePeer>();
  peer->watch = PeerWatch(segment.get(), layout::EndpointRole::kProducer);
  const Segment* seg = segment.get();
  source.peer_gone = [peer, seg, control] {
    return peer->Gone(*seg, control->published.load(std::memory_order_relaxed) != 0);
  };
  source.keep_alive = segment;
  return source;
}

}  // namespace shmd
