#include "bench/common/args.h"

#include <cerrno>
#include <cstdlib>

namespace shmd::bench {

bool ArgScanner::Next() {
  if (++index_ >= argc_) return false;
  name_ = argv_[index_];
  value_.clear();
  has_value_ = false;
  if (const size_t eq = name_.find('='); name_.rfind("--", 0) == 0 && eq != std::string::npos) {
    value_ = name_.substr(eq + 1);
    name_ = name_.substr(0, eq);
    has_value_ = true;
  }
  return true;
}

std::string ArgScanner::Value() {
  if (has_value_) return value_;
  if (index_ + 1 >= argc_) {
    usage_error_(name_ + " needs a value");
    std::exit(2);  // usage_error_ does not return; this only makes sure of it
  }
  return argv_[++index_];
}

int ArgScanner::ParseInt(const std::string& text, int min, int max) {
  errno = 0;
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || errno != 0 || *end != '\0' || value < min || value > max) {
    usage_error_(name_ + " wants a number from " + std::to_string(min) + " to " +
                 std::to_string(max) + ", not '" + text + "'");
    std::exit(2);  // as in Value()
  }
  return static_cast<int>(value);
}

}  // namespace shmd::bench
