#include "shmd/dataplane/endpoints.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "shmd/dataplane/wait.h"

namespace shmd {

namespace internal {
// Defined in block_pool.cc: returns the blocks owned by `slot` to the free list.
uint64_t ReclaimPoolBlocks(const Segment& segment, uint32_t slot);
}  // namespace internal

namespace {

using layout::EndpointSlot;
using layout::EndpointState;

constexpr auto kLive = static_cast<uint32_t>(EndpointState::kLive);
constexpr auto kFree = static_cast<uint32_t>(EndpointState::kFree);
constexpr auto kClaiming = static_cast<uint32_t>(EndpointState::kClaiming);
constexpr auto kDeadState = static_cast<uint32_t>(EndpointState::kDead);

std::atomic<uint32_t>& RoleOwner(const Segment& segment, layout::EndpointRole role) {
  return segment.header_page().roles.owner[static_cast<uint32_t>(role)];
}

bool IsProducerSide(uint32_t role) {
  return role == static_cast<uint32_t>(layout::EndpointRole::kProducer);
}

// --- the liveness lock ----------------------------------------------------------------

struct flock LockByte(short type, uint32_t index) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(layout::kLivenessLockBase + index);
  fl.l_len = 1;
  fl.l_pid = 0;  // F_OFD_* require 0
  return fl;
}

// Through the Segment's own descriptor: the open file description this process keeps for
// as long as the endpoint is attached. False if the kernel or filesystem refuses.
bool TakeLivenessLock(const Segment& segment, uint32_t index) {
  struct flock fl = LockByte(F_WRLCK, index);
  return segment.fd() >= 0 && fcntl(segment.fd(), F_OFD_SETLK, &fl) == 0;
}

void DropLivenessLock(const Segment& segment, uint32_t index) {
  struct flock fl = LockByte(F_UNLCK, index);
  (void)fcntl(segment.fd(), F_OFD_SETLK, &fl);
}

// Whether another open file description holds slot `index`'s lock. Tested through a
// description of its own, opened for the test (/proc/self/fd/N opens the same inode
// anew, even unlinked): F_OFD_GETLK never reports a lock held through the description it
// is called on, so testing through the Segment's would report this process's own
// endpoints, or those of a child sharing its descriptions, as unlocked: dead.
Liveness TestLivenessLock(const Segment& segment, uint32_t index) {
  if (segment.fd() < 0) return Liveness::kUnknown;
  char path[48];
  std::snprintf(path, sizeof path, "/proc/self/fd/%d", segment.fd());
  const int probe = open(path, O_RDONLY | O_CLOEXEC);
  if (probe < 0) return Liveness::kUnknown;
  struct flock fl = LockByte(F_WRLCK, index);  // "would a write lock conflict?"
  const int rc = fcntl(probe, F_OFD_GETLK, &fl);
  close(probe);
  if (rc != 0) return Liveness::kUnknown;
  return fl.l_type == F_UNLCK ? Liveness::kDead : Liveness::kAlive;
}

// --- clearing -------------------------------------------------------------------------

// Folds the slot's counters into its side's totals (clearing is rare: RMW is fine) and
// zeroes them for the next owner. The caller has moved the slot out of kLive (to
// kClaiming or kDead) first. Orderings, paired with SumEndpointCounter's (S1) and (S2):
//   (F1) the additions are release RMWs, after that state change: a reader whose acquire
//        load of the totals reads one of them (or a later addition: the release
//        sequence) sees the slot out of kLive when it looks again, and retries;
//   (F2) the zeroing stores are release stores, after the additions: a reader whose
//        acquire load reads a zeroed counter reads totals that include what it held.
// So a reader that completes counts each folded value exactly once. (Release and acquire
// operations rather than fences: GCC's ThreadSanitizer does not model fences.)
void FoldCounters(const Segment& segment, EndpointSlot& slot) {
  auto& totals = segment.header_page().totals;
  auto* side = IsProducerSide(slot.role) ? totals.producer : totals.consumer;
  for (uint32_t i = 0; i < layout::kEndpointCounters; ++i) {
    const uint64_t v = slot.counters[i].load(std::memory_order_relaxed);
    if (v != 0) side[i].fetch_add(v, std::memory_order_release);  // (F1)
  }
  for (uint32_t i = 0; i < layout::kEndpointCounters; ++i) {
    slot.counters[i].store(0, std::memory_order_release);  // (F2)
  }
  slot.cursor.store(0, std::memory_order_relaxed);
}

// Gives up the exclusive role if this slot holds it.
void DropRole(const Segment& segment, uint32_t index, uint32_t role) {
  if (role >= 4) return;
  uint32_t expected = index + 1;
  segment.header_page().roles.owner[role].compare_exchange_strong(expected, 0,
                                                                  std::memory_order_acq_rel);
}

void WakeEveryone(const Segment& segment, bool reset_waiters) {
  ForEachWaitWord(segment, [&](layout::WaitWord& word) {
    // A dead sleeper never takes itself off the count; without the reset every publish
    // would make a futex syscall for nobody.
    if (reset_waiters) word.waiters.store(0, std::memory_order_relaxed);
    WakeAll(word);
  });
}

}  // namespace

