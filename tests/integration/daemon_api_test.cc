// The real daemon, a separate process, over a real Unix socket: every RPC and every status
// code path, pagination, idempotent create, delete with and without force, the limits,
// and another uid refused an owner-only object.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <set>
#include <string>

#include "common/daemon.h"
#include "common/peer_process.h"
#include "shmd/client/client.h"

namespace shmd {
namespace {

using shmd::testing::Daemon;
using shmd::testing::PeerProcess;

v1::Ring Spsc(uint64_t capacity, uint32_t mode = 0) {
  v1::Ring r;
  r.set_kind(v1::RING_KIND_SPSC);
  r.set_capacity_bytes(capacity);
  r.set_mode(mode);
  return r;
}

v1::Pool PoolSpec(uint32_t block_size, uint32_t count) {
  v1::Pool p;
  p.set_block_size_bytes(block_size);
  p.set_block_count(count);
  return p;
}

v1::Region RegionSpec(uint64_t size) {
  v1::Region r;
  r.set_size_bytes(size);
  return r;
}

template <class T>
::testing::AssertionResult FailsWith(const Result<T>& r, ErrorCode code) {
  if (r.ok()) return ::testing::AssertionFailure() << "succeeded; expected " << ErrorCodeName(code);
  if (r.error().code() != code) {
    return ::testing::AssertionFailure()
           << "failed with " << ErrorCodeName(r.error().code()) << " (" << r.error().message()
           << "); expected " << ErrorCodeName(code);
  }
  return ::testing::AssertionSuccess() << r.error().message();
}

class DaemonApiTest : public ::testing::Test {
 protected:
  void StartDaemon(std::vector<std::string> flags = {}) {
    daemon_ = std::make_unique<Daemon>(std::move(flags));
    std::string why;
    ASSERT_TRUE(daemon_->Start(&why)) << why;
    ClientOptions options;
    options.target = daemon_->target();
    Result<Client> client = Client::Connect(options);
    ASSERT_TRUE(client.ok()) << client.error().message();
    client_ = std::make_unique<Client>(std::move(client).value());
  }
  void SetUp() override { StartDaemon(); }

  std::unique_ptr<Daemon> daemon_;
  std::unique_ptr<Client> client_;
};

TEST_F(DaemonApiTest, RingsCanBeCreatedReadListedAndDeleted) {
  Result<v1::Ring> created = client_->CreateRing("orders", Spsc(1 << 20));
  ASSERT_TRUE(created.ok()) << created.error().message();
  EXPECT_EQ(created->name(), "rings/orders");
  EXPECT_EQ(created->kind(), v1::RING_KIND_SPSC);
  EXPECT_EQ(created->capacity_bytes(), 1u << 20);
  EXPECT_EQ(created->mode(), 0600u);
  EXPECT_EQ(created->info().owner_uid(), geteuid());
  EXPECT_EQ(created->info().layout_version(), layout::kLayoutVersion);
  EXPECT_EQ(created->info().path(), daemon_->ObjectPath("orders"));
  struct stat st {};
  ASSERT_EQ(stat(daemon_->ObjectPath("orders").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  Result<v1::Ring> got = client_->GetRing("rings/orders");
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ(got->capacity_bytes(), 1u << 20);
  Result<v1::Ring> bare = client_->GetRing("orders");
  EXPECT_TRUE(bare.ok());

  v1::Ring mpmc;
  mpmc.set_kind(v1::RING_KIND_MPMC);
  mpmc.set_capacity_bytes(64 * 1024);
  mpmc.set_max_message_bytes(100);
  Result<v1::Ring> m = client_->CreateRing("jobs", mpmc);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->slot_count(), 512u);  // 64 KiB / 128-byte slots (100 bytes + header)

  Result<std::vector<v1::Ring>> all = client_->ListAllRings();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].name(), "rings/jobs");  // ordered by name
  EXPECT_EQ((*all)[1].name(), "rings/orders");

