// Unit tests of the OCI config builder and the JSON value it is written with: no runc, no
// files.
#include "agent/runtime/oci_spec.h"

#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::agent {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;

ContainerSpec Spec() {
  ContainerSpec spec;
  spec.id = "drover-j-42-1";
  spec.bundle_dir = "/var/lib/drover/bundles/drover-j-42-1";
  spec.job_dir = "/var/lib/drover/jobs/j-42";
  spec.args = {"/run/drover/init", "--log-dir", "/job/logs", "--count", "1", "--", "python3"};
  spec.env = {"DROVER_JOB_ID=j-42", "PYTHONUNBUFFERED=1"};
  spec.hostname = "node-3";
  spec.cpus = 2.5;
  spec.memory_mib = 2048;
  spec.pids_limit = 1000;
  spec.shm_mib = 512;
  return spec;
}

OciOptions Options() {
  OciOptions options;
  options.init_binary = "/usr/lib/drover/drover-init";
  options.state_dir = "/var/lib/drover/bundles/drover-j-42-1/state";
  options.cgroups_path = "drover-j-42-1";
  options.nofile_limit = 20000;
  return options;
}

Json Build(const ContainerSpec& spec, const OciOptions& options = Options()) {
  absl::StatusOr<Json> config = BuildOciConfig(spec, options);
  EXPECT_TRUE(config.ok()) << config.status();
  if (!config.ok()) return Json();
  // What runc reads is the text: check what survives a round trip.
  absl::StatusOr<Json> parsed = ParseJson(DumpJson(*config, 2));
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : Json();
}

const Json& At(const Json& json, std::initializer_list<const char*> path) {
  static const Json* null = new Json();
  const Json* at = &json;
  for (const char* key : path) {
    at = JsonFind(*at, key);
    if (at == nullptr) {
      ADD_FAILURE() << "missing " << key;
      return *null;
    }
  }
  return *at;
}

std::vector<std::string> StringsOf(const Json& array) {
  std::vector<std::string> out;
  for (const Json& item : JsonItems(array)) out.push_back(JsonString(item));
  return out;
}

// The mount at `destination`, or null.
const Json* MountAt(const Json& config, const std::string& destination) {
  for (const Json& mount : JsonItems(At(config, {"mounts"}))) {
    if (JsonString(*JsonFind(mount, "destination")) == destination) return &mount;
  }
  return nullptr;
}

std::vector<std::string> MountOptions(const Json& config, const std::string& destination) {
  const Json* mount = MountAt(config, destination);
  if (mount == nullptr || JsonFind(*mount, "options") == nullptr) return {};
  return StringsOf(*JsonFind(*mount, "options"));
}

TEST(OciSpecTest, SetsCgroupLimitsFromTheSpec) {
  Json config = Build(Spec());
  const Json& resources = At(config, {"linux", "resources"});
  EXPECT_EQ(JsonInt(At(resources, {"cpu", "period"})), 100000);
  EXPECT_EQ(JsonInt(At(resources, {"cpu", "quota"})), 250000);
  EXPECT_EQ(JsonInt(At(resources, {"memory", "limit"})), int64_t{2048} << 20);
  EXPECT_EQ(JsonInt(At(resources, {"memory", "swap"})), int64_t{2048} << 20)
      << "memory+swap equal to memory: no swap";
  EXPECT_EQ(JsonInt(At(resources, {"pids", "limit"})), 1000);
  EXPECT_EQ(JsonString(At(config, {"linux", "cgroupsPath"})), "drover-j-42-1");
}

TEST(OciSpecTest, LeavesOutLimitsThatAreZero) {
  ContainerSpec spec = Spec();
  spec.cpus = 0;
  spec.memory_mib = 0;
  spec.pids_limit = 0;
  Json config = Build(spec);
  const Json& resources = At(config, {"linux", "resources"});
  EXPECT_EQ(JsonFind(resources, "cpu"), nullptr);
  EXPECT_EQ(JsonFind(resources, "memory"), nullptr);
  EXPECT_EQ(JsonFind(resources, "pids"), nullptr);
}

