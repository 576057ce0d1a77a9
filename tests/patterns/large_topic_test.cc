// Zero-copy large-message publish/subscribe (large_topic.h) across real processes: this
// test is the publisher; subscribers are large_topic_peer processes (fork/exec) that
// check content, order, zero-copy placement and exact loss accounting themselves.
#include "shmd/client/large_topic.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/peer_process.h"
#include "common/test_dir.h"
#include "patterns/large_topic_pattern.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using testing::PeerProcess;
using testing::Scaled;
using testing::TestDir;

constexpr char kTopic[] = "video";
constexpr uint32_t kMax = 256 * 1024;

LargeTopicSpec Spec(layout::BroadcastPolicy policy, uint32_t depth, uint32_t blocks,
                    uint32_t max = kMax) {
  return LargeTopicSpec{.max_message = max, .blocks = blocks, .depth = depth, .policy = policy};
}

struct Sub {
  std::unique_ptr<PeerProcess> process;
  uint64_t id = 0;
};

Sub Spawn(const TestDir& dir, const std::string& mode, const std::string& arg = "",
          uint32_t max = kMax) {
  Sub sub;
  sub.process = std::make_unique<PeerProcess>(std::vector<std::string>{
      SHMD_PATTERN_PEER, dir.dir().path, dir.dir().ns, kTopic, std::to_string(max), mode, arg});
  const std::string ready = sub.process->WaitForLine("ready ", 20s);
  EXPECT_FALSE(ready.empty()) << sub.process->Output();
  if (!ready.empty()) sub.id = std::stoull(ready.substr(6));
  return sub;
}

struct Done {
  uint64_t received = 0, lost = 0, gaps = 0, first = 0, last = 0;
  bool ok = false;
};

// Waits for the peer's "done" line and its clean exit.
Done Finish(Sub& sub) {
  Done d;
  const std::string line = sub.process->WaitForLine("done ", 30s);
  const int status = sub.process->Wait(20s);
  EXPECT_TRUE(testing::ExitedWith(status, 0)) << testing::DescribeStatus(status) << "\n"
                                              << sub.process->Output();
  unsigned long long r, l, g, f, s;
  if (std::sscanf(line.c_str(), "done received=%llu lost=%llu gaps=%llu first=%llu last=%llu", &r,
                  &l, &g, &f, &s) == 5) {
    d = Done{r, l, g, f, s, true};
  }
  EXPECT_TRUE(d.ok) << "no done line: " << sub.process->Output();
  return d;
}

// Publishes message `published()` in place (zero copies from the publisher as well).
Status PublishNext(LargePublisher& pub, uint32_t max, Nanos timeout, LargeLoan* kept = nullptr) {
  LargeLoan loan;
  if (kept != nullptr && !kept->data.empty()) {
    loan = *kept;
  } else {
    if (Status s = pub.Loan(&loan, 5s); s != Status::kOk) return s;
  }
  const uint64_t seq = pub.published();
  const uint32_t size = testing::LargePatternSize(seq, max);
  testing::FillPattern(testing::kLargeStream, seq, loan.bytes().first(size));
  Status s = pub.Publish(loan, size, timeout);
  if (kept != nullptr) *kept = s == Status::kOk ? LargeLoan{} : loan;
  if (s != Status::kOk && kept == nullptr) pub.Drop(loan);
  return s;
}