Result<uint32_t> ClaimEndpoint(const Segment& segment, layout::EndpointRole role, bool exclusive) {
  RegisterAsymmetricBarrier();
  const ProcessIdentity self = ProcessIdentity::Self();
  auto& table = segment.endpoints();
  for (int attempt = 0; attempt < 2; ++attempt) {
    for (uint32_t i = 0; i < layout::kMaxEndpoints; ++i) {
      EndpointSlot& slot = table.slots[i];
      uint32_t state = kFree;
      if (!slot.state.compare_exchange_strong(state, kClaiming, std::memory_order_acquire)) {
        continue;
      }
      // First, before the lease id below: takes the slot's flags over, died trace included.
      // If the daemon's compare-exchange took the trace first (TakeEndpointDeath), this
      // RMW reads its result (acquire pairs with its release), so the daemon's reads of
      // the dead owner's lease id happened before our store of ours; if this came first,
      // the daemon's compare-exchange fails. Either way no lease is reported twice or
      // mistaken for another.
      slot.liveness.exchange(0, std::memory_order_acq_rel);
      slot.role = static_cast<uint32_t>(role);
      slot.pid = self.pid;
      slot.uid = self.uid;
      slot.start_time = self.start_time;
      slot.pid_namespace = self.pid_namespace;
      slot.attached_unix_ns =
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
      slot.lease_id = segment.lease_id();
      // The lock once the slot is ours (kClaiming: nobody judges it) and before kLive: a
      // checker that sees kLive with the flag finds the lock held for as long as we live.
      // If the lock cannot be taken, the endpoint goes without the flag: judged by its pid
      // only, as before the lock existed; never a reason to fail the attach.
      // The flag carries our incarnation: only then does it count (layout.h).
      const uint32_t incarnation = slot.incarnation.load(std::memory_order_relaxed) + 1;
      if (TakeLivenessLock(segment, i)) {
        slot.liveness.store(layout::LivenessLockWord(incarnation), std::memory_order_relaxed);
      }
      // Release: a checker that reads this incarnation (acquire, EndpointLiveness) also
      // reads the word above. (We are the slot's only writer while it is kClaiming.)
      slot.incarnation.store(incarnation, std::memory_order_release);
      // Publishes the identity above to anyone who reads kLive with acquire.
      slot.state.store(kLive, std::memory_order_release);
      if (!exclusive) return i;

      for (int tries = 0; tries < 4; ++tries) {
        uint32_t owner = 0;
        if (RoleOwner(segment, role)
                .compare_exchange_strong(owner, i + 1, std::memory_order_acq_rel)) {
          return i;
        }
        // Somebody holds the role: fine if they are dead (clear them and retry).
        if (owner == 0 || ClearIfDead(segment, owner - 1)) continue;
        const EndpointSlot& holder = table.slots[owner - 1];
        ReleaseEndpoint(segment, i);
        return Error(ErrorCode::kBusy,
                     "\"" + segment.name() + "\" already has a live " +
                         (role == layout::EndpointRole::kProducer ? "producer" : "consumer") +
                         " (pid " + std::to_string(holder.pid) +
                         "); this kind of object takes one; detach it first");
      }
      ReleaseEndpoint(segment, i);
      return Error(ErrorCode::kBusy,
                   "the role on \"" + segment.name() + "\" keeps changing hands; retry");
    }
    // No free slot: dead endpoints may be holding them.
    if (ClearDeadEndpoints(segment) == 0) break;
  }
  return Error(ErrorCode::kBusy, "\"" + segment.name() + "\" has all " +
                                     std::to_string(layout::kMaxEndpoints) +
                                     " endpoint slots in use; detach some endpoints first");
}

void ReleaseEndpoint(const Segment& segment, uint32_t index) {
  if (index >= layout::kMaxEndpoints) return;
  EndpointSlot& slot = segment.endpoints().slots[index];
  DropRole(segment, index, slot.role);
  // Out of kLive first (seq_cst: a full barrier before the unlock syscall below), for two
  // reasons: checkers judge kLive slots only, so none sees this one live once its lock is
  // gone (it would take us for dead and clear us); and counter readers see a fold coming.
  slot.state.store(kClaiming, std::memory_order_seq_cst);
  FoldCounters(segment, slot);
  // The lock before kFree: the next claimer of this slot must find its byte free.
  if ((slot.liveness.load(std::memory_order_relaxed) & layout::kLivenessLockHeld) != 0) {
    DropLivenessLock(segment, index);
  }
  slot.liveness.store(0, std::memory_order_relaxed);  // a free slot never says "locked"
  slot.state.store(kFree, std::memory_order_release);
  WakeEveryone(segment, /*reset_waiters=*/false);
}

