// shmd's command line: every flag also settable by an environment variable (flags win).
#pragma once

#include <string>
#include <vector>

#include "server/server.h"
#include "shmd/dataplane/result.h"

namespace shmd::server {

struct Flags {
  ServerOptions options;
  bool help = false;
  bool version = false;
};

// Reads `env` (getenv) first, then argv. Errors name the flag or variable.
Result<Flags> ParseFlags(const std::vector<std::string>& args,
                         const char* (*env)(const char*) = nullptr);
std::string Usage();

}  // namespace shmd::server