TEST(OciSpecTest, TinyCpuShareGetsTheKernelMinimumQuota) {
  ContainerSpec spec = Spec();
  spec.cpus = 0.001;
  Json config = Build(spec);
  EXPECT_EQ(JsonInt(At(config, {"linux", "resources", "cpu", "quota"})), 1000);
}

TEST(OciSpecTest, CgroupsPathIsRelative) {
  Json config = Build(Spec());
  EXPECT_THAT(JsonString(At(config, {"linux", "cgroupsPath"})), Not(::testing::StartsWith("/")));
}

TEST(OciSpecTest, NewPidIpcUtsMountNamespacesAndTheNodesNetwork) {
  Json config = Build(Spec());
  std::vector<std::string> types;
  for (const Json& ns : JsonItems(At(config, {"linux", "namespaces"}))) {
    types.push_back(JsonString(*JsonFind(ns, "type")));
    EXPECT_EQ(JsonFind(ns, "path"), nullptr) << "new namespace expected for " << types.back();
  }
  EXPECT_THAT(types, ::testing::UnorderedElementsAre("pid", "ipc", "uts", "mount"));
  EXPECT_EQ(JsonString(At(config, {"hostname"})), "node-3");
}

TEST(OciSpecTest, JoinsTheGivenNetworkNamespace) {
  ContainerSpec spec = Spec();
  spec.netns_path = "/var/run/netns/host1";
  Json config = Build(spec);
  bool found = false;
  for (const Json& ns : JsonItems(At(config, {"linux", "namespaces"}))) {
    if (JsonString(*JsonFind(ns, "type")) != "network") continue;
    found = true;
    EXPECT_EQ(JsonString(*JsonFind(ns, "path")), "/var/run/netns/host1");
  }
  EXPECT_TRUE(found);
}

TEST(OciSpecTest, DropsCapabilitiesToTheDefaultSet) {
  Json config = Build(Spec());
  const Json& caps = At(config, {"process", "capabilities"});
  for (const char* set : {"bounding", "effective", "permitted"}) {
    EXPECT_THAT(StringsOf(At(caps, {set})), ElementsAreArray(DefaultCapabilities())) << set;
  }
  EXPECT_EQ(JsonFind(caps, "ambient"), nullptr);
  EXPECT_EQ(JsonFind(caps, "inheritable"), nullptr);
  std::vector<std::string> bounding = StringsOf(At(caps, {"bounding"}));
  for (const char* risky : {"CAP_SYS_ADMIN", "CAP_NET_RAW", "CAP_NET_ADMIN", "CAP_SYS_PTRACE",
                            "CAP_SYS_MODULE", "CAP_MKNOD", "CAP_SETFCAP", "CAP_DAC_READ_SEARCH"}) {
    EXPECT_THAT(bounding, Not(Contains(risky)));
  }
  EXPECT_TRUE(JsonBool(At(config, {"process", "noNewPrivileges"})));
}

// The seccomp rule whose names include `name`, or null.
const Json* SeccompRule(const Json& config, const std::string& name) {
  for (const Json& rule : JsonItems(At(config, {"linux", "seccomp", "syscalls"}))) {
    for (const Json& n : JsonItems(*JsonFind(rule, "names"))) {
      if (JsonString(n) == name) return &rule;
    }
  }
  return nullptr;
}

