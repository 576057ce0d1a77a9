#include "server/shmdctl/format.h"

#include <time.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <iterator>

namespace shmd::ctl {
namespace {

// "RING_KIND_SPSC" less "RING_KIND_" is "spsc". A value this build does not know (a newer
// daemon) has no name: its number is shown instead.
std::string Word(const std::string& enum_name, const char* prefix, int number) {
  if (enum_name.empty()) return std::to_string(number);
  std::string word =
      enum_name.rfind(prefix, 0) == 0 ? enum_name.substr(std::strlen(prefix)) : enum_name;
  for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return word;
}

}  // namespace

std::string Bytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + "B";
  int unit = 0;
  uint64_t factor = 1024;
  while (unit + 1 < static_cast<int>(std::size(kUnits)) && bytes / factor >= 1024) {
    factor *= 1024;
    ++unit;
  }
  const uint64_t whole = bytes / factor;
  if (bytes % factor == 0) return std::to_string(whole) + kUnits[unit];
  // Tenths rounded down, so that 524272 bytes read "511.9KiB", not an exact-looking
  // "512.0KiB". bytes % factor < 2^60, so the product cannot overflow.
  const uint64_t tenths = bytes % factor * 10 / factor;
  return std::to_string(whole) + "." + std::to_string(tenths) + kUnits[unit];
}

std::string BytesExact(uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  return Bytes(bytes) + " (" + std::to_string(bytes) + " bytes)";
}

std::string Mode(uint32_t mode) {
  char text[16];
  std::snprintf(text, sizeof text, "%04o", mode);
  return text;
}

std::string Percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  // Rounded down: a ring shows 100% only when it is full.
  const double percent = 100.0 * static_cast<double>(part) / static_cast<double>(whole);
  if (part > 0 && percent < 1) return "<1%";
  return std::to_string(static_cast<uint64_t>(percent)) + "%";
}

std::string Time(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  const time_t seconds = static_cast<time_t>(time.seconds());
  struct tm local;
  if (!localtime_r(&seconds, &local)) return std::to_string(time.seconds());
  char text[64];
  const size_t n = strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &local);
  std::snprintf(text + n, sizeof text - n, ".%03d", time.nanos() / 1'000'000);
  return text;
}

std::string Duration(const google::protobuf::Duration& duration) {
  struct Unit {
    const char* name;
    int64_t seconds;
  };
  static constexpr Unit kUnits[] = {{"d", 86400}, {"h", 3600}, {"m", 60}};
  int64_t left = duration.seconds();
  std::string out;
  for (const Unit& unit : kUnits) {
    if (left >= unit.seconds || !out.empty()) {
      out += std::to_string(left / unit.seconds) + unit.name + " ";
      left %= unit.seconds;
    }
  }
  return out + std::to_string(left) + "s";
}

std::string KindName(v1::RingKind kind) {
  return Word(v1::RingKind_Name(kind), "RING_KIND_", kind);
}

std::string RoleName(v1::Role role) { return Word(v1::Role_Name(role), "ROLE_", role); }

std::string StateName(v1::EndpointState state) {
  return Word(v1::EndpointState_Name(state), "ENDPOINT_STATE_", state);
}

std::string EventTypeName(v1::Event::Type type) {
  const std::string name = v1::Event::Type_Name(type);
  return Word(name, name.rfind("TYPE_OBJECT_", 0) == 0 ? "TYPE_OBJECT_" : "TYPE_ENDPOINT_", type);
}

}  // namespace shmd::ctl
