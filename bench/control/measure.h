// The control_plane measurements. Each times one client call at a time against the
// benchmark's daemon, checks the answers (a benchmark of wrong answers measures nothing),
// and appends its records. They clean up the objects they make, so they can run in any
// order against one daemon.
#ifndef SHMD_BENCH_CONTROL_MEASURE_H_
#define SHMD_BENCH_CONTROL_MEASURE_H_

#include <vector>

#include "bench/control/report.h"
#include "shmd/client/client.h"

namespace shmd::bench {

struct Plan {
  int round_trips = 2000;  // timed Create+Delete and Attach+Detach pairs
  int warmup = 200;        // untimed pairs before those
  int list_objects = 10'000;
  int list_runs = 5;              // timed ListAllRings calls; the median is the figure
  int crowded_round_trips = 200;  // Create+Delete pairs timed with list_objects rings present
};

// Create, then Delete, an SPSC ring of 64 KiB, each with an id not used before.
VoidResult MeasureCreateDelete(Client& client, const Plan& plan, std::vector<Record>* out);

// Fills the daemon with list_objects SPSC rings of 4 KiB (timing each Create), times
// ListAllRings (1000 per page), times Create+Delete among them, and deletes them all
// (timing each Delete).
VoidResult MeasureList(Client& client, const Plan& plan, std::vector<Record>* out);

// Attach as producer to an SPSC ring, then Detach (the RPCs only: nothing is mapped).
VoidResult MeasureAttach(Client& client, const Plan& plan, std::vector<Record>* out);

}  // namespace shmd::bench

#endif  // SHMD_BENCH_CONTROL_MEASURE_H_
