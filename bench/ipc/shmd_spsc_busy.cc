// shmd-spsc-busy: shmd's SPSC ring with busy-polling waits (WaitOptions::busy_poll): the
// waiting side never sleeps, so a message is seen as soon as its cache line arrives. The
// lowest latency shmd offers, for one core burnt per waiting side.
#include <memory>

#include "bench/ipc/mechanism.h"
#include "bench/ipc/shmd_spsc_ring.h"

namespace shmd::bench {

std::unique_ptr<Mechanism> MakeShmdSpscBusy() {
  WaitOptions wait;
  wait.busy_poll = true;
  return MakeShmdSpscRow(
      "shmd-spsc-busy",
      "shmd-spsc-busy: shmd SPSC ring, WaitOptions{busy_poll}: copying SendFor, one publication "
      "per message; receiver PeekFor, checks every byte in place, Release; echo sends the peeked "
      "bytes back on a second ring",
      wait);
}

}  // namespace shmd::bench
