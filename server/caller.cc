#include "server/caller.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace shmd::server {

Caller Caller::FromCredentials(uint32_t uid, uint32_t gid, uint32_t pid) {
  Caller c;
  c.identified = true;
  c.uid = uid;
  c.gid = gid;
  c.pid = pid;
  if (pid != 0) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("Groups:", 0) != 0) continue;
      std::istringstream groups(line.substr(7));
      uint32_t g;
      while (groups >> g) c.groups.push_back(g);
      break;
    }
  }
  return c;
}

std::string Caller::Describe() const {
  if (!identified) return "an anonymous TCP caller";
  std::string s = "uid " + std::to_string(uid);
  if (pid != 0) s += " (pid " + std::to_string(pid) + ")";
  return s;
}

bool Caller::InGroup(uint32_t g) const {
  return gid == g || std::find(groups.begin(), groups.end(), g) != groups.end();
}

VoidResult CheckAccess(const Caller& caller, const Ownership& object, Access access,
                       std::string_view what, uint32_t admin_uid) {
  auto deny = [&](const std::string& why) -> VoidResult {
    return Error(ErrorCode::kPermissionDenied,
                 std::string(what) + ": " + caller.Describe() + " " + why);
  };
  char mode[16];
  std::snprintf(mode, sizeof mode, "%#o", object.mode);
  const std::string owner = "uid " + std::to_string(object.owner_uid);
  if (!caller.identified) {
    if (access == Access::kRead && (object.mode & 0004)) return Ok{};
    return deny(std::string("may only read objects anyone may read (mode ") + mode +
                " is not one); connect over the Unix socket to be identified");
  }
  if (caller.uid == 0 || caller.uid == admin_uid || caller.uid == object.owner_uid) return Ok{};
  if (access == Access::kOwn) {
    return deny("is not its owner (" + owner + "): only the owner or an admin may delete or "
                "resize it");
  }
  const uint32_t need = access == Access::kRead ? 04 : 06;
  const bool group = caller.InGroup(object.file_gid);
  const uint32_t granted = group ? (object.mode >> 3) & 07 : object.mode & 07;
  if ((granted & need) == need) return Ok{};
  return deny(std::string("may not ") + (access == Access::kRead ? "read" : "attach to") +
              " it: it belongs to " + owner + " with mode " + mode +
              (group ? " (the caller is in its group " : " (the caller is not in its group ") +
              std::to_string(object.file_gid) +
              "); its owner can recreate it with mode 0660 to share it with that group");
}

}  // namespace shmd::server