// The subscriber table, read from the test's side: waits (bounded) until subscriber `id`
// has released everything sent to it, so a lossy test can keep its steady subscribers
// from ever falling behind on a loaded machine.
class TableView {
 public:
  explicit TableView(const TestDir& dir)
      : table_(
            std::move(Segment::Open(dir, LargeTopicTableName(kTopic), layout::ObjectKind::kRegion))
                .value()) {}
  bool CaughtUp(uint64_t id, std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const auto* entries =
        reinterpret_cast<const layout::LargeEntry*>(table_.data() + layout::kLargeEntriesOffset);
    for (;;) {
      for (uint32_t e = 0; e < kLargeTopicMaxSubscribers; ++e) {
        if (entries[e].id.load(std::memory_order_acquire) != id) continue;
        if (entries[e].released.load(std::memory_order_acquire) >=
            entries[e].sent.load(std::memory_order_acquire)) {
          return true;
        }
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(100us);
    }
  }

 private:
  Segment table_;
};

uint64_t BlocksInUse(const TestDir& dir) {
  auto pool = Segment::Open(dir, LargeTopicPoolName(kTopic), layout::ObjectKind::kBlockPool);
  EXPECT_TRUE(pool.ok());
  return pool.ok() ? PoolBlocksInUse(*pool) : ~uint64_t{0};
}

TEST(LargeTopicTest, RejectsBadSpecs) {
  TestDir dir;
  EXPECT_FALSE(CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossy, 0, 8)).ok());
  EXPECT_FALSE(CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossy, 8, 8)).ok());
  EXPECT_FALSE(CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossy, 4, 5000)).ok());
  EXPECT_FALSE(CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossy, 4, 8, 0)).ok());
  EXPECT_EQ(dir.CountFiles(), 0);
  EXPECT_FALSE(LargePublisher::Open(dir, kTopic).ok());
  EXPECT_FALSE(LargeSubscriber::Join(dir, kTopic).ok());
  ASSERT_TRUE(CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossy, 4, 8)).ok());
  EXPECT_FALSE(CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossy, 4, 8)).ok());
  auto pub = LargePublisher::Open(dir, kTopic);
  ASSERT_TRUE(pub.ok());
  auto second_publisher = LargePublisher::Open(dir, kTopic);
  ASSERT_FALSE(second_publisher.ok());
  EXPECT_EQ(second_publisher.error().code(), ErrorCode::kBusy);
  LargeLoan loan;
  ASSERT_EQ(pub->Loan(&loan), Status::kOk);
  LargeLoan second;
  EXPECT_EQ(pub->Loan(&second), Status::kInvalidArgument);  // one loan at a time
  EXPECT_EQ(pub->Publish(loan, 0), Status::kInvalidArgument);
  EXPECT_EQ(pub->Publish(loan, kMax + 1), Status::kTooLarge);
  EXPECT_EQ(pub->Publish(loan, 10), Status::kOk);  // nobody listens: the block is freed
  EXPECT_EQ(pub->Publish(loan, 10), Status::kInvalidArgument);  // consumed
  EXPECT_EQ(BlocksInUse(dir), 0u);
  EXPECT_TRUE(RemoveLargeTopic(dir, kTopic).ok());
  EXPECT_EQ(dir.CountFiles(), 0);
}

TEST(LargeTopicTest, SubscriberTableFillsAndEmpties) {
  TestDir dir;
  ASSERT_TRUE(CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossy, 4, 8)).ok());
  const int files = dir.CountFiles();
  {
    std::vector<LargeSubscriber> subs;
    for (uint32_t i = 0; i < kLargeTopicMaxSubscribers; ++i) {
      auto sub = LargeSubscriber::Join(dir, kTopic);
      ASSERT_TRUE(sub.ok()) << sub.error().message();
      subs.push_back(std::move(sub).value());
    }
    auto extra = LargeSubscriber::Join(dir, kTopic);
    ASSERT_FALSE(extra.ok());
    EXPECT_EQ(extra.error().code(), ErrorCode::kBusy);
    EXPECT_EQ(dir.CountFiles(), files + static_cast<int>(kLargeTopicMaxSubscribers));
    LargeMessage m;
    EXPECT_EQ(subs[0].Receive(&m, 0s), Status::kEmpty);  // no publisher yet
    subs[0].Leave();
    EXPECT_EQ(subs[0].Receive(&m, 0s), Status::kInvalidArgument);
    EXPECT_TRUE(LargeSubscriber::Join(dir, kTopic).ok());  // its entry is free again
  }  // with no publisher, each leaver removes its own ring
  EXPECT_EQ(dir.CountFiles(), files);
  EXPECT_TRUE(RemoveLargeTopic(dir, kTopic).ok());
}

