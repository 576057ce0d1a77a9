#include "server/shmdctl/args.h"

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <sstream>

#include "server/byte_size.h"

namespace shmd::ctl {
namespace {

// The global flags first: help lists flags in this order.
const FlagSpec kFlags[] = {
    {.name = "listen",
     .kind = ValueKind::kText,
     .value = "ADDRESS",
     .help = "the daemon: unix:///path or host:port. Default: the first address in "
             "$SHMD_LISTEN, else unix:///run/shmd/shmd.sock",
     .global = true,
     .text = &Args::listen},
    {.name = "json",
     .kind = ValueKind::kSwitch,
     .help = "machine output: JSON (proto3 mapping, camelCase names), one object per line",
     .global = true,
     .on = &Args::json},
    {.name = "timeout",
     .kind = ValueKind::kCount,
     .value = "MS",
     .help = "how long to wait for the daemon, per call, in milliseconds. Default: 5000",
     .max = 86'400'000,  // a day: anything longer is a typo
     .global = true,
     .number = &Args::timeout_ms},
    {.name = "help",
     .kind = ValueKind::kSwitch,
     .help = "this text (after a command: that command's)",
     .global = true,
     .on = &Args::help},
    {.name = "kind",
     .kind = ValueKind::kChoice,
     .value = "spsc|mpmc|broadcast",
     .help = "spsc: one producer, one consumer, variable-length messages; mpmc: many producers "
             "and consumers, fixed slots; broadcast: one producer, every subscriber sees every "
             "message. Default: spsc",
     .text = &Args::kind},
    {.name = "policy",
     .kind = ValueKind::kChoice,
     .value = "lossy|lossless",
     .help = "broadcast rings only, what a subscriber that falls a ring behind costs. lossy: "
             "the producer never waits, and the subscriber is told exactly how many messages "
             "it lost; lossless: the producer waits for the slowest live subscriber. Default: "
             "lossy",
     .text = &Args::policy},
    {.name = "capacity",
     .kind = ValueKind::kSize,
     .value = "SIZE",
     .help = "the ring's data area. SPSC: a power of two, at least 4KiB; mpmc and broadcast: "
             "the slots it holds, as many as fit rounded down to a power of two",
     .max = UINT64_MAX,
     .number = &Args::capacity},
    {.name = "max-message",
     .kind = ValueKind::kSize,
     .value = "SIZE",
     .help = "the largest message (required for mpmc and broadcast; SPSC default: "
             "capacity/2 - 16)",
     .max = UINT32_MAX,
     .number = &Args::max_message},
    {.name = "block-size",
     .kind = ValueKind::kSize,
     .value = "SIZE",
     .help = "bytes per block, a multiple of 64",
     .max = UINT32_MAX,
     .number = &Args::block_size},
    {.name = "blocks",
     .kind = ValueKind::kCount,
     .value = "N",
     .help = "number of blocks",
     .max = UINT32_MAX,
     .number = &Args::blocks},
    {.name = "size",
     .kind = ValueKind::kSize,
     .value = "SIZE",
     .help = "the region's size",
     .max = UINT64_MAX,
     .number = &Args::size},
    {.name = "mode",
     .kind = ValueKind::kOctal,
     .value = "OCTAL",
     .help = "who may attach: 0600 the owner (default), 0660 also the file's group, 0666 anyone",
     .max = 0777,
     .number = &Args::mode},
    {.name = "request-id",
     .kind = ValueKind::kText,
     .value = "ID",
     .help = "makes a retried create safe: a retry with the same id gets the first answer",
     .text = &Args::request_id},
    {.name = "force",
     .kind = ValueKind::kSwitch,
     .help = "delete even while processes are attached (they see the object closed)",
     .on = &Args::force},
    {.name = "allow-missing",
     .kind = ValueKind::kSwitch,
     .help = "an object that does not exist is not an error",
     .on = &Args::allow_missing},
    {.name = "include-existing",
     .kind = ValueKind::kSwitch,
     .help = "first one 'adopted' event per object that exists now",
     .on = &Args::include_existing},
    {.name = "count",
     .kind = ValueKind::kCount,
     .value = "N",
     .help = "stop after N events (default: run until Ctrl-C)",
     .max = UINT64_MAX,
     .number = &Args::count},
};

const CommandSpec kCommands[] = {
    {.name = "list",
     .operand = OperandKind::kCollection,
     .operand_help = "[rings|pools|regions]",
     .operand_optional = true,
     .help = "Every object (or those of one collection), like ipcs: name, kind, size, how full, "
             "messages written/read, endpoints (P producer, C consumer, S subscriber, U region "
             "user), owner uid and mode. With --json: "
             "{\"rings\":[...],\"pools\":[...],\"regions\":[...]} (only the collection asked "
             "for, when one is).",
     .example = "shmdctl list\n"
                "shmdctl list rings --json"},
    {.name = "get",
     .operand = OperandKind::kObjectName,
     .operand_help = "NAME",
     .help = "Everything about one object, its endpoints included. NAME is rings/ID, pools/ID "
             "or regions/ID.",
     .example = "shmdctl get rings/orders"},
    {.name = "create ring",
     .operand = OperandKind::kObjectName,
     .operand_help = "ID",
     .collection = "rings",
     .flags = "kind policy capacity max-message mode request-id",
     .required = "capacity",
     .help = "Creates a ring (or, if one with the same spec exists, shows it).",
     .example = "shmdctl create ring orders --capacity 1MiB\n"
                "shmdctl create ring ticks --kind broadcast --capacity 4MiB --max-message 256\n"
                "shmdctl create ring audit --kind broadcast --policy lossless --capacity 1MiB "
                "--max-message 512"},
    {.name = "create pool",
     .operand = OperandKind::kObjectName,
     .operand_help = "ID",
     .collection = "pools",
     .flags = "block-size blocks mode request-id",
     .required = "block-size blocks",
     .help = "Creates a pool of fixed-size blocks.",
     .example = "shmdctl create pool frames --block-size 64KiB --blocks 256"},
    {.name = "create region",
     .operand = OperandKind::kObjectName,
     .operand_help = "ID",
     .collection = "regions",
     .flags = "size mode request-id",
     .required = "size",
     .help = "Creates a region: bytes laid out as its users wish, resizable.",
     .example = "shmdctl create region table --size 16MiB --mode 0660"},
    {.name = "delete",
     .operand = OperandKind::kObjectName,
     .operand_help = "NAME",
     .flags = "force allow-missing",
     .help = "Deletes an object. Refused while processes are attached, unless --force.",
     .example = "shmdctl delete rings/orders --force"},
    {.name = "resize",
     .operand = OperandKind::kObjectName,
     .operand_help = "NAME",
     .collection = "regions",
     .flags = "size",
     .required = "size",
     .help = "Grows or shrinks a region (rings and pools keep the size they were created with); "
             "processes that map it see the new size when they remap.",
     .example = "shmdctl resize regions/table --size 32MiB"},
    {.name = "watch",
     .flags = "include-existing count",
     .help = "Streams the daemon's events, one line each: objects created, deleted, resized or "
             "adopted; endpoints attached, detached or dead (with the pool blocks reclaimed).",
     .example = "shmdctl watch --include-existing\n"
                "shmdctl watch --json --count 10"},
    {.name = "stats",
     .help = "The daemon's figures: version, objects, bytes against the quota, limits, the shm "
             "filesystem, leases, uptime.",
     .example = "shmdctl stats"},
    {.name = "health",
     .operand = OperandKind::kText,
     .operand_help = "[SERVICE]",
     .operand_optional = true,
     .help = "The grpc.health.v1 status of the daemon (or of SERVICE, e.g. shmd.v1.Control). "
             "Exit status 0 only when SERVING.",
     .example = "shmdctl health && echo up"},
};

constexpr char kCommandList[] =
    "the commands are list, get, create, delete, resize, watch, stats and health";

Error Bad(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

bool HasWord(const char* list, const std::string& word) {
  std::istringstream in(list);
  for (std::string w; in >> w;) {
    if (w == word) return true;
  }
  return false;
}

bool AllDigits(const std::string& s, int base) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > (base == 8 ? '7' : '9')) return false;
  }
  return true;
}

