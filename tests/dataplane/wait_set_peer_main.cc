// wait_set_peer: a producer process for the wait set tests. It attaches as the producer of
// COUNT SPSC rings named PREFIX<FIRST> ... PREFIX<FIRST + COUNT - 1>, prints "ready", and
// sends MESSAGES messages into each, interleaving the rings at random (seeded by SEED) with
// random gaps, so the consumer sees rings become readable in no particular order. Message
// i of ring r is 8 bytes: r then i (uint32 each), so the consumer can check order and
// completeness.
//
//   wait_set_peer DIR NS PREFIX FIRST COUNT MESSAGES SEED exit   send all, detach, exit 0
//   wait_set_peer DIR NS PREFIX FIRST COUNT MESSAGES SEED hang   send all, print "sent",
//                                                                then sleep until killed
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/peer_output.h"
#include "shmd/dataplane/spsc_ring.h"

using namespace shmd;
using shmd::testing::Fail;
using shmd::testing::Must;
using shmd::testing::Say;

int main(int argc, char** argv) {
  if (argc != 9) Fail("usage: DIR NS PREFIX FIRST COUNT MESSAGES SEED exit|hang");
  const ShmDir dir{argv[1], argv[2]};
  const std::string prefix = argv[3];
  const uint32_t first = static_cast<uint32_t>(std::strtoul(argv[4], nullptr, 10));
  const uint32_t count = static_cast<uint32_t>(std::strtoul(argv[5], nullptr, 10));
  const uint32_t messages = static_cast<uint32_t>(std::strtoul(argv[6], nullptr, 10));
  const uint64_t seed = std::strtoull(argv[7], nullptr, 10);
  const std::string mode = argv[8];
  if (mode != "exit" && mode != "hang") Fail("mode must be exit or hang");

  std::vector<SpscProducer> producers;
  for (uint32_t r = first; r < first + count; ++r) {
    producers.push_back(Must(SpscProducer::Open(dir, prefix + std::to_string(r))));
  }
  Say("ready");

  std::mt19937_64 rng(seed);
  std::vector<uint32_t> next(count, 0);
  std::vector<uint32_t> open;  // rings with messages left to send
  for (uint32_t i = 0; i < count; ++i) open.push_back(i);
  while (!open.empty()) {
    const size_t pick = rng() % open.size();
    const uint32_t i = open[pick];
    const uint32_t payload[2] = {first + i, next[i]};
    Status s = producers[i].SendFor({reinterpret_cast<const std::byte*>(payload), sizeof payload},
                                    std::chrono::seconds(20));
    if (s != Status::kOk) Fail(std::string("send: ") + StatusName(s));
    if (++next[i] == messages) {
      open[pick] = open.back();
      open.pop_back();
    }
    // Random gaps: mostly back to back, sometimes a pause long enough for the consumer to
    // go to sleep in futex_waitv.
    const uint64_t roll = rng() % 64;
    if (roll == 0) {
      std::this_thread::sleep_for(std::chrono::microseconds(200 + rng() % 2000));
    } else if (roll < 4) {
      std::this_thread::yield();
    }
  }
  if (mode == "hang") {
    Say("sent");
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return 0;
  }
  producers.clear();  // detach: the consumer's wait set sees every ring's producer leave
  Say("done");
  return 0;
}
