// RuncRuntime with the real runc (run as root): host and image containers running
// drover-init, limits, OOM, signals, recovery from another agent process, and that Delete()
// leaves no container, mount or cgroup behind.
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
namespace {

// A rank's .exit file: its status, then when it ended (drover-init's wall clock).
::testing::Matcher<std::string> RankExitLine(const std::string& status) {
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
std::vector<std::string> MountsUnder(const std::string& dir) {
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
std::vector<std::string> CgroupDirsOf(pid_t pid, const std::string& leaf) {
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

class RuncRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "runc containers need root";
    RuncOptions options;
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

TEST_F(RuncRuntimeTest, HostContainerRunsTwoRanksAndWritesTheirFiles) {
  ContainerSpec spec = NewSpec("ranks");
  spec.args = Init(2, {"/bin/sh", "-c",
                       "echo rank=$DROVER_RANK local=$DROVER_LOCAL_RANK host=$(hostname) "
                       "cwd=$(pwd) job=$DROVER_JOB_ID"})
                  .ToArgs();
  spec.env.push_back("DROVER_JOB_ID=j-7");
  Run(spec);
  ContainerExit exit = WaitFor(spec);
  EXPECT_EQ(exit.exit_code, 0);
  EXPECT_EQ(exit.signal, 0);
  EXPECT_FALSE(exit.oom_killed);
  EXPECT_EQ(LogFile(spec, "rank-0.stdout"), "rank=0 local=0 host=ranks cwd=/job/code job=j-7\n");
  EXPECT_EQ(LogFile(spec, "rank-1.stdout"), "rank=1 local=1 host=ranks cwd=/job/code job=j-7\n");
  EXPECT_THAT(LogFile(spec, "rank-0.exit"), RankExitLine("exit_code=0 signal=0"));
  EXPECT_THAT(LogFile(spec, "rank-1.exit"), RankExitLine("exit_code=0 signal=0"));
  EXPECT_EQ(LogFile(spec, "init.result"), "first_failed_rank=-1 exit_code=0 signal=0\n");
  // A second Wait gives the same answer.
  absl::StatusOr<ContainerExit> again = runtime_->Wait(spec.id, 0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->exit_code, 0);
}

// Run(): create and start in one runc call (`runc run --detach`), as for one-node attempts.
TEST_F(RuncRuntimeTest, RunInOneStepRunsTheRanksAndReportsTheExit) {
  ContainerSpec spec = NewSpec("onestep");
  // Rank 1 fails after rank 0 has finished (a failing rank stops the others).
  spec.args = Init(2, {"/bin/sh", "-c",
                       "echo rank=$DROVER_RANK; [ $DROVER_RANK = 0 ] && exit 0; sleep 0.5; exit 1"})
                  .ToArgs();
  absl::Status ran = runtime_->Run(spec);
  ASSERT_TRUE(ran.ok()) << ran << "\n"
                        << ReadFileOrEmpty(RuncRuntime::ContainerLogPath(spec.bundle_dir));
  ContainerExit exit = WaitFor(spec);
  EXPECT_EQ(exit.exit_code, 1);
  EXPECT_EQ(LogFile(spec, "rank-0.stdout"), "rank=0\n");
  EXPECT_EQ(LogFile(spec, "rank-1.stdout"), "rank=1\n");
  EXPECT_EQ(LogFile(spec, "init.result"), "first_failed_rank=1 exit_code=1 signal=0\n");
  EXPECT_TRUE(runtime_->Delete(spec.id).ok());
  auto listed = runtime_->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  for (const ContainerInfo& info : *listed) EXPECT_NE(info.id, spec.id);
}

TEST_F(RuncRuntimeTest, RunInOneStepReportsRuncsErrorAndLeavesNothing) {
  ContainerSpec spec = NewSpec("onestepbad");
  spec.args = {"/nonexistent/program"};
  absl::Status ran = runtime_->Run(spec);
  ASSERT_FALSE(ran.ok());
  EXPECT_EQ(ran.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(ran.message()), HasSubstr("runc run failed"));
  EXPECT_THAT(std::string(ran.message()), HasSubstr("/nonexistent/program"));
  EXPECT_EQ(runtime_->Wait(spec.id, 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(fs::is_empty(spec.bundle_dir));
}

TEST_F(RuncRuntimeTest, FailingRankGivesItsExitCodeAndStopsTheOther) {
  ContainerSpec spec = NewSpec("fail");
  spec.args = Init(2, {"/bin/sh", "-c",
                       "if [ $DROVER_RANK = 1 ]; then echo failing >&2; exit 7; fi; exec sleep 60"})
                  .ToArgs();
  Run(spec);
  ContainerExit exit = WaitFor(spec, 20000);
  EXPECT_EQ(exit.exit_code, 7);
  EXPECT_FALSE(exit.oom_killed);
  EXPECT_EQ(LogFile(spec, "init.result"), "first_failed_rank=1 exit_code=7 signal=0\n");
  EXPECT_THAT(LogFile(spec, "rank-0.exit"), RankExitLine("exit_code=-1 signal=15"));
  EXPECT_EQ(LogFile(spec, "rank-1.stderr"), "failing\n");
}

TEST_F(RuncRuntimeTest, MemoryLimitKillsAHogAndWaitReportsOom) {
  ContainerSpec spec = NewSpec("oom");
  spec.memory_mib = 64;
  spec.args =
      Init(1, {"/usr/bin/python3", "-c", "x = b'a' * (512 << 20)\nprint('survived', len(x))"})
          .ToArgs();
  Run(spec);
  ContainerExit exit = WaitFor(spec);
  EXPECT_TRUE(exit.oom_killed);
  EXPECT_EQ(exit.exit_code, 128 + SIGKILL);
  EXPECT_THAT(LogFile(spec, "rank-0.exit"), RankExitLine("exit_code=-1 signal=9"));
  EXPECT_EQ(LogFile(spec, "rank-0.stdout"), "");
}

TEST_F(RuncRuntimeTest, StatsShowTheMemoryAndCpuTheContainerUses) {
  ContainerSpec spec = NewSpec("stats");
  spec.memory_mib = 512;
  // Holds 150 MiB (touched), burns some CPU, then says so and waits.
  spec.args = Init(1, {"/usr/bin/python3", "-c",
                       "import time\nx = bytearray(150 << 20)\n"
                       "for i in range(0, len(x), 4096): x[i] = 1\n"
                       "t = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
                       "print('holding', flush=True)\ntime.sleep(60)"})
                  .ToArgs();
  Run(spec);
  ASSERT_TRUE(PollUntil([&] { return LogFile(spec, "rank-0.stdout") == "holding\n"; },
                        absl::Seconds(30)));
  absl::StatusOr<ContainerStats> stats = runtime_->Stats(spec.id);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GE(stats->memory_bytes, int64_t{150} << 20);
  EXPECT_LE(stats->memory_bytes, int64_t{300} << 20);
  if (stats->memory_peak_bytes >= 0) {
    EXPECT_GE(stats->memory_peak_bytes, stats->memory_bytes);
  }
  EXPECT_GE(stats->cpu_ns, 300'000'000);
  ASSERT_TRUE(runtime_->Signal(spec.id, SIGKILL, /*all=*/true).ok());
  WaitFor(spec);
  EXPECT_EQ(runtime_->Stats(spec.id).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RuncRuntimeTest, ContainerIsConfinedAsConfigured) {
  ContainerSpec spec = NewSpec("confined");
  spec.shm_mib = 96;
  spec.cpus = 1.5;
  spec.memory_mib = 200;
  spec.pids_limit = 321;
  spec.args =
      Init(1, {"/bin/sh", "-c",
               // The container's own cgroup limits, as it sees them (v1 or v2).
               "c=/sys/fs/cgroup; if [ -e $c/cpu/cpu.cfs_quota_us ]; then "
               "echo cpu=$(cat $c/cpu/cpu.cfs_quota_us)/$(cat $c/cpu/cpu.cfs_period_us) "
               "mem=$(cat $c/memory/memory.limit_in_bytes) "
               "swap=$(cat $c/memory/memory.memsw.limit_in_bytes) pids=$(cat $c/pids/pids.max); "
               "else echo cpu=$(tr ' ' / < $c/cpu.max) mem=$(cat $c/memory.max) "
               "swap=$(($(cat $c/memory.max) + $(cat $c/memory.swap.max))) "
               "pids=$(cat $c/pids.max); fi; "
               "if echo x > /usr/drover-write-test 2>/dev/null; then echo usr=writable; "
               "else echo usr=readonly; fi; "
               "if echo x > /etc/drover-write-test 2>/dev/null; then echo etc=writable; "
               "else echo etc=readonly; fi; "
               "echo result > /job/outputs/out.txt && echo job=writable; "
               "echo tmp > /tmp/t && echo tmp=writable; "
               "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status; "
               "grep ' /dev/shm ' /proc/self/mounts | grep -o 'size=[0-9a-z]*'; "
               "echo pid1=$(cat /proc/1/comm); "
               "if cat /proc/kcore >/dev/null 2>&1 && [ -s /proc/kcore ]; then echo kcore=open; "
               "else echo kcore=masked; fi; "
               // An orphan re-parented to drover-init (PID 1) must be reaped.
               "(sh -c 'echo $$ > /tmp/orphan' &); "
               "until [ -s /tmp/orphan ]; do sleep 0.01; done; p=$(cat /tmp/orphan); i=0; "
               "while [ -e /proc/$p ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; "
               "if [ -e /proc/$p ]; then echo orphan=zombie; else echo orphan=reaped; fi"})
          .ToArgs();
  Run(spec);
  ContainerExit exit = WaitFor(spec);
  EXPECT_EQ(exit.exit_code, 0) << LogFile(spec, "rank-0.stderr");
  std::string out = LogFile(spec, "rank-0.stdout");
  EXPECT_THAT(out, HasSubstr("cpu=150000/100000 mem=209715200 swap=209715200 pids=321"));
  EXPECT_THAT(out, HasSubstr("usr=readonly"));
  EXPECT_THAT(out, HasSubstr("etc=readonly"));
  EXPECT_THAT(out, HasSubstr("job=writable"));
  EXPECT_THAT(out, HasSubstr("tmp=writable"));
  // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE SYS_CHROOT
  // AUDIT_WRITE: bits 0 1 3 4 5 6 7 8 10 18 29.
  EXPECT_THAT(out, HasSubstr("CapEff:\t00000000200405fb"));
  EXPECT_THAT(out, HasSubstr("CapBnd:\t00000000200405fb"));
  EXPECT_THAT(out, HasSubstr("NoNewPrivs:\t1"));
  EXPECT_THAT(out, HasSubstr("size=98304k"));
  EXPECT_THAT(out, HasSubstr("pid1=init"));
  EXPECT_THAT(out, HasSubstr("kcore=masked"));
  EXPECT_THAT(out, HasSubstr("orphan=reaped"));
  EXPECT_EQ(ReadFileOrEmpty(spec.job_dir + "/outputs/out.txt"), "result\n");
  EXPECT_FALSE(fs::exists("/usr/drover-write-test"));
}

TEST_F(RuncRuntimeTest, ImageContainerWritesDoNotReachTheImage) {
  std::string image = MakeBusyboxImage();
  ContainerSpec spec = NewSpec("image");
  spec.image_rootfs = image;
  spec.args = Init(1, {"/bin/sh", "-c",
                       "cat /etc/image-file; echo changed > /etc/image-file; "
                       "echo new > /etc/new-file; cat /etc/image-file; ls /bin/busybox"})
                  .ToArgs();
  Run(spec);
  ContainerExit exit = WaitFor(spec);
  EXPECT_EQ(exit.exit_code, 0) << LogFile(spec, "rank-0.stderr");
  EXPECT_EQ(LogFile(spec, "rank-0.stdout"), "from-image\nchanged\n/bin/busybox\n");
  EXPECT_EQ(ReadFileOrEmpty(image + "/etc/image-file"), "from-image\n");
  EXPECT_FALSE(fs::exists(image + "/etc/new-file"));
  EXPECT_EQ(ReadFileOrEmpty(spec.bundle_dir + "/upper/etc/new-file"), "new\n");
  EXPECT_THAT(MountsUnder(spec.bundle_dir), ::testing::ElementsAre(spec.bundle_dir + "/rootfs"));

  ASSERT_TRUE(runtime_->Delete(spec.id).ok());
  EXPECT_THAT(MountsUnder(spec.bundle_dir), IsEmpty());
  EXPECT_TRUE(fs::is_empty(spec.bundle_dir));
  EXPECT_EQ(ReadFileOrEmpty(image + "/etc/image-file"), "from-image\n") << "the image survives";
}

TEST_F(RuncRuntimeTest, SignalStopsASleepingContainer) {
  ContainerSpec spec = NewSpec("sleeper");
  spec.args = Init(2, {"/bin/sh", "-c", "echo started; exec sleep 300"}).ToArgs();
  Run(spec);
  // drover-init takes signals once it runs; before that, PID 1 of a namespace ignores them.
  ASSERT_TRUE(PollUntil(
      [&] {
        return LogFile(spec, "rank-0.stdout") == "started\n" &&
               LogFile(spec, "rank-1.stdout") == "started\n";
      },
      absl::Seconds(20)));
  absl::StatusOr<ContainerExit> early = runtime_->Wait(spec.id, 50);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kDeadlineExceeded);

  ASSERT_TRUE(runtime_->Signal(spec.id, SIGTERM, /*all=*/false).ok());
  ContainerExit exit = WaitFor(spec, 15000);
  EXPECT_EQ(exit.exit_code, 128 + SIGTERM);
  EXPECT_THAT(LogFile(spec, "rank-0.exit"), RankExitLine("exit_code=-1 signal=15"));
  EXPECT_THAT(LogFile(spec, "rank-1.exit"), RankExitLine("exit_code=-1 signal=15"));
  // Signalling an ended container says so.
  absl::Status late = runtime_->Signal(spec.id, SIGTERM, false);
  EXPECT_FALSE(late.ok());
}

// PID 1 of a namespace drops signals it neither catches nor blocks; right after Start it
// may not have got that far. Signal() waits until it has, so a cancel just after a start
// still stops the job gracefully (143, not a SIGKILL after the grace).
TEST_F(RuncRuntimeTest, SigtermRightAfterStartIsNotLost) {
  for (int i = 0; i < 5; ++i) {
    ContainerSpec spec = NewSpec(absl::StrCat("early-", i));
    spec.args = Init(1, {"/bin/sleep", "300"}).ToArgs();
    Run(spec);
    ASSERT_TRUE(runtime_->Signal(spec.id, SIGTERM, false).ok());
    absl::StatusOr<ContainerExit> exit = runtime_->Wait(spec.id, 10000);
    ASSERT_TRUE(exit.ok()) << "attempt " << i << ": " << exit.status();
    EXPECT_EQ(exit->exit_code, 128 + SIGTERM) << "attempt " << i;
    ASSERT_TRUE(runtime_->Delete(spec.id).ok());
  }
}

TEST_F(RuncRuntimeTest, DeleteWhileWaitingHandsTheWaiterTheExit) {
  ContainerSpec spec = NewSpec("waited");
  spec.args = Init(1, {"/bin/sh", "-c", "echo started; exec sleep 300"}).ToArgs();
  Run(spec);
  ASSERT_TRUE(
      PollUntil([&] { return LogFile(spec, "rank-0.stdout") == "started\n"; }, absl::Seconds(20)));
  absl::StatusOr<ContainerExit> waited;
  std::thread waiter([&] { waited = runtime_->Wait(spec.id, -1); });
  absl::Status deleted = runtime_->Delete(spec.id);
  waiter.join();
  ASSERT_TRUE(deleted.ok()) << deleted;
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_EQ(waited->signal, SIGKILL) << "Delete kills PID 1";
  EXPECT_EQ(waited->exit_code, -1);
}

TEST_F(RuncRuntimeTest, DeleteLeavesNothingBehind) {
  std::string image = MakeBusyboxImage();
  ContainerSpec host = NewSpec("gone-host");
  host.args = Init(1, {"/bin/sh", "-c", "echo started; exec sleep 300"}).ToArgs();
  ContainerSpec overlay = NewSpec("gone-image");
  overlay.image_rootfs = image;
  overlay.args = host.args;
  Run(host);
  Run(overlay);

  std::vector<std::string> cgroups;
  for (const ContainerSpec* spec : {&host, &overlay}) {
    absl::StatusOr<pid_t> pid = runtime_->Pid(spec->id);
    ASSERT_TRUE(pid.ok()) << pid.status();
    std::vector<std::string> dirs = CgroupDirsOf(*pid, spec->id);
    EXPECT_FALSE(dirs.empty()) << "the container has cgroups of its own";
    for (const std::string& dir : dirs) EXPECT_TRUE(fs::exists(dir)) << dir;
    cgroups.insert(cgroups.end(), dirs.begin(), dirs.end());
  }
  absl::StatusOr<std::vector<ContainerInfo>> listed = runtime_->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), 2u);

  // No Wait first: Delete kills what runs.
  for (const ContainerSpec* spec : {&host, &overlay}) {
    absl::Status deleted = runtime_->Delete(spec->id);
    ASSERT_TRUE(deleted.ok()) << deleted;
    EXPECT_TRUE(runtime_->Delete(spec->id).ok()) << "idempotent";
    EXPECT_TRUE(fs::is_empty(spec->bundle_dir)) << spec->bundle_dir;
    EXPECT_EQ(runtime_->Wait(spec->id, 0).status().code(), absl::StatusCode::kNotFound);
  }
  listed = runtime_->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(*listed, IsEmpty());
  EXPECT_THAT(MountsUnder(scratch_.path()), IsEmpty());
  for (const std::string& dir : cgroups) EXPECT_FALSE(fs::exists(dir)) << dir;
  // And runc itself agrees.
  ::drover::testing::Child runc_list(
      {"/usr/sbin/runc", "--root", scratch_.path() + "/runc", "list", "-q"},
      scratch_.path() + "/list.out", scratch_.path() + "/list.err");
  std::optional<int> status = runc_list.Wait(absl::Seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(ReadFileOrEmpty(scratch_.path() + "/list.out"), "");
}

TEST_F(RuncRuntimeTest, JoinsTheGivenNetworkNamespace) {
  std::string netns = absl::StrCat("drover-test-", getpid());
  ::drover::testing::Child add({"/usr/sbin/ip", "netns", "add", netns}, scratch_.path() + "/ip.out",
                               scratch_.path() + "/ip.err");
  std::optional<int> added = add.Wait(absl::Seconds(10));
  if (!added.has_value() || *added != 0) {
    GTEST_SKIP() << "ip netns add failed: " << ReadFileOrEmpty(scratch_.path() + "/ip.err");
  }
  netns_.push_back(netns);
  ContainerSpec spec = NewSpec("netns");
  spec.netns_path = "/var/run/netns/" + netns;
  // /proc/net/dev lists the interfaces of the process's network namespace: only lo here.
  spec.args =
      Init(1, {"/bin/sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"}).ToArgs();
  Run(spec);
  EXPECT_EQ(WaitFor(spec).exit_code, 0) << LogFile(spec, "rank-0.stderr");
  EXPECT_EQ(LogFile(spec, "rank-0.stdout"), "lo\n");
}

TEST_F(RuncRuntimeTest, ExposesTheGivenDevicesOnly) {
  if (!fs::exists("/dev/fuse")) GTEST_SKIP() << "no /dev/fuse to expose";
  ContainerSpec spec = NewSpec("devices");
  spec.devices = {{"/dev/fuse"}};
  spec.args = Init(1, {"/bin/sh", "-c",
                       "if [ -c /dev/fuse ] && exec 3<>/dev/fuse; then echo fuse=open; fi; "
                       "if [ -e /dev/net/tun ]; then echo tun=present; else echo tun=absent; fi"})
                  .ToArgs();
  Run(spec);
  EXPECT_EQ(WaitFor(spec).exit_code, 0) << LogFile(spec, "rank-0.stderr");
  EXPECT_EQ(LogFile(spec, "rank-0.stdout"), "fuse=open\ntun=absent\n");
}

TEST_F(RuncRuntimeTest, ADeviceNodeFromElsewhereAppearsUnderDevWithItsNumbers) {
  // A fake GPU: a character device with /dev/zero's numbers, outside /dev, seen in the
  // container as /dev/nvidia7 (as drover-agent's --gpu inventory makes them).
  std::string fake = scratch_.path() + "/fake-gpu";
  ASSERT_EQ(mknod(fake.c_str(), S_IFCHR | 0666, makedev(1, 5)), 0) << strerror(errno);
  ContainerSpec spec = NewSpec("fake-gpu");
  spec.devices = {{.path = "/dev/nvidia7", .source = fake}};
  spec.args = Init(1, {"/bin/sh", "-c",
                       "stat -c '%F %t:%T' /dev/nvidia7; head -c 3 /dev/nvidia7 | od -An -tx1; "
                       "ls /dev | grep -c fake-gpu || true"})
                  .ToArgs();
  Run(spec);
  EXPECT_EQ(WaitFor(spec).exit_code, 0) << LogFile(spec, "rank-0.stderr");
  EXPECT_EQ(LogFile(spec, "rank-0.stdout"), "character special file 1:5\n 00 00 00\n0\n");
}

TEST_F(RuncRuntimeTest, UnderAUserNamespaceADeviceOthersCannotOpenIsRefusedNamingIt) {
  RuncOptions options;
  options.root_dir = scratch_.path() + "/runc-userns";
  options.init_binary = DROVER_INIT_PATH;
  options.userns = {.host_id = 100000, .size = 65536};
  absl::StatusOr<std::unique_ptr<RuncRuntime>> runtime = RuncRuntime::Open(options);
  ASSERT_TRUE(runtime.ok()) << runtime.status();
  // A GPU node only its group may open (0660): bound into the container, the job's root
  // (host uid 100000) could not open it; the container is refused before anything starts.
  std::string fake = scratch_.path() + "/private-gpu";
  ASSERT_EQ(mknod(fake.c_str(), S_IFCHR | 0600, makedev(1, 5)), 0) << strerror(errno);
  ASSERT_EQ(chmod(fake.c_str(), 0660), 0);
  ContainerSpec spec = NewSpec("private-gpu");
  spec.devices = {{.path = "/dev/nvidia7", .source = fake}};
  spec.args = Init(1, {"/bin/true"}).ToArgs();
  absl::Status created = (*runtime)->Create(spec);
  EXPECT_EQ(created.code(), absl::StatusCode::kFailedPrecondition) << created;
  EXPECT_THAT(std::string(created.message()), HasSubstr(fake));
  EXPECT_THAT(std::string(created.message()), HasSubstr("mode 0660"));
  EXPECT_THAT(std::string(created.message()), HasSubstr("chmod 0666"));
  absl::StatusOr<std::vector<ContainerInfo>> listed = (*runtime)->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->empty());
}

TEST_F(RuncRuntimeTest, ListShowsCreatedAndRunningContainers) {
  ContainerSpec spec = NewSpec("listed");
  spec.args = Init(1, {"/bin/sh", "-c", "echo started; exec sleep 300"}).ToArgs();
  ASSERT_TRUE(runtime_->Create(spec).ok());
  absl::StatusOr<std::vector<ContainerInfo>> listed = runtime_->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].id, spec.id);
  EXPECT_FALSE((*listed)[0].running) << "created, not started";
  EXPECT_GT((*listed)[0].pid, 0);
  EXPECT_EQ((*listed)[0].bundle_dir, spec.bundle_dir);

  ASSERT_TRUE(runtime_->Start(spec.id).ok());
  listed = runtime_->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_TRUE((*listed)[0].running);
  absl::StatusOr<pid_t> pid = runtime_->Pid(spec.id);
  ASSERT_TRUE(pid.ok());
  EXPECT_EQ(*pid, (*listed)[0].pid);
}

// What a taken-over attempt decides by: runc's own view, through every step of a life.
TEST_F(RuncRuntimeTest, InspectTellsCreatedRunningStoppedAndGone) {
  ContainerSpec spec = NewSpec("inspected");
  spec.args = Init(1, {"/bin/sh", "-c", "while [ ! -e /job/release ]; do sleep 0.02; done"}).ToArgs();
  EXPECT_EQ(runtime_->Inspect(spec.id).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(runtime_->Create(spec).ok());
  absl::StatusOr<ContainerState> state = runtime_->Inspect(spec.id);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, ContainerState::kCreated);
  EXPECT_FALSE(std::filesystem::exists(spec.job_dir + "/logs/rank-0.stdout")) << "nothing ran";

  ASSERT_TRUE(runtime_->Start(spec.id).ok());
  state = runtime_->Inspect(spec.id);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, ContainerState::kRunning);
  // A second start (an earlier agent's `runc start` still on its way) runs nothing again.
  EXPECT_FALSE(runtime_->Start(spec.id).ok());

  WriteFileOrDie(spec.job_dir + "/release", "");
  ContainerExit exit = WaitFor(spec, 20000);
  EXPECT_EQ(exit.exit_code, 0);
  state = runtime_->Inspect(spec.id);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(*state, ContainerState::kStopped);

  ASSERT_TRUE(runtime_->Delete(spec.id).ok());
  EXPECT_EQ(runtime_->Inspect(spec.id).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RuncRuntimeTest, RefusesADuplicateIdAndABadSpec) {
  ContainerSpec spec = NewSpec("dup");
  spec.args = Init(1, {"/bin/true"}).ToArgs();
  ASSERT_TRUE(runtime_->Create(spec).ok());
  ContainerSpec twin = spec;
  twin.bundle_dir = scratch_.path() + "/bundles/dup-twin";
  fs::create_directories(twin.bundle_dir);
  EXPECT_EQ(runtime_->Create(twin).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(fs::is_empty(twin.bundle_dir));

  ContainerSpec bad = NewSpec("bad");
  bad.args.clear();
  EXPECT_EQ(runtime_->Create(bad).code(), absl::StatusCode::kInvalidArgument);
  ContainerSpec not_empty = NewSpec("not-empty");
  not_empty.args = spec.args;
  WriteFileOrDie(not_empty.bundle_dir + "/stray", "x");
  EXPECT_EQ(runtime_->Create(not_empty).code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(runtime_->Start("drover-test-nonexistent").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(runtime_->Wait("drover-test-nonexistent", 0).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(runtime_->Delete("drover-test-nonexistent").ok());
}

TEST_F(RuncRuntimeTest, RuncErrorIsReportedWithItsMessage) {
  ContainerSpec spec = NewSpec("badcwd");
  spec.args = {"/nonexistent/program"};
  absl::Status created = runtime_->Create(spec);
  absl::Status started = created.ok() ? runtime_->Start(spec.id) : created;
  ASSERT_FALSE(started.ok());
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(started.message()), HasSubstr("/nonexistent/program"));
}

// After an agent restart PID 1 is no longer the agent's child: the exit status comes from
// drover-init's exit file. A helper process plays the earlier agent: it creates and starts
// the container, stays its parent (subreaper) and reaps it.
TEST_F(RuncRuntimeTest, WaitsForAContainerOfAnEarlierAgentProcess) {
  ContainerSpec spec = NewSpec("adopted");
  std::string release = spec.job_dir + "/release";
  spec.args = Init(1, {"/bin/sh", "-c",
                       "echo started; while [ ! -e /job/release ]; do sleep 0.02; done; exit 5"})
                  .ToArgs();
  pid_t helper = fork();
  ASSERT_GE(helper, 0);
  if (helper == 0) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    RuncOptions options;
    options.root_dir = scratch_.path() + "/runc";
    options.init_binary = DROVER_INIT_PATH;
    auto earlier = RuncRuntime::Open(options);
    if (!earlier.ok() || !(*earlier)->Create(spec).ok() || !(*earlier)->Start(spec.id).ok())
      _exit(1);
    int status = 0;
    while (waitpid(-1, &status, 0) > 0 || errno == EINTR) {
    }
    _exit(0);
  }
  ASSERT_TRUE(
      PollUntil([&] { return LogFile(spec, "rank-0.stdout") == "started\n"; }, absl::Seconds(20)));
  absl::StatusOr<std::vector<ContainerInfo>> listed = runtime_->List();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_TRUE((*listed)[0].running);
  EXPECT_EQ(runtime_->Wait(spec.id, 50).status().code(), absl::StatusCode::kDeadlineExceeded);

  WriteFileOrDie(release, "");
  ContainerExit exit = WaitFor(spec, 20000);
  EXPECT_EQ(exit.exit_code, 5);
  EXPECT_EQ(exit.signal, 0);
  int status = 0;
  ASSERT_EQ(waitpid(helper, &status, 0), helper);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace drover::agent
