// The endpoint table of an object: who is attached (pid, process start time, role), so
// that a dead endpoint can be found and cleared, and a waiter can tell that its peer left.
//
// Slot states: kFree -> kClaiming (CAS by the registering process) -> kLive (release
// store, after pid/role/... are written) -> kClaiming (graceful release by its owner:
// counters folded, lock let go) -> kFree; or kLive -> kDead (CAS by whoever found its
// process dead) -> kFree (after reclaiming its blocks).
//
// Liveness. Within one pid namespace a slot's pid and process start time say exactly
// whether its owner runs. Across pid namespaces (a Kubernetes pod: the producer, the
// consumer and the shmd sidecar each in their own container) the pid means nothing, so
// each endpoint also holds a lock that the kernel drops when its process dies: an
// open-file-description lock on byte layout::kLivenessLockBase + slot of the object's
// file, taken through the Segment's descriptor (kept open, O_CLOEXEC, for the Segment's
// life) after the slot is claimed and before it is published kLive, let go only after
// the slot has left kLive. Anyone who can open the file can test it, whatever its pid
// namespace: the lock lives on the inode, which containers sharing an emptyDir share.
//
// Policy (EndpointLiveness): same pid namespace -> pid and start time; another one ->
// the lock, if the slot says it holds one (layout::kLivenessLockHeld), else kUnknown
// (objects attached by code that predates the lock are never judged dead by it).
//
// Caveats. Several endpoints of one Segment share its open file description, each with
// its own byte: releasing one lets go of that byte only. A child forked without exec
// shares its parent's descriptions, so it keeps the parent's locks held after the parent
// dies: across namespaces such a parent looks alive until the child exits or closes the
// descriptor (in the same namespace the pid check is not fooled). If the lock cannot be
// taken (a filesystem without OFD locks, ENOLCK, a byte still held by such a child), the
// endpoint works without it, judged as before the lock existed.
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

// Whether the owner of `slot`, which the caller has just seen kLive, still runs (see the
// policy above). Costs a few syscalls: kept off the data path.
Liveness EndpointLiveness(const Segment& segment, uint32_t slot);

// What a dead endpoint's slot still said after it was cleared (kLivenessDiedUnreported).
struct EndpointDeath {
  uint32_t slot = 0;
  uint32_t role = 0;  // layout::EndpointRole
  uint32_t pid = 0;   // in its own pid namespace
  uint32_t uid = 0;
  uint64_t pid_namespace = 0;
  uint64_t lease_id = 0;
};

// For the daemon: takes the trace that clearing a dead endpoint leaves in its (now free)
// slot, once: true (and *out filled in) if this call took it. Whoever cleared the slot,
// the daemon or a peer, the daemon can then end the dead owner's lease and report it.
bool TakeEndpointDeath(const Segment& segment, uint32_t slot, EndpointDeath* out);

// Clears the slot if its process is dead: returns its pool blocks to the free list, folds
// its counters, frees its role and wakes every sleeper. True if this call cleared it.
bool ClearIfDead(const Segment& segment, uint32_t slot);

// Clears every dead endpoint of the object; returns how many were cleared.
uint32_t ClearDeadEndpoints(const Segment& segment);

// Adds a counter over the object's totals and its live endpoints (for metrics): those of
// producers (and pool users) for kProducer, of consumers and subscribers for kConsumer,
// of everyone for kNone. Monotonic across calls, even while endpoints detach or are
// cleared (their counters move into the totals): a read that overlaps such a move is
// retried, so Prometheus never sees a counter reset that did not happen. (A slot left
// half-way by a process that died mid-claim or mid-detach makes it give up retrying
// after a bounded number of tries.)
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
