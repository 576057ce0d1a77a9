// shmdctl's command line: global flags, a command ("list", "create ring"...), its operands
// and its flags. Flags may come before or after the command; "--" ends them. Everything is
// checked here (flag names and values, which flags a command takes, its operand, object
// names), before anything is asked of the daemon: a command starts only with a line that
// makes sense.
#pragma once

#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "shmd/api/names.h"
#include "shmd/dataplane/result.h"

namespace shmd::ctl {

struct Args;

// How a flag's value is read.
enum class ValueKind {
  kSwitch,  // no value: --json
  kText,    // any text: --listen unix:///run/shmd/shmd.sock
  kChoice,  // one of FlagSpec::value's '|'-separated words: --kind mpmc
  kSize,    // ParseByteSize: --capacity 1MiB
  kCount,   // a decimal number: --blocks 256
  kOctal,   // an octal number: --mode 0660
};

struct FlagSpec {
  const char* name = "";  // without "--"
  ValueKind kind = ValueKind::kSwitch;
  const char* value = "";  // how the value looks in help ("SIZE"); the choices for kChoice
  const char* help = "";
  uint64_t max = 0;     // the largest number a kSize, kCount or kOctal flag takes
  bool global = false;  // taken by every command, before or after it
  // Where the value goes: the one of these that `kind` calls for.
  bool Args::*on = nullptr;
  std::string Args::*text = nullptr;
  uint64_t Args::*number = nullptr;
};

// What a command's one operand is.
enum class OperandKind {
  kNone,
  kObjectName,  // "rings/orders", or the bare id when the command has a collection
  kCollection,  // "rings", "pools" or "regions"
  kText,        // anything (a health service name)
};

struct CommandSpec {
  const char* name = "";  // "list", "create ring"
  OperandKind operand = OperandKind::kNone;
  const char* operand_help = "";  // as help shows it: "ID", "[rings|pools|regions]"
  bool operand_optional = false;
  // kObjectName: the collection the object must be in; "" for any (then the name must say).
  const char* collection = "";
  const char* flags = "";     // its flags (besides the global ones), space-separated
  const char* required = "";  // those of its flags it cannot do without, space-separated
  const char* help = "";      // what it does
  const char* example = "";   // one line or more, each a full command
};

struct Args {
  // Global flags.
  std::string listen;  // "" = shmd::DefaultTarget()
  bool json = false;
  uint64_t timeout_ms = 5000;
  bool help = false;
  std::string help_topic;  // with --help: the command asked about ("create ring", "create")

  // The command (nullptr only with --help), its operand as given ("" when none) and, for a
  // kObjectName operand, the name it makes (in the command's collection).
  const CommandSpec* command = nullptr;
  std::string operand;
  api::ObjectName object;

  // Command flags, with the defaults the daemon would apply itself where it has one.
  std::string kind = "spsc";
  std::string policy = "lossy";  // broadcast rings only
  uint64_t capacity = 0;
  uint64_t max_message = 0;  // 0: the largest the ring allows (SPSC only)
  uint64_t block_size = 0;
  uint64_t blocks = 0;
  uint64_t size = 0;
  uint64_t mode = 0;  // 0: the daemon's default, 0600
  std::string request_id;
  bool force = false;
  bool allow_missing = false;
  bool include_existing = false;
  uint64_t count = 0;  // 0: no limit

  std::set<std::string> given;  // the flags on the command line, without "--"
};

// Errors (kInvalidArgument) say what was wrong; the caller adds the pointer to --help.
Result<Args> ParseArgs(const std::vector<std::string>& argv);

std::span<const FlagSpec> AllFlags();
std::span<const CommandSpec> AllCommands();
const FlagSpec* FindFlag(const std::string& name);

}  // namespace shmd::ctl
