#include "server/shmdctl/usage.h"

#include <sstream>
#include <vector>

#include "server/shmdctl/args.h"

namespace shmd::ctl {
namespace {

constexpr size_t kWidth = 80;

// `pieces` in lines of at most kWidth columns (a longer piece gets a line of its own), one
// space apart; the first line starts with `first`, the others with `next`.
std::string WrapPieces(const std::vector<std::string>& pieces, const std::string& first,
                       const std::string& next) {
  std::string out, line = first;
  bool empty = true;
  for (const std::string& piece : pieces) {
    if (!empty && line.size() + 1 + piece.size() > kWidth) {
      out += line + "\n";
      line = next;
      empty = true;
    }
    line += (empty ? "" : " ") + piece;
    empty = false;
  }
  return out + line + "\n";
}

// `text`, its words wrapped as WrapPieces does, every line starting with `indent`.
std::string Wrap(const std::string& text, const std::string& indent) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string word; in >> word;) words.push_back(word);
  return WrapPieces(words, indent, indent);
}

std::string FlagSynopsis(const FlagSpec& f) {
  std::string s = std::string("--") + f.name;
  if (f.kind != ValueKind::kSwitch) s += std::string(" ") + f.value;
  return s;
}

// {"create ring", "ID", "--capacity SIZE", "[--kind spsc|mpmc|broadcast]", ...}: the
// required flags first, then the others. A piece is never split across lines.
std::vector<std::string> Synopsis(const CommandSpec& c) {
  std::vector<std::string> pieces = {c.name};
  if (*c.operand_help) pieces.push_back(c.operand_help);
  std::istringstream required(c.required);
  for (std::string name; required >> name;) pieces.push_back(FlagSynopsis(*FindFlag(name)));
  std::istringstream flags(c.flags);
  for (std::string name; flags >> name;) {
    const bool is_required =
        (" " + std::string(c.required) + " ").find(" " + name + " ") != std::string::npos;
    if (!is_required) pieces.push_back("[" + FlagSynopsis(*FindFlag(name)) + "]");
  }
  return pieces;
}

std::string Examples(const CommandSpec& c, const std::string& indent) {
  std::istringstream lines(c.example);
  std::string out;
  for (std::string line; std::getline(lines, line);) out += indent + line + "\n";
  return out;
}

constexpr char kUsageLine[] =
    "Usage: shmdctl [--listen ADDRESS] [--json] [--timeout MS] COMMAND [OPERANDS] [FLAGS]\n";

constexpr char kIntro[] =
    "shmdctl shows and manages the shared-memory rings, pools and regions a shmd daemon "
    "serves, as ipcs does System V's objects. Flags may come before or after the command; "
    "'--' ends them. 'shmdctl COMMAND --help' shows one command.";

constexpr char kNotes[] =
    "NAME is rings/ID, pools/ID or regions/ID; an ID is 1 to 200 of [A-Za-z0-9._-]. SIZE is "
    "bytes (4096) or a number with a unit: 64KiB, 1MiB, 2GiB (K, M, G mean the same; KB, MB, "
    "GB are powers of 1000).";

constexpr char kExitStatus[] =
    "Exit status: 0 success; 1 the daemon answered with an error, or no daemon answered; 2 the "
    "command line was wrong.";

std::string FlagHelp(const FlagSpec& f) {
  return "  " + FlagSynopsis(f) + "\n" + Wrap(f.help, "      ");
}

std::string CommandHelp(const CommandSpec& c) {
  std::string out =
      WrapPieces(Synopsis(c), "Usage: shmdctl ", "         ") + "\n" + Wrap(c.help, "") + "\n";
  std::istringstream flags(c.flags);
  std::string flag_help;
  for (std::string name; flags >> name;) flag_help += FlagHelp(*FindFlag(name));
  if (!flag_help.empty()) out += "Flags:\n" + flag_help + "\n";
  std::vector<std::string> global = {"Global", "flags:"};
  for (const FlagSpec& f : AllFlags()) {
    if (f.global) global.push_back(FlagSynopsis(f) + ",");
  }
  global.back().back() = '.';  // the last one's comma
  out += WrapPieces(global, "", "  ") + "\n";
  return out + "Examples:\n" + Examples(c, "  $ ") + "\n" + Wrap(kNotes, "");
}

}  // namespace

std::string Usage(const std::string& topic) {
  if (!topic.empty()) {
    std::string out;
    for (const CommandSpec& c : AllCommands()) {
      if (std::string(c.name).rfind(topic, 0) == 0) {
        out += (out.empty() ? "" : "\n") + CommandHelp(c);
      }
    }
    return out;
  }
  std::string out = kUsageLine + ("\n" + Wrap(kIntro, "")) + "\nCommands:\n";
  for (const CommandSpec& c : AllCommands()) {
    out +=
        WrapPieces(Synopsis(c), "  ", "      ") + Wrap(c.help, "      ") + Examples(c, "      $ ");
  }
  out += "\nGlobal flags:\n";
  for (const FlagSpec& f : AllFlags()) {
    if (f.global) out += FlagHelp(f);
  }
  out += "\nCommand flags:\n";
  for (const FlagSpec& f : AllFlags()) {
    if (!f.global) out += FlagHelp(f);
  }
  return out + "\n" + Wrap(kNotes, "") + "\n" + Wrap(kExitStatus, "");
}

}  // namespace shmd::ctl
