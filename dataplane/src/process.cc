#include "shmd/dataplane/process.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace shmd {
namespace {

uint64_t PidNamespaceOf(const char* proc_pid) {
  std::string path = std::string("/proc/") + proc_pid + "/ns/pid";
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_ino;
}

// 0: not read yet in this process. A forked child may live in another pid namespace than
// its parent (the parent called unshare(CLONE_NEWPID) first): the atfork handler makes it
// read its own.
std::atomic<uint64_t> own_namespace{0};

}  // namespace

uint64_t OwnPidNamespace() {
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, [] { own_namespace.store(0, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
  uint64_t ns = own_namespace.load(std::memory_order_relaxed);
  if (ns == 0) {
    ns = PidNamespaceOf("self");
    own_namespace.store(ns, std::memory_order_relaxed);
  }
  return ns;
}

uint64_t ReadProcessStartTime(uint32_t pid, bool* zombie_or_missing) {
  *zombie_or_missing = true;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  ssize_t n;
  do {
    n = read(fd, buf, sizeof buf - 1);
  } while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  // The command name (field 2) may hold spaces and parentheses: fields resume after the
  // last ')'. Then: state (field 3) ... starttime (field 22).
  char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ') return 0;
  p += 2;
  char state = *p;
  if (state == 'Z' || state == 'X' || state == 'x') return 0;
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return 0;
    ++p;
  }
  *zombie_or_missing = false;
  return std::strtoull(p, nullptr, 10);
}

ProcessIdentity ProcessIdentity::Self() {
  ProcessIdentity id;
  id.pid = static_cast<uint32_t>(getpid());
  id.uid = static_cast<uint32_t>(geteuid());
  bool missing = false;
  id.start_time = ReadProcessStartTime(id.pid, &missing);
  id.pid_namespace = OwnPidNamespace();
  return id;
}

Liveness CheckProcess(uint32_t pid, uint64_t start_time, uint64_t pid_namespace) {
  if (pid == 0) return Liveness::kDead;
  if (pid_namespace != OwnPidNamespace()) return Liveness::kUnknown;
  // kill(pid, 0) answers ESRCH for a pid nobody has, and EPERM for another user's
  // process, which is alive all the same.
  if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return Liveness::kDead;
  bool gone = false;
  uint64_t now_start = ReadProcessStartTime(pid, &gone);
  if (gone) return Liveness::kDead;
  return now_start == start_time ? Liveness::kAlive : Liveness::kDead;
}

}  // namespace shmd