Liveness EndpointLiveness(const Segment& segment, uint32_t index) {
  if (index >= layout::kMaxEndpoints) return Liveness::kUnknown;
  const EndpointSlot& slot = segment.endpoints().slots[index];
  const uint64_t pid_namespace = slot.pid_namespace.load(std::memory_order_relaxed);
  // Our own namespace: pid and start time are exact, and see through a lock kept alive
  // by a child that inherited the owner's descriptor.
  if (pid_namespace == OwnPidNamespace()) {
    return CheckProcess(slot.pid.load(std::memory_order_relaxed),
                        slot.start_time.load(std::memory_order_relaxed), pid_namespace);
  }
  // Another one: only the lock can tell, and only if this incarnation's owner took it.
  // The incarnation first: a word read after it is at least as new (see ClaimEndpoint).
  const uint32_t incarnation = slot.incarnation.load(std::memory_order_acquire);
  const uint32_t word = slot.liveness.load(std::memory_order_acquire);
  if (!layout::LivenessLockHeld(word, incarnation)) return Liveness::kUnknown;
  return TestLivenessLock(segment, index);
}

bool ClearIfDead(const Segment& segment, uint32_t index) {
  if (index >= layout::kMaxEndpoints) return false;
  EndpointSlot& slot = segment.endpoints().slots[index];
  if (slot.state.load(std::memory_order_acquire) != kLive) return false;
  // The incarnation before the verdict: if the slot changes hands while we judge (its
  // owner detaches, a new one claims it), the compare-exchange below could take the new
  // owner's kLive for the one we judged; the re-check after it catches that.
  const uint32_t incarnation = slot.incarnation.load(std::memory_order_acquire);
  if (EndpointLiveness(segment, index) != Liveness::kDead) return false;
  uint32_t expected = kLive;
  // One clearer wins; the others see kDead and leave it alone.
  if (!slot.state.compare_exchange_strong(expected, kDeadState, std::memory_order_acq_rel)) {
    return false;
  }
  if (slot.incarnation.load(std::memory_order_acquire) != incarnation) {
    // We judged its predecessor. Give the live owner its state back, unless it is
    // detaching already (then its own store has replaced our kDead, and this fails).
    expected = kDeadState;
    slot.state.compare_exchange_strong(expected, kLive, std::memory_order_acq_rel);
    return false;
  }
  if (segment.kind() == layout::ObjectKind::kBlockPool) {
    uint64_t reclaimed = internal::ReclaimPoolBlocks(segment, index);
    segment.header_page().totals.reclaimed_blocks.fetch_add(reclaimed, std::memory_order_relaxed);
  }
  DropRole(segment, index, slot.role);
  FoldCounters(segment, slot);
  segment.header_page().totals.endpoints_cleared.fetch_add(1, std::memory_order_relaxed);
  // The trace for the daemon (TakeEndpointDeath), replacing the lock flag: the lock died
  // with its process (or lives on in a descriptor a child inherited; then the next
  // claimer of this slot goes without one). Release: whoever reads the bit with acquire
  // reads the dead owner's lease id and identity with it.
  slot.liveness.store(layout::kLivenessDiedUnreported, std::memory_order_release);
  slot.state.store(kFree, std::memory_order_release);
  WakeEveryone(segment, /*reset_waiters=*/true);
  return true;
}

uint32_t ClearDeadEndpoints(const Segment& segment) {
  uint32_t cleared = 0;
  for (uint32_t i = 0; i < layout::kMaxEndpoints; ++i) cleared += ClearIfDead(segment, i) ? 1 : 0;
  return cleared;
}