Result<uint64_t> ParseNumber(const FlagSpec& flag, const std::string& value) {
  const std::string what = std::string("--") + flag.name;
  uint64_t v = 0;
  if (flag.kind == ValueKind::kSize) {
    Result<uint64_t> size = server::ParseByteSize(value, what);
    if (!size.ok()) return size.error();
    v = *size;
  } else {
    const int base = flag.kind == ValueKind::kOctal ? 8 : 10;
    errno = 0;
    if (AllDigits(value, base)) v = std::strtoull(value.c_str(), nullptr, base);
    if (!AllDigits(value, base) || errno == ERANGE) {
      return Bad(what + ": '" + value + "' is not " +
                 (base == 8 ? "an octal mode such as 0660" : "a whole number"));
    }
    if (flag.kind == ValueKind::kCount && v == 0) return Bad(what + " must be at least 1");
  }
  if (v > flag.max) {
    std::ostringstream max;
    if (flag.kind == ValueKind::kOctal) max << '0' << std::oct;
    max << flag.max;
    return Bad(what + ": '" + value + "' is too large; at most " + max.str());
  }
  return v;
}

VoidResult Store(const FlagSpec& flag, const std::string& value, Args* args) {
  switch (flag.kind) {
    case ValueKind::kSwitch:
      args->*flag.on = true;
      break;
    case ValueKind::kChoice:
      if ((std::string("|") + flag.value + "|").find("|" + value + "|") == std::string::npos) {
        return Bad(std::string("--") + flag.name + ": '" + value + "' is not one of " + flag.value);
      }
      args->*flag.text = value;
      break;
    case ValueKind::kText:
      args->*flag.text = value;
      break;
    default: {
      Result<uint64_t> v = ParseNumber(flag, value);
      if (!v.ok()) return v.error();
      args->*flag.number = *v;
    }
  }
  args->given.insert(flag.name);
  return Ok{};
}

