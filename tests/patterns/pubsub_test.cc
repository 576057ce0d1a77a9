// Publish/subscribe (api/include/shmd/client/topic.h), embedded (no daemon): the API in
// one process, then real processes (pubsub_peer): subscribers joining and leaving
// mid-stream, a deliberately slow one whose reported loss must equal the sequence gaps it
// saw, one killed with SIGKILL; on a lossless topic, a slow one that throttles the
// publisher and a killed one that stops holding it back.
#include "shmd/client/topic.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/peer_process.h"
#include "common/test_dir.h"
#include "shmd/dataplane/stats.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using testing::PeerProcess;
using testing::TestDir;

std::string Text(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// --- the API, in one process -------------------------------------------------------------

TEST(TopicTest, BadSpecsAreClearErrors) {
  TestDir dir;
  auto bad = [&](TopicSpec spec, const char* says) {
    VoidResult r = CreateTopic(dir, "news", spec);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(says), std::string::npos) << r.error().message();
  };
  bad({.max_message = 0}, "max_message");
  bad({.max_message = (1u << 24) + 1}, "max_message");
  bad({.depth = 1}, "depth");
  bad({.depth = 100}, "power of two");
  bad({.policy = static_cast<TopicPolicy>(9)}, "policy");
  EXPECT_EQ(dir.CountFiles(), 0);
  auto missing = Publisher::Open(dir, "missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(RemoveTopic(dir, "missing").ok());
}

TEST(TopicTest, EverySubscriberGetsWhatWasPublishedAfterItJoined) {
  TestDir dir;
  ASSERT_TRUE(CreateTopic(dir, "news", {.max_message = 32, .depth = 8}).ok());
  auto pub = Publisher::Open(dir, "news");
  ASSERT_TRUE(pub.ok()) << pub.error().message();
  EXPECT_EQ(pub->depth(), 8u);
  EXPECT_EQ(pub->max_message(), 32u);
  EXPECT_EQ(pub->policy(), TopicPolicy::kLossy);
  EXPECT_EQ(Publisher::Open(dir, "news").error().code(), ErrorCode::kBusy) << "one publisher";
  auto early = Subscriber::Open(dir, "news");
  ASSERT_TRUE(early.ok());
  ASSERT_EQ(pub->Publish("one"), Status::kOk);
  auto late = Subscriber::Open(dir, "news");
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(late->cursor(), 1u);
  EXPECT_EQ(pub->subscribers(), 2u);
  ASSERT_EQ(pub->Publish("two"), Status::kOk);
  EXPECT_EQ(pub->published(), 2u);
  std::vector<std::byte> buffer(32);
  TopicReceive r = early->Receive(buffer, 1s);
  ASSERT_EQ(r.status, Status::kOk);
  EXPECT_EQ(Text(std::span(buffer).first(r.size)), "one");
  r = early->TryReceive(buffer);
  EXPECT_EQ(Text(std::span(buffer).first(r.size)), "two");
  EXPECT_EQ(early->TryReceive(buffer).status, Status::kEmpty);
  EXPECT_EQ(early->Receive(buffer, 10ms).status, Status::kTimeout);
  r = late->TryReceive(buffer);
  EXPECT_EQ(Text(std::span(buffer).first(r.size)), "two");
  EXPECT_EQ(early->received(), 2u);
  EXPECT_EQ(late->received(), 1u);
  // Bad input.
  EXPECT_EQ(pub->Publish(""), Status::kInvalidArgument);
  EXPECT_EQ(pub->Publish(std::string(33, 'x')), Status::kTooLarge);
  ASSERT_EQ(pub->Publish("a longer message"), Status::kOk);
  std::vector<std::byte> small(4);
  r = early->TryReceive(small);
  EXPECT_EQ(r.status, Status::kTooLarge);
  EXPECT_EQ(r.size, 16u);
  EXPECT_EQ(early->TryReceive(buffer).status, Status::kOk) << "kept for a larger buffer";
  // The publisher leaves: the rest is delivered, then kPeerGone.
  { Publisher leaving = std::move(pub).value(); }
  r = late->Receive(buffer, 1s);
  EXPECT_EQ(r.status, Status::kOk);
  EXPECT_EQ(late->Receive(buffer, 1s).status, Status::kPeerGone);
}

TEST(TopicTest, LossySubscriberIsToldExactlyHowManyItLost) {
  TestDir dir;
  ASSERT_TRUE(CreateTopic(dir, "news", {.max_message = 16, .depth = 4}).ok());
  auto pub = Publisher::Open(dir, "news");
  auto sub = Subscriber::Open(dir, "news");
  ASSERT_TRUE(pub.ok() && sub.ok());
  for (int i = 0; i < 10; ++i) ASSERT_EQ(pub->Publish("m" + std::to_string(i)), Status::kOk);
  std::vector<std::byte> buffer(16);
  TopicReceive r = sub->TryReceive(buffer);
  EXPECT_EQ(r.status, Status::kLapped);
  EXPECT_EQ(r.lost, 6u);  // 10 published, the last 4 still held
  EXPECT_EQ(sub->lost(), 6u);
  for (int i = 6; i < 10; ++i) {
    r = sub->TryReceive(buffer);
    ASSERT_EQ(r.status, Status::kOk);
    EXPECT_EQ(Text(std::span(buffer).first(r.size)), "m" + std::to_string(i));
  }
  EXPECT_EQ(sub->received() + sub->lost(), sub->cursor());
  EXPECT_EQ(ReadStats(sub->ring().segment()).lapped_messages, 6u);
}

TEST(TopicTest, LosslessPublisherGetsBackPressureAndNobodyLoses) {
  TestDir dir;
  ASSERT_TRUE(
      CreateTopic(dir, "news", {.max_message = 16, .depth = 4, .policy = TopicPolicy::kLossless})
          .ok());
  auto pub = Publisher::Open(dir, "news");
  auto sub = Subscriber::Open(dir, "news");
  ASSERT_TRUE(pub.ok() && sub.ok());
  EXPECT_EQ(sub->policy(), TopicPolicy::kLossless);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(pub->Publish("m" + std::to_string(i)), Status::kOk);
  EXPECT_EQ(pub->Publish("m4"), Status::kFull);
  EXPECT_EQ(pub->Publish("m4", 20ms), Status::kTimeout);
  std::vector<std::byte> buffer(16);
  ASSERT_EQ(sub->TryReceive(buffer).status, Status::kOk);
  EXPECT_EQ(pub->Publish("m4", 20ms), Status::kOk);
  const ObjectStats st = ReadStats(sub->ring().segment());
  EXPECT_EQ(st.full_events, 2u);
  EXPECT_EQ(st.lapped_messages, 0u);
}

// --- across processes ---------------------------------------------------------------------

PeerProcess StartPeer(const TestDir& dir, std::vector<std::string> args) {
  std::vector<std::string> argv = {SHMD_PATTERN_PEER, args[0], dir.dir().path, dir.dir().ns};
  argv.insert(argv.end(), args.begin() + 1, args.end());
  return PeerProcess(argv);
}

// "done received=R lost=L gaps=G joined=C" as a map.
std::map<std::string, uint64_t> Done(PeerProcess& p, std::chrono::milliseconds timeout) {
  std::map<std::string, uint64_t> out;
  std::istringstream in(p.WaitForLine("done", timeout));
  std::string word;
  while (in >> word) {
    if (const size_t eq = word.find('='); eq != std::string::npos) {
      out[word.substr(0, eq)] = std::stoull(word.substr(eq + 1));
    }
  }
  return out;
}

std::string Ready(PeerProcess& p) { return p.WaitForLine("ready", 20s); }

TEST(PubSubMultiprocessTest, LossyTopicWithJoiningLeavingSlowAndKilledSubscribers) {
  TestDir dir;
  constexpr uint64_t kCount = 20000;
  constexpr uint32_t kDepth = 8192;  // a steady reader lapped only if stopped for ~50 ms
  constexpr uint32_t kMax = 64;
  const std::string max = std::to_string(kMax);
  ASSERT_TRUE(CreateTopic(dir, "news", {.max_message = kMax, .depth = kDepth}).ok());
  const std::string joined_file =
      std::filesystem::temp_directory_path() / ("pubsub-joined-" + dir.dir().ns);
  std::filesystem::remove(joined_file);

  PeerProcess steady1 = StartPeer(dir, {"subscribe", "news", max, "steady", "0"});
  PeerProcess steady2 = StartPeer(dir, {"subscribe", "news", max, "steady", "0"});
  PeerProcess leaver = StartPeer(dir, {"subscribe", "news", max, "leave", "3000"});
  PeerProcess slow = StartPeer(dir, {"subscribe", "news", max, "lag", "0"});
  PeerProcess victim = StartPeer(dir, {"subscribe", "news", max, "steady", "0"});
  for (PeerProcess* p : {&steady1, &steady2, &leaver, &slow, &victim}) {
    ASSERT_EQ(Ready(*p), "ready 0") << p->Output();
  }
  // Paced (200 us every 32 messages) so that steady readers keep up on a busy machine.
  PeerProcess pub = StartPeer(
      dir, {"publish", "news", std::to_string(kCount), max, "0", "32", "200", "5", joined_file});
  ASSERT_NE(pub.WaitForLine("half", 60s), "") << pub.Output();
  PeerProcess joiner = StartPeer(dir, {"subscribe", "news", max, "steady", "0", joined_file});
  const std::string ready = Ready(joiner);
  ASSERT_NE(ready, "") << joiner.Output();
  const uint64_t joined_at = std::stoull(ready.substr(6));
  EXPECT_GE(joined_at, kCount / 2);
  victim.Kill();  // mid-stream: the others must not notice
  EXPECT_NE(victim.Wait(10s), 0);
  ASSERT_NE(pub.WaitForLine("published", 120s), "") << pub.Output();
  EXPECT_EQ(pub.Wait(10s), 0) << pub.Output();

  for (PeerProcess* p : {&steady1, &steady2}) {
    auto d = Done(*p, 60s);
    EXPECT_EQ(d["received"], kCount) << p->Output();
    EXPECT_EQ(d["lost"], 0u) << p->Output();
    EXPECT_EQ(p->Wait(10s), 0) << p->Output();
  }
  auto j = Done(joiner, 60s);
  EXPECT_EQ(j["received"], kCount - joined_at) << joiner.Output();
  EXPECT_EQ(j["lost"], 0u);
  EXPECT_EQ(joiner.Wait(10s), 0) << joiner.Output();
  auto l = Done(leaver, 60s);
  EXPECT_EQ(l["received"], 3000u) << leaver.Output();
  EXPECT_EQ(l["lost"], 0u);
  EXPECT_EQ(leaver.Wait(10s), 0) << leaver.Output();
  // The slow one was lapped; its reported loss equals the gaps it saw (the peer exits 1
  // otherwise), and everything is accounted for.
  auto s = Done(slow, 60s);
  EXPECT_GT(s["lost"], 0u) << slow.Output();
  EXPECT_EQ(s["lost"], s["gaps"]) << slow.Output();
  EXPECT_EQ(s["received"] + s["lost"], kCount) << slow.Output();
  EXPECT_EQ(slow.Wait(10s), 0) << slow.Output();
  std::filesystem::remove(joined_file);
}

TEST(PubSubMultiprocessTest, LosslessSlowSubscriberThrottlesThePublisherAndNobodyLoses) {
  TestDir dir;
  const uint64_t count = testing::Scaled(20000);
  const std::string max = "64";
  ASSERT_TRUE(
      CreateTopic(dir, "news", {.max_message = 64, .depth = 64, .policy = TopicPolicy::kLossless})
          .ok());
  PeerProcess steady = StartPeer(dir, {"subscribe", "news", max, "steady", "0"});
  PeerProcess slow = StartPeer(dir, {"subscribe", "news", max, "pause", "50"});
  for (PeerProcess* p : {&steady, &slow}) ASSERT_EQ(Ready(*p), "ready 0") << p->Output();
  // 2 ms per try: each 50 ms pause of the slow one makes the publisher time out.
  PeerProcess pub =
      StartPeer(dir, {"publish", "news", std::to_string(count), max, "2", "0", "0", "2", "-"});
  const std::string line = pub.WaitForLine("published", 120s);
  ASSERT_NE(line, "") << pub.Output();
  EXPECT_GT(std::stoull(line.substr(line.find("timeouts ") + 9)), 0u) << line;
  EXPECT_EQ(pub.Wait(10s), 0) << pub.Output();
  for (PeerProcess* p : {&steady, &slow}) {
    auto d = Done(*p, 60s);
    EXPECT_EQ(d["received"], count) << p->Output();
    EXPECT_EQ(d["lost"], 0u) << p->Output();
    EXPECT_EQ(p->Wait(10s), 0) << p->Output();
  }
  auto ring = Segment::Open(dir, "news");
  ASSERT_TRUE(ring.ok());
  EXPECT_GT(ReadStats(*ring).full_events, 0u) << "back-pressure shows in the metrics";
  EXPECT_EQ(ReadStats(*ring).lapped_messages, 0u);
}

TEST(PubSubMultiprocessTest, KilledLosslessSubscriberStopsHoldingThePublisher) {
  TestDir dir;
  const uint64_t count = testing::Scaled(5000);
  const std::string max = "64";
  ASSERT_TRUE(
      CreateTopic(dir, "news", {.max_message = 64, .depth = 64, .policy = TopicPolicy::kLossless})
          .ok());
  PeerProcess steady = StartPeer(dir, {"subscribe", "news", max, "steady", "0"});
  PeerProcess stuck = StartPeer(dir, {"subscribe", "news", max, "stall", "0"});
  for (PeerProcess* p : {&steady, &stuck}) ASSERT_EQ(Ready(*p), "ready 0") << p->Output();
  PeerProcess pub =
      StartPeer(dir, {"publish", "news", std::to_string(count), max, "5", "0", "0", "2", "-"});
  ASSERT_NE(pub.WaitForLine("throttled", 60s), "") << pub.Output();  // held by the stuck one
  stuck.Kill();
  EXPECT_NE(stuck.Wait(10s), 0);
  ASSERT_NE(pub.WaitForLine("published", 60s), "") << pub.Output();
  EXPECT_EQ(pub.Wait(10s), 0) << pub.Output();
  auto d = Done(steady, 60s);
  EXPECT_EQ(d["received"], count) << steady.Output();
  EXPECT_EQ(d["lost"], 0u);
  EXPECT_EQ(steady.Wait(10s), 0) << steady.Output();
}

}  // namespace
}  // namespace shmd
