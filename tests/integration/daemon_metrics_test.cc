// The daemon's Prometheus endpoint: figures read from the objects' headers at scrape time
// (what moved through a ring shows up; a deleted object disappears), the control plane's
// call counts by code, the content type, and promtool's verdict on the live output.
#include <gtest/gtest.h>

#include <cstdio>
#include <regex>
#include <string>

#include "common/daemon.h"
#include "common/http_get.h"
#include "shmd/client/client.h"

namespace shmd {
namespace {

using shmd::testing::Daemon;
using shmd::testing::HttpGet;

// The value of the sample `series` (name and labels, exactly as exposed), or -1.
double Sample(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

class DaemonMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(daemon_.Start(&why)) << why;
    ASSERT_FALSE(daemon_.metrics_url().empty()) << daemon_.Output();
    ClientOptions options;
    options.target = daemon_.target();
    client_ = std::make_unique<Client>(Client::Connect(options).value());
  }
  std::string Scrape() {
    testing::HttpResponse r = HttpGet(daemon_.metrics_url());
    EXPECT_EQ(r.status, 200) << r.headers;
    return r.body;
  }
  Daemon daemon_;
  std::unique_ptr<Client> client_;
};

TEST_F(DaemonMetricsTest, RingFiguresComeFromTheHeaders) {
  v1::Ring spec;
  spec.set_kind(v1::RING_KIND_SPSC);
  spec.set_capacity_bytes(65536);
  ASSERT_TRUE(client_->CreateRing("orders", spec).ok());
  {
    auto producer = client_->Open<SpscProducer>("orders");
    auto consumer = client_->Open<SpscConsumer>("orders");
    ASSERT_TRUE(producer.ok() && consumer.ok());
    std::byte message[100] = {};
    for (int i = 0; i < 10; ++i) ASSERT_EQ((*producer)->TrySend(message), Status::kOk);
    std::byte buffer[100];
    size_t size;
    for (int i = 0; i < 4; ++i) ASSERT_EQ((*consumer)->TryReceive(buffer, &size), Status::kOk);
    const std::string text = Scrape();
    EXPECT_EQ(Sample(text, "shmd_ring_info{ring=\"orders\",kind=\"spsc\"}"), 1);
    EXPECT_EQ(Sample(text, "shmd_ring_capacity_bytes{ring=\"orders\"}"), 65536);
    EXPECT_EQ(Sample(text, "shmd_ring_messages_written_total{ring=\"orders\"}"), 10);
    EXPECT_EQ(Sample(text, "shmd_ring_messages_read_total{ring=\"orders\"}"), 4);
    EXPECT_EQ(Sample(text, "shmd_ring_bytes_written_total{ring=\"orders\"}"), 1000);
    EXPECT_EQ(Sample(text, "shmd_ring_used_bytes{ring=\"orders\"}"), 6 * (8 + 104));
    EXPECT_EQ(
        Sample(text, "shmd_ring_endpoints{ring=\"orders\",role=\"producer\",state=\"live\"}"), 1);
    EXPECT_EQ(Sample(text, "shmd_leases"), 2);
    EXPECT_EQ(Sample(text, "shmd_objects{kind=\"ring\"}"), 1);
  }
  ASSERT_TRUE(client_->DeleteRing("orders").ok());
  const std::string after = Scrape();
  EXPECT_EQ(after.find("ring=\"orders\""), std::string::npos) << "a deleted ring disappears";
  EXPECT_EQ(Sample(after, "shmd_objects{kind=\"ring\"}"), 0);
}

TEST_F(DaemonMetricsTest, PoolsRegionsServerAndControlPlane) {
  v1::Pool pool;
  pool.set_block_size_bytes(4096);
  pool.set_block_count(8);
  ASSERT_TRUE(client_->CreatePool("frames", pool).ok());
  v1::Region region;
  region.set_size_bytes(1000);
  ASSERT_TRUE(client_->CreateRegion("table", region).ok());
  {
    auto user = client_->Open<BlockPool>("frames");
    ASSERT_TRUE(user.ok());
    Block b;
    ASSERT_EQ((*user)->TryAllocate(&b), Status::kOk);
    const std::string text = Scrape();
    EXPECT_EQ(Sample(text, "shmd_pool_blocks{pool=\"frames\"}"), 8);
    EXPECT_EQ(Sample(text, "shmd_pool_blocks_in_use{pool=\"frames\"}"), 1);
    EXPECT_EQ(Sample(text, "shmd_pool_block_size_bytes{pool=\"frames\"}"), 4096);
    EXPECT_EQ(Sample(text, "shmd_region_size_bytes{region=\"table\"}"), 1000);
  }
  EXPECT_FALSE(client_->GetRing("missing").ok());
  const std::string text = Scrape();
  EXPECT_EQ(Sample(text, "grpc_server_handled_total{grpc_code=\"NOT_FOUND\",grpc_method=\"GetRing\","
                         "grpc_service=\"shmd.v1.Control\",grpc_type=\"unary\"}"),
            1);
  EXPECT_GE(Sample(text, "grpc_server_started_total{grpc_method=\"CreatePool\","
                         "grpc_service=\"shmd.v1.Control\",grpc_type=\"unary\"}"),
            1);
  EXPECT_NE(text.find("grpc_server_handling_seconds_bucket{"), std::string::npos);
  EXPECT_GT(Sample(text, "shmd_shm_allocated_bytes"), 0);
  EXPECT_GT(Sample(text, "shmd_shm_filesystem_size_bytes"), 0);
  EXPECT_EQ(Sample(text, "shmd_shm_quota_bytes"), 0);
  EXPECT_NE(text.find("shmd_build_info{version=\"0.1.0\",revision=\""), std::string::npos);
  EXPECT_GE(Sample(text, "shmd_scrape_duration_seconds"), 0);
}

TEST_F(DaemonMetricsTest, TheContentTypeNamesItsVersionAndPromtoolAcceptsTheOutput) {
  testing::HttpResponse r = HttpGet(daemon_.metrics_url());
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.headers.find("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
            std::string::npos)
      << r.headers;
  EXPECT_EQ(HttpGet(daemon_.metrics_url() + "x").status, 404);
  if (access("/usr/bin/promtool", X_OK) != 0) GTEST_SKIP() << "no promtool (apt: prometheus)";
  // A ring, a pool and a failed call, so that every family has samples.
  v1::Ring spec;
  spec.set_kind(v1::RING_KIND_BROADCAST);
  spec.set_capacity_bytes(65536);
  spec.set_max_message_bytes(100);
  ASSERT_TRUE(client_->CreateRing("news", spec).ok());
  EXPECT_FALSE(client_->GetPool("missing").ok());
  const std::string path = daemon_.shm_dir() + "/metrics.txt";
  FILE* f = std::fopen(path.c_str(), "w");
  const std::string body = HttpGet(daemon_.metrics_url()).body;
  std::fwrite(body.data(), 1, body.size(), f);
  std::fclose(f);
  const std::string command = "/usr/bin/promtool check metrics < " + path + " 2>&1";
  FILE* p = popen(command.c_str(), "r");
  std::string said;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) said.append(buf, n);
  const int status = pclose(p);
  EXPECT_EQ(status, 0) << "promtool check metrics says:\n" << said;
}

}  // namespace
}  // namespace shmd
