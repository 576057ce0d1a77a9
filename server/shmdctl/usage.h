// shmdctl --help, made from the flag and command tables of args.cc so that it cannot miss
// a flag.
#pragma once

#include <string>

namespace shmd::ctl {

// Everything when `topic` is "", else the commands whose name starts with it ("create"
// gives the three create commands).
std::string Usage(const std::string& topic);

}  // namespace shmd::ctl
