#include "server/flags.h"

#include <cstdlib>
#include <sstream>

#include "server/byte_size.h"

namespace shmd::server {
namespace {

struct FlagInfo {
  const char* name;  // without "--"
  const char* env;
  const char* value;  // what the value looks like
  const char* help;
};

constexpr FlagInfo kFlags[] = {
    {"listen", "SHMD_LISTEN", "ADDRESS",
     "where to serve the API: unix:///path (callers named by the kernel) or host:port (TCP, "
     "anonymous read-only callers). Repeatable; the variable takes a comma-separated list. "
     "Default: unix:///run/shmd/shmd.sock"},
    {"socket-mode", "SHMD_SOCKET_MODE", "OCTAL",
     "file mode of Unix sockets. Default: 0660 (the socket's group may connect)"},
    {"shm-dir", "SHMD_SHM_DIR", "DIR",
     "directory of the shared-memory objects (a tmpfs). Default: /dev/shm"},
    {"namespace", "SHMD_NAMESPACE", "NAME",
     "this daemon's namespace: its files are shmd.<namespace>.<id>. Default: default"},
    {"health-address", "SHMD_HEALTH_ADDRESS", "HOST:PORT",
     "also serve only grpc.health.v1 on this TCP address (for Kubernetes probes). "
     "Default: none"},
    {"metrics-address", "SHMD_METRICS_ADDRESS", "HOST:PORT",
     "serve Prometheus metrics at http://HOST:PORT/metrics ('none' to turn them off; port 0: "
     "any free port, printed at start). Default: 127.0.0.1:9478 (0.0.0.0:9478 in the "
     "Kubernetes sidecar manifests)"},
    {"quota-bytes", "SHMD_QUOTA_BYTES", "SIZE",
     "total bytes all objects may take (64MiB, 2GiB...). Default: 0, no quota"},
    {"max-object-bytes", "SHMD_MAX_OBJECT_BYTES", "SIZE",
     "the largest object, headers included. Default: 0, no limit"},
    {"max-objects-per-uid", "SHMD_MAX_OBJECTS_PER_UID", "N",
     "objects one uid may own. Default: 0, no limit"},
};

Result<uint32_t> ParseUint32(const std::string& text, const std::string& what, int base) {
  char* end = nullptr;
  errno = 0;
  const unsigned long v = std::strtoul(text.c_str(), &end, base);
  if (text.empty() || *end != '\0' || errno != 0 || v > UINT32_MAX) {
    return Error(ErrorCode::kInvalidArgument, what + ": '" + text + "' is not a number");
  }
  return static_cast<uint32_t>(v);
}

VoidResult Apply(Flags* flags, const std::string& name, const std::string& value,
                 const std::string& what, bool from_env, bool* listen_reset) {
  ServerOptions& o = flags->options;
  if (name == "listen") {
    if (!*listen_reset) {
      o.listen.clear();
      *listen_reset = true;
    }
    if (from_env) {
      std::stringstream ss(value);
      std::string item;
      while (std::getline(ss, item, ',')) {
        if (!item.empty()) o.listen.push_back(item);
      }
    } else {
      o.listen.push_back(value);
    }
  } else if (name == "socket-mode") {
    Result<uint32_t> v = ParseUint32(value, what, 8);
    if (!v.ok()) return v.error();
    o.socket_mode = *v;
  } else if (name == "shm-dir") {
    o.dir.path = value;
  } else if (name == "namespace") {
    o.dir.ns = value;
  } else if (name == "health-address") {
    o.health_address = value;
  } else if (name == "metrics-address") {
    o.metrics_address = value == "none" ? "" : value;
  } else if (name == "quota-bytes" || name == "max-object-bytes") {
    Result<uint64_t> v = ParseByteSize(value, what);
    if (!v.ok()) return v.error();
    (name == "quota-bytes" ? o.limits.quota_bytes : o.limits.max_object_bytes) = *v;
  } else if (name == "max-objects-per-uid") {
    Result<uint32_t> v = ParseUint32(value, what, 10);
    if (!v.ok()) return v.error();
    o.limits.max_objects_per_uid = *v;
  }
  return Ok{};
}

}  // namespace

std::string Usage() {
  std::string s =
      "Usage: shmd [flags]\n\n"
      "The shmd daemon: creates, sizes and deletes shared-memory rings, pools and regions\n"
      "over gRPC (package shmd.v1), leases them to processes, and cleans up after processes\n"
      "that die. Data never passes through it. SIGTERM or SIGINT stops it; objects stay.\n\n"
      "Flags (each also read from the environment variable shown; a flag wins):\n";
  for (const FlagInfo& f : kFlags) {
    s += "  --" + std::string(f.name) + "=" + f.value + "  ($" + f.env + ")\n      " + f.help +
         "\n";
  }
  s += "  --help      this text\n  --version   print the version\n";
  return s;
}

Result<Flags> ParseFlags(const std::vector<std::string>& args, const char* (*env)(const char*)) {
  Flags flags;
  if (!env) env = [](const char* name) -> const char* { return std::getenv(name); };
  bool listen_reset = false;
  for (const FlagInfo& f : kFlags) {
    if (const char* v = env(f.env); v && *v) {
      if (auto r = Apply(&flags, f.name, v, std::string("$") + f.env, true, &listen_reset);
          !r.ok()) {
        return r.error();
      }
    }
  }
  bool listen_from_flags = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      flags.help = true;
      continue;
    }
    if (arg == "--version") {
      flags.version = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) {
      return Error(ErrorCode::kInvalidArgument,
                   "unexpected argument '" + arg + "'; see shmd --help");
    }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    const FlagInfo* info = nullptr;
    std::string bare = eq == std::string::npos ? name : name.substr(0, eq);
    for (const FlagInfo& f : kFlags) {
      if (bare == f.name) info = &f;
    }
    if (!info) {
      return Error(ErrorCode::kInvalidArgument, "unknown flag --" + bare + "; see shmd --help");
    }
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return Error(ErrorCode::kInvalidArgument,
                   "--" + bare + " needs a value (" + info->value + ")");
    }
    if (bare == "listen" && !listen_from_flags) {
      listen_from_flags = true;
      listen_reset = false;  // flags replace what the environment said
    }
    if (auto r = Apply(&flags, bare, value, "--" + bare, false, &listen_reset); !r.ok()) {
      return r.error();
    }
  }
  return flags;
}

}  // namespace shmd::server
