// The daemon's logic without gRPC: the Registry driven directly, as ControlService does.
#include "server/registry.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "common/test_dir.h"
#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/region.h"

namespace shmd::server {
namespace {

Caller Me() { return Caller::FromCredentials(geteuid(), getegid(), getpid()); }
Caller Other(uint32_t uid) { return Caller::FromCredentials(uid, uid, 0); }

v1::CreateRingRequest RingRequest(const std::string& id, uint64_t capacity, uint32_t mode = 0) {
  v1::CreateRingRequest r;
  r.set_ring_id(id);
  r.mutable_ring()->set_kind(v1::RING_KIND_SPSC);
  r.mutable_ring()->set_capacity_bytes(capacity);
  r.mutable_ring()->set_mode(mode);
  return r;
}

class RegistryTest : public ::testing::Test {
 protected:
  Registry& Make(Limits limits = {}) {
    Registry::Options o;
    o.dir = dir_.dir();
    o.limits = limits;
    o.admin_uid = 0;
    registry_ = std::make_unique<Registry>(o, &events_, nullptr);
    return *registry_;
  }
  shmd::testing::TestDir dir_;
  EventBus events_;
  std::unique_ptr<Registry> registry_;
};

TEST_F(RegistryTest, CreateRecordsTheCallerAsOwnerAndIsIdempotent) {
  Registry& r = Make();
  auto sub = events_.Subscribe();
  Result<v1::Ring> ring = r.CreateRing(Me(), RingRequest("orders", 4096));
  ASSERT_TRUE(ring.ok()) << ring.error().message();
  EXPECT_EQ(ring->info().owner_uid(), geteuid());
  EXPECT_TRUE(r.CreateRing(Me(), RingRequest("orders", 4096)).ok());
  Result<v1::Ring> other = r.CreateRing(Me(), RingRequest("orders", 8192));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_NE(other.error().message().find("4 KiB"), std::string::npos) << other.error().message();
  v1::Event e;
  ASSERT_EQ(sub->Wait(std::chrono::seconds(1), &e), EventBus::Subscription::Next::kEvent);
  EXPECT_EQ(e.type(), v1::Event::TYPE_OBJECT_CREATED);
  EXPECT_EQ(e.object(), "rings/orders");
  EXPECT_EQ(e.sequence(), 1u);
  EXPECT_EQ(sub->Wait(std::chrono::milliseconds(10), &e), EventBus::Subscription::Next::kTimeout)
      << "an idempotent create creates nothing";
}

TEST_F(RegistryTest, AnonymousCallersMayOnlyReadWhatAnyoneMayRead) {
  Registry& r = Make();
  ASSERT_TRUE(r.CreateRing(Me(), RingRequest("private", 4096)).ok());
  ASSERT_TRUE(r.CreateRing(Me(), RingRequest("public", 4096, 0666)).ok());
  EXPECT_EQ(r.CreateRing(Caller::Anonymous(), RingRequest("x", 4096)).error().code(),
            ErrorCode::kPermissionDenied);
  v1::GetRingRequest get;
  get.set_name("rings/private");
  EXPECT_EQ(r.GetRing(Caller::Anonymous(), get).error().code(), ErrorCode::kPermissionDenied);
  get.set_name("rings/public");
  EXPECT_TRUE(r.GetRing(Caller::Anonymous(), get).ok());
  Result<v1::ListRingsResponse> list = r.ListRings(Caller::Anonymous(), {});
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->rings_size(), 1) << "List shows only what the caller may read";
  v1::AttachRequest attach;
  attach.set_object("rings/public");
  attach.set_role(v1::ROLE_PRODUCER);
  EXPECT_EQ(r.Attach(Caller::Anonymous(), attach).error().code(), ErrorCode::kPermissionDenied);
}

TEST_F(RegistryTest, OwnersAloneMayDeleteAndGroupModesShare) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create objects for another uid";
  Registry& r = Make();
  ASSERT_TRUE(r.CreateRing(Other(1234), RingRequest("theirs", 4096, 0660)).ok());
  v1::DeleteRingRequest del;
  del.set_name("theirs");
  Result<Ok> refused = r.DeleteRing(Other(4321), del);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kPermissionDenied);
  v1::GetRingRequest get;
  get.set_name("theirs");
  EXPECT_TRUE(r.GetRing(Caller::FromCredentials(4321, 1234, 0), get).ok()) << "same group";
  EXPECT_FALSE(r.GetRing(Caller::FromCredentials(4321, 4321, 0), get).ok());
  EXPECT_TRUE(r.DeleteRing(Other(1234), del).ok());
}

TEST_F(RegistryTest, LimitsAreCheckedBeforeAnyMemoryIsReserved) {
  Registry& r = Make({.quota_bytes = 100 << 10, .max_object_bytes = 0, .max_objects_per_uid = 0});
  Result<v1::Ring> big = r.CreateRing(Me(), RingRequest("big", 1 << 20));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), ErrorCode::kQuotaExceeded);
  EXPECT_NE(big.error().message().find("--quota-bytes"), std::string::npos);
  EXPECT_EQ(dir_.CountFiles(), 0);
}

