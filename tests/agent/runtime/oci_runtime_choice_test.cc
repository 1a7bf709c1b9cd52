// Which OCI runtime `drover-agent --runc auto` runs (ChooseOciRuntime, pure over what the
// agent probed): crun where it is installed, new enough and able to apply a job's limits on
// the node's cgroups, else runc with the reason; and crun on a hybrid layout whose cgroup2
// holds a controller runs with that hierarchy hidden. No root, nothing runs.
#include <string>
#include <vector>

#include "agent/runtime/oci_runtime_choice.h"
#include "agent/runtime/oci_runtime_version.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kCrun18[] =
    "crun version 1.8.1\ncommit: f8a096be060b22ccd3d5f3ebe44108517fbf6c30\nrundir: /run/crun\n"
    "spec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL\n";

const std::vector<std::string> kAllV1 = {"cpuset", "cpu",     "cpuacct", "blkio",
                                         "memory", "devices", "freezer", "pids"};

// This machine: v1 controllers, and a cgroup2 at /sys/fs/cgroup/unified holding hugetlb.
OciRuntimeProbe HybridWithHugetlb() {
  return {.crun_path = "/usr/bin/crun",
          .crun_version = kCrun18,
          .layout = {.kind = CgroupLayout::Kind::kHybrid,
                     .v1_controllers = kAllV1,
                     .cgroup2_controllers = {"hugetlb"}}};
}

TEST(ChooseOciRuntimeTest, CrunOnACgroupV2NodeRunsAsItIs) {
  OciRuntimeProbe probe = HybridWithHugetlb();
  probe.layout = {.kind = CgroupLayout::Kind::kV2,
                  .cgroup2_controllers = {"cpuset", "cpu", "io", "memory", "hugetlb", "pids"}};
  OciRuntimeChoice choice = ChooseOciRuntime(probe);
  EXPECT_EQ(choice.path, "/usr/bin/crun");
  EXPECT_FALSE(choice.hide_cgroup2);
  EXPECT_EQ(choice.reason, "crun 1.8.1 installed, cgroup v2");
}

TEST(ChooseOciRuntimeTest, CrunOnACgroupV1NodeRunsAsItIs) {
  OciRuntimeProbe probe = HybridWithHugetlb();
  probe.layout = {.kind = CgroupLayout::Kind::kV1, .v1_controllers = kAllV1};
  OciRuntimeChoice choice = ChooseOciRuntime(probe);
  EXPECT_EQ(choice.path, "/usr/bin/crun");
  EXPECT_FALSE(choice.hide_cgroup2);
  EXPECT_EQ(choice.reason, "crun 1.8.1 installed, cgroup v1");
}

TEST(ChooseOciRuntimeTest, CrunOnAHybridNodeWhoseCgroup2HoldsAControllerRunsWithCgroup2Hidden) {
  OciRuntimeChoice choice = ChooseOciRuntime(HybridWithHugetlb());
  EXPECT_EQ(choice.path, "/usr/bin/crun");
  EXPECT_TRUE(choice.hide_cgroup2);
  EXPECT_THAT(choice.reason, HasSubstr("hybrid cgroups: cgroup2 (hugetlb, no job limit) hidden"));
  EXPECT_TRUE(CrunNeedsCgroup2Hidden(HybridWithHugetlb().layout));
}

TEST(ChooseOciRuntimeTest, CrunOnAHybridNodeWithAnEmptyCgroup2NeedsNothingHidden) {
  OciRuntimeProbe probe = HybridWithHugetlb();
  probe.layout.cgroup2_controllers.clear();
  OciRuntimeChoice choice = ChooseOciRuntime(probe);
  EXPECT_EQ(choice.path, "/usr/bin/crun");
  EXPECT_FALSE(choice.hide_cgroup2);
  EXPECT_FALSE(CrunNeedsCgroup2Hidden(probe.layout));
}

TEST(ChooseOciRuntimeTest, WithoutCrunItIsRuncSayingSo) {
  OciRuntimeProbe probe = HybridWithHugetlb();
  probe.crun_path.clear();
  probe.crun_version.clear();
  OciRuntimeChoice choice = ChooseOciRuntime(probe);
  EXPECT_EQ(choice.path, "runc");
  EXPECT_FALSE(choice.hide_cgroup2);
  EXPECT_EQ(choice.reason, "crun is not installed");
}

