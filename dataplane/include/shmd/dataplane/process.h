// Who a process is, in a way that survives pid reuse, and whether it still runs.
#pragma once

#include <cstdint>

namespace shmd {

struct ProcessIdentity {
  uint32_t pid = 0;
  uint32_t uid = 0;
  uint64_t start_time = 0;     // /proc/<pid>/stat field 22 (clock ticks after boot)
  uint64_t pid_namespace = 0;  // inode of /proc/<pid>/ns/pid

  // This process, read once (and again after fork: the pid changes).
  static ProcessIdentity Self();
};

enum class Liveness {
  kAlive,
  kDead,     // gone, a zombie, or its pid now belongs to another process
  kUnknown,  // in another pid namespace, with nothing else to tell (see EndpointLiveness)
};

// By pid and start time; only within this process's own pid namespace (kUnknown for a
// process of another one: its pid means nothing here).
Liveness CheckProcess(uint32_t pid, uint64_t start_time, uint64_t pid_namespace);

// The inode of this process's pid namespace (/proc/self/ns/pid), read once per process:
// a child forked into a new namespace (unshare + fork) reads its own again.
uint64_t OwnPidNamespace();

// Field 22 of /proc/<pid>/stat, or 0 with *zombie_or_missing = true when the process is
// gone or a zombie.
uint64_t ReadProcessStartTime(uint32_t pid, bool* zombie_or_missing);

}  // namespace shmd
