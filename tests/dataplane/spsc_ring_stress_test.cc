// The SPSC ring under load as two threads over two separate mappings: the same protocol
// as two processes, but visible to ThreadSanitizer, which sees threads, not processes.
#include <gtest/gtest.h>

#include <thread>

#include "common/message_pattern.h"
#include "common/test_dir.h"
#include "shmd/dataplane/spsc_ring.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;

struct Mode {
  const char* name;
  bool batch;
  bool busy;
  uint64_t capacity;
};

class SpscStressTest : public ::testing::TestWithParam<Mode> {};

TEST_P(SpscStressTest, NothingLostDuplicatedReorderedOrCorrupted) {
  const Mode mode = GetParam();
  testing::TestDir dir;
  ASSERT_TRUE(CreateSpscRing(dir, "stress", {.capacity = mode.capacity}).ok());
  const uint64_t count = testing::Scaled(2000000);
  const uint32_t max = static_cast<uint32_t>(layout::MaxSpscMessage(mode.capacity));
  WaitOptions wait;
  wait.busy_poll = mode.busy;
  std::string failure;
  std::thread consumer_thread([&] {
    auto consumer = SpscConsumer::Open(dir, "stress", wait);
    if (!consumer.ok()) {
      failure = consumer.error().message();
      return;
    }
    for (uint64_t seq = 0; seq < count; ++seq) {
      MessageView m;
      Status s = consumer->PeekFor(&m, 30s);
      if (s != Status::kOk) {
        failure = "message " + std::to_string(seq) + ": " + StatusName(s);
        return;
      }
      std::string why = testing::CheckPattern(3, seq, testing::PatternSize(3, seq, max), m.bytes());
      if (!why.empty()) {
        failure = why;
        return;
      }
      consumer->Release();
    }
  });
  auto producer = SpscProducer::Open(dir, "stress", wait);
  ASSERT_TRUE(producer.ok());
  for (uint64_t seq = 0; seq < count; ++seq) {
    const uint32_t size = testing::PatternSize(3, seq, max);
    std::span<std::byte> room;
    Status s = producer->TryReserve(size, &room);
    if (s == Status::kFull) s = producer->ReserveFor(size, 30s, &room);
    ASSERT_EQ(s, Status::kOk) << "message " << seq;
    testing::FillPattern(3, seq, room);
    producer->Commit(size, mode.batch && seq % 8 != 7 ? Publish::kDeferred : Publish::kNow);
  }
  producer->Flush();
  consumer_thread.join();
  EXPECT_EQ(failure, "");
}

INSTANTIATE_TEST_SUITE_P(Modes, SpscStressTest,
                         ::testing::Values(Mode{"blocking", false, false, 1 << 16},
                                           Mode{"batched", true, false, 1 << 16},
                                           Mode{"busy_small_ring", false, true, 4096}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace shmd
