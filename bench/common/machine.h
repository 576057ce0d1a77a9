// What the machine is, and how busy it was: shared by the benchmarks so each can say where
// its figures came from and how much other work shared the CPUs with it.
#ifndef SHMD_BENCH_COMMON_MACHINE_H_
#define SHMD_BENCH_COMMON_MACHINE_H_

#include <string>
#include <vector>

namespace shmd::bench {

struct MachineInfo {
  std::string cpu_model;    // /proc/cpuinfo "model name"
  long cpus_online = 0;     // sysconf(_SC_NPROCESSORS_ONLN)
  std::string kernel;       // uname: sysname release machine
  std::string clocksource;  // /sys/devices/system/clocksource/clocksource0
};
MachineInfo DescribeMachine();

// CPU time spent so far, for telling how much of the machine other work took during the
// benchmark (it shows up in every figure, the tails most, so the output states it).
struct CpuTimes {
  double machine_busy_s = 0;   // /proc/stat: user, nice, system, irq, softirq, all CPUs
  double machine_steal_s = 0;  // /proc/stat: taken by the hypervisor
  double self_s = 0;           // this process (getrusage RUSAGE_SELF)
  double children_s = 0;       // its reaped children (getrusage RUSAGE_CHILDREN)
};
CpuTimes ReadCpuTimes();

// The CPUs this process may run on (sched_getaffinity), in order; empty if unknown.
std::vector<int> AllowedCpus();

}  // namespace shmd::bench

#endif  // SHMD_BENCH_COMMON_MACHINE_H_
