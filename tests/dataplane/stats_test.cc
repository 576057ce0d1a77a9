#include "shmd/dataplane/stats.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "common/test_dir.h"
#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/spsc_ring.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using testing::TestDir;

TEST(StatsTest, SpscRingFiguresFollowTraffic) {
  TestDir dir;
  auto ring = CreateSpscRing(dir, "r", {.capacity = 8192});
  ASSERT_TRUE(ring.ok());
  auto producer = SpscProducer::Open(dir, "r");
  auto consumer = SpscConsumer::Open(dir, "r");
  ASSERT_TRUE(producer.ok() && consumer.ok());
  std::vector<std::byte> message(100);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(producer->TrySend(message), Status::kOk);
  MessageView m;
  ASSERT_EQ(consumer->TryPeek(&m), Status::kOk);
  consumer->Release();

  ObjectStats st = ReadStats(*ring);
  EXPECT_EQ(st.kind, layout::ObjectKind::kSpscRing);
  EXPECT_EQ(st.capacity_bytes, 8192u);
  EXPECT_EQ(st.file_bytes, layout::kDataOffset + 8192);
  EXPECT_EQ(st.messages_written, 3u);
  EXPECT_EQ(st.messages_read, 1u);
  EXPECT_EQ(st.bytes_written, 300u);
  EXPECT_EQ(st.bytes_read, 100u);
  EXPECT_EQ(st.used_bytes, 2 * layout::RecordSize(100));
  EXPECT_EQ(st.endpoints.producers, 1u);
  EXPECT_EQ(st.endpoints.consumers, 1u);
  EXPECT_EQ(st.endpoints.dead, 0u);
}

TEST(StatsTest, PoolFiguresAndADeadEndpoint) {
  TestDir dir;
  auto pool = CreateBlockPool(dir, "p", {.block_size = 64, .block_count = 4});
  ASSERT_TRUE(pool.ok());
  {
    auto user = BlockPool::Open(dir, "p");
    ASSERT_TRUE(user.ok());
    Block b;
    for (int i = 0; i < 4; ++i) ASSERT_EQ(user->TryAllocate(&b), Status::kOk);
    EXPECT_EQ(user->TryAllocate(&b), Status::kFull);
    ObjectStats st = ReadStats(*pool);
    EXPECT_EQ(st.pool_blocks, 4u);
    EXPECT_EQ(st.pool_block_size, 64u);
    EXPECT_EQ(st.pool_blocks_in_use, 4u);
    EXPECT_EQ(st.used_bytes, 256u);
    EXPECT_EQ(st.pool_alloc_failures, 1u);
    EXPECT_EQ(st.endpoints.producers, 1u);
  }
  EXPECT_EQ(ReadStats(*pool).pool_blocks_in_use, 0u) << "detaching returned the blocks";
  EXPECT_EQ(ReadStats(*pool).pool_alloc_failures, 1u) << "counters survive the endpoint";

  // A child takes two blocks and dies without detaching.
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  if (child == 0) {
    auto user = BlockPool::Open(dir, "p");
    Block b;
    if (!user.ok() || user->TryAllocate(&b) != Status::kOk ||
        user->TryAllocate(&b) != Status::kOk) {
      _exit(1);
    }
    (void)!write(ready[1], "x", 1);
    pause();
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ObjectStats st = ReadStats(*pool);
  EXPECT_EQ(st.endpoints.dead, 1u);
  EXPECT_EQ(st.endpoints.producers, 0u);
  EXPECT_EQ(st.pool_blocks_in_use, 2u);
  EXPECT_EQ(ClearDeadEndpoints(*pool), 1u);
  st = ReadStats(*pool);
  EXPECT_EQ(st.endpoints.dead, 0u);
  EXPECT_EQ(st.pool_blocks_in_use, 0u);
  EXPECT_EQ(st.pool_reclaimed_blocks, 2u);
  close(ready[0]);
  close(ready[1]);
}

}  // namespace
}  // namespace shmd
