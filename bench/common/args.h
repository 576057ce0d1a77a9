// Command-line scanning shared by the benchmarks: each argument in turn, a flag's value
// written either as --name=value or as --name value. What the flags mean stays with each
// program's ParseOptions:
//
//   for (ArgScanner args(argc, argv, UsageError); args.Next();) {
//     if (args.name() == "--count") count = args.ParseInt(args.Value(), 1, 1000);
//     else ...
//   }
#ifndef SHMD_BENCH_COMMON_ARGS_H_
#define SHMD_BENCH_COMMON_ARGS_H_

#include <string>

namespace shmd::bench {

class ArgScanner {
 public:
  // Reports a usage error and exits (it must not return).
  using UsageErrorFn = void (*)(const std::string& message);

  ArgScanner(int argc, char** argv, UsageErrorFn usage_error)
      : argc_(argc), argv_(argv), usage_error_(usage_error) {}

  // Moves to the next argument (the first call to argv[1]); false when none is left.
  bool Next();

  // The current argument without the "=value" of a "--name=value" one.
  const std::string& name() const { return name_; }
  // The current argument as given.
  std::string given() const { return argv_[index_]; }

  // The current flag's value: what follows its '=', otherwise the next argument (which is then
  // used up). A usage error, "<name> needs a value", when there is none.
  std::string Value();

  // `text` (the current flag's value, or a part of it) as a whole number in [min, max]; a
  // usage error naming the flag and the range otherwise.
  int ParseInt(const std::string& text, int min, int max);

 private:
  int argc_;
  char** argv_;
  UsageErrorFn usage_error_;
  int index_ = 0;
  std::string name_;
  std::string value_;
  bool has_value_ = false;
};

}  // namespace shmd::bench

#endif  // SHMD_BENCH_COMMON_ARGS_H_