TEST_F(RegistryTest, ObjectsMadeInEmbeddedModeAreAdopted) {
  ASSERT_TRUE(CreateBlockPool(dir_.dir(), "embedded", {64, 4}).ok());
  Registry& r = Make();
  const std::string report = r.Adopt();
  EXPECT_NE(report.find("adopted pools/embedded"), std::string::npos) << report;
  ASSERT_TRUE(CreateRegion(dir_.dir(), "later", 100).ok());  // after start-up
  v1::GetRegionRequest get;
  get.set_name("later");
  EXPECT_TRUE(r.GetRegion(Me(), get).ok());
  ASSERT_TRUE(Segment::Remove(dir_.dir(), "later").ok());  // deleted behind its back
  EXPECT_EQ(r.GetRegion(Me(), get).error().code(), ErrorCode::kNotFound);
}

TEST_F(RegistryTest, ADeadLeaseholderIsClearedAndReported) {
  Registry& r = Make();
  v1::CreatePoolRequest create;
  create.set_pool_id("frames");
  create.mutable_pool()->set_block_size_bytes(64);
  create.mutable_pool()->set_block_count(8);
  ASSERT_TRUE(r.CreatePool(Me(), create).ok());
  auto sub = events_.Subscribe();
  // A child attaches (as the daemon would let it), takes three blocks and dies holding them.
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  if (child == 0) {
    auto pool = BlockPool::Open(dir_.dir(), "frames");
    Block b;
    for (int i = 0; i < 3; ++i) (void)pool->TryAllocate(&b);
    (void)!write(ready[1], "x", 1);
    pause();
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  v1::AttachRequest attach;
  attach.set_object("pools/frames");
  attach.set_role(v1::ROLE_PRODUCER);
  Result<v1::Lease> lease = r.Attach(Caller::FromCredentials(geteuid(), getegid(), child), attach);
  ASSERT_TRUE(lease.ok()) << lease.error().message();
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  r.OnProcessExit(static_cast<uint32_t>(child));
  v1::GetPoolRequest get;
  get.set_name("frames");
  EXPECT_EQ(r.GetPool(Me(), get)->usage().blocks_in_use(), 0u);
  v1::Event e;
  bool died = false;
  while (sub->Wait(std::chrono::milliseconds(100), &e) == EventBus::Subscription::Next::kEvent) {
    if (e.type() != v1::Event::TYPE_ENDPOINT_DIED) continue;
    died = true;
    EXPECT_EQ(e.reclaimed_blocks(), 3u);
    EXPECT_EQ(e.lease(), lease->name());
  }
  EXPECT_TRUE(died);
  EXPECT_EQ(r.Stats().lease_count(), 0u);
}

// Many callers at once, with the sweeper and a real process watcher running: what
// ThreadSanitizer checks of the daemon (its gRPC face is not instrumented; see script/test).
TEST_F(RegistryTest, ManyCallersAtOnce) {
  Registry::Options o;
  o.dir = dir_.dir();
  Registry* registry = nullptr;
  ProcessWatcher watcher([&](uint32_t pid) { registry->OnProcessExit(pid); });
  ASSERT_TRUE(watcher.Start().ok());
  Registry r(o, &events_, &watcher);
  registry = &r;
  auto sub = events_.Subscribe();
  std::atomic<bool> stop{false};
  std::thread sweeper([&] {
    while (!stop.load()) r.Sweep();
  });
  std::thread reader([&] {
    v1::Event e;
    while (!stop.load()) (void)sub->Wait(std::chrono::milliseconds(1), &e);
  });
  const int rounds = static_cast<int>(shmd::testing::Scaled(200));
  std::vector<std::thread> callers;
  std::atomic<int> failures{0};
  for (int t = 0; t < 6; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < rounds; ++i) {
        const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i % 4);
        (void)r.CreateRing(Me(), RingRequest(id, 4096));
        (void)r.CreateRing(Me(), RingRequest("shared", 4096));
        v1::AttachRequest attach;
        attach.set_object("rings/shared");
        attach.set_role(v1::ROLE_CONSUMER);
        Result<v1::Lease> lease = r.Attach(Me(), attach);
        (void)r.ListRings(Me(), {});
        (void)r.Stats();
        if (lease.ok()) {
          v1::DetachRequest detach;
          detach.set_name(lease->name());
          if (!r.Detach(Me(), detach).ok()) failures.fetch_add(1);
        }
        v1::DeleteRingRequest del;
        del.set_name(id);
        if (!r.DeleteRing(Me(), del).ok()) failures.fetch_add(1);
      }
    });
  }
  // A process that attaches and dies while all that goes on.
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  v1::AttachRequest attach;
  attach.set_object("rings/shared");
  attach.set_role(v1::ROLE_PRODUCER);
  for (int i = 0; i < 100 && !r.Attach(Caller::FromCredentials(geteuid(), getegid(), child),
                                       attach).ok(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  for (auto& c : callers) c.join();
  stop.store(true);
  sweeper.join();
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(r.Stats().ring_count(), 1u) << "only 'shared' is left";
  EXPECT_EQ(r.Stats().lease_count(), 0u) << "the dead process's lease ended";
}

TEST(EventBusTest, ASlowWatcherIsCutOffNotWaitedFor) {
  EventBus bus;
  auto sub = bus.Subscribe();
  for (size_t i = 0; i < EventBus::kMaxBacklog + 1; ++i) bus.Publish(v1::Event());
  v1::Event e;
  EXPECT_EQ(sub->Wait(std::chrono::milliseconds(1), &e), EventBus::Subscription::Next::kOverflow);
  bus.Close();
  auto late = bus.Subscribe();
  EXPECT_EQ(late->Wait(std::chrono::milliseconds(1), &e), EventBus::Subscription::Next::kClosed);
}

}  // namespace
}  // namespace shmd::server
