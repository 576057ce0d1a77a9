#include "shmd/dataplane/segment.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "common/test_dir.h"
#include "shmd/dataplane/block_pool.h"
#include "shmd/dataplane/region.h"
#include "shmd/dataplane/spsc_ring.h"

namespace shmd {
namespace {

using testing::TestDir;

TEST(NameTest, AcceptsTheDocumentedAlphabet) {
  EXPECT_TRUE(ValidateName("orders.v2_eu-1").ok());
  EXPECT_TRUE(ValidateName(std::string(200, 'a')).ok());
}

TEST(NameTest, RejectsBadNamesWithAReason) {
  for (std::string bad :
       std::vector<std::string>{"", ".", "..", "a/b", "a b", "ä", std::string(201, 'a'), "x\n"}) {
    VoidResult r = ValidateName(bad);
    ASSERT_FALSE(r.ok()) << "accepted \"" << bad << "\"";
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find("object name"), std::string::npos) << r.error().message();
  }
}

TEST(SegmentTest, CreateOpenRemove) {
  TestDir dir;
  auto created = CreateRegion(dir, "buffer", 10000, {.mode = 0640});
  ASSERT_TRUE(created.ok()) << created.error().message();
  EXPECT_EQ(created->data_size(), 10000u);
  EXPECT_EQ(created->path(), ObjectPath(dir, "buffer"));
  struct stat st {};
  ASSERT_EQ(stat(created->path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u) << "the mode asked for, whatever the umask";
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), layout::kDataOffset + 10000);
  EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, layout::kDataOffset + 10000)
      << "memory must be reserved at creation";

  std::memcpy(created->data(), "hello", 5);
  auto opened = Segment::Open(dir, "buffer", layout::ObjectKind::kRegion);
  ASSERT_TRUE(opened.ok()) << opened.error().message();
  EXPECT_EQ(std::memcmp(opened->data(), "hello", 5), 0);

  auto again = CreateRegion(dir, "buffer", 10);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);

  ASSERT_TRUE(Segment::Remove(dir, "buffer").ok());
  EXPECT_EQ(opened->header().state.load(), static_cast<uint32_t>(layout::ObjectState::kDeleted));
  auto gone = Segment::Open(dir, "buffer");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(Segment::Remove(dir, "buffer").error().code(), ErrorCode::kNotFound);
}

TEST(SegmentTest, DefaultModeIsOwnerOnly) {
  TestDir dir;
  auto created = CreateRegion(dir, "private", 64);
  ASSERT_TRUE(created.ok());
  struct stat st {};
  ASSERT_EQ(stat(created->path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(SegmentTest, RejectsBadSpecs) {
  TestDir dir;
  auto not_pow2 = CreateSpscRing(dir, "r", {.capacity = 5000});
  ASSERT_FALSE(not_pow2.ok());
  EXPECT_EQ(not_pow2.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(not_pow2.error().message().find("power of two"), std::string::npos);

  auto too_small = CreateSpscRing(dir, "r", {.capacity = 1024});
  ASSERT_FALSE(too_small.ok());

  auto big_message = CreateSpscRing(dir, "r", {.capacity = 4096, .max_message = 4000});
  ASSERT_FALSE(big_message.ok());
  EXPECT_NE(big_message.error().message().find("raise the capacity"), std::string::npos)
      << big_message.error().message();

  auto zero_region = CreateRegion(dir, "z", 0);
  ASSERT_FALSE(zero_region.ok());
  auto bad_block = CreateBlockPool(dir, "p", {.block_size = 100, .block_count = 4});
  ASSERT_FALSE(bad_block.ok());
  EXPECT_NE(bad_block.error().message().find("multiple of 64"), std::string::npos);
  auto bad_name = CreateRegion(dir, "../etc", 64);
  ASSERT_FALSE(bad_name.ok());
  auto bad_mode = CreateRegion(dir, "m", 64, {.mode = 0044});
  ASSERT_FALSE(bad_mode.ok());
  EXPECT_EQ(dir.CountFiles(), 0) << "a failed create leaves no file behind";
}

TEST(SegmentTest, WrongKindIsNamed) {
  TestDir dir;
  ASSERT_TRUE(CreateRegion(dir, "region", 64).ok());
  auto r = Segment::Open(dir, "region", layout::ObjectKind::kSpscRing);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kWrongKind);
  EXPECT_NE(r.error().message().find("is a region, not an spsc ring"), std::string::npos)
      << r.error().message();
}

// Rewrites bytes of an object's file, as a buggy or hostile peer (or a bad disk) could.
void Poke(const std::string& path, uint64_t offset, const void* bytes, size_t n) {
  int fd = open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, bytes, n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
  close(fd);
}

TEST(SegmentTest, VersionMismatchNamesBothVersions) {
  TestDir dir;
  auto ring = CreateSpscRing(dir, "v", {.capacity = 4096});
  ASSERT_TRUE(ring.ok());
  uint32_t future = 7;
  Poke(ring->path(), offsetof(layout::ObjectHeader, layout_version), &future, 4);
  auto r = Segment::Open(dir, "v");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kVersionMismatch);
  EXPECT_NE(r.error().message().find("layout version 7"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("layout version " + std::to_string(layout::kLayoutVersion)),
            std::string::npos)
      << r.error().message();
}

TEST(SegmentTest, UnpublishedObjectIsNotReady) {
  TestDir dir;
  auto ring = CreateSpscRing(dir, "half", {.capacity = 4096});
  ASSERT_TRUE(ring.ok());
  uint32_t zero = 0;
  Poke(ring->path(), offsetof(layout::ObjectHeader, layout_version), &zero, 4);
  auto r = Segment::Open(dir, "half");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotReady);
}

TEST(SegmentTest, CorruptionIsRejected) {
  TestDir dir;
  ASSERT_TRUE(CreateSpscRing(dir, "c", {.capacity = 4096}).ok());
  const std::string path = ObjectPath(dir, "c");
  {
    uint64_t bad_capacity = 4097;
    Poke(path, 128 + offsetof(layout::ObjectParams, capacity), &bad_capacity, 8);
    auto r = Segment::Open(dir, "c");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kCorrupted);
    EXPECT_NE(r.error().message().find("geometry"), std::string::npos) << r.error().message();
  }
  {
    uint64_t bad_magic = 42;
    Poke(path, 0, &bad_magic, 8);
    auto r = Segment::Open(dir, "c");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kCorrupted);
    EXPECT_NE(r.error().message().find("not a shmd object"), std::string::npos);
  }
}

