#include "server/byte_size.h"

#include <cctype>
#include <string>

namespace shmd::server {

Result<uint64_t> ParseByteSize(std::string_view text, std::string_view what) {
  auto bad = [&] {
    return Error(ErrorCode::kInvalidArgument,
                 std::string(what) + ": '" + std::string(text) +
                     "' is not a size; write bytes (4096) or a number with a unit "
                     "(64KiB, 1MiB, 2GiB)");
  };
  size_t i = 0;
  uint64_t value = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (UINT64_MAX - digit) / 10) return bad();
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) return bad();
  std::string unit(text.substr(i));
  for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  struct Unit {
    const char* name;
    uint64_t factor;
  };
  static constexpr Unit kUnits[] = {
      {"", 1},          {"B", 1},
      {"K", 1ull << 10}, {"KI", 1ull << 10}, {"KIB", 1ull << 10}, {"KB", 1000},
      {"M", 1ull << 20}, {"MI", 1ull << 20}, {"MIB", 1ull << 20}, {"MB", 1000000},
      {"G", 1ull << 30}, {"GI", 1ull << 30}, {"GIB", 1ull << 30}, {"GB", 1000000000},
      {"T", 1ull << 40}, {"TI", 1ull << 40}, {"TIB", 1ull << 40}, {"TB", 1000000000000},
  };
  for (const Unit& u : kUnits) {
    if (unit != u.name) continue;
    if (value > UINT64_MAX / u.factor) return bad();
    return value * u.factor;
  }
  return bad();
}

}  // namespace shmd::server
