// Unit tests of the mountinfo reader (agent/runtime/mountinfo.h): texts as the kernel
// writes them, and mount points made to look like more than one field or line.
#include "agent/runtime/mountinfo.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<std::string> MountPoints(const std::vector<MountEntry>& mounts) {
  std::vector<std::string> points;
  for (const MountEntry& mount : mounts) points.push_back(mount.mount_point);
  return points;
}

TEST(MountInfoTest, ReadsMountPointTypeAndSuperOptionsWithAndWithoutOptionalFields) {
  std::vector<MountEntry> mounts = ParseMountInfo(
      "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
      "rw,nsdelegate\n"
      "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n"
      "100 30 0:50 / /work/mnt rw,nosuid,nodev,relatime - fuse.rclone store: rw,user_id=0\n");
  ASSERT_EQ(mounts.size(), 3u);
  EXPECT_EQ(mounts[0].mount_point, "/sys/fs/cgroup");
  EXPECT_EQ(mounts[0].fs_type, "cgroup2");
  EXPECT_EQ(mounts[0].super_options, "rw,nsdelegate");
  EXPECT_EQ(mounts[1].mount_point, "/mnt2");
  EXPECT_EQ(mounts[1].fs_type, "ext3");
  EXPECT_EQ(mounts[1].super_options, "rw,errors=continue");
  EXPECT_EQ(mounts[2].mount_point, "/work/mnt");
  EXPECT_EQ(mounts[2].fs_type, "fuse.rclone");
}

TEST(MountInfoTest, EscapedSpaceNewlineAndSeparatorStayInsideTheMountPoint) {
  // A job can name a folder "a b\n- c": the kernel writes it escaped, so it is still one
  // field of one line, and the ` - ` inside it is not the separator.
  std::vector<MountEntry> mounts = ParseMountInfo(
      "40 30 0:51 / /jobs/a\\040b\\012-\\040c rw - fuse.rclone store: rw\n");
  ASSERT_EQ(mounts.size(), 1u);
  EXPECT_EQ(mounts[0].mount_point, "/jobs/a b\n- c");
  EXPECT_EQ(mounts[0].fs_type, "fuse.rclone");
  EXPECT_EQ(mounts[0].super_options, "rw");
}

TEST(MountInfoTest, UnescapesOnceAndKeepsBackslashesThatAreNoEscape) {
  EXPECT_EQ(UnescapeMountField("/a\\134b"), "/a\\b");
  // An escaped backslash followed by digits: the digits are text, not a second escape.
  EXPECT_EQ(UnescapeMountField("/a\\134040"), "/a\\040");
  EXPECT_EQ(UnescapeMountField("/a\\011b"), "/a\tb");
  EXPECT_EQ(UnescapeMountField("/a\\8b9c"), "/a\\8b9c");
  EXPECT_EQ(UnescapeMountField("/a\\04"), "/a\\04");
  EXPECT_EQ(UnescapeMountField("/a\\"), "/a\\");
  EXPECT_EQ(UnescapeMountField(""), "");
}

TEST(MountInfoTest, SkipsLinesThatAreNotMountInfo) {
  std::vector<MountEntry> mounts = ParseMountInfo(
      "garbage\n"
      "1 2 3 4\n"
      "40 30 0:51 / /no-separator rw fuse.rclone store: rw\n"
      "40 30 0:51 / /too-short rw - fuse.rclone store:\n"
      "\n"
      "41 30 0:52 / /good rw - tmpfs tmpfs rw\n");
  EXPECT_THAT(MountPoints(mounts), ElementsAre("/good"));
  EXPECT_THAT(ParseMountInfo(""), IsEmpty());
}

TEST(MountInfoTest, AtOrUnderGoesByWholeFolderNames) {
  EXPECT_TRUE(IsAtOrUnder("/w/b", "/w/b"));
  EXPECT_TRUE(IsAtOrUnder("/w/b/c d", "/w/b"));
  EXPECT_FALSE(IsAtOrUnder("/w/bc", "/w/b"));
  EXPECT_FALSE(IsAtOrUnder("/w", "/w/b"));
  EXPECT_FALSE(IsAtOrUnder("/elsewhere/w/b", "/w/b"));
}

TEST(MountInfoTest, ReadsThisProcesssTable) {
  // Every Linux process has a root mount.
  EXPECT_THAT(MountPoints(ReadMountInfo()), ::testing::Contains("/"));
}

}  // namespace
}  // namespace drover::agent
