#include "shmd/dataplane/endpoints.h"

#include <chrono>

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

std::atomic<uint32_t>& RoleOwner(const Segment& segment, layout::EndpointRole role) {
  return segment.header_page().roles.owner[static_cast<uint32_t>(role)];
}

bool IsProducerSide(uint32_t role) {
  return role == static_cast<uint32_t>(layout::EndpointRole::kProducer);
}

// Folds the slot's counters into its side's totals (clearing is rare: RMW is fine) and
// zeroes them for the next owner.
void FoldCounters(const Segment& segment, EndpointSlot& slot) {
  auto& totals = segment.header_page().totals;
  auto* side = IsProducerSide(slot.role) ? totals.producer : totals.consumer;
  for (uint32_t i = 0; i < 7; ++i) {
    uint64_t v = slot.counters[i].load(std::memory_order_relaxed);
    if (v != 0) side[i].fetch_add(v, std::memory_order_relaxed);
    slot.counters[i].store(0, std::memory_order_relaxed);
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
      if (!slot.state.compare_exchange_strong(
              state, static_cast<uint32_t>(EndpointState::kClaiming), std::memory_order_acquire)) {
        continue;
      }
      slot.role = static_cast<uint32_t>(role);
      slot.pid = self.pid;
      slot.uid = self.uid;
      slot.start_time = self.start_time;
      slot.pid_namespace = self.pid_namespace;
      slot.attached_unix_ns =
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
      slot.lease_id = 0;
      slot.incarnation.fetch_add(1, std::memory_order_relaxed);
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
  FoldCounters(segment, slot);
  slot.state.store(kFree, std::memory_order_release);
  WakeEveryone(segment, /*reset_waiters=*/false);
}

Liveness EndpointLiveness(const EndpointSlot& slot) {
  return CheckProcess(slot.pid, slot.start_time, slot.pid_namespace);
}

bool ClearIfDead(const Segment& segment, uint32_t index) {
  if (index >= layout::kMaxEndpoints) return false;
  EndpointSlot& slot = segment.endpoints().slots[index];
  if (slot.state.load(std::memory_order_acquire) != kLive) return false;
  if (EndpointLiveness(slot) != Liveness::kDead) return false;
  uint32_t expected = kLive;
  // One clearer wins; the others see kDead and leave it alone.
  if (!slot.state.compare_exchange_strong(expected, static_cast<uint32_t>(EndpointState::kDead),
                                          std::memory_order_acq_rel)) {
    return false;
  }
  if (segment.kind() == layout::ObjectKind::kBlockPool) {
    uint64_t reclaimed = internal::ReclaimPoolBlocks(segment, index);
    segment.header_page().totals.reclaimed_blocks.fetch_add(reclaimed, std::memory_order_relaxed);
  }
  DropRole(segment, index, slot.role);
  FoldCounters(segment, slot);
  segment.header_page().totals.endpoints_cleared.fetch_add(1, std::memory_order_relaxed);
  slot.state.store(kFree, std::memory_order_release);
  WakeEveryone(segment, /*reset_waiters=*/true);
  return true;
}

uint32_t ClearDeadEndpoints(const Segment& segment) {
  uint32_t cleared = 0;
  for (uint32_t i = 0; i < layout::kMaxEndpoints; ++i) cleared += ClearIfDead(segment, i) ? 1 : 0;
  return cleared;
}

uint64_t SumEndpointCounter(const Segment& segment, layout::EndpointCounter counter,
                            layout::EndpointRole side) {
  const auto& totals = segment.header_page().totals;
  const bool want_producers = side != layout::EndpointRole::kConsumer;
  const bool want_consumers = side != layout::EndpointRole::kProducer;
  uint64_t sum = 0;
  if (want_producers) sum += totals.producer[counter].load(std::memory_order_relaxed);
  if (want_consumers) sum += totals.consumer[counter].load(std::memory_order_relaxed);
  for (const EndpointSlot& slot : segment.endpoints().slots) {
    if (slot.state.load(std::memory_order_acquire) != kLive) continue;
    const bool producer = IsProducerSide(slot.role);
    if (producer ? want_producers : want_consumers) {
      sum += slot.counters[counter].load(std::memory_order_relaxed);
    }
  }
  return sum;
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
