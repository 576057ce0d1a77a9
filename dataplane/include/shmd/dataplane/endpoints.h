// The endpoint table of an object: who is attached (pid, process start time, role), so
// that a dead endpoint can be found and cleared, and a waiter can tell that its peer left.
//
// Slot states: kFree -> kClaiming (CAS by the registering process) -> kLive (release
// store, after pid/role/... are written) -> kFree (graceful release by its owner) or
// kDead (CAS by whoever found its process dead) -> kFree (after reclaiming its blocks).
#pragma once

#include <cstdint>

#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/process.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"

namespace shmd {

// Takes a free slot for this process. With `exclusive`, also takes the role itself (the
// SPSC producer, say): a live holder makes this fail with kBusy; a dead one is cleared.
Result<uint32_t> ClaimEndpoint(const Segment& segment, layout::EndpointRole role, bool exclusive);

// Graceful detach by the slot's owner: folds its counters into the object's totals, gives
// up its role, wakes whoever waits (so a peer sees it leave) and frees the slot.
void ReleaseEndpoint(const Segment& segment, uint32_t slot);

// Whether the process behind a live slot still runs (kUnknown across pid namespaces).
Liveness EndpointLiveness(const layout::EndpointSlot& slot);

// Clears the slot if its process is dead: returns its pool blocks to the free list, folds
// its counters, frees its role and wakes every sleeper. True if this call cleared it.
bool ClearIfDead(const Segment& segment, uint32_t slot);

// Clears every dead endpoint of the object; returns how many were cleared.
uint32_t ClearDeadEndpoints(const Segment& segment);

// Adds a counter over the object's totals and its live endpoints (for metrics): those of
// producers (and pool users) for kProducer, of consumers and subscribers for kConsumer,
// of everyone for kNone.
uint64_t SumEndpointCounter(const Segment& segment, layout::EndpointCounter counter,
                            layout::EndpointRole side = layout::EndpointRole::kNone);

// Follows the holder of an exclusive role (a consumer's producer, say) to tell a waiter
// when it has gone: detached, replaced, or dead. "Gone" is sticky until a new holder
// attaches, so a consumer that keeps calling Receive keeps hearing kPeerGone.
class PeerWatch {
 public:
  PeerWatch() = default;
  PeerWatch(const Segment* segment, layout::EndpointRole role);

  // Cheap form (two loads) when `check_process` is false; otherwise also asks the kernel
  // whether the peer's process still runs, and clears its slot if not.
  bool Gone(bool check_process);

 private:
  const Segment* segment_ = nullptr;
  layout::EndpointRole role_ = layout::EndpointRole::kNone;
  uint32_t slot_plus_one_ = 0;  // 0: no peer known
  uint32_t incarnation_ = 0;
  bool lost_ = false;
};

}  // namespace shmd