TEST(LargeTopicTest, ThreeSubscribersGetEveryMessageInPlace) {
  TestDir dir;
  constexpr uint32_t kBig = 1 << 20;
  ASSERT_TRUE(
      CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossless, 8, 32, kBig)).ok());
  std::vector<Sub> subs;
  for (int i = 0; i < 3; ++i) subs.push_back(Spawn(dir, "steady", "", kBig));
  const uint64_t n = Scaled(300);
  {
    auto pub = LargePublisher::Open(dir, kTopic);
    ASSERT_TRUE(pub.ok()) << pub.error().message();
    for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(PublishNext(*pub, kBig, 10s), Status::kOk) << i;
    EXPECT_EQ(pub->subscribers(), 3u);
  }  // the publisher leaves: subscribers hear kPeerGone once drained
  for (Sub& sub : subs) {
    Done d = Finish(sub);
    EXPECT_EQ(d.received, n);
    EXPECT_EQ(d.lost, 0u);
    EXPECT_EQ(d.first, 0u);
    EXPECT_EQ(d.last, n - 1);
  }
  EXPECT_EQ(BlocksInUse(dir), 0u);
  EXPECT_TRUE(RemoveLargeTopic(dir, kTopic).ok());
  EXPECT_EQ(dir.CountFiles(), 0);
}

TEST(LargeTopicTest, SubscribersJoinAndLeaveMidStream) {
  TestDir dir;
  ASSERT_TRUE(CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossless, 4, 16)).ok());
  const uint64_t n = Scaled(600);
  const uint64_t leave_after = n / 4;
  Sub steady = Spawn(dir, "steady");
  Sub leaver = Spawn(dir, "leave", std::to_string(leave_after));
  Sub held_leaver = Spawn(dir, "leaveheld", "3");
  auto opened = LargePublisher::Open(dir, kTopic);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  std::optional<LargePublisher> pub(std::move(opened).value());
  for (uint64_t i = 0; i < n / 2; ++i) ASSERT_EQ(PublishNext(*pub, kMax, 10s), Status::kOk) << i;
  for (Sub* s : {&leaver, &held_leaver}) {
    ASSERT_FALSE(s->process->WaitForLine("left", 20s).empty()) << s->process->Output();
  }
  Sub joiner = Spawn(dir, "steady");
  for (uint64_t i = n / 2; i < n; ++i) ASSERT_EQ(PublishNext(*pub, kMax, 10s), Status::kOk) << i;
  pub->CheckSubscribers();
  EXPECT_EQ(pub->reaped(), 2u);  // the leavers, cleaned up by the publisher
  EXPECT_EQ(pub->subscribers(), 2u);
  pub.reset();  // the publisher leaves
  Done d = Finish(steady);
  EXPECT_EQ(d.received, n);
  Done j = Finish(joiner);
  EXPECT_EQ(j.first, n / 2);  // everything published after it joined, nothing before
  EXPECT_EQ(j.received, n - n / 2);
  EXPECT_EQ(j.lost, 0u);
  for (Sub* s : {&leaver, &held_leaver}) {
    const int status = s->process->Wait(20s);
    EXPECT_TRUE(testing::ExitedWith(status, 0)) << s->process->Output();
  }
  EXPECT_EQ(BlocksInUse(dir), 0u);
  EXPECT_TRUE(RemoveLargeTopic(dir, kTopic).ok());
  EXPECT_EQ(dir.CountFiles(), 0);
}