// Finds the command the leading words name; `*used` is how many words that took.
Result<const CommandSpec*> FindCommand(const std::vector<std::string>& words, size_t* used) {
  for (size_t n : {size_t{2}, size_t{1}}) {
    if (words.size() < n) continue;
    std::string name = words[0];
    if (n == 2) name += " " + words[1];
    for (const CommandSpec& c : kCommands) {
      if (name == c.name) {
        *used = n;
        return &c;
      }
    }
  }
  if (words[0] == "create") {
    return Bad(words.size() < 2
                   ? "create what? write 'create ring ID', 'create pool ID' or "
                     "'create region ID'"
                   : "cannot create a '" + words[1] + "': shmd serves rings, pools and regions");
  }
  return Bad("unknown command '" + words[0] + "'; " + kCommandList);
}

// The operand: there when it must be, and a name or collection that makes sense.
VoidResult CheckOperand(const std::vector<std::string>& operands, const std::string& see,
                        Args* args) {
  const CommandSpec& c = *args->command;
  const size_t max = c.operand == OperandKind::kNone ? 0 : 1;
  if (operands.size() > max) {
    return Bad("unexpected '" + operands[max] + "' after '" + c.name +
               (max ? std::string(" ") + c.operand_help : std::string()) + "'" + see);
  }
  if (operands.empty()) {
    if (max == 0 || c.operand_optional) return Ok{};
    return Bad("'" + std::string(c.name) + "' needs " + c.operand_help + see);
  }
  args->operand = operands[0];
  if (c.operand == OperandKind::kCollection && !HasWord("rings pools regions", args->operand)) {
    return Bad("'" + std::string(c.name) + "' takes rings, pools or regions, not '" +
               args->operand + "'" + see);
  }
  if (c.operand == OperandKind::kObjectName) {
    Result<api::ObjectName> name = api::ParseObjectName(args->operand, c.collection);
    if (!name.ok()) return Bad(name.error().message() + see);
    args->object = std::move(name).value();
  }
  return Ok{};
}

VoidResult CheckCommandLine(const std::vector<std::string>& operands, Args* args) {
  const CommandSpec& c = *args->command;
  const std::string see = "; see 'shmdctl " + std::string(c.name) + " --help'";
  for (const std::string& name : args->given) {
    if (!FindFlag(name)->global && !HasWord(c.flags, name)) {
      return Bad("'" + std::string(c.name) + "' takes no --" + name + see);
    }
  }
  if (auto r = CheckOperand(operands, see, args); !r.ok()) return r.error();
  std::istringstream required(c.required);
  for (std::string name; required >> name;) {
    if (!args->given.count(name)) {
      return Bad("'" + std::string(c.name) + "' needs --" + name + " " + FindFlag(name)->value +
                 see);
    }
  }
  return Ok{};
}

}  // namespace

std::span<const FlagSpec> AllFlags() { return kFlags; }
std::span<const CommandSpec> AllCommands() { return kCommands; }

const FlagSpec* FindFlag(const std::string& name) {
  for (const FlagSpec& f : kFlags) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

Result<Args> ParseArgs(const std::vector<std::string>& argv) {
  Args args;
  std::vector<std::string> words;
  bool flags_ended = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (flags_ended || arg.size() < 2 || arg[0] != '-') {
      words.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }
    if (arg == "-h") {
      args.help = true;
      continue;
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? eq : eq - 2);
    const FlagSpec* flag = arg.rfind("--", 0) == 0 ? FindFlag(name) : nullptr;
    if (!flag) return Bad("unknown flag " + arg.substr(0, eq));
    std::string value;
    if (flag->kind == ValueKind::kSwitch) {
      if (eq != std::string::npos) return Bad("--" + name + " takes no value");
    } else if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argv.size()) {
      value = argv[++i];
    } else {
      return Bad("--" + name + " needs a value (" + flag->value + ")");
    }
    if (auto r = Store(*flag, value, &args); !r.ok()) return r.error();
  }
  if (words.empty()) {
    if (args.help) return args;
    return Bad(std::string("no command given; ") + kCommandList);
  }
  if (args.help && words == std::vector<std::string>{"create"}) {
    args.help_topic = "create";  // the three create commands
    return args;
  }
  size_t used = 0;
  Result<const CommandSpec*> command = FindCommand(words, &used);
  if (!command.ok()) return command.error();
  args.command = *command;
  if (args.help) {
    args.help_topic = args.command->name;
    return args;
  }
  const std::vector<std::string> operands(words.begin() + static_cast<std::ptrdiff_t>(used),
                                          words.end());
  if (auto r = CheckCommandLine(operands, &args); !r.ok()) return r.error();
  return args;
}

}  // namespace shmd::ctl