TEST(OciSpecTest, SeccompAllowsWhatTrainingJobsUseAndRefusesTheRest) {
  Json config = Build(Spec());
  const Json& seccomp = At(config, {"linux", "seccomp"});
  EXPECT_EQ(JsonString(At(seccomp, {"defaultAction"})), "SCMP_ACT_ERRNO");
  EXPECT_EQ(JsonInt(At(seccomp, {"defaultErrnoRet"})), 1) << "EPERM";
#if defined(__x86_64__) || defined(__aarch64__)
  // The native one alone: other ABIs (i386, x32, arm) get the bad-architecture action (SIGSYS),
  // and every architecture listed costs runc milliseconds at each start.
  EXPECT_THAT(StringsOf(At(seccomp, {"architectures"})),
              ElementsAre(NativeSeccompArchitecture()));
#endif
  // Python, PyTorch, Open MPI (shared memory, TCP), pip, CUDA libraries.
  for (const char* used : {"openat", "read", "mmap", "futex", "execve", "socket", "ioctl", "pipe2",
                           "shmget", "memfd_create", "epoll_pwait", "sched_setaffinity",
                           "mknodat", "getrandom", "prctl", "wait4", "rseq", "statx"}) {
    const Json* rule = SeccompRule(config, used);
    ASSERT_NE(rule, nullptr) << used << " must be allowed";
    EXPECT_EQ(JsonString(*JsonFind(*rule, "action")), "SCMP_ACT_ALLOW") << used;
    EXPECT_EQ(JsonFind(*rule, "args"), nullptr) << used << " must be allowed whatever its arguments";
  }
  for (const char* refused :
       {"keyctl", "add_key", "request_key", "bpf", "kexec_load", "kexec_file_load", "mount",
        "umount2", "pivot_root", "setns", "ptrace", "process_vm_readv", "perf_event_open",
        "init_module", "finit_module", "delete_module", "swapon", "reboot",
        "open_by_handle_at", "userfaultfd", "fsopen", "move_mount", "io_uring_setup",
        "clock_settime", "syslog", "iopl", "acct"}) {
    EXPECT_EQ(SeccompRule(config, refused), nullptr) << refused << " must not be allowed";
  }
}

TEST(OciSpecTest, SeccompAllowsCloneAndUnshareOnlyWithoutNewNamespaces) {
  Json config = Build(Spec());
  for (const auto& [name, mask] : {std::pair{"clone", int64_t{0x7E020000}},
                                   std::pair{"unshare", int64_t{0x7E020080}}}) {
    const Json* rule = SeccompRule(config, name);
    ASSERT_NE(rule, nullptr) << name;
    ASSERT_NE(JsonFind(*rule, "args"), nullptr) << name << " must check its flags";
    const Json& arg = JsonItems(*JsonFind(*rule, "args")).at(0);
    EXPECT_EQ(JsonInt(*JsonFind(arg, "index")), 0) << name;
    EXPECT_EQ(JsonString(*JsonFind(arg, "op")), "SCMP_CMP_MASKED_EQ") << name;
    EXPECT_EQ(JsonInt(*JsonFind(arg, "value")), mask) << name << ": CLONE_NEWUSER and the others";
    EXPECT_EQ(JsonInt(*JsonFind(arg, "valueTwo")), 0) << name;
  }
  const Json* clone3 = SeccompRule(config, "clone3");
  ASSERT_NE(clone3, nullptr);
  EXPECT_EQ(JsonString(*JsonFind(*clone3, "action")), "SCMP_ACT_ERRNO");
  EXPECT_EQ(JsonInt(*JsonFind(*clone3, "errnoRet")), 38) << "ENOSYS, so that libc falls back to clone";
}

TEST(OciSpecTest, NoSeccompOnlyWhenAskedFor) {
  OciOptions options = Options();
  options.seccomp = false;
  Json config = Build(Spec(), options);
  EXPECT_EQ(JsonFind(At(config, {"linux"}), "seccomp"), nullptr);
}