  EXPECT_TRUE(client_->DeleteRing("orders").ok());
  EXPECT_NE(stat(daemon_->ObjectPath("orders").c_str(), &st), 0) << "the file must be gone";
  EXPECT_TRUE(FailsWith(client_->GetRing("orders"), ErrorCode::kNotFound));
}

TEST_F(DaemonApiTest, PoolsAndRegionsToo) {
  Result<v1::Pool> pool = client_->CreatePool("frames", PoolSpec(4096, 16));
  ASSERT_TRUE(pool.ok()) << pool.error().message();
  EXPECT_EQ(pool->name(), "pools/frames");
  EXPECT_EQ(pool->usage().blocks_in_use(), 0u);
  Result<v1::Region> region = client_->CreateRegion("table", RegionSpec(10000));
  ASSERT_TRUE(region.ok()) << region.error().message();
  EXPECT_EQ(region->size_bytes(), 10000u);

  Result<v1::Region> grown = client_->ResizeRegion("table", 50000);
  ASSERT_TRUE(grown.ok()) << grown.error().message();
  EXPECT_EQ(grown->size_bytes(), 50000u);
  EXPECT_GT(grown->info().generation(), region->info().generation());
  EXPECT_TRUE(FailsWith(client_->ResizeRegion("table", 0), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->ResizeRegion("frames", 100), ErrorCode::kNotFound))
      << "frames is a pool, not a region";

  EXPECT_EQ(client_->ListAllPools()->size(), 1u);
  EXPECT_EQ(client_->ListAllRegions()->size(), 1u);
  EXPECT_EQ(client_->ListAllRings()->size(), 0u);
  EXPECT_TRUE(FailsWith(client_->GetRing("frames"), ErrorCode::kNotFound));

  Result<v1::ServerStats> stats = client_->GetServerStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->pool_count(), 1u);
  EXPECT_EQ(stats->region_count(), 1u);
  EXPECT_EQ(stats->allocated_bytes(), pool->info().file_bytes() + grown->info().file_bytes());
  EXPECT_GT(stats->filesystem_size_bytes(), 0u);

  EXPECT_TRUE(client_->DeletePool("pools/frames").ok());
  EXPECT_TRUE(client_->DeleteRegion("regions/table").ok());
  EXPECT_EQ(daemon_->CountObjectFiles(), 0);
}

TEST_F(DaemonApiTest, BadInputIsInvalidArgumentWithAReason) {
  EXPECT_TRUE(FailsWith(client_->CreateRing("", Spsc(4096)), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->CreateRing("a/b", Spsc(4096)), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->CreateRing("..", Spsc(4096)), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->CreateRing(std::string(201, 'x'), Spsc(4096)),
                        ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->CreateRing("r", Spsc(1000)), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->CreateRing("r", Spsc(4096, 0700)), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->CreateRing("r", Spsc(4096, 0400)), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->CreateRing("r", v1::Ring()), ErrorCode::kInvalidArgument));
  v1::Ring big_message = Spsc(4096);
  big_message.set_max_message_bytes(4096);
  EXPECT_TRUE(FailsWith(client_->CreateRing("r", big_message), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->CreatePool("p", PoolSpec(100, 4)), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->CreatePool("p", PoolSpec(64, 0)), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->CreateRegion("g", RegionSpec(0)), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->GetRing("pools/x"), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->GetRing("nonsense/x"), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->ListRings(-1), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->ListRings(10, "zz"), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->Attach("orders", v1::ROLE_PRODUCER), ErrorCode::kInvalidArgument));
  EXPECT_TRUE(FailsWith(client_->Detach("not-a-lease", false), ErrorCode::kInvalidArgument));
  EXPECT_EQ(daemon_->CountObjectFiles(), 0) << "nothing may be left behind by a refused call";
}