TEST(LargeTopicTest, LossySlowSubscriberIsToldExactlyWhatItLost) {
  TestDir dir;
  const std::string go = "/tmp/shmd-large-topic-go-" + dir.dir().ns;
  ASSERT_TRUE(CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossy, 4, 24)).ok());
  const uint64_t n = std::max<uint64_t>(Scaled(1000), 40);
  std::vector<Sub> fast;
  for (int i = 0; i < 2; ++i) fast.push_back(Spawn(dir, "steady"));
  Sub slow = Spawn(dir, "stall", go);
  TableView table(dir);
  {
    auto pub = LargePublisher::Open(dir, kTopic);
    ASSERT_TRUE(pub.ok()) << pub.error().message();
    for (uint64_t i = 0; i < n; ++i) {
      ASSERT_EQ(PublishNext(*pub, kMax, 0s), Status::kOk) << i;
      // Pacing on the steady ones only (never a timing): they must never be at their bound.
      for (const Sub& f : fast) ASSERT_TRUE(table.CaughtUp(f.id, 20s));
      if (i == n / 2) std::ofstream(go).put('x');  // the slow one reads on from here
    }
    EXPECT_GT(pub->lost(), 0u);
  }
  std::filesystem::remove(go);
  for (Sub& f : fast) {
    Done d = Finish(f);
    EXPECT_EQ(d.received, n);
    EXPECT_EQ(d.lost, 0u);
  }
  Done d = Finish(slow);
  EXPECT_GT(d.lost, 0u);
  EXPECT_EQ(d.lost, d.gaps);  // the peer checked this message by message too
  EXPECT_EQ(d.received + d.lost, d.last - d.first + 1);
  EXPECT_EQ(BlocksInUse(dir), 0u);
  EXPECT_TRUE(RemoveLargeTopic(dir, kTopic).ok());
}

TEST(LargeTopicTest, LosslessSlowSubscriberMakesPublishTimeOut) {
  TestDir dir;
  const std::string go = "/tmp/shmd-large-topic-go-" + dir.dir().ns;
  constexpr uint32_t kDepth = 4;
  ASSERT_TRUE(
      CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossless, kDepth, 16)).ok());
  const uint64_t n = Scaled(400) + 2 * kDepth;
  Sub steady = Spawn(dir, "steady");
  Sub slow = Spawn(dir, "stall", go);
  {
    auto pub = LargePublisher::Open(dir, kTopic);
    ASSERT_TRUE(pub.ok()) << pub.error().message();
    // The slow one holds its first message and reads nothing more: after kDepth
    // messages sent to it, the next Publish must wait and time out, sending nothing.
    LargeLoan kept;
    for (uint64_t i = 0; i < kDepth; ++i)
      ASSERT_EQ(PublishNext(*pub, kMax, 5s, &kept), Status::kOk);
    EXPECT_EQ(PublishNext(*pub, kMax, 0s, &kept), Status::kFull);
    EXPECT_EQ(PublishNext(*pub, kMax, 20ms, &kept), Status::kTimeout);
    EXPECT_EQ(pub->published(), kDepth);  // nothing went to anybody
    std::ofstream(go).put('x');
    for (uint64_t i = kDepth; i < n; ++i)
      ASSERT_EQ(PublishNext(*pub, kMax, 20s, &kept), Status::kOk);
    EXPECT_EQ(pub->lost(), 0u);
  }
  std::filesystem::remove(go);
  for (Sub* s : {&steady, &slow}) {
    Done d = Finish(*s);
    EXPECT_EQ(d.received, n);
    EXPECT_EQ(d.lost, 0u);
  }
  EXPECT_EQ(BlocksInUse(dir), 0u);
  EXPECT_TRUE(RemoveLargeTopic(dir, kTopic).ok());
}