TEST(OciSpecTest, UserNamespaceMapsRootToTheConfiguredRange) {
  OciOptions options = Options();
  options.userns = {.host_id = 100000, .size = 65536};
  options.devices.push_back(
      {.path = "/dev/nvidia0", .type = 'c', .major = 195, .source = "/srv/fake/nvidia0"});
  Json config = Build(Spec(), options);
  std::vector<std::string> types;
  for (const Json& ns : JsonItems(At(config, {"linux", "namespaces"}))) {
    types.push_back(JsonString(*JsonFind(ns, "type")));
  }
  EXPECT_THAT(types, Contains("user"));
  for (const char* key : {"uidMappings", "gidMappings"}) {
    const Json& mappings = At(config, {"linux", key});
    ASSERT_EQ(JsonItems(mappings).size(), 1u) << key;
    EXPECT_EQ(JsonInt(*JsonFind(JsonItems(mappings)[0], "containerID")), 0) << key;
    EXPECT_EQ(JsonInt(*JsonFind(JsonItems(mappings)[0], "hostID")), 100000) << key;
    EXPECT_EQ(JsonInt(*JsonFind(JsonItems(mappings)[0], "size")), 65536) << key;
  }
  // sysfs cannot be mounted from a user namespace that does not own the network namespace.
  const Json* sys = MountAt(config, "/sys");
  ASSERT_NE(sys, nullptr);
  EXPECT_EQ(JsonString(*JsonFind(*sys, "type")), "bind");
  EXPECT_THAT(MountOptions(config, "/sys"), IsSupersetOf({"rbind", "ro", "rro", "nosuid"}));
  // No mknod in a user namespace: devices are bound from their node, still allowed in the
  // device cgroup.
  EXPECT_EQ(JsonFind(At(config, {"linux"}), "devices"), nullptr);
  const Json* gpu = MountAt(config, "/dev/nvidia0");
  ASSERT_NE(gpu, nullptr);
  EXPECT_EQ(JsonString(*JsonFind(*gpu, "source")), "/srv/fake/nvidia0");
  bool allowed = false;
  for (const Json& rule : JsonItems(At(config, {"linux", "resources", "devices"}))) {
    allowed = allowed || (JsonBool(*JsonFind(rule, "allow")) && JsonFind(rule, "major") != nullptr &&
                          JsonInt(*JsonFind(rule, "major")) == 195);
  }
  EXPECT_TRUE(allowed);
}

TEST(OciSpecTest, NoUserNamespaceWhenTheRangeIsEmpty) {
  Json config = Build(Spec());
  for (const Json& ns : JsonItems(At(config, {"linux", "namespaces"}))) {
    EXPECT_NE(JsonString(*JsonFind(ns, "type")), "user");
  }
  EXPECT_EQ(JsonFind(At(config, {"linux"}), "uidMappings"), nullptr);
  EXPECT_EQ(JsonString(*JsonFind(*MountAt(config, "/sys"), "type")), "sysfs");
}

