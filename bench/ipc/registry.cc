// The rows of ipc_compare, in table order. To add one, write bench/ipc/<name>.cc defining
// `std::unique_ptr<Mechanism> Make<Name>()` and add `X(<Name>)` below (CMake picks up every
// bench/ipc/*.cc by itself).
#include <memory>
#include <vector>

#include "bench/ipc/mechanism.h"

#define SHMD_BENCH_IPC_MECHANISMS(X) \
  X(Pipe)                            \
  X(Fifo)                            \
  X(Mq)                              \
  X(Uds)                             \
  X(Tcp)                             \
  X(ShmdSpscBusy)                    \
  X(ShmdSpsc)                        \
  X(ShmdSpscSleep)                   \
  X(ShmdPool)                        \
  X(Cacheline)                       \
  X(Handoff)                         \
  X(Memcpy)

namespace shmd::bench {

#define SHMD_BENCH_DECLARE(Name) std::unique_ptr<Mechanism> Make##Name();
SHMD_BENCH_IPC_MECHANISMS(SHMD_BENCH_DECLARE)
#undef SHMD_BENCH_DECLARE

std::vector<std::unique_ptr<Mechanism>> MakeAllMechanisms() {
  std::vector<std::unique_ptr<Mechanism>> all;
#define SHMD_BENCH_ADD(Name) all.push_back(Make##Name());
  SHMD_BENCH_IPC_MECHANISMS(SHMD_BENCH_ADD)
#undef SHMD_BENCH_ADD
  return all;
}

}  // namespace shmd::bench
