// RuncRuntime running containers with the real runc (run as root): host and image
// containers running drover-init, exits, limits, OOM, stats, confinement, network
// namespaces and devices. The fixture is runc_runtime_fixture.h.
#include "common/json.h"
#include "tests/agent/runtime/runc_runtime_fixture.h"

namespace drover::agent {
namespace {

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
  options.runc_path = OciRuntimeUnderTest();
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

// With a skeleton folder (as the agent runs it), host-OS containers with the same mounts
// share one root skeleton, made once with every mountpoint they need: nothing the job does
// changes it (read-only root; under a user namespace its root is not the owner either), and
// deleting the containers leaves it for the next.
TEST_F(RuncRuntimeTest, HostContainersShareOneReadOnlySkeletonThatNoJobChanges) {
  // Every path below `root` with its type, mode and owner.
  auto tree = [](const std::string& root) {
    std::vector<std::string> entries;
    std::error_code error;
    for (auto it = fs::recursive_directory_iterator(root, error);
         !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
      struct stat st {};
      lstat(it->path().c_str(), &st);
      entries.push_back(absl::StrCat(it->path().string(), " ", st.st_mode, " ", st.st_uid));
    }
    std::sort(entries.begin(), entries.end());
    return entries;
  };
  for (bool userns : {false, true}) {
    SCOPED_TRACE(userns ? "user namespace" : "no user namespace");
    const std::string tag = userns ? "userns" : "plain";
    RuncOptions options;
    options.runc_path = OciRuntimeUnderTest();
    options.root_dir = absl::StrCat(scratch_.path(), "/runc-", tag);
    options.init_binary = DROVER_INIT_PATH;
    options.skeleton_dir = absl::StrCat(scratch_.path(), "/skeletons-", tag);
    if (userns) {
      options.userns = {.host_id = 100000, .size = 65536};
      // The container's root, an unprivileged host uid, passes through the scratch folder.
      fs::permissions(scratch_.path(), fs::perms::others_exec | fs::perms::group_exec,
                      fs::perm_options::add);
    }
    absl::StatusOr<std::unique_ptr<RuncRuntime>> runtime = RuncRuntime::Open(options);
    ASSERT_TRUE(runtime.ok()) << runtime.status();
    const std::string data = absl::StrCat(scratch_.path(), "/data-", tag);
    fs::create_directories(data);
    fs::permissions(data, fs::perms::all);
    std::vector<ContainerSpec> specs;
    std::vector<std::string> before;
    for (const std::string name : {"first", "second"}) {
      ContainerSpec spec = NewSpec(absl::StrCat(tag, "-", name));
      spec.mounts.push_back({.source = data, .destination = "/data/in", .read_only = false});
      spec.args = Init(1, {"/bin/sh", "-c",
                           "touch /new 2>/dev/null && echo wrote /; "
                           "mkdir /data/x 2>/dev/null && echo wrote /data; "
                           "touch /run/drover/x 2>/dev/null; echo " + name + " > /data/in/" + name +
                               " && test -d /job/code && test -x /run/drover/init && echo mounts ok"})
                      .ToArgs();
      absl::Status ran = (*runtime)->Run(spec);
      ASSERT_TRUE(ran.ok()) << ran << "\n"
                            << ReadFileOrEmpty(RuncRuntime::ContainerLogPath(spec.bundle_dir));
      absl::StatusOr<ContainerExit> exit = (*runtime)->Wait(spec.id, 30000);
      ASSERT_TRUE(exit.ok()) << exit.status();
      EXPECT_EQ(exit->exit_code, 0);
      EXPECT_EQ(LogFile(spec, "rank-0.stdout"), "mounts ok\n");
      EXPECT_EQ(ReadFileOrEmpty(data + "/" + name), name + "\n");
      if (before.empty()) before = tree(options.skeleton_dir);
      specs.push_back(spec);
    }
    absl::StatusOr<Json> first = ParseJson(ReadFileOrEmpty(specs[0].bundle_dir + "/config.json"));
    absl::StatusOr<Json> second = ParseJson(ReadFileOrEmpty(specs[1].bundle_dir + "/config.json"));
    ASSERT_TRUE(first.ok() && second.ok());
    const std::string root = JsonString((*first)["root"]["path"]);
    EXPECT_TRUE(absl::StartsWith(root, options.skeleton_dir + "/")) << root;
    EXPECT_EQ(JsonString((*second)["root"]["path"]), root);
    EXPECT_TRUE((*first)["root"]["readonly"].get<bool>());
    EXPECT_TRUE(fs::is_directory(root + "/data/in"));
    EXPECT_FALSE(fs::exists(specs[0].bundle_dir + "/rootfs"));
    for (const ContainerSpec& spec : specs) {
      absl::Status deleted = (*runtime)->Delete(spec.id);
      EXPECT_TRUE(deleted.ok()) << deleted;
      EXPECT_TRUE(fs::is_empty(spec.bundle_dir));
    }
    EXPECT_EQ(tree(options.skeleton_dir), before);
    EXPECT_FALSE(fs::exists(root + "/new"));
    EXPECT_FALSE(fs::exists(root + "/data/x"));
  }
}

}  // namespace
}  // namespace drover::agent
