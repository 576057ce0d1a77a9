#include "server/flags.h"

#include <gtest/gtest.h>

#include <map>

#include "server/byte_size.h"
#include "server/caller.h"

namespace shmd::server {
namespace {

std::map<std::string, std::string> env_vars;
const char* FakeEnv(const char* name) {
  auto it = env_vars.find(name);
  return it == env_vars.end() ? nullptr : it->second.c_str();
}

TEST(FlagsTest, DefaultsEnvironmentAndFlags) {
  env_vars = {};
  Result<Flags> d = ParseFlags({}, FakeEnv);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->options.listen, std::vector<std::string>{"unix:///run/shmd/shmd.sock"});
  EXPECT_EQ(d->options.dir.path, "/dev/shm");
  EXPECT_EQ(d->options.socket_mode, 0660u);

  env_vars = {{"SHMD_LISTEN", "unix:///a.sock,127.0.0.1:7000"}, {"SHMD_QUOTA_BYTES", "64MiB"},
              {"SHMD_SHM_DIR", "/env"}};
  Result<Flags> e = ParseFlags({"--shm-dir", "/flag", "--max-objects-per-uid=7"}, FakeEnv);
  ASSERT_TRUE(e.ok()) << e.error().message();
  EXPECT_EQ(e->options.listen, (std::vector<std::string>{"unix:///a.sock", "127.0.0.1:7000"}));
  EXPECT_EQ(e->options.limits.quota_bytes, 64u << 20);
  EXPECT_EQ(e->options.dir.path, "/flag") << "a flag wins over the environment";
  EXPECT_EQ(e->options.limits.max_objects_per_uid, 7u);

  Result<Flags> f = ParseFlags({"--listen", "unix:///b.sock", "--listen", "0.0.0.0:1"}, FakeEnv);
  EXPECT_EQ(f->options.listen, (std::vector<std::string>{"unix:///b.sock", "0.0.0.0:1"}));
}

TEST(FlagsTest, MistakesAreNamed) {
  env_vars = {};
  EXPECT_NE(ParseFlags({"--nope"}, FakeEnv).error().message().find("--nope"), std::string::npos);
  EXPECT_NE(ParseFlags({"--quota-bytes", "lots"}, FakeEnv).error().message().find("--quota-bytes"),
            std::string::npos);
  EXPECT_FALSE(ParseFlags({"--listen"}, FakeEnv).ok());
  env_vars = {{"SHMD_SOCKET_MODE", "9"}};
  EXPECT_NE(ParseFlags({}, FakeEnv).error().message().find("$SHMD_SOCKET_MODE"), std::string::npos);
  EXPECT_NE(Usage().find("--health-address"), std::string::npos);
}

TEST(ByteSizeTest, UnitsAndOverflow) {
  EXPECT_EQ(*ParseByteSize("4096", "x"), 4096u);
  EXPECT_EQ(*ParseByteSize("64KiB", "x"), 65536u);
  EXPECT_EQ(*ParseByteSize("1M", "x"), 1u << 20);
  EXPECT_EQ(*ParseByteSize("2gib", "x"), 2ull << 30);
  EXPECT_EQ(*ParseByteSize("1MB", "x"), 1000000u);
  EXPECT_FALSE(ParseByteSize("", "x").ok());
  EXPECT_FALSE(ParseByteSize("1.5M", "x").ok());
  EXPECT_FALSE(ParseByteSize("99999999999999999999", "x").ok());
  EXPECT_FALSE(ParseByteSize("16777216TiB", "x").ok());
}

TEST(CallerTest, AccessRules) {
  const Ownership o{.owner_uid = 1000, .file_gid = 50, .mode = 0640};
  auto check = [&](const Caller& c, Access a) { return CheckAccess(c, o, a, "ring 'x'", 999).ok(); };
  EXPECT_TRUE(check(Caller::FromCredentials(1000, 1000, 0), Access::kOwn));
  EXPECT_TRUE(check(Caller::FromCredentials(0, 0, 0), Access::kOwn));
  EXPECT_TRUE(check(Caller::FromCredentials(999, 999, 0), Access::kOwn)) << "the daemon's uid";
  EXPECT_TRUE(check(Caller::FromCredentials(2000, 50, 0), Access::kRead));
  EXPECT_FALSE(check(Caller::FromCredentials(2000, 50, 0), Access::kAttach)) << "0640: no w";
  EXPECT_FALSE(check(Caller::FromCredentials(2000, 60, 0), Access::kRead));
  EXPECT_FALSE(check(Caller::FromCredentials(2000, 50, 0), Access::kOwn));
  const Result<Ok> denied =
      CheckAccess(Caller::FromCredentials(2000, 60, 7), o, Access::kRead, "ring 'x'", 999);
  EXPECT_NE(denied.error().message().find("uid 2000 (pid 7)"), std::string::npos)
      << denied.error().message();
}

}  // namespace
}  // namespace shmd::server
