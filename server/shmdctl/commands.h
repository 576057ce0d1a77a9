// The commands. Each one makes its calls through the connected client, prints its answer
// (a table or key: value lines, or JSON with --json) and returns the exit status.
#pragma once

#include "server/shmdctl/args.h"
#include "shmd/client/client.h"

namespace shmd::ctl {

struct Context {
  Client& client;
  const Args& args;
};

int List(Context& ctx);          // list [rings|pools|regions]
int Get(Context& ctx);           // get NAME
int CreateRing(Context& ctx);    // create ring ID ...
int CreatePool(Context& ctx);    // create pool ID ...
int CreateRegion(Context& ctx);  // create region ID ...
int Delete(Context& ctx);        // delete NAME
int Resize(Context& ctx);        // resize NAME --size SIZE
int Watch(Context& ctx);         // watch
int Stats(Context& ctx);         // stats
int Health(Context& ctx);        // health [SERVICE]

}  // namespace shmd::ctl
