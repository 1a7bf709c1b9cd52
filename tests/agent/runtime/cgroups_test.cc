// Unit tests of cgroup reading (agent/runtime/cgroups.h): which folder holds a process's
// cgroup on v1, v2 and hybrid hosts, and what its files say. No containers; files in a
// temporary folder stand for the cgroup file system.
#include "agent/runtime/cgroups.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "agent/runtime/mountinfo.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

constexpr char kHybridMounts[] =
    "25 24 0:22 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
    "26 24 0:23 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd\n"
    "27 24 0:24 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n"
    "28 24 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n";

constexpr char kV2Mounts[] =
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";

TEST(CgroupsTest, OnV2TheFolderIsTheMountPlusThePath) {
  CgroupDirs dirs = ChooseCgroupDirs("0::/drover/c1\n", ParseMountInfo(kV2Mounts));
  EXPECT_EQ(dirs.v2, "/sys/fs/cgroup/drover/c1");
  EXPECT_THAT(dirs.v1, IsEmpty());
}

TEST(CgroupsTest, OnHybridHostsEachV1ControllerHasItsOwnFolder) {
  CgroupDirs dirs = ChooseCgroupDirs(
      "5:cpu,cpuacct:/drover/c1\n4:memory:/drover/c1\n1:name=systemd:/system.slice/a\n"
      "0::/drover/c1\n",
      ParseMountInfo(kHybridMounts));
  EXPECT_THAT(dirs.v1, ElementsAre(Pair("cpu", "/sys/fs/cgroup/cpu,cpuacct/drover/c1"),
                                   Pair("cpuacct", "/sys/fs/cgroup/cpu,cpuacct/drover/c1"),
                                   Pair("memory", "/sys/fs/cgroup/memory/drover/c1"),
                                   Pair("name=systemd", "/sys/fs/cgroup/systemd/system.slice/a")));
  EXPECT_EQ(dirs.v2, "/sys/fs/cgroup/unified/drover/c1");
}

TEST(CgroupsTest, NeverChoosesARootCgroupWhoseCountersAreTheWholeMachines) {
  // An exited, unreaped PID 1 has left its cgroups: /proc says "/".
  CgroupDirs v2 = ChooseCgroupDirs("0::/\n", ParseMountInfo(kV2Mounts));
  EXPECT_EQ(v2.v2, "");
  EXPECT_THAT(v2.v1, IsEmpty());
  CgroupDirs hybrid =
      ChooseCgroupDirs("4:memory:/\n0::/\n", ParseMountInfo(kHybridMounts));
  EXPECT_EQ(hybrid.v2, "");
  EXPECT_THAT(hybrid.v1, IsEmpty());
}

TEST(CgroupsTest, AColonInThePathStaysInThePath) {
  CgroupDirs dirs = ChooseCgroupDirs("0::/drover/a:b\n", ParseMountInfo(kV2Mounts));
  EXPECT_EQ(dirs.v2, "/sys/fs/cgroup/drover/a:b");
}

TEST(CgroupsTest, AControllerWithoutAMountedHierarchyHasNoFolder) {
  CgroupDirs dirs = ChooseCgroupDirs("7:pids:/drover/c1\n", ParseMountInfo(kHybridMounts));
  EXPECT_THAT(dirs.v1, IsEmpty());
  EXPECT_EQ(dirs.v2, "");
}

TEST(CgroupsTest, AnEscapedMountPointIsDecodedAndTheFirstCgroup2MountWins) {
  CgroupDirs dirs = ChooseCgroupDirs(
      "0::/c1\n",
      ParseMountInfo("30 23 0:26 / /run/cg\\040two rw - cgroup2 cgroup2 rw\n"
                     "31 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"));
  EXPECT_EQ(dirs.v2, "/run/cg two/c1");
}

TEST(CgroupsTest, SkipsLinesOfOtherShapes) {
  CgroupDirs dirs =
      ChooseCgroupDirs("garbage\n4:memory\n\n0::/c1\n", ParseMountInfo(kV2Mounts));
  EXPECT_EQ(dirs.v2, "/sys/fs/cgroup/c1");
  EXPECT_THAT(dirs.v1, IsEmpty());
}

TEST(CgroupsTest, CountsOomKillsOfV1AndV2Files) {
  EXPECT_TRUE(CountsOomKill("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"));
  EXPECT_TRUE(CountsOomKill("oom_kill_disable 0\nunder_oom 0\noom_kill 4\n"));
  EXPECT_FALSE(CountsOomKill("oom_kill_disable 1\nunder_oom 0\noom_kill 0\n"));
  EXPECT_FALSE(CountsOomKill("oom_kill -1\n"));
  EXPECT_FALSE(CountsOomKill("oom_kill many\n"));
  EXPECT_FALSE(CountsOomKill(""));
  EXPECT_FALSE(ReadOomKilled(""));
  EXPECT_FALSE(ReadOomKilled("/nonexistent/memory.events"));
}

class CgroupFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char name[] = "/tmp/cgroups_test_XXXXXX";
    ASSERT_NE(mkdtemp(name), nullptr);
    dir_ = name;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
  }
  std::string dir_;
};