TEST_F(DaemonApiTest, CreateIsIdempotent) {
  Result<v1::Ring> first = client_->CreateRing("orders", Spsc(65536));
  ASSERT_TRUE(first.ok());
  Result<v1::Ring> again = client_->CreateRing("orders", Spsc(65536));
  ASSERT_TRUE(again.ok()) << "the same spec again is the existing ring: "
                          << again.error().message();
  EXPECT_EQ(again->info().create_time().seconds(), first->info().create_time().seconds());
  EXPECT_EQ(again->info().create_time().nanos(), first->info().create_time().nanos());
  EXPECT_TRUE(FailsWith(client_->CreateRing("orders", Spsc(131072)), ErrorCode::kAlreadyExists));
  EXPECT_TRUE(FailsWith(client_->CreatePool("orders", PoolSpec(64, 4)), ErrorCode::kAlreadyExists));

  // A retried request id gets the first answer, even after the object changed hands.
  Result<v1::Pool> p1 = client_->CreatePool("frames", PoolSpec(64, 4), "req-1");
  ASSERT_TRUE(p1.ok());
  ASSERT_TRUE(client_->DeletePool("frames").ok());
  Result<v1::Pool> p2 = client_->CreatePool("frames", PoolSpec(64, 4), "req-1");
  ASSERT_TRUE(p2.ok());
  EXPECT_EQ(p2->info().create_time().nanos(), p1->info().create_time().nanos());
  EXPECT_TRUE(FailsWith(client_->GetPool("frames"), ErrorCode::kNotFound))
      << "a retry must not create the object a second time";
  EXPECT_TRUE(FailsWith(client_->CreatePool("other", PoolSpec(64, 4), "req-1"),
                        ErrorCode::kInvalidArgument))
      << "a request id reused for another request";
}

TEST_F(DaemonApiTest, ListPagesThroughEverything) {
  for (int i = 0; i < 25; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "r%02d", i);
    ASSERT_TRUE(client_->CreateRing(id, Spsc(4096)).ok());
  }
  ASSERT_TRUE(client_->CreatePool("zz-pool", PoolSpec(64, 1)).ok());
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    Result<v1::ListRingsResponse> page = client_->ListRings(10, token);
    ASSERT_TRUE(page.ok()) << page.error().message();
    EXPECT_LE(page->rings_size(), 10);
    for (const auto& r : page->rings()) seen.push_back(r.name());
    token = page->next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  ASSERT_EQ(seen.size(), 25u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 25u) << "no duplicates";
  EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
  Result<v1::ListRingsResponse> big = client_->ListRings(5000);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->rings_size(), 25);
  EXPECT_TRUE(big->next_page_token().empty());
}

TEST_F(DaemonApiTest, DeleteRefusesAnAttachedObjectUnlessForced) {
  ASSERT_TRUE(client_->CreateRing("orders", Spsc(65536)).ok());
  auto consumer = client_->Open<SpscConsumer>("orders");
  ASSERT_TRUE(consumer.ok()) << consumer.error().message();
  EXPECT_TRUE(FailsWith(client_->DeleteRing("orders"), ErrorCode::kFailedPrecondition));
  Result<v1::Ring> ring = client_->GetRing("orders");
  ASSERT_TRUE(ring.ok());
  ASSERT_EQ(ring->info().endpoints_size(), 1);
  EXPECT_EQ(ring->info().endpoints(0).role(), v1::ROLE_CONSUMER);
  EXPECT_EQ(ring->info().endpoints(0).pid(), static_cast<uint32_t>(getpid()));
  EXPECT_EQ(ring->info().endpoints(0).state(), v1::ENDPOINT_STATE_LIVE);
  EXPECT_EQ(ring->info().lease_count(), 1u);

  // A role the kind does not have; and an exclusive role already taken, by another process.
  EXPECT_TRUE(
      FailsWith(client_->Attach("rings/orders", v1::ROLE_SUBSCRIBER), ErrorCode::kInvalidArgument));
  PeerProcess second({SHMD_TEST_CLIENT, "attach", daemon_->target(), "rings/orders", "consumer"});
  EXPECT_EQ(second.WaitForLine("", std::chrono::seconds(10)).rfind("code failed precondition", 0),
            0u)
      << second.Output();

  EXPECT_TRUE(client_->DeleteRing("orders", {.force = true}).ok());
  EXPECT_EQ(daemon_->CountObjectFiles(), 0);
  // The consumer's mapping stays valid, and its wait learns that the ring is closed.
  std::byte b[16];
  size_t size = 0;
  EXPECT_EQ((*consumer)->ReceiveFor(b, &size, std::chrono::seconds(5)), Status::kClosed);
  EXPECT_TRUE(client_->DeleteRing("orders", {.allow_missing = true}).ok());
  EXPECT_TRUE(FailsWith(client_->DeleteRing("orders"), ErrorCode::kNotFound));
}

