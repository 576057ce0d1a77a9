// Who is calling, and what they may do to an object.
//
// On the Unix socket the kernel names the caller (SO_PEERCRED: uid, gid, pid; the
// supplementary groups come from /proc/<pid>/status). Over TCP nobody is named: such a
// caller may only read objects whose mode lets anyone read.
//
// Rules, for an object with owner uid O (its header's creator_uid), file group G and
// mode M:
//   - an admin (uid 0, or the daemon's own uid) may do anything;
//   - the owner may do anything;
//   - a member of G may read if M has 0040, attach if M has 0060;
//   - anyone else may read if M has 0004, attach if M has 0006;
//   - only the owner or an admin may delete or resize.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shmd/dataplane/result.h"

namespace shmd::server {

struct Caller {
  bool identified = false;  // the kernel told us who it is
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint32_t pid = 0;  // 0: in a pid namespace we cannot see into
  std::vector<uint32_t> groups;  // supplementary groups, when the pid is visible

  static Caller FromCredentials(uint32_t uid, uint32_t gid, uint32_t pid);
  static Caller Anonymous() { return Caller{}; }
  std::string Describe() const;  // "uid 1000 (pid 42)", "an anonymous TCP caller"
  bool InGroup(uint32_t gid) const;
};

struct Ownership {
  uint32_t owner_uid = 0;
  uint32_t file_gid = 0;
  uint32_t mode = 0600;
};

enum class Access {
  kRead,    // Get, List
  kAttach,  // Attach
  kOwn,     // Delete, Resize
};

// `what` names the object ("ring 'orders'"); `admin_uid` is the daemon's own uid.
VoidResult CheckAccess(const Caller& caller, const Ownership& object, Access access,
                       std::string_view what, uint32_t admin_uid);

}  // namespace shmd::server
