// RuncRuntime's container lifecycle with the real runc (run as root): signals, Delete()
// leaving no container, mount or cgroup behind, list and inspect, refusals and runc's
// errors, and waiting for a container of an earlier agent process.
#include <sys/eventfd.h>

#include "common/safe_open.h"
#include "tests/agent/runtime/runc_runtime_fixture.h"

namespace drover::agent {
namespace {

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

// The attempt's watch loop sleeps in WaitOrWake until PID 1 exits or its eventfd is written
// (a STOP, the agent leaving): a write ends the wait at once, however long its timeout, and
// the exit still ends it when it comes.
TEST_F(RuncRuntimeTest, WaitOrWakeEndsAtTheWakeOrAtTheExitNotAtATimer) {
  ContainerSpec spec = NewSpec("woken");
  spec.args = Init(1, {"/bin/sh", "-c", "echo started; exec sleep 300"}).ToArgs();
  Run(spec);
  ASSERT_TRUE(
      PollUntil([&] { return LogFile(spec, "rank-0.stdout") == "started\n"; }, absl::Seconds(20)));
  UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(wake.valid());
  // Nothing written: the timeout.
  absl::Time start = absl::Now();
  EXPECT_EQ(runtime_->WaitOrWake(spec.id, 50, wake.get()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(45));
  // Written from another thread while it waits: it ends at once, long before its timeout.
  std::thread writer([&] {
    absl::SleepFor(absl::Milliseconds(100));
    const uint64_t one = 1;
    ASSERT_EQ(::write(wake.get(), &one, sizeof one), 8);
  });
  start = absl::Now();
  EXPECT_EQ(runtime_->WaitOrWake(spec.id, 60000, wake.get()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  writer.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  uint64_t count = 0;
  ASSERT_EQ(::read(wake.get(), &count, sizeof count), 8);  // drained, as the caller does
  // PID 1 ends: the wait returns its exit, with nothing written.
  ASSERT_TRUE(runtime_->Signal(spec.id, SIGTERM, /*all=*/false).ok());
  start = absl::Now();
  absl::StatusOr<ContainerExit> exit = runtime_->WaitOrWake(spec.id, 60000, wake.get());
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 128 + SIGTERM);
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
  ASSERT_TRUE(runtime_->Delete(spec.id).ok());
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

// The zombie children of this process (a subreaper, as the agent is), by name.
std::vector<std::string> ZombieChildren() {
  std::vector<std::string> zombies;
  for (const fs::directory_entry& task : fs::directory_iterator("/proc/self/task")) {
    for (absl::string_view pid :
         absl::StrSplit(ReadFileOrEmpty(task.path().string() + "/children"), ' ',
                        absl::SkipEmpty())) {
      std::string stat = ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/stat"));
      size_t close = stat.rfind(')');
      if (close != std::string::npos && stat.compare(close + 2, 1, "Z") == 0) {
        zombies.push_back(stat.substr(0, close + 1));
      }
    }
  }
  return zombies;
}

TEST_F(RuncRuntimeTest, ContainersLeaveNoZombieRuntimeProcessesToTheAgent) {
  // crun's `run --detach` leaves an intermediate crun process to the subreaper; unreaped,
  // one zombie per job would pile up in the agent.
  for (int i = 0; i < 3; ++i) {
    ContainerSpec spec = NewSpec(absl::StrCat("reaped-", i));
    spec.args = Init(1, {"/bin/true"}).ToArgs();
    ASSERT_TRUE(runtime_->Run(spec).ok());
    EXPECT_EQ(WaitFor(spec).exit_code, 0);
    ASSERT_TRUE(runtime_->Delete(spec.id).ok());
  }
  EXPECT_THAT(ZombieChildren(), IsEmpty());
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
      {OciRuntimeUnderTest(), "--root", scratch_.path() + "/runc", "list", "-q"},
      scratch_.path() + "/list.out", scratch_.path() + "/list.err");
  std::optional<int> status = runc_list.Wait(absl::Seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(ReadFileOrEmpty(scratch_.path() + "/list.out"), "");
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
    options.runc_path = OciRuntimeUnderTest();
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