TEST(SegmentTest, TruncatedFileIsRejected) {
  TestDir dir;
  ASSERT_TRUE(CreateSpscRing(dir, "t", {.capacity = 8192}).ok());
  const std::string path = ObjectPath(dir, "t");
  ASSERT_EQ(truncate(path.c_str(), layout::kDataOffset + 4096), 0);
  auto r = Segment::Open(dir, "t");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCorrupted);
  EXPECT_NE(r.error().message().find("truncated"), std::string::npos) << r.error().message();
  ASSERT_EQ(truncate(path.c_str(), 100), 0);
  auto tiny = Segment::Open(dir, "t");
  ASSERT_FALSE(tiny.ok());
  EXPECT_NE(tiny.error().message().find("truncated"), std::string::npos);
}

TEST(SegmentTest, FromFdMapsTheSameObject) {
  TestDir dir;
  auto ring = CreateSpscRing(dir, "fd", {.capacity = 4096});
  ASSERT_TRUE(ring.ok());
  int fd = open(ring->path().c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  auto mapped = Segment::FromFd(fd, layout::ObjectKind::kSpscRing, "fd");
  close(fd);
  ASSERT_TRUE(mapped.ok()) << mapped.error().message();
  EXPECT_EQ(mapped->params().capacity, 4096u);
}

TEST(SegmentTest, RegionResizeIsSeenByOtherMappings) {
  TestDir dir;
  auto region = CreateRegion(dir, "grow", 4096);
  ASSERT_TRUE(region.ok());
  auto other = Segment::Open(dir, "grow");
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(region->Resize(1 << 20).ok());
  EXPECT_EQ(region->data_size(), 1u << 20);
  region->data()[(1 << 20) - 1] = 7;
  ASSERT_TRUE(other->Remap().ok());
  EXPECT_EQ(other->data_size(), 1u << 20);
  EXPECT_EQ(other->data()[(1 << 20) - 1], 7);
  auto ring = CreateSpscRing(dir, "ring", {.capacity = 4096});
  ASSERT_TRUE(ring.ok());
  EXPECT_FALSE(ring->Resize(8192).ok()) << "only regions resize";
}

// A small tmpfs stands in for a full /dev/shm. Mounting needs CAP_SYS_ADMIN (root, as in
// CI); elsewhere the test says why it could not run.
class FullFilesystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/shmd-fullfs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    mount_point_ = tmpl;
    if (mount("tmpfs", mount_point_.c_str(), "tmpfs", 0, "size=256k") != 0) {
      rmdir(mount_point_.c_str());
      GTEST_SKIP() << "cannot mount a small tmpfs here (" << std::strerror(errno)
                   << "); run as root to test a full filesystem";
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) umount(mount_point_.c_str());
    rmdir(mount_point_.c_str());
  }
  std::string mount_point_;
  bool mounted_ = false;
};

TEST_F(FullFilesystemTest, CreateFailsCleanlyInsteadOfSigbusLater) {
  ShmDir dir{mount_point_, "full"};
  auto small = CreateSpscRing(dir, "fits", {.capacity = 65536});
  ASSERT_TRUE(small.ok()) << small.error().message();
  auto big = CreateSpscRing(dir, "too-big", {.capacity = 1 << 20});
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), ErrorCode::kNoSpace);
  EXPECT_NE(big.error().message().find("bytes free in " + mount_point_), std::string::npos)
      << big.error().message();
  EXPECT_NE(access(ObjectPath(dir, "too-big").c_str(), F_OK), 0) << "no half-made file left";
  // The object that fit is fully usable: every page is backed.
  auto producer = SpscProducer::Attach(std::make_shared<Segment>(std::move(small).value()));
  ASSERT_TRUE(producer.ok());
  std::vector<std::byte> message(1000);
  for (int i = 0; i < 60; ++i) ASSERT_EQ(producer->TrySend(message), Status::kOk);
}

}  // namespace
}  // namespace shmd