TEST(ChooseOciRuntimeTest, ACrunThatDoesNotRunMeansRunc) {
  OciRuntimeProbe probe = HybridWithHugetlb();
  probe.crun_version.clear();
  OciRuntimeChoice choice = ChooseOciRuntime(probe);
  EXPECT_EQ(choice.path, "runc");
  EXPECT_EQ(choice.reason, "crun '/usr/bin/crun' does not run");
}

TEST(ChooseOciRuntimeTest, ACrunBelowItsFloorMeansRuncNamingTheFix) {
  OciRuntimeProbe probe = HybridWithHugetlb();
  probe.crun_version = "crun version 1.4.3\ncommit: 1\n";
  OciRuntimeChoice choice = ChooseOciRuntime(probe);
  EXPECT_EQ(choice.path, "runc");
  EXPECT_THAT(choice.reason, HasSubstr("CVE-2022-27650"));
}

TEST(ChooseOciRuntimeTest, AV1NodeLackingAControllerOfTheJobsLimitsMeansRuncNamingIt) {
  for (CgroupLayout::Kind kind : {CgroupLayout::Kind::kV1, CgroupLayout::Kind::kHybrid}) {
    OciRuntimeProbe probe = HybridWithHugetlb();
    probe.layout.kind = kind;
    // pids only in cgroup2: hidden from crun, its limit would be lost.
    probe.layout.v1_controllers = {"cpu", "cpuacct", "memory", "devices"};
    probe.layout.cgroup2_controllers = {"pids"};
    OciRuntimeChoice choice = ChooseOciRuntime(probe);
    EXPECT_EQ(choice.path, "runc");
    EXPECT_EQ(choice.reason,
              "cgroup v1 hierarchies lack pids, which crun needs there to apply a job's limits");
  }
}

TEST(ChooseOciRuntimeTest, AnUnknownCgroupLayoutMeansRunc) {
  OciRuntimeProbe probe = HybridWithHugetlb();
  probe.layout = {};
  OciRuntimeChoice choice = ChooseOciRuntime(probe);
  EXPECT_EQ(choice.path, "runc");
  EXPECT_THAT(choice.reason, HasSubstr("cgroup layout is unknown"));
}

TEST(ChooseOciRuntimeTest, ContainersRuncMadeKeepRuncSoThatARestartedAgentTakesThemOver) {
  OciRuntimeProbe probe = HybridWithHugetlb();
  probe.runc_containers = true;
  OciRuntimeChoice choice = ChooseOciRuntime(probe);
  EXPECT_EQ(choice.path, "runc");
  EXPECT_THAT(choice.reason, HasSubstr("containers runc made still run on this node"));
}

TEST(ChooseOciRuntimeTest, TheJobsLimitsUseMemoryCpuPidsAndDevices) {
  EXPECT_THAT(JobCgroupControllers(), ElementsAre("memory", "cpu", "pids", "devices"));
}

TEST(V1ControllersFromProcCgroupsTest, ControllersOfAHierarchyThatAreEnabled) {
  EXPECT_THAT(V1ControllersFromProcCgroups("#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
                                           "cpuset\t3\t7\t1\n"
                                           "cpu\t1\t7\t1\n"
                                           "memory\t4\t868\t1\n"
                                           "net_cls\t0\t7\t1\n"
                                           "hugetlb\t0\t7\t1\n"
                                           "pids\t8\t7\t1\n"
                                           "rdma\t9\t1\t0\n"
                                           "garbage\n"),
              ElementsAre("cpuset", "cpu", "memory", "pids"));
  EXPECT_TRUE(V1ControllersFromProcCgroups("").empty());
}

TEST(OciRuntimeDescriptionTest, NameAndVersionFromEitherRuntime) {
  EXPECT_EQ(OciRuntimeDescription(kCrun18), "crun 1.8.1");
  EXPECT_EQ(OciRuntimeDescription("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\n"),
            "runc 1.1.5+ds1");
  EXPECT_EQ(OciRuntimeDescription("youki 0.3\n"), "youki 0.3");
}

}  // namespace
}  // namespace drover::agent
