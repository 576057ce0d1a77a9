#include "bench/common/machine.h"

#include <sched.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace shmd::bench {
namespace {

std::string ReadFirstLine(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// User plus system time of `who` (RUSAGE_SELF or RUSAGE_CHILDREN), in seconds.
double RusageSeconds(int who) {
  rusage usage{};
  getrusage(who, &usage);
  double seconds = 0;
  for (const timeval& tv : {usage.ru_utime, usage.ru_stime}) {
    seconds += static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  }
  return seconds;
}

}  // namespace

MachineInfo DescribeMachine() {
  MachineInfo info;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon != std::string::npos) info.cpu_model = line.substr(colon + 1);
    info.cpu_model.erase(0, info.cpu_model.find_first_not_of(" \t"));
    break;
  }
  if (info.cpu_model.empty()) info.cpu_model = "unknown CPU";
  info.cpus_online = sysconf(_SC_NPROCESSORS_ONLN);
  utsname u;
  if (uname(&u) == 0) info.kernel = std::string(u.sysname) + " " + u.release + " " + u.machine;
  info.clocksource =
      ReadFirstLine("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  if (info.clocksource.empty()) info.clocksource = "unknown";
  return info;
}

CpuTimes ReadCpuTimes() {
  CpuTimes times;
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                     steal = 0;
  if (in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal &&
      cpu == "cpu") {
    const double tick = 1.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
    times.machine_busy_s = static_cast<double>(user + nice + system + irq + softirq) * tick;
    times.machine_steal_s = static_cast<double>(steal) * tick;
  }
  times.self_s = RusageSeconds(RUSAGE_SELF);
  times.children_s = RusageSeconds(RUSAGE_CHILDREN);
  return times;
}

std::vector<int> AllowedCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

}  // namespace shmd::bench
