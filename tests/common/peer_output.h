// How the test peers (shmd_test_peer, shmd_test_client) talk to the test that started
// them: one line per event on stdout, flushed at once, and "error <why>" then exit 1.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>

#include "shmd/dataplane/result.h"

namespace shmd::testing {

[[noreturn]] inline void Fail(const std::string& why) {
  std::printf("error %s\n", why.c_str());
  std::fflush(stdout);
  std::exit(1);
}

inline void Say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

template <class T>
T Must(Result<T> r) {
  if (!r.ok()) Fail(r.error().message());
  return std::move(r).value();
}

}  // namespace shmd::testing
