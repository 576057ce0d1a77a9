// shmdctl against the real daemon: each command's output and exit status.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/daemon.h"
#include "common/peer_process.h"

namespace shmd {
namespace {

using shmd::testing::Daemon;
using shmd::testing::PeerProcess;

struct CtlRun {
  int exit_code = -1;
  std::string out;
};

class ShmdctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(daemon_.Start(&why)) << why;
  }
  CtlRun Ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"/bin/sh", "-c", ""};
    std::string command = std::string(SHMDCTL) + " --listen " + daemon_.target();
    for (const auto& a : args) command += " '" + a + "'";
    argv[2] = command + " 2>&1";
    PeerProcess p(argv);
    CtlRun r;
    p.WaitForLine("\x01", std::chrono::seconds(10));  // read everything until it exits
    const int status = p.Wait(std::chrono::seconds(10));
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = p.Output();
    return r;
  }
  Daemon daemon_;
};

TEST_F(ShmdctlTest, CreateListGetDelete) {
  CtlRun create = Ctl({"create", "ring", "orders", "--capacity", "1MiB"});
  EXPECT_EQ(create.exit_code, 0) << create.out;
  EXPECT_NE(create.out.find("rings/orders"), std::string::npos) << create.out;
  EXPECT_EQ(Ctl({"create", "pool", "frames", "--block-size", "64KiB", "--blocks", "4"}).exit_code,
            0);
  CtlRun list = Ctl({"list"});
  EXPECT_EQ(list.exit_code, 0) << list.out;
  EXPECT_NE(list.out.find("rings/orders"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("pools/frames"), std::string::npos) << list.out;
  CtlRun json = Ctl({"list", "rings", "--json"});
  EXPECT_EQ(json.exit_code, 0);
  EXPECT_EQ(json.out.rfind("{\"rings\":[", 0), 0u) << json.out;
  CtlRun get = Ctl({"get", "rings/orders"});
  EXPECT_EQ(get.exit_code, 0) << get.out;
  EXPECT_NE(get.out.find("1MiB"), std::string::npos) << get.out;
  EXPECT_EQ(Ctl({"delete", "rings/orders"}).exit_code, 0);
  CtlRun missing = Ctl({"get", "rings/orders"});
  EXPECT_EQ(missing.exit_code, 1) << "a daemon error is exit status 1";
  EXPECT_NE(missing.out.find("shmdctl: "), std::string::npos) << missing.out;
  EXPECT_EQ(daemon_.CountObjectFiles(), 1);
}

TEST_F(ShmdctlTest, BroadcastPolicy) {
  CtlRun lossless = Ctl({"create", "ring", "audit", "--kind", "broadcast", "--policy", "lossless",
                         "--capacity", "64KiB", "--max-message", "512"});
  EXPECT_EQ(lossless.exit_code, 0) << lossless.out;
  CtlRun get = Ctl({"get", "rings/audit"});
  EXPECT_EQ(get.exit_code, 0) << get.out;
  EXPECT_NE(get.out.find("lossless"), std::string::npos) << get.out;
  // The same id with the other policy is another spec: refused, the ring left as it was.
  CtlRun other = Ctl({"create", "ring", "audit", "--kind", "broadcast", "--capacity", "64KiB",
                      "--max-message", "512"});
  EXPECT_EQ(other.exit_code, 1) << other.out;
  EXPECT_NE(Ctl({"get", "rings/audit"}).out.find("lossless"), std::string::npos);
  // A policy on a ring that is not broadcast: the daemon's refusal, with its reason.
  CtlRun spsc = Ctl({"create", "ring", "jobs", "--policy", "lossless", "--capacity", "64KiB"});
  EXPECT_EQ(spsc.exit_code, 1) << spsc.out;
  EXPECT_NE(spsc.out.find("broadcast rings only"), std::string::npos) << spsc.out;
  EXPECT_EQ(Ctl({"create", "ring", "x", "--kind", "broadcast", "--policy", "sometimes",
                 "--capacity", "64KiB", "--max-message", "64"})
                .exit_code,
            2)
      << "an unknown policy is a usage error";
}

TEST_F(ShmdctlTest, StatsHealthAndMistakes) {
  CtlRun stats = Ctl({"stats"});
  EXPECT_EQ(stats.exit_code, 0) << stats.out;
  EXPECT_NE(stats.out.find("0.1.0"), std::string::npos) << stats.out;
  CtlRun health = Ctl({"health"});
  EXPECT_EQ(health.exit_code, 0);
  EXPECT_NE(health.out.find("SERVING"), std::string::npos);
  CtlRun usage = Ctl({"create", "ring", "x", "--capacity", "lots"});
  EXPECT_EQ(usage.exit_code, 2) << "a usage error is exit status 2: " << usage.out;
  EXPECT_EQ(Ctl({"frobnicate"}).exit_code, 2);
  PeerProcess nowhere({SHMDCTL, "--listen", "unix:///nonexistent/shmd.sock", "list"});
  EXPECT_EQ(WEXITSTATUS(nowhere.Wait(std::chrono::seconds(10))), 1);
}

TEST_F(ShmdctlTest, WatchStreamsEvents) {
  PeerProcess watch({SHMDCTL, "--listen", daemon_.target(), "watch", "--count", "2"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let the stream open
  ASSERT_EQ(Ctl({"create", "region", "table", "--size", "4096"}).exit_code, 0);
  ASSERT_EQ(Ctl({"delete", "regions/table"}).exit_code, 0);
  const int status = watch.Wait(std::chrono::seconds(10));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << watch.Output();
  EXPECT_NE(watch.Output().find("regions/table"), std::string::npos) << watch.Output();
}

}  // namespace
}  // namespace shmd
