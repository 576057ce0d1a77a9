// What shmdctl prints besides tables: JSON, errors, and the exit status that goes with them.
#pragma once

#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "shmd/dataplane/result.h"

namespace shmd::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // the daemon refused, failed or could not be reached
inline constexpr int kExitUsage = 2;   // the command line was wrong

// "shmdctl: <message>" on stderr; returns kExitFailed.
int Fail(const Error& error);
// The same, and where to read how it is done (unless `message` says); returns kExitUsage.
int UsageFail(const std::string& message);

// Writes `text` to stdout; fails when stdout is gone (a closed pipe, a full disk).
int Print(const std::string& text);

// The proto3 JSON mapping, on one line: lowerCamelCase names, enums as names, 64-bit
// numbers as strings, and zero values printed (a script need not know the defaults).
Result<std::string> Json(const google::protobuf::Message& message);
// Json(message) and a newline.
int PrintJson(const google::protobuf::Message& message);

// "[{...},{...}]".
template <class T>
Result<std::string> JsonArray(const std::vector<T>& messages) {
  std::string out = "[";
  for (const T& m : messages) {
    Result<std::string> one = Json(m);
    if (!one.ok()) return one.error();
    out += (out.size() > 1 ? "," : "") + *one;
  }
  return out + "]";
}

// How a call that returns an object ends: its error, or the object as JSON (with --json)
// or as `text(object)` writes it.
template <class T, class Text>
int Answer(bool json, const Result<T>& result, Text text) {
  if (!result.ok()) return Fail(result.error());
  if (json) return PrintJson(*result);
  std::string out = text(*result);
  if (out.empty() || out.back() != '\n') out += '\n';
  return Print(out);
}

}  // namespace shmd::ctl
