// The shared-memory ABI pinned with literals: if one of these changes, other processes
// built against the old layout would misread the object. Bump kLayoutVersion and update
// the literals together, on purpose.
#include "shmd/dataplane/layout.h"

#include <gtest/gtest.h>

namespace shmd::layout {
namespace {

TEST(LayoutTest, VersionAndConstants) {
  EXPECT_EQ(kLayoutVersion, 2u);
  EXPECT_EQ(kMagic, 0x6a626f2e646d6873ULL);
  EXPECT_EQ(kPad, 128u);
  EXPECT_EQ(kMaxEndpoints, 32u);
  EXPECT_EQ(kEndpointTableOffset, 4096u);
  EXPECT_EQ(kControlOffset, 8192u);
  EXPECT_EQ(kDataOffset, 12288u);
  EXPECT_EQ(static_cast<uint32_t>(ObjectKind::kSpscRing), 2u);
  EXPECT_EQ(static_cast<uint32_t>(ObjectKind::kBlockPool), 5u);
}

TEST(LayoutTest, HeaderPage) {
  EXPECT_EQ(sizeof(HeaderPage), 4096u);
  EXPECT_EQ(sizeof(ObjectHeader), 128u);
  EXPECT_EQ(offsetof(ObjectHeader, layout_version), 8u);
  EXPECT_EQ(offsetof(ObjectHeader, kind), 12u);
  EXPECT_EQ(offsetof(ObjectHeader, total_size), 16u);
  EXPECT_EQ(offsetof(ObjectHeader, data_size), 32u);
  EXPECT_EQ(offsetof(ObjectHeader, generation), 48u);
  EXPECT_EQ(offsetof(ObjectHeader, state), 56u);
  EXPECT_EQ(offsetof(HeaderPage, params), 128u);
  EXPECT_EQ(offsetof(HeaderPage, totals), 256u);
  EXPECT_EQ(offsetof(HeaderPage, roles), 384u);
  EXPECT_EQ(offsetof(ObjectParams, max_message), 8u);
  EXPECT_EQ(offsetof(ObjectParams, meta_offset), 32u);
  EXPECT_EQ(offsetof(ObjectTotals, consumer), 56u);
  EXPECT_EQ(offsetof(ObjectTotals, endpoints_cleared), 112u);
  EXPECT_EQ(offsetof(ObjectTotals, reclaimed_blocks), 120u);
}

TEST(LayoutTest, EndpointSlot) {
  EXPECT_EQ(sizeof(EndpointSlot), 128u);
  EXPECT_EQ(offsetof(EndpointSlot, pid), 8u);
  EXPECT_EQ(offsetof(EndpointSlot, start_time), 16u);
  EXPECT_EQ(offsetof(EndpointSlot, pid_namespace), 24u);
  EXPECT_EQ(offsetof(EndpointSlot, incarnation), 48u);
  EXPECT_EQ(offsetof(EndpointSlot, liveness), 52u);
  EXPECT_EQ(offsetof(EndpointSlot, cursor), 64u);
  EXPECT_EQ(offsetof(EndpointSlot, counters), 72u);
  EXPECT_EQ(sizeof(EndpointTable), 4096u);
}

// Added within version 1 (a flag word that was zero, a lock far beyond every object):
// code of the same version written before them ignores both.
TEST(LayoutTest, LivenessLock) {
  EXPECT_EQ(kLivenessLockHeld, 1u);
  EXPECT_EQ(kLivenessDiedUnreported, 2u);
  EXPECT_EQ(kLivenessLockBase, uint64_t{1} << 60);
  EXPECT_EQ(kLivenessTagShift, 8u);
  EXPECT_EQ(LivenessLockWord(5), 0x501u);
  EXPECT_EQ(LivenessLockWord(0x01000005), 0x501u) << "the incarnation's low 24 bits";
  EXPECT_TRUE(LivenessLockHeld(0x501, 0x01000005));
  EXPECT_FALSE(LivenessLockHeld(0x501, 6));
  EXPECT_EQ(static_cast<uint32_t>(EndpointState::kClaiming), 1u);
}

TEST(LayoutTest, SpscControlKeepsWritersApart) {
  EXPECT_EQ(sizeof(SpscControl), 512u);
  EXPECT_EQ(offsetof(SpscControl, producer_position), 0u);
  EXPECT_EQ(offsetof(SpscControl, consumer_position), 128u);
  EXPECT_EQ(offsetof(SpscControl, data_ready), 256u);
  EXPECT_EQ(offsetof(SpscControl, space_ready), 384u);
  EXPECT_EQ(sizeof(WaitWord), 128u);
}

TEST(LayoutTest, RecordFormat) {
  EXPECT_EQ(kRecordHeaderSize, 8u);
  EXPECT_EQ(RecordSize(1), 16u);
  EXPECT_EQ(RecordSize(8), 16u);
  EXPECT_EQ(RecordSize(9), 24u);
  EXPECT_EQ(PackRecordHeader(5, RecordType::kMessage), 0x0000000100000005ULL);
  EXPECT_EQ(PackRecordHeader(0, RecordType::kPadding), 0x0000000200000000ULL);
  EXPECT_EQ(MaxSpscMessage(4096), 2032u);
}

TEST(LayoutTest, OtherKinds) {
  EXPECT_EQ(sizeof(SlotHeader), 16u);
  EXPECT_EQ(SlotSizeFor(1), 24u);
  EXPECT_EQ(SlotSizeFor(64), 80u);
  EXPECT_EQ(sizeof(MpmcControl), 512u);
  EXPECT_EQ(sizeof(BroadcastControl), 384u);
  EXPECT_EQ(offsetof(BroadcastControl, data_ready), 128u);
  EXPECT_EQ(offsetof(BroadcastControl, space_ready), 256u);
  EXPECT_EQ(static_cast<uint32_t>(BroadcastPolicy::kLossy), 0u);
  EXPECT_EQ(static_cast<uint32_t>(BroadcastPolicy::kLossless), 1u);
  EXPECT_EQ(sizeof(PoolControl), 256u);
  EXPECT_EQ(sizeof(BlockMeta), 8u);
  EXPECT_EQ(sizeof(BlockDescriptor), 8u);
}

}  // namespace
}  // namespace shmd::layout
