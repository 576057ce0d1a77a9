#include "shmd/dataplane/block_pool.h"

#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "common/test_dir.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using testing::TestDir;

class BlockPoolTest : public ::testing::Test {
 protected:
  BlockPool Attach() {
    auto pool = BlockPool::Open(dir_, "pool");
    EXPECT_TRUE(pool.ok()) << pool.error().message();
    return std::move(pool).value();
  }
  void Make(uint32_t size, uint32_t count) {
    auto pool = CreateBlockPool(dir_, "pool", {.block_size = size, .block_count = count});
    ASSERT_TRUE(pool.ok()) << pool.error().message();
    segment_ = std::make_shared<Segment>(std::move(pool).value());
  }
  TestDir dir_;
  std::shared_ptr<Segment> segment_;
};

TEST_F(BlockPoolTest, HandsOutEveryBlockOnceThenReportsFull) {
  Make(128, 16);
  BlockPool pool = Attach();
  std::set<uint32_t> seen;
  for (int i = 0; i < 16; ++i) {
    Block b;
    ASSERT_EQ(pool.TryAllocate(&b), Status::kOk);
    EXPECT_EQ(b.size, 128u);
    EXPECT_TRUE(seen.insert(b.index).second) << "block " << b.index << " handed out twice";
  }
  Block b;
  EXPECT_EQ(pool.TryAllocate(&b), Status::kFull);
  EXPECT_EQ(PoolBlocksInUse(*segment_), 16u);
  EXPECT_EQ(SumEndpointCounter(*segment_, layout::kCounterFull), 1u);
  for (uint32_t index : seen) ASSERT_EQ(pool.Free(index), Status::kOk);
  EXPECT_EQ(PoolBlocksInUse(*segment_), 0u);
}

TEST_F(BlockPoolTest, DoubleFreeAndForeignFreeAreRefused) {
  Make(64, 4);
  BlockPool a = Attach();
  BlockPool b = Attach();
  Block block;
  ASSERT_EQ(a.TryAllocate(&block), Status::kOk);
  EXPECT_EQ(b.Free(block.index), Status::kInvalidArgument) << "not b's block";
  EXPECT_EQ(a.Free(block.index), Status::kOk);
  EXPECT_EQ(a.Free(block.index), Status::kInvalidArgument) << "double free";
  EXPECT_EQ(a.Free(99), Status::kInvalidArgument) << "out of range";
}

TEST_F(BlockPoolTest, HandoffAndAcceptMoveOwnership) {
  Make(256, 4);
  BlockPool sender = Attach();
  BlockPool receiver = Attach();
  Block block;
  ASSERT_EQ(sender.TryAllocate(&block), Status::kOk);
  std::memcpy(block.data, "zero-copy", 9);
  layout::BlockDescriptor d;
  ASSERT_EQ(sender.Handoff(block.index, 9, &d), Status::kOk);
  EXPECT_EQ(sender.Handoff(block.index, 9, &d), Status::kInvalidArgument) << "already sent";
  std::span<const std::byte> bytes;
  ASSERT_EQ(receiver.Accept(d, &bytes), Status::kOk);
  EXPECT_EQ(std::memcmp(bytes.data(), "zero-copy", 9), 0);
  EXPECT_EQ(receiver.Accept(d, &bytes), Status::kCorrupted) << "a descriptor is accepted once";
  EXPECT_EQ(receiver.Accept({99, 1}, &bytes), Status::kCorrupted);
  EXPECT_EQ(receiver.Accept({block.index, 257}, &bytes), Status::kCorrupted);
  EXPECT_EQ(receiver.Free(block.index), Status::kOk);
}

TEST_F(BlockPoolTest, DetachReturnsHeldBlocks) {
  Make(64, 8);
  {
    BlockPool pool = Attach();
    Block b;
    for (int i = 0; i < 5; ++i) ASSERT_EQ(pool.TryAllocate(&b), Status::kOk);
    EXPECT_EQ(PoolBlocksInUse(*segment_), 5u);
  }
  EXPECT_EQ(PoolBlocksInUse(*segment_), 0u);
  BlockPool pool = Attach();
  Block b;
  for (int i = 0; i < 8; ++i) ASSERT_EQ(pool.TryAllocate(&b), Status::kOk);
}

TEST_F(BlockPoolTest, AllocateWaitsForAFree) {
  Make(64, 1);
  BlockPool a = Attach();
  BlockPool b = Attach();
  Block held;
  ASSERT_EQ(a.TryAllocate(&held), Status::kOk);
  Block other;
  EXPECT_EQ(b.AllocateFor(&other, 20ms), Status::kTimeout);
  std::thread freer([&] {
    std::this_thread::sleep_for(30ms);
    (void)a.Free(held.index);
  });
  EXPECT_EQ(b.AllocateFor(&other, 10s), Status::kOk);
  EXPECT_EQ(other.index, held.index);
  freer.join();
}

// Threads on separate mappings (as processes would be) churn the pool; each stamps the
// blocks it holds and checks the stamp before freeing: sharing a block would show.
TEST_F(BlockPoolTest, ConcurrentChurnNeverSharesABlock) {
  Make(64, 8);
  const uint64_t iterations = testing::Scaled(200000);
  std::atomic<bool> failed{false};
  auto worker = [&](uint64_t id) {
    BlockPool pool = Attach();
    std::vector<Block> held;
    for (uint64_t i = 0; i < iterations && !failed; ++i) {
      if (held.size() < 3 && i % 2 == 0) {
        Block b;
        if (pool.AllocateFor(&b, 10s) != Status::kOk) {
          failed = true;
          break;
        }
        const uint64_t stamp = (id << 48) | i;
        std::memcpy(b.data, &stamp, 8);
        std::memcpy(b.data + 56, &stamp, 8);
        held.push_back(b);
      } else if (!held.empty()) {
        Block b = held.back();
        held.pop_back();
        uint64_t x, y;
        std::memcpy(&x, b.data, 8);
        std::memcpy(&y, b.data + 56, 8);
        if (x != y || (x >> 48) != id) failed = true;
        if (pool.Free(b.index) != Status::kOk) failed = true;
      }
    }
    for (Block& b : held) (void)pool.Free(b.index);
  };
  std::thread t1(worker, 1), t2(worker, 2), t3(worker, 3);
  t1.join();
  t2.join();
  t3.join();
  EXPECT_FALSE(failed);
  EXPECT_EQ(PoolBlocksInUse(*segment_), 0u);
}

}  // namespace
}  // namespace shmd