TEST(LargeTopicTest, KilledSubscriberHoldingMessagesIsReaped) {
  TestDir dir;
  ASSERT_TRUE(CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossless, 4, 16)).ok());
  const uint64_t n = Scaled(400) + 10;
  Sub steady = Spawn(dir, "steady");
  Sub victim = Spawn(dir, "hold", "3");
  {
    auto pub = LargePublisher::Open(dir, kTopic);
    ASSERT_TRUE(pub.ok()) << pub.error().message();
    for (uint64_t i = 0; i < 3; ++i) ASSERT_EQ(PublishNext(*pub, kMax, 10s), Status::kOk);
    ASSERT_FALSE(victim.process->WaitForLine("holding", 20s).empty()) << victim.process->Output();
    victim.process->Kill(SIGKILL);
    victim.process->Wait(10s);
    // The victim holds 3 blocks and has 1 descriptor of credit left; the publisher finds
    // it dead when it is at its bound, and goes on.
    for (uint64_t i = 3; i < n; ++i) ASSERT_EQ(PublishNext(*pub, kMax, 20s), Status::kOk) << i;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (pub->reaped() == 0 && std::chrono::steady_clock::now() < deadline) {
      pub->CheckSubscribers();
      std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(pub->reaped(), 1u);
    EXPECT_EQ(pub->subscribers(), 1u);
  }
  Done d = Finish(steady);
  EXPECT_EQ(d.received, n);
  EXPECT_EQ(d.lost, 0u);
  EXPECT_EQ(BlocksInUse(dir), 0u);  // the victim's held and queued blocks came back
  EXPECT_TRUE(RemoveLargeTopic(dir, kTopic).ok());
  EXPECT_EQ(dir.CountFiles(), 0);
}

TEST(LargeTopicTest, KilledPublisherIsReplaced) {
  TestDir dir;
  ASSERT_TRUE(CreateLargeTopic(dir, kTopic, Spec(layout::BroadcastPolicy::kLossless, 4, 8)).ok());
  auto joined = LargeSubscriber::Join(dir, kTopic);
  ASSERT_TRUE(joined.ok()) << joined.error().message();
  LargeSubscriber& sub = *joined;
  constexpr uint64_t kFirst = 3;  // fits in the depth: the peer never waits for us
  PeerProcess publisher({SHMD_PATTERN_PEER, dir.dir().path, dir.dir().ns, kTopic,
                         std::to_string(kMax), "publish", std::to_string(kFirst)});
  ASSERT_FALSE(publisher.WaitForLine("published", 20s).empty()) << publisher.Output();
  publisher.Kill(SIGKILL);
  publisher.Wait(10s);
  LargeMessage m;
  for (uint64_t i = 0; i < kFirst; ++i) {
    ASSERT_EQ(sub.Receive(&m, 10s), Status::kOk);
    EXPECT_EQ(m.sequence(), i);
    EXPECT_EQ(testing::CheckPattern(testing::kLargeStream, i, testing::LargePatternSize(i, kMax),
                                    m.bytes()),
              "");
  }
  EXPECT_EQ(sub.Receive(&m, 10s), Status::kPeerGone);  // drained, and its publisher died
  {
    // A new publisher takes over: the dead one's unpublished loan comes back to the pool.
    auto pub = LargePublisher::Open(dir, kTopic);
    ASSERT_TRUE(pub.ok()) << pub.error().message();
    const uint64_t n = Scaled(100) + 5;
    for (uint64_t i = kFirst; i < n; ++i) {
      ASSERT_EQ(PublishNext(*pub, kMax, 10s), Status::kOk) << i;
      ASSERT_EQ(sub.Receive(&m, 10s), Status::kOk) << i;
      EXPECT_EQ(m.sequence(), i);
      EXPECT_EQ(testing::CheckPattern(testing::kLargeStream, i, testing::LargePatternSize(i, kMax),
                                      m.bytes()),
                "");
    }
  }
  m.Release();
  EXPECT_EQ(sub.lost(), 0u);
  sub.Leave();
  EXPECT_EQ(BlocksInUse(dir), 0u);
  EXPECT_TRUE(RemoveLargeTopic(dir, kTopic).ok());
  EXPECT_EQ(dir.CountFiles(), 0);
}

}  // namespace
}  // namespace shmd
