// The shmd SPSC ring rows (shmd-spsc-busy, shmd-spsc, shmd-spsc-sleep): one implementation,
// three WaitOptions. Each row's file (shmd_spsc_busy.cc, ...) names it and says what it is.
#ifndef SHMD_BENCH_IPC_SHMD_SPSC_RING_H_
#define SHMD_BENCH_IPC_SHMD_SPSC_RING_H_

#include <memory>
#include <string_view>

#include "bench/ipc/mechanism.h"
#include "shmd/dataplane/wait.h"

namespace shmd::bench {

// A row moving every message through a copying SpscProducer::SendFor (one publication per
// message, no batching) and reading it in place with SpscConsumer::PeekFor, checking every
// byte there, then Release. Ping-pong uses a second ring for the way back; the echo side
// sends the bytes it peeked straight from the ring (one copy) and then releases them.
// `paced`: the round trip waits, before each send, until the echo side has gone to sleep,
// and times only send to echo (see PacedInitiate in shmd_spsc_ring.cc).
// `name` and `note` must outlive the mechanism (string literals).
std::unique_ptr<Mechanism> MakeShmdSpscRow(std::string_view name, std::string_view note,
                                           const WaitOptions& wait, bool paced = false);

}  // namespace shmd::bench

#endif  // SHMD_BENCH_IPC_SHMD_SPSC_RING_H_
