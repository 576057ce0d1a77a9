// Topics through the daemon (the Client& factories of topic.h): a lossless topic created
// with CreateTopic is a broadcast ring whose policy GetRing and ListRings report; its
// publisher and subscriber hold leases; back-pressure shows as full events in the usage.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/daemon.h"
#include "shmd/client/client.h"
#include "shmd/client/topic.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using testing::Daemon;

class PubSubDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    ASSERT_TRUE(daemon_.Start(&why)) << why;
    ClientOptions options;
    options.target = daemon_.target();
    auto client = Client::Connect(options);
    ASSERT_TRUE(client.ok()) << client.error().message();
    client_ = std::make_unique<Client>(std::move(client).value());
  }
  Daemon daemon_;
  std::unique_ptr<Client> client_;
};

TEST_F(PubSubDaemonTest, LosslessTopicThroughTheDaemonReportsItsPolicyAndBackPressure) {
  const TopicSpec spec{.max_message = 100, .depth = 8, .policy = TopicPolicy::kLossless};
  ASSERT_TRUE(CreateTopic(*client_, "news", spec).ok());
  ASSERT_TRUE(CreateTopic(*client_, "news", spec).ok()) << "the same spec again is a no-op";
  TopicSpec lossy = spec;
  lossy.policy = TopicPolicy::kLossy;
  VoidResult clash = CreateTopic(*client_, "news", lossy);
  ASSERT_FALSE(clash.ok()) << "a lossy topic of the same name is another object";
  EXPECT_NE(clash.error().message().find("lossless"), std::string::npos) << clash.error().message();

  Result<v1::Ring> ring = client_->GetRing("rings/news");
  ASSERT_TRUE(ring.ok()) << ring.error().message();
  EXPECT_EQ(ring->kind(), v1::RING_KIND_BROADCAST);
  EXPECT_EQ(ring->policy(), v1::BROADCAST_POLICY_LOSSLESS);
  EXPECT_EQ(ring->slot_count(), 8u);
  EXPECT_EQ(ring->max_message_bytes(), 100u);
  auto listed = client_->ListRings();
  ASSERT_TRUE(listed.ok()) << listed.error().message();
  ASSERT_EQ(listed->rings_size(), 1);
  EXPECT_EQ(listed->rings(0).policy(), v1::BROADCAST_POLICY_LOSSLESS);

  auto pub = Publisher::Open(*client_, "news", {.sleep_slice = 2ms});
  ASSERT_TRUE(pub.ok()) << pub.error().message();
  auto sub = Subscriber::Open(*client_, "news");
  ASSERT_TRUE(sub.ok()) << sub.error().message();
  EXPECT_EQ(pub->policy(), TopicPolicy::kLossless);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(pub->Publish("m" + std::to_string(i), 1s), Status::kOk);
  EXPECT_EQ(pub->Publish("m8", 20ms), Status::kTimeout);
  std::vector<std::byte> buffer(100);
  for (int i = 0; i < 8; ++i) ASSERT_EQ(sub->Receive(buffer, 1s).status, Status::kOk);
  EXPECT_EQ(pub->Publish("m8", 1s), Status::kOk);

  ring = client_->GetRing("rings/news");
  ASSERT_TRUE(ring.ok());
  EXPECT_EQ(ring->usage().full_events(), 1u);
  EXPECT_EQ(ring->usage().messages_written(), 9u);
  EXPECT_EQ(ring->usage().lapped_messages(), 0u);

  // A policy on a ring that is not a broadcast ring is refused, and says why.
  v1::Ring spsc;
  spsc.set_kind(v1::RING_KIND_SPSC);
  spsc.set_capacity_bytes(4096);
  spsc.set_policy(v1::BROADCAST_POLICY_LOSSLESS);
  auto refused = client_->CreateRing("plain", spsc);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message().find("broadcast"), std::string::npos);

  // Deleting a topic in use needs force.
  EXPECT_FALSE(DeleteTopic(*client_, "news").ok());
  EXPECT_TRUE(DeleteTopic(*client_, "news", /*force=*/true).ok());
  EXPECT_FALSE(client_->GetRing("rings/news").ok());
}

}  // namespace
}  // namespace shmd
