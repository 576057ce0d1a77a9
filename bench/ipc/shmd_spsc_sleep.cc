// shmd-spsc-sleep: shmd's SPSC ring with no adaptive spin (WaitOptions::max_spin = 0): a wait
// that finds nothing goes to sleep on the futex after the wait loop's first 64 polls (~1 us
// here). Its round trip is paced so that every message wakes a process that is asleep: the
// cost to compare with a pipe reader's wake-up.
#include <memory>

#include "bench/ipc/mechanism.h"
#include "bench/ipc/shmd_spsc_ring.h"

namespace shmd::bench {

std::unique_ptr<Mechanism> MakeShmdSpscSleep() {
  WaitOptions wait;
  wait.max_spin = Nanos::zero();
  return MakeShmdSpscRow(
      "shmd-spsc-sleep",
      "shmd-spsc-sleep: as shmd-spsc with WaitOptions{max_spin = 0} (sleeps on the futex after "
      "~1 us of polling). Round trip paced: before each send the initiator waits until the echo "
      "side is asleep (+20 us to settle) and times send to echo, so every round trip is two "
      "futex wake-ups of sleeping processes, as a pipe's is two reader wake-ups",
      wait, /*paced=*/true);
}

}  // namespace shmd::bench