TEST_F(CgroupFilesTest, ReadsV2UsageAndTheOomCounter) {
  Write("memory.current", "4096\n");
  Write("memory.peak", "8192\n");
  Write("cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
  Write("memory.events", "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n");
  CgroupDirs dirs;
  dirs.v2 = dir_;
  ContainerStats stats = ReadCgroupStats(dirs);
  EXPECT_EQ(stats.memory_bytes, 4096);
  EXPECT_EQ(stats.memory_peak_bytes, 8192);
  EXPECT_EQ(stats.cpu_ns, 1500000);
  EXPECT_TRUE(ReadOomKilled(dir_ + "/memory.events"));
}

TEST_F(CgroupFilesTest, ReadsV1UsageBeforeV2) {
  Write("memory.usage_in_bytes", "100\n");
  Write("memory.max_usage_in_bytes", "200\n");
  Write("cpuacct.usage", "300\n");
  CgroupDirs dirs;
  dirs.v1 = {{"memory", dir_}, {"cpuacct", dir_}};
  dirs.v2 = "/nonexistent";
  ContainerStats stats = ReadCgroupStats(dirs);
  EXPECT_EQ(stats.memory_bytes, 100);
  EXPECT_EQ(stats.memory_peak_bytes, 200);
  EXPECT_EQ(stats.cpu_ns, 300);
}

TEST_F(CgroupFilesTest, MissingOrUnreadableFilesReadAsMinusOne) {
  Write("memory.current", "not a number\n");
  CgroupDirs dirs;
  dirs.v2 = dir_;
  ContainerStats stats = ReadCgroupStats(dirs);
  EXPECT_EQ(stats.memory_bytes, -1);
  EXPECT_EQ(stats.memory_peak_bytes, -1);  // no memory.peak before Linux 5.19
  EXPECT_EQ(stats.cpu_ns, -1);
}

TEST_F(CgroupFilesTest, TheFinalUsageIsThePeakAndTheCpuTime) {
  Write("memory.usage_in_bytes", "100\n");
  Write("memory.max_usage_in_bytes", "209715200\n");
  Write("cpuacct.usage", "300\n");
  CgroupDirs dirs;
  dirs.v1 = {{"memory", dir_}, {"cpuacct", dir_}};
  ContainerStats usage = ReadFinalUsage(dirs);
  EXPECT_EQ(usage.memory_peak_bytes, 209715200);
  EXPECT_EQ(usage.cpu_ns, 300);
  EXPECT_EQ(usage.memory_bytes, -1);  // what is charged after the end means nothing
}

TEST_F(CgroupFilesTest, AFinalUsageFileMissingOrGarbageGivesNoValueRatherThanAWrongOne) {
  Write("memory.max_usage_in_bytes", "12abc\n");
  Write("cpuacct.usage", "-5\n");
  CgroupDirs dirs;
  dirs.v1 = {{"memory", dir_}, {"cpuacct", dir_}};
  ContainerStats usage = ReadFinalUsage(dirs);
  EXPECT_EQ(usage.memory_peak_bytes, -1);
  EXPECT_EQ(usage.cpu_ns, -1);
  // No folder for a controller (the CPU controller at the root, a hybrid host): unknown,
  // not the running container's default 0.
  dirs.v1 = {{"memory", dir_ + "/gone"}};
  usage = ReadFinalUsage(dirs);
  EXPECT_EQ(usage.memory_peak_bytes, -1);
  EXPECT_EQ(usage.cpu_ns, -1);
  usage = ReadFinalUsage(CgroupDirs());
  EXPECT_EQ(usage.memory_peak_bytes, -1);
  EXPECT_EQ(usage.cpu_ns, -1);
  // v2: cpu.stat with a usage that is not a number, or would overflow.
  Write("cpu.stat", "usage_usec 99999999999999999\n");
  Write("memory.peak", "\n");
  dirs = CgroupDirs();
  dirs.v2 = dir_;
  usage = ReadFinalUsage(dirs);
  EXPECT_EQ(usage.memory_peak_bytes, -1);
  EXPECT_EQ(usage.cpu_ns, -1);
}

TEST(CgroupDirsTest, FoldersKeptInTheBundleReadBackAndDamagedLinesAreSkipped) {
  CgroupDirs dirs;
  dirs.v1 = {{"memory", "/sys/fs/cgroup/memory/a/drover-x"},
             {"cpuacct", "/sys/fs/cgroup/cpu,cpuacct/a/drover-x"}};
  dirs.v2 = "/sys/fs/cgroup/unified/a/drover-x";
  CgroupDirs back = ParseCgroupDirs(FormatCgroupDirs(dirs));
  EXPECT_EQ(back.v1, dirs.v1);
  EXPECT_EQ(back.v2, dirs.v2);
  CgroupDirs damaged = ParseCgroupDirs(
      "memory relative/path\ncpuacct /sys/fs/cgroup/../../etc\nv2\n\ngarbage\n"
      "pids /sys/fs/cgroup/pids/ok\n");
  EXPECT_EQ(damaged.v1, (std::map<std::string, std::string>{{"pids", "/sys/fs/cgroup/pids/ok"}}));
  EXPECT_EQ(damaged.v2, "");
}

}  // namespace
}  // namespace drover::agent
