// The fixture of RuncRuntime's tests with the real runc (run as root): a runtime on a scratch
// folder, bundles for host and image containers running drover-init, and the checks that
// nothing is left behind. The tests: runc_runtime_test.cc (running: ranks, exits, limits,
// OOM, stats, confinement, images, namespaces, devices) and runc_runtime_lifecycle_test.cc
// (signals, delete, list, inspect, refusals, recovery from another agent process).
#ifndef DROVER_TESTS_AGENT_RUNTIME_RUNC_RUNTIME_FIXTURE_H_
#define DROVER_TESTS_AGENT_RUNTIME_RUNC_RUNTIME_FIXTURE_H_

#include "agent/runtime/runc_runtime.h"

#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/launcher/init_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/runtime/test_util.h"

namespace drover::agent {

// A rank's .exit file: its status, then when it ended (drover-init's wall clock).
inline ::testing::Matcher<std::string> RankExitLine(const std::string& status) {
  return ::testing::MatchesRegex(status + " end_time_ns=[0-9]+\n");
}

namespace fs = std::filesystem;
using ::drover::testing::PollUntil;
using ::drover::testing::ReadFileOrEmpty;
using ::drover::testing::ScratchDir;
using ::drover::testing::WriteFileOrDie;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Mount points in this process's mount namespace at or under `dir`.
inline std::vector<std::string> MountsUnder(const std::string& dir) {
  std::vector<std::string> found;
  for (absl::string_view line :
       absl::StrSplit(ReadFileOrEmpty("/proc/self/mountinfo"), '\n', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ');
    if (fields.size() < 5) continue;
    const std::string& point = fields[4];
    if (point == dir || absl::StartsWith(point, dir + "/")) found.push_back(point);
  }
  return found;
}

// The host folders of every cgroup (v1 controllers and v2) process `pid` is in, for those
// ending in `leaf` (the container's own, not a shared parent).
inline std::vector<std::string> CgroupDirsOf(pid_t pid, const std::string& leaf) {
  struct Hierarchy {
    std::string mount_point;
    std::vector<std::string> options;
    bool v2;
  };
  std::vector<Hierarchy> hierarchies;
  for (absl::string_view line :
       absl::StrSplit(ReadFileOrEmpty("/proc/self/mountinfo"), '\n', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ');
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (dash == fields.end() || fields.end() - dash < 4) continue;
    if (dash[1] == "cgroup" || dash[1] == "cgroup2") {
      hierarchies.push_back({fields[4], absl::StrSplit(dash[3], ','), dash[1] == "cgroup2"});
    }
  }
  std::vector<std::string> dirs;
  for (absl::string_view line : absl::StrSplit(
           ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/cgroup")), '\n', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3 || !absl::EndsWith(parts[2], "/" + leaf)) continue;
    for (const Hierarchy& h : hierarchies) {
      bool match = parts[1].empty() ? h.v2 : !h.v2;
      if (!parts[1].empty()) {
        for (absl::string_view controller : absl::StrSplit(parts[1], ',')) {
          if (std::find(h.options.begin(), h.options.end(), controller) == h.options.end()) {
            match = false;
          }
        }
      }
      if (match) dirs.push_back(h.mount_point + parts[2]);
    }
  }
  return dirs;
}

// The runtime the tests run: `$DROVER_TEST_RUNC` (for example /usr/bin/crun) if set, else
// /usr/sbin/runc (tests/testing/subprocess.h, TestOciRuntime, for the e2e tests).
inline std::string OciRuntimeUnderTest() {
  const char* runtime = getenv("DROVER_TEST_RUNC");
  return runtime != nullptr && *runtime != '\0' ? runtime : "/usr/sbin/runc";
}

class RuncRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "runc containers need root";
    RuncOptions options;
    options.runc_path = OciRuntimeUnderTest();
    options.root_dir = scratch_.path() + "/runc";
    options.init_binary = DROVER_INIT_PATH;
    absl::StatusOr<std::unique_ptr<RuncRuntime>> runtime = RuncRuntime::Open(options);
    if (!runtime.ok() && absl::StrContains(runtime.status().message(), "does not run")) {
      GTEST_SKIP() << runtime.status();
    }
    ASSERT_TRUE(runtime.ok()) << runtime.status();
    runtime_ = std::move(*runtime);
  }

  // Everything this test made goes, even when it failed half-way: its containers by id,
  // whatever runc still lists in this test's root, then any mount left under the scratch
  // folder (deepest first) before the folder is removed.
  void TearDown() override {
    if (runtime_ != nullptr) {
      for (const std::string& id : ids_) {
        absl::Status deleted = runtime_->Delete(id);
        EXPECT_TRUE(deleted.ok()) << deleted;
      }
      absl::StatusOr<std::vector<ContainerInfo>> left = runtime_->List();
      if (left.ok()) {
        for (const ContainerInfo& info : *left) {
          ADD_FAILURE() << "container left behind: " << info.id;
          (void)runtime_->Delete(info.id);
        }
      }
    }
    std::vector<std::string> mounts = MountsUnder(scratch_.path());
    std::sort(mounts.begin(), mounts.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    for (const std::string& point : mounts) umount2(point.c_str(), MNT_DETACH);
    for (const std::string& netns : netns_) {
      ::drover::testing::Child del({"/usr/sbin/ip", "netns", "delete", netns},
                                   scratch_.path() + "/ip.out", scratch_.path() + "/ip.err");
      del.Wait(absl::Seconds(10));
    }
  }

  // A spec with its own empty bundle and a job folder holding code/ logs/ outputs/.
  ContainerSpec NewSpec(const std::string& name) {
    ContainerSpec spec;
    spec.id = absl::StrCat("drover-test-", getpid(), "-", name);
    spec.bundle_dir = absl::StrCat(scratch_.path(), "/bundles/", name);
    spec.job_dir = absl::StrCat(scratch_.path(), "/jobs/", name);
    for (const char* dir : {"code", "logs", "outputs"})
      fs::create_directories(spec.job_dir + "/" + dir);
    fs::create_directories(spec.bundle_dir);
    spec.hostname = name;
    spec.env = {"PYTHONUNBUFFERED=1"};
    spec.memory_mib = 256;
    spec.cpus = 1;
    spec.shm_mib = 128;
    ids_.push_back(spec.id);
    return spec;
  }

  static InitCommand Init(int count, std::vector<std::string> program) {
    InitCommand command;
    command.count = count;
    command.grace_seconds = 2;
    command.program = std::move(program);
    return command;
  }

  static std::string LogFile(const ContainerSpec& spec, const std::string& name) {
    return ReadFileOrEmpty(spec.job_dir + "/logs/" + name);
  }

  // Create + Start, failing the test on error (with the container's own log).
  void Run(const ContainerSpec& spec) {
    absl::Status created = runtime_->Create(spec);
    ASSERT_TRUE(created.ok()) << created;
    absl::Status started = runtime_->Start(spec.id);
    ASSERT_TRUE(started.ok()) << started << "\n"
                              << ReadFileOrEmpty(RuncRuntime::ContainerLogPath(spec.bundle_dir));
  }

  ContainerExit WaitFor(const ContainerSpec& spec, int timeout_ms = 30000) {
    absl::StatusOr<ContainerExit> exit = runtime_->Wait(spec.id, timeout_ms);
    EXPECT_TRUE(exit.ok()) << exit.status() << "\ncontainer log:\n"
                           << ReadFileOrEmpty(RuncRuntime::ContainerLogPath(spec.bundle_dir));
    return exit.ok() ? *exit : ContainerExit{-1000, 0, false};
  }

  // A root filesystem of the static busybox: /bin/busybox, its applets as links, /etc.
  std::string MakeBusyboxImage() {
    std::string root = scratch_.path() + "/image/rootfs";
    fs::create_directories(root + "/bin");
    fs::create_directories(root + "/etc");
    fs::copy_file("/usr/bin/busybox", root + "/bin/busybox");
    for (const char* applet : {"sh", "echo", "cat", "ls", "sleep", "hostname", "id"}) {
      fs::create_symlink("busybox", root + "/bin/" + applet);
    }
    WriteFileOrDie(root + "/etc/image-file", "from-image\n");
    return root;
  }

  ScratchDir scratch_;  // first: destroyed last
  std::unique_ptr<RuncRuntime> runtime_;
  std::vector<std::string> ids_;
  std::vector<std::string> netns_;  // network namespaces this test added
};

}  // namespace drover::agent

#endif  // DROVER_TESTS_AGENT_RUNTIME_RUNC_RUNTIME_FIXTURE_H_
