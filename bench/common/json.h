// Small pieces of JSON output shared by the benchmarks' --json reports.
#ifndef SHMD_BENCH_COMMON_JSON_H_
#define SHMD_BENCH_COMMON_JSON_H_

#include <string>

namespace shmd::bench {

// A JSON string literal of `s`. The benchmarks' names hold no control characters, but the
// quote and the backslash, which JSON requires escaped, are escaped all the same.
inline std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace shmd::bench

#endif  // SHMD_BENCH_COMMON_JSON_H_
