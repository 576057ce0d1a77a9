// A private namespace of objects per test, removed afterwards, and the stress scale.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "shmd/dataplane/segment.h"

namespace shmd::testing {

// Objects go to /dev/shm under a namespace no other test (or run) uses.
class TestDir {
 public:
  explicit TestDir(std::string path = "/dev/shm") {
    static std::atomic<int> counter{0};
    dir_.path = std::move(path);
    dir_.ns = "test-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  }
  ~TestDir() { RemoveAll(); }
  const ShmDir& dir() const { return dir_; }
  operator const ShmDir&() const { return dir_; }  // NOLINT

  // Files of this namespace still in the directory.
  int CountFiles() const {
    int n = 0;
    ForEachFile([&](const std::string&) { ++n; });
    return n;
  }
  void RemoveAll() const {
    ForEachFile([&](const std::string& file) { unlink((dir_.path + "/" + file).c_str()); });
  }

 private:
  template <class Fn>
  void ForEachFile(Fn&& fn) const {
    const std::string prefix = "shmd." + dir_.ns + ".";
    DIR* d = opendir(dir_.path.c_str());
    if (d == nullptr) return;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name.rfind(prefix, 0) == 0) fn(name);
    }
    closedir(d);
  }
  ShmDir dir_;
};

// SHMD_STRESS_SCALE shrinks (or grows) message counts, e.g. 0.1 under sanitizers.
inline uint64_t Scaled(uint64_t n) {
  const char* s = std::getenv("SHMD_STRESS_SCALE");
  double scale = s != nullptr ? std::atof(s) : 1.0;
  if (scale <= 0) scale = 1.0;
  uint64_t v = static_cast<uint64_t>(static_cast<double>(n) * scale);
  return v == 0 ? 1 : v;
}

}  // namespace shmd::testing
