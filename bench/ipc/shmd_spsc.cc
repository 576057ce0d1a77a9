// shmd-spsc: shmd's SPSC ring with the default WaitOptions, what a user gets without asking:
// an adaptive spin (up to 50 us, growing while spinning pays off) before a futex sleep.
#include <memory>

#include "bench/ipc/mechanism.h"
#include "bench/ipc/shmd_spsc_ring.h"

namespace shmd::bench {

std::unique_ptr<Mechanism> MakeShmdSpsc() {
  return MakeShmdSpscRow(
      "shmd-spsc",
      "shmd-spsc: as shmd-spsc-busy with the default WaitOptions (adaptive spin up to 50 us, "
      "then futex sleep)",
      WaitOptions{});
}

}  // namespace shmd::bench