TEST_F(DaemonApiTest, LeasesMapTheObjectAndComeBack) {
  ASSERT_TRUE(client_->CreateRing("orders", Spsc(65536)).ok());
  {
    auto producer = client_->Open<SpscProducer>("orders");
    ASSERT_TRUE(producer.ok()) << producer.error().message();
    auto consumer = client_->Open<SpscConsumer>("orders");
    ASSERT_TRUE(consumer.ok()) << consumer.error().message();
    EXPECT_EQ(producer->lease().object(), "rings/orders");
    const std::string hello = "hello through the daemon's ring";
    ASSERT_EQ((*producer)->TrySend(std::as_bytes(std::span(hello))), Status::kOk);
    std::byte buffer[64];
    size_t size = 0;
    ASSERT_EQ((*consumer)->TryReceive(buffer, &size), Status::kOk);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(buffer), size), hello);
    EXPECT_EQ(client_->GetRing("orders")->info().lease_count(), 2u);
  }
  Result<v1::Ring> after = client_->GetRing("orders");
  EXPECT_EQ(after->info().lease_count(), 0u) << "leases are given back with the handles";
  EXPECT_EQ(after->info().endpoints_size(), 0);
  EXPECT_EQ(after->usage().messages_read(), 1u);
  EXPECT_TRUE(client_->DeleteRing("orders").ok()) << "nothing attached any more";

  Result<v1::Lease> lease = client_->Attach("rings/nothing", v1::ROLE_PRODUCER);
  EXPECT_TRUE(FailsWith(lease, ErrorCode::kNotFound));
  EXPECT_TRUE(FailsWith(client_->Detach("rings/orders/leases/0123", false), ErrorCode::kNotFound));
  EXPECT_TRUE(client_->Detach("rings/orders/leases/0123", true).ok());
}

TEST_F(DaemonApiTest, HealthIsServing) {
  Result<std::string> health = client_->CheckHealth();
  ASSERT_TRUE(health.ok()) << health.error().message();
  EXPECT_EQ(*health, "SERVING");
}

TEST_F(DaemonApiTest, ASecondDaemonOnTheSameSocketIsRefused) {
  PeerProcess second({SHMD_DAEMON, "--listen", daemon_->target(), "--shm-dir", daemon_->shm_dir(),
                      "--namespace", "other"});
  const int status = second.Wait(std::chrono::seconds(10));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1)
      << shmd::testing::DescribeStatus(status);
  EXPECT_TRUE(client_->CheckHealth().ok()) << "the first daemon must still serve";
}

TEST(DaemonLimitsTest, QuotasAreResourceExhausted) {
  Daemon daemon(
      {"--quota-bytes", "1MiB", "--max-object-bytes", "600KiB", "--max-objects-per-uid", "3"});
  std::string why;
  ASSERT_TRUE(daemon.Start(&why)) << why;
  ClientOptions options;
  options.target = daemon.target();
  Client client = Client::Connect(options).value();
  EXPECT_TRUE(FailsWith(client.CreateRing("huge", Spsc(1 << 20)), ErrorCode::kQuotaExceeded))
      << "larger than --max-object-bytes";
  ASSERT_TRUE(client.CreateRing("a", Spsc(256 << 10)).ok());
  ASSERT_TRUE(client.CreateRing("b", Spsc(256 << 10)).ok());
  ASSERT_TRUE(client.CreateRing("c", Spsc(256 << 10)).ok());  // 3 x 268 KiB = 804 KiB
  EXPECT_TRUE(FailsWith(client.CreateRing("d", Spsc(4096)), ErrorCode::kQuotaExceeded))
      << "a fourth object for this uid";
  ASSERT_TRUE(client.DeleteRing("c").ok());
  EXPECT_TRUE(FailsWith(client.CreateRing("e", Spsc(512 << 10)), ErrorCode::kQuotaExceeded))
      << "over the 1 MiB quota";
  EXPECT_TRUE(client.CreateRing("f", Spsc(4096)).ok());
  Result<v1::ServerStats> stats = client.GetServerStats();
  EXPECT_EQ(stats->quota_bytes(), 1u << 20);
  EXPECT_EQ(daemon.CountObjectFiles(), 3);
}

int FreeTcpPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// TCP only when asked, and then anonymous: a TCP caller reads what anyone may read and
// nothing else. The health address serves the health service alone (Kubernetes probes).
TEST(DaemonTcpTest, TcpCallersAreAnonymousAndTheHealthPortServesOnlyHealth) {
  const std::string tcp = "127.0.0.1:" + std::to_string(FreeTcpPort());
  const std::string health = "127.0.0.1:" + std::to_string(FreeTcpPort());
  Daemon daemon({"--listen", tcp, "--health-address", health});
  // --listen given twice: the Daemon's own unix:// address and the TCP one.
  std::string why;
  ASSERT_TRUE(daemon.Start(&why)) << why;
  ClientOptions options;
  options.target = daemon.target();
  Client local = Client::Connect(options).value();
  ASSERT_TRUE(local.CreateRing("private", Spsc(4096)).ok());
  ASSERT_TRUE(local.CreateRing("public", Spsc(4096, 0666)).ok());

  options.target = tcp;
  Result<Client> remote = Client::Connect(options);
  ASSERT_TRUE(remote.ok()) << remote.error().message();
  Result<std::vector<v1::Ring>> seen = remote->ListAllRings();
  ASSERT_TRUE(seen.ok()) << seen.error().message();
  ASSERT_EQ(seen->size(), 1u);
  EXPECT_EQ((*seen)[0].name(), "rings/public");
  EXPECT_TRUE(FailsWith(remote->GetRing("private"), ErrorCode::kPermissionDenied));
  EXPECT_TRUE(FailsWith(remote->CreateRing("x", Spsc(4096)), ErrorCode::kPermissionDenied));
  EXPECT_TRUE(
      FailsWith(remote->Attach("rings/public", v1::ROLE_PRODUCER), ErrorCode::kPermissionDenied));
  EXPECT_TRUE(FailsWith(remote->DeleteRing("public"), ErrorCode::kPermissionDenied));

  options.target = health;
  Result<Client> probe = Client::Connect(options);
  ASSERT_TRUE(probe.ok()) << probe.error().message();
  EXPECT_EQ(*probe->CheckHealth(), "SERVING");
  EXPECT_EQ(*probe->CheckHealth("shmd.v1.Control"), "SERVING");
  Result<v1::ServerStats> stats = probe->GetServerStats();
  ASSERT_FALSE(stats.ok()) << "the health port must not serve the API";
}

// Another uid (nobody, through setpriv) may not read or attach to an owner-only object,
// but may attach to one created with mode 0666.
TEST(DaemonPermissionTest, AnotherUidIsRefusedAnOwnerOnlyObject) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run a process as another uid";
  Daemon daemon({"--socket-mode", "0666"});
  std::string why;
  ASSERT_TRUE(daemon.Start(&why)) << why;
  ClientOptions options;
  options.target = daemon.target();
  Client client = Client::Connect(options).value();
  ASSERT_TRUE(client.CreateRing("private", Spsc(4096)).ok());
  ASSERT_TRUE(client.CreateRing("shared", Spsc(4096, 0666)).ok());
  auto as_nobody = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                                     "--clear-groups", SHMD_TEST_CLIENT};
    argv.insert(argv.end(), args.begin(), args.end());
    PeerProcess p(argv);
    std::string line = p.WaitForLine("", std::chrono::seconds(10));
    p.Wait(std::chrono::seconds(10));
    return line;
  };
  EXPECT_EQ(as_nobody({"get", daemon.target(), "rings/private"}).rfind("code permission denied", 0),
            0u);
  EXPECT_EQ(as_nobody({"attach", daemon.target(), "rings/private", "producer"})
                .rfind("code permission denied", 0),
            0u);
  EXPECT_EQ(as_nobody({"get", daemon.target(), "rings/shared"}), "ok");
  EXPECT_EQ(as_nobody({"attach", daemon.target(), "rings/shared", "producer"}), "ok");
}

}  // namespace
}  // namespace shmd