TEST(OciSpecTest, MasksKernelPathsLikeRuncsDefaultSpec) {
  Json config = Build(Spec());
  // `runc spec` (runc 1.1.5) output.
  EXPECT_THAT(StringsOf(At(config, {"linux", "maskedPaths"})),
              IsSupersetOf({"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}));
  EXPECT_THAT(
      StringsOf(At(config, {"linux", "readonlyPaths"})),
      IsSupersetOf({"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}));
}

TEST(OciSpecTest, RunsArgsInCwdWithEnvAndDefaults) {
  ContainerSpec spec = Spec();
  spec.cwd = "/job/code/sub";
  Json config = Build(spec);
  EXPECT_THAT(StringsOf(At(config, {"process", "args"})), ElementsAreArray(spec.args));
  EXPECT_EQ(JsonString(At(config, {"process", "cwd"})), "/job/code/sub");
  std::vector<std::string> env = StringsOf(At(config, {"process", "env"}));
  EXPECT_THAT(env, IsSupersetOf({"DROVER_JOB_ID=j-42", "PYTHONUNBUFFERED=1", "HOME=/root"}));
  EXPECT_THAT(env, Contains(::testing::StartsWith("PATH=")));
  EXPECT_FALSE(JsonBool(At(config, {"process", "terminal"})));
  EXPECT_EQ(JsonInt(At(config, {"process", "user", "uid"})), 0);
}

TEST(OciSpecTest, KeepsTheUsersPath) {
  ContainerSpec spec = Spec();
  spec.env.push_back("PATH=/opt/conda/bin:/usr/bin");
  Json config = Build(spec);
  std::vector<std::string> env = StringsOf(At(config, {"process", "env"}));
  EXPECT_EQ(std::count_if(env.begin(), env.end(),
                          [](const std::string& e) { return e.rfind("PATH=", 0) == 0; }),
            1);
  EXPECT_THAT(env, Contains("PATH=/opt/conda/bin:/usr/bin"));
}

TEST(OciSpecTest, RlimitStaysAtTheGivenCeiling) {
  Json config = Build(Spec());
  const Json& rlimits = At(config, {"process", "rlimits"});
  ASSERT_EQ(JsonItems(rlimits).size(), 1u);
  EXPECT_EQ(JsonString(*JsonFind(JsonItems(rlimits)[0], "type")), "RLIMIT_NOFILE");
  EXPECT_EQ(JsonInt(*JsonFind(JsonItems(rlimits)[0], "hard")), 20000);
  EXPECT_EQ(JsonInt(*JsonFind(JsonItems(rlimits)[0], "soft")), 20000);
}

TEST(OciSpecTest, HostModeBindsUsrAndEtcReadOnlyOnAReadOnlySkeleton) {
  OciOptions options = Options();
  options.host_dir_binds = {"/bin"};
  Json config = Build(Spec(), options);
  EXPECT_TRUE(JsonBool(At(config, {"root", "readonly"})));
  EXPECT_EQ(JsonString(At(config, {"root", "path"})), "rootfs");
  for (const char* dir : {"/usr", "/etc", "/bin"}) {
    const Json* mount = MountAt(config, dir);
    ASSERT_NE(mount, nullptr) << dir;
    EXPECT_EQ(JsonString(*JsonFind(*mount, "source")), dir);
    EXPECT_THAT(MountOptions(config, dir), IsSupersetOf({"rbind", "ro", "rro"})) << dir;
  }
  for (const char* dir : {"/tmp", "/run", "/var", "/root"}) {
    const Json* mount = MountAt(config, dir);
    ASSERT_NE(mount, nullptr) << dir;
    EXPECT_EQ(JsonString(*JsonFind(*mount, "type")), "tmpfs") << dir;
  }
}

TEST(OciSpecTest, ImageModeUsesAWritableRootWithoutHostBinds) {
  ContainerSpec spec = Spec();
  spec.image_rootfs = "/var/lib/drover/images/sha256-abc/rootfs";
  OciOptions options = Options();
  options.host_os = false;
  Json config = Build(spec, options);
  EXPECT_FALSE(JsonBool(At(config, {"root", "readonly"})));
  EXPECT_EQ(MountAt(config, "/usr"), nullptr);
  EXPECT_EQ(MountAt(config, "/etc"), nullptr);
  EXPECT_NE(MountAt(config, kContainerInitPath), nullptr);
}

TEST(OciSpecTest, StandardKernelMountsAndSizedShm) {
  Json config = Build(Spec());
  EXPECT_EQ(JsonString(*JsonFind(*MountAt(config, "/proc"), "type")), "proc");
  EXPECT_EQ(JsonString(*JsonFind(*MountAt(config, "/dev"), "type")), "tmpfs");
  EXPECT_EQ(JsonString(*JsonFind(*MountAt(config, "/dev/pts"), "type")), "devpts");
  EXPECT_EQ(JsonString(*JsonFind(*MountAt(config, "/dev/mqueue"), "type")), "mqueue");
  EXPECT_THAT(MountOptions(config, "/sys"), Contains("ro"));
  EXPECT_THAT(MountOptions(config, "/sys/fs/cgroup"), Contains("ro"));
  EXPECT_EQ(JsonString(*JsonFind(*MountAt(config, "/dev/shm"), "type")), "tmpfs");
  EXPECT_THAT(MountOptions(config, "/dev/shm"), Contains("size=524288k"));
}

TEST(OciSpecTest, AReadOnlyFileBindIsReadOnlyWithoutTheRecursiveOption) {
  // `rro` means nothing for a file (no submounts) and crun refuses it there; folders keep it.
  char path[] = "/tmp/drover-oci-file-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  ContainerSpec spec = Spec();
  spec.mounts = {{path, "/etc/hosts", true}, {"/tmp", "/data/tmp", true}};
  Json config = Build(spec);
  unlink(path);
  EXPECT_THAT(MountOptions(config, "/etc/hosts"), Contains("ro"));
  EXPECT_THAT(MountOptions(config, "/etc/hosts"), Not(Contains("rro")));
  EXPECT_THAT(MountOptions(config, "/etc/hosts"), Not(Contains("rw")));
  EXPECT_THAT(MountOptions(config, "/data/tmp"), IsSupersetOf({"ro", "rro"}));
}

TEST(OciSpecTest, JobFolderIsWritableAtJobAndUserBindsFollow) {
  ContainerSpec spec = Spec();
  spec.mounts = {{"/data/imagenet", "/data/in", true}, {"/scratch/j-42", "/scratch", false}};
  Json config = Build(spec);
  const Json* job = MountAt(config, "/job");
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(JsonString(*JsonFind(*job, "source")), "/var/lib/drover/jobs/j-42");
  EXPECT_THAT(MountOptions(config, "/job"), Contains("rw"));
  EXPECT_THAT(MountOptions(config, "/job"), Not(Contains("ro")));
  EXPECT_THAT(MountOptions(config, "/data/in"), IsSupersetOf({"ro", "rro"}));
  EXPECT_THAT(MountOptions(config, "/scratch"), Contains("rw"));
  // Parents come before children; user binds come last so they can sit under /job.
  std::vector<std::string> order;
  for (const Json& mount : JsonItems(At(config, {"mounts"}))) {
    order.push_back(JsonString(*JsonFind(mount, "destination")));
  }
  auto index = [&](const std::string& d) {
    return std::find(order.begin(), order.end(), d) - order.begin();
  };
  EXPECT_LT(index("/dev"), index("/dev/shm"));
  EXPECT_LT(index("/run"), index(kContainerDroverDir));
  EXPECT_LT(index(kContainerDroverDir), index(kContainerInitPath));
  EXPECT_LT(index("/job"), index("/scratch"));
}

TEST(OciSpecTest, InitBinaryAndStateDirLiveUnderTheirOwnTmpfs) {
  Json config = Build(Spec());
  EXPECT_EQ(JsonString(*JsonFind(*MountAt(config, kContainerDroverDir), "type")), "tmpfs");
  const Json* init = MountAt(config, kContainerInitPath);
  ASSERT_NE(init, nullptr);
  EXPECT_EQ(JsonString(*JsonFind(*init, "source")), "/usr/lib/drover/drover-init");
  EXPECT_THAT(MountOptions(config, kContainerInitPath), Contains("ro"));
  EXPECT_THAT(MountOptions(config, kContainerInitPath), Not(Contains("noexec")));
  EXPECT_THAT(MountOptions(config, kContainerStateDir), Contains("rw"));
}

TEST(OciSpecTest, DevicesAreCreatedAndAllowed) {
  OciOptions options = Options();
  options.devices = {{"/dev/nvidia0", 'c', 195, 0, 0666}};
  Json config = Build(Spec(), options);
  const Json& devices = At(config, {"linux", "devices"});
  ASSERT_EQ(JsonItems(devices).size(), 1u);
  EXPECT_EQ(JsonString(*JsonFind(JsonItems(devices)[0], "path")), "/dev/nvidia0");
  EXPECT_EQ(JsonInt(*JsonFind(JsonItems(devices)[0], "major")), 195);
  const Json& rules = At(config, {"linux", "resources", "devices"});
  ASSERT_EQ(JsonItems(rules).size(), 2u);
  EXPECT_FALSE(JsonBool(*JsonFind(JsonItems(rules)[0], "allow"))) << "deny everything first";
  EXPECT_TRUE(JsonBool(*JsonFind(JsonItems(rules)[1], "allow")));
  EXPECT_EQ(JsonInt(*JsonFind(JsonItems(rules)[1], "minor")), 0);
}

TEST(OciSpecTest, RefusesBadSpecsNamingTheField) {
  struct Case {
    const char* field;
    std::function<void(ContainerSpec*)> breaks;
  };
  std::vector<Case> cases = {
      {"container id", [](ContainerSpec* s) { s->id = "a/b"; }},
      {"container id", [](ContainerSpec* s) { s->id = ".."; }},
      {"bundle_dir", [](ContainerSpec* s) { s->bundle_dir = "relative"; }},
      {"job_dir", [](ContainerSpec* s) { s->job_dir = "/jobs/../etc"; }},
      {"cwd", [](ContainerSpec* s) { s->cwd = "code"; }},
      {"args", [](ContainerSpec* s) { s->args.clear(); }},
      {"env", [](ContainerSpec* s) { s->env.push_back("NOVALUE"); }},
      {"mounts",
       [](ContainerSpec* s) {
         s->mounts.push_back({"/data", "/", true});
       }},
      {"mounts",
       [](ContainerSpec* s) {
         s->mounts.push_back({"/data", "/run/drover/x", true});
       }},
      {"hostname", [](ContainerSpec* s) { s->hostname = "bad host"; }},
      {"cpus", [](ContainerSpec* s) { s->cpus = -1; }},
      {"memory_mib", [](ContainerSpec* s) { s->memory_mib = 1; }},
      {"shm_mib", [](ContainerSpec* s) { s->shm_mib = 0; }},
      {"devices", [](ContainerSpec* s) { s->devices.push_back({"/etc/passwd"}); }},
  };
  for (const Case& c : cases) {
    ContainerSpec spec = Spec();
    c.breaks(&spec);
    absl::StatusOr<Json> config = BuildOciConfig(spec, Options());
    ASSERT_FALSE(config.ok()) << c.field;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(c.field));
  }
}

TEST(JsonTest, EscapesWhatJsonRequires) {
  Json value = Json::object();
  value["s"] = std::string("quote\" back\\ nl\n tab\t ctl\x01 utf8 \xc3\xa9");
  EXPECT_EQ(DumpJson(value), "{\"s\":\"quote\\\" back\\\\ nl\\n tab\\t ctl\\u0001 utf8 \xc3\xa9\"}");
  absl::StatusOr<Json> back = ParseJson(DumpJson(value));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(JsonString(*JsonFind(*back, "s")), JsonString(*JsonFind(value, "s")));
}

TEST(JsonTest, ParsesWhatRuncPrints) {
  absl::StatusOr<Json> list = ParseJson(
      R"([{"ociVersion":"1.0.2-dev","id":"c1","pid":4242,"status":"running","bundle":"/b/c1",)"
      R"("rootfs":"/b/c1/rootfs","created":"2026-11-26T10:00:00.1Z","owner":"root"}])");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(JsonItems(*list).size(), 1u);
  EXPECT_EQ(JsonInt(*JsonFind(JsonItems(*list)[0], "pid")), 4242);
  EXPECT_EQ(JsonString(*JsonFind(JsonItems(*list)[0], "status")), "running");
  absl::StatusOr<Json> none = ParseJson("null\n");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(JsonItems(*none).empty());
}

TEST(JsonTest, DecodesUnicodeEscapes) {
  absl::StatusOr<Json> value = ParseJson(R"(["\u00e9\ud83d\ude00\/", -1.5e2, true, null])");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(JsonString(JsonItems(*value)[0]), "\xc3\xa9\xf0\x9f\x98\x80/");
  EXPECT_DOUBLE_EQ(JsonDouble(JsonItems(*value)[1]), -150);
  EXPECT_TRUE(JsonBool(JsonItems(*value)[2]));
  EXPECT_TRUE(JsonItems(*value)[3].is_null());
}

TEST(JsonTest, RefusesMalformedText) {
  for (const char* bad : {"", "{", "[1,]", "{\"a\" 1}", "\"abc", "tru", "[1] x", "\"\\x\"",
                          "\"\\ud800\"", "01a", "\"a\nb\""}) {
    EXPECT_FALSE(ParseJson(bad).ok()) << bad;
  }
  std::string deep(300, '[');
  EXPECT_FALSE(ParseJson(deep).ok());
}

}  // namespace
}  // namespace drover::agent
