// What an object's headers say about it, read without disturbing the data path (only
// loads, mostly of lines the hot path does not write on every message). For metrics and
// for operators' tools; figures of a live object are a racy snapshot, each one exact.
#pragma once

#include <cstdint>

#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/segment.h"

namespace shmd {

struct EndpointCensus {
  uint32_t producers = 0;    // live producers (and pool users)
  uint32_t consumers = 0;    // live consumers
  uint32_t subscribers = 0;  // live broadcast subscribers
  uint32_t dead = 0;         // slots whose process is gone but not yet cleared
};

struct ObjectStats {
  layout::ObjectKind kind = layout::ObjectKind::kNone;
  uint64_t file_bytes = 0;      // the whole file, headers included
  uint64_t capacity_bytes = 0;  // the data area
  uint64_t used_bytes = 0;      // rings: bytes (or slots x slot size) not yet consumed;
                                // broadcast: the slowest subscriber's backlog; pools: blocks
                                // in use x block size
  uint64_t messages_written = 0;
  uint64_t messages_read = 0;  // broadcast: summed over subscribers
  uint64_t bytes_written = 0;
  uint64_t bytes_read = 0;
  uint64_t full_events = 0;      // sends that found the ring full
  uint64_t waits = 0;            // futex sleeps, both sides
  uint64_t lapped_messages = 0;  // broadcast: messages subscribers lost by being lapped
  uint32_t pool_blocks = 0;
  uint32_t pool_block_size = 0;
  uint64_t pool_blocks_in_use = 0;
  uint64_t pool_alloc_failures = 0;
  uint64_t pool_reclaimed_blocks = 0;
  EndpointCensus endpoints;
};

// With `check_processes`, a live slot whose process is gone counts as dead (one /proc read
// per live endpoint); without, only the slots' own states count (cheap: for the daemon's
// metrics, which clears dead endpoints itself the moment their process dies).
ObjectStats ReadStats(const Segment& segment, bool check_processes = true);

}  // namespace shmd
