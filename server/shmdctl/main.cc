// shmdctl: the operator's view of a shmd daemon. Reads the command line (args.cc), connects
// to the daemon and runs the command; every failure is a message and an exit status
// (output.h), never a crash.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "server/shmdctl/args.h"
#include "server/shmdctl/commands.h"
#include "server/shmdctl/output.h"
#include "server/shmdctl/usage.h"

namespace shmd::ctl {
namespace {

using Handler = int (*)(Context&);

// Names as in args.cc's command table.
Handler HandlerFor(const std::string& command) {
  static const struct {
    const char* name;
    Handler run;
  } kHandlers[] = {
      {"list", List},
      {"get", Get},
      {"create ring", CreateRing},
      {"create pool", CreatePool},
      {"create region", CreateRegion},
      {"delete", Delete},
      {"resize", Resize},
      {"watch", Watch},
      {"stats", Stats},
      {"health", Health},
  };
  for (const auto& h : kHandlers) {
    if (command == h.name) return h.run;
  }
  return nullptr;
}

int Run(const std::vector<std::string>& argv) {
  Result<Args> args = ParseArgs(argv);
  if (!args.ok()) return UsageFail(args.error().message());
  if (args->help) return Print(Usage(args->help_topic));
  const Handler run = HandlerFor(args->command->name);
  if (!run) {
    return Fail(Error(ErrorCode::kSystem, std::string("'") + args->command->name +
                                              "' has no implementation in this build"));
  }
  ClientOptions options;
  options.target = args->listen;
  options.deadline = std::chrono::milliseconds(args->timeout_ms);
  Result<Client> client = Client::Connect(options);
  if (!client.ok()) return Fail(client.error());
  Context ctx{*client, *args};
  return run(ctx);
}

}  // namespace
}  // namespace shmd::ctl

int main(int argc, char** argv) { return shmd::ctl::Run({argv + 1, argv + argc}); }