bool TakeEndpointDeath(const Segment& segment, uint32_t index, EndpointDeath* out) {
  if (index >= layout::kMaxEndpoints) return false;
  EndpointSlot& slot = segment.endpoints().slots[index];
  if (slot.state.load(std::memory_order_acquire) != kFree) return false;
  const uint32_t incarnation = slot.incarnation.load(std::memory_order_relaxed);
  // Acquire pairs with ClearIfDead's release store of the bit: the fields below are the
  // dead owner's.
  uint32_t flags = slot.liveness.load(std::memory_order_acquire);
  if ((flags & layout::kLivenessDiedUnreported) == 0) return false;
  out->slot = index;
  out->role = slot.role.load(std::memory_order_relaxed);
  out->pid = slot.pid.load(std::memory_order_relaxed);
  out->uid = slot.uid.load(std::memory_order_relaxed);
  out->pid_namespace = slot.pid_namespace.load(std::memory_order_relaxed);
  out->lease_id = slot.lease_id.load(std::memory_order_relaxed);
  // Release pairs with the next claimer's exchange (see ClaimEndpoint): if this succeeds,
  // the reads above came before any of its stores. The incarnation check rules out a
  // whole claim, death and clear having happened in between (the same flags again).
  return slot.liveness.compare_exchange_strong(flags, flags & ~layout::kLivenessDiedUnreported,
                                               std::memory_order_acq_rel,
                                               std::memory_order_relaxed) &&
         slot.incarnation.load(std::memory_order_relaxed) == incarnation;
}

uint64_t SumEndpointCounter(const Segment& segment, layout::EndpointCounter counter,
                            layout::EndpointRole side) {
  const auto& totals = segment.header_page().totals;
  const auto& slots = segment.endpoints().slots;
  const bool want_producers = side != layout::EndpointRole::kConsumer;
  const bool want_consumers = side != layout::EndpointRole::kProducer;
  // A slot's counters move into the totals when it is released or cleared (FoldCounters).
  // Reading the slots and then the totals may catch that move half-way and count a value
  // twice or not at all: Prometheus would read the dip as a counter reset. So: read the
  // slots, then the totals, then the slots' states again, and retry while a slot was
  // between states (kClaiming, kDead: a fold may be under way) or changed state. A slot
  // left in such a state by a process that died mid-claim or mid-release would make every
  // read retry: after kAttempts the last sum is returned as it is.
  constexpr int kAttempts = 64;
  uint64_t sum = 0;
  for (int attempt = 1;; ++attempt) {
    uint32_t states[layout::kMaxEndpoints];
    uint32_t incarnations[layout::kMaxEndpoints];
    bool moving = false;
    sum = 0;
    for (uint32_t i = 0; i < layout::kMaxEndpoints; ++i) {
      const EndpointSlot& slot = slots[i];
      states[i] = slot.state.load(std::memory_order_acquire);
      incarnations[i] = slot.incarnation.load(std::memory_order_relaxed);
      if (states[i] == kClaiming || states[i] == kDeadState) moving = true;
      if (states[i] != kLive) continue;
      const bool producer = IsProducerSide(slot.role.load(std::memory_order_relaxed));
      if (producer ? want_producers : want_consumers) {
        sum += slot.counters[counter].load(std::memory_order_acquire);  // (S1), with (F2)
      }
    }
    // (S2), with (F1): acquire, so the states below are read after the totals.
    if (want_producers) sum += totals.producer[counter].load(std::memory_order_acquire);
    if (want_consumers) sum += totals.consumer[counter].load(std::memory_order_acquire);
    for (uint32_t i = 0; i < layout::kMaxEndpoints && !moving; ++i) {
      moving = slots[i].state.load(std::memory_order_relaxed) != states[i] ||
               slots[i].incarnation.load(std::memory_order_relaxed) != incarnations[i];
    }
    if (!moving || attempt == kAttempts) return sum;
    std::this_thread::yield();  // the folder may need the core
  }
}

PeerWatch::PeerWatch(const Segment* segment, layout::EndpointRole role)
    : segment_(segment), role_(role) {
  Gone(false);  // adopts the current holder, if any
}

bool PeerWatch::Gone(bool check_process) {
  if (segment_ == nullptr) return false;
  uint32_t owner = RoleOwner(*segment_, role_).load(std::memory_order_acquire);
  if (slot_plus_one_ == 0) {
    if (owner == 0) return lost_;
    // A (new) holder: adopt it.
    slot_plus_one_ = owner;
    incarnation_ =
        segment_->endpoints().slots[owner - 1].incarnation.load(std::memory_order_acquire);
    lost_ = false;
  }
  const EndpointSlot& slot = segment_->endpoints().slots[slot_plus_one_ - 1];
  bool gone = owner != slot_plus_one_ ||
              slot.incarnation.load(std::memory_order_acquire) != incarnation_ ||
              slot.state.load(std::memory_order_acquire) != kLive;
  if (!gone && check_process && ClearIfDead(*segment_, slot_plus_one_ - 1)) gone = true;
  if (!gone && check_process &&
      slot.state.load(std::memory_order_acquire) == static_cast<uint32_t>(EndpointState::kDead)) {
    gone = true;  // someone else is clearing it
  }
  if (gone) {
    slot_plus_one_ = 0;
    lost_ = true;
  }
  return gone;
}

}  // namespace shmd
