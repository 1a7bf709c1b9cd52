#include "bench/container_baseline.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/launcher/init_command.h"
#include "common/json.h"
#include "agent/runtime/oci_spec.h"
#include "common/status_macros.h"

extern "C" char** environ;

namespace drover::bench {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

absl::Duration Since(SteadyClock::time_point start) {
  return absl::FromChrono(SteadyClock::now() - start);
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& path) {
  std::error_code error;
  fs::create_directories(path, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", path, ": ", error.message()));
  }
  return absl::OkStatus();
}

// The last lines of a log file, for error messages.
std::string TailOf(const std::string& path) {
  std::string text(absl::StripAsciiWhitespace(ReadText(path)));
  return text.size() > 600 ? text.substr(text.size() - 600) : text;
}


bool Succeeded(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

// Whether anything is mounted at or under `dir` in this mount namespace.
bool HasMountsUnder(const std::string& dir) {
  std::istringstream lines(ReadText("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(lines, line)) {
    if (absl::StrContains(line, absl::StrCat(" ", dir, "/")) ||
        absl::StrContains(line, absl::StrCat(" ", dir, " "))) {
      return true;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<int> Spawn(const std::vector<std::string>& argv, const std::string& log_path,
                          bool truncate) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | (truncate ? O_TRUNC : O_APPEND),
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run ", argv[0], ": ", strerror(error), "; is it installed?"));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return absl::InternalError(absl::StrCat("waitpid ", argv[0], ": ", strerror(errno)));
    }
  }
  return status;
}

std::string DefaultInitPath() {
  std::error_code error;
  fs::path self = fs::read_symlink("/proc/self/exe", error);
  for (const char* candidate :
       {"../agent/launcher/drover-init", "drover-init", "../lib/drover/drover-init"}) {
    fs::path path = self.parent_path() / candidate;
    if (fs::exists(path, error)) return fs::weakly_canonical(path, error).string();
  }
  return "/usr/local/lib/drover/drover-init";
}

absl::StatusOr<std::unique_ptr<ContainerBaseline>> ContainerBaseline::Open(
    ContainerBaselineOptions options) {
  if (options.work_dir.empty() || options.work_dir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "baseline folder '", options.work_dir, "' must be an absolute path on a real disk"));
  }
  if (options.init_binary.empty() || access(options.init_binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "drover-init '", options.init_binary,
        "' is not executable; build the drover-init target or pass --init"));
  }
  if (options.command.empty()) {
    return absl::InvalidArgumentError("the baseline needs a command to run");
  }
  if (!options.busybox.empty() && access(options.busybox.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("busybox '", options.busybox,
                     "' is not executable; install busybox-static or pass --busybox ''"));
  }
  if (geteuid() != 0) {
    return absl::FailedPreconditionError(
        "the container baselines run runc and need root; run drover-bench as root or pass "
        "--baseline-runs 0");
  }
  // runc resolves bind sources from the bundle: the binary's path must be absolute.
  std::error_code error;
  options.init_binary = fs::absolute(options.init_binary, error).string();
  auto baseline = std::unique_ptr<ContainerBaseline>(new ContainerBaseline(std::move(options)));
  const ContainerBaselineOptions& o = baseline->options_;
  for (const char* sub : {"/job/logs", "/job/outputs", "/runtime-bundle"}) {
    DROVER_RETURN_IF_ERROR(MakeDirs(o.work_dir + sub));
  }
  DROVER_ASSIGN_OR_RETURN(baseline->runtime_,
                          agent::RuncRuntime::Open({.runc_path = o.runc_path,
                                                    .root_dir = o.work_dir + "/runc",
                                                    .init_binary = o.init_binary,
                                                    .userns = o.userns}));
  DROVER_RETURN_IF_ERROR(baseline->PrepareSameConfigBundle("same-bundle", /*hardened=*/true));
  DROVER_RETURN_IF_ERROR(baseline->PrepareSameConfigBundle("plain-bundle", /*hardened=*/false));
  if (baseline->has_minimal()) DROVER_RETURN_IF_ERROR(baseline->PrepareMinimalBundle());
  return baseline;
}

ContainerBaseline::~ContainerBaseline() {
  runtime_.reset();
  // Never remove through a mount (the host skeleton binds /usr inside containers, though in
  // their own mount namespace; be safe).
  if (HasMountsUnder(options_.work_dir)) {
    std::fprintf(stderr, "drover-bench: something is still mounted under %s; not removing it\n",
                 options_.work_dir.c_str());
    return;
  }
  std::error_code error;
  fs::remove_all(options_.work_dir, error);
}

agent::ContainerSpec ContainerBaseline::Spec(const std::string& id) const {
  // As Attempt::BuildContainer (agent/attempt.cc) builds it for a host-image job without a
  // snapshot, one process.
  agent::ContainerSpec c;
  c.id = id;
  c.bundle_dir = options_.work_dir + "/runtime-bundle";
  c.job_dir = options_.work_dir + "/job";
  c.cwd = "/job";
  c.hostname = "bench";
  c.cpus = options_.cpus;
  c.memory_mib = options_.memory_mib;
  c.shm_mib = 64;
  for (const char* variable :
       {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
        "PYTHONUNBUFFERED=1", "DROVER_JOB_ID=j-bench", "DROVER_ATTEMPT=1", "DROVER_WORLD_SIZE=1",
        "DROVER_NODE_RANK=0", "DROVER_NODE_COUNT=1", "DROVER_OUTPUT_DIR=/job/outputs",
        "WORLD_SIZE=1", "NODE_RANK=0", "LOCAL_WORLD_SIZE=1"}) {
    c.env.push_back(variable);
  }
  agent::InitCommand init;
  init.first_rank = 0;
  init.count = 1;
  init.log_dir = "/job/logs";
  init.program = options_.command;
  c.args = init.ToArgs();
  return c;
}

absl::Status ContainerBaseline::PrepareSameConfigBundle(const std::string& name, bool hardened) {
  // What RuncRuntime::PrepareBundle makes for the host image, once.
  const std::string bundle = options_.work_dir + "/" + name;
  const std::string rootfs = bundle + "/rootfs";
  DROVER_RETURN_IF_ERROR(MakeDirs(bundle + "/state"));
  agent::OciOptions oci;
  oci.rootfs = "rootfs";
  oci.host_os = true;
  oci.init_binary = options_.init_binary;
  oci.state_dir = bundle + "/state";
  oci.cgroups_path = absl::StrCat("drover-bench-", name);
  oci.seccomp = hardened;
  if (hardened) {
    oci.userns = options_.userns;
    // As RuncRuntime gives them: what the container's root writes.
    for (const std::string& dir : {bundle + "/state", options_.work_dir + "/job"}) {
      if (lchown(dir.c_str(), oci.userns.host_id, oci.userns.host_id) != 0) {
        return absl::FailedPreconditionError(absl::StrCat("cannot chown ", dir, ": ", strerror(errno)));
      }
      std::error_code error;
      for (const auto& entry : fs::recursive_directory_iterator(dir, error)) {
        (void)lchown(entry.path().c_str(), oci.userns.host_id, oci.userns.host_id);
      }
    }
  }
  rlimit limit;
  oci.nofile_limit = 1048576;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_max != RLIM_INFINITY) {
    oci.nofile_limit = std::min<uint64_t>(oci.nofile_limit, limit.rlim_max);
  }
  for (const char* dir : {"usr", "etc", "tmp", "run", "var", "root", "proc", "dev", "sys", "job"}) {
    DROVER_RETURN_IF_ERROR(MakeDirs(absl::StrCat(rootfs, "/", dir)));
  }
  for (const char* name : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
    std::string host = absl::StrCat("/", name);
    struct stat st;
    if (lstat(host.c_str(), &st) != 0) continue;
    std::string inside = absl::StrCat(rootfs, "/", name);
    if (S_ISLNK(st.st_mode)) {
      std::error_code error;
      fs::create_symlink(fs::read_symlink(host, error), inside, error);
      if (error) {
        return absl::FailedPreconditionError(
            absl::StrCat("cannot create link ", inside, ": ", error.message()));
      }
    } else if (S_ISDIR(st.st_mode)) {
      DROVER_RETURN_IF_ERROR(MakeDirs(inside));
      oci.host_dir_binds.push_back(host);
    }
  }
  agent::ContainerSpec spec = Spec("drover-bench-same-config");
  spec.bundle_dir = bundle;
  absl::StatusOr<Json> config = agent::BuildOciConfig(spec, oci);
  if (!config.ok()) return config.status();
  return WriteText(bundle + "/config.json", DumpJson(*config, 2) + "\n");
}

absl::Status ContainerBaseline::PrepareMinimalBundle() {
  const std::string bundle = options_.work_dir + "/minimal-bundle";
  DROVER_RETURN_IF_ERROR(MakeDirs(bundle + "/rootfs/bin"));
  std::error_code error;
  fs::copy_file(options_.busybox, bundle + "/rootfs/bin/busybox", error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot copy ", options_.busybox, ": ", error.message()));
  }
  const std::string log = options_.work_dir + "/runc-spec.log";
  DROVER_ASSIGN_OR_RETURN(int status, Spawn({options_.runc_path, "spec", "--bundle", bundle}, log));
  if (!Succeeded(status)) {
    return absl::FailedPreconditionError(absl::StrCat("runc spec failed: ", TailOf(log)));
  }
  DROVER_ASSIGN_OR_RETURN(Json config, ParseJson(ReadText(bundle + "/config.json")));
  Json* process = JsonFind(config, "process");
  Json* linux = JsonFind(config, "linux");
  if (process == nullptr || linux == nullptr) {
    return absl::FailedPreconditionError("runc spec wrote a config without process or linux");
  }
  (*process)["terminal"] = false;
  (*process)["args"] = Json::array({"/bin/busybox", "true"});
  // Relative: below this process's cgroup, as the agent's containers are.
  (*linux)["cgroupsPath"] = "drover-bench-minimal";
  return WriteText(bundle + "/config.json", DumpJson(config, 2) + "\n");
}

absl::StatusOr<RuntimeRun> ContainerBaseline::RunRuntime() {
  std::string id = absl::StrCat("drover-bench-rt-", getpid(), "-", next_id_++);
  agent::ContainerSpec spec = Spec(id);
  RuntimeRun run;
  SteadyClock::time_point start = SteadyClock::now();
  if (absl::Status s = runtime_->Create(spec); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("baseline container: ", s.message()));
  }
  run.create = Since(start);
  SteadyClock::time_point at = SteadyClock::now();
  if (absl::Status s = runtime_->Start(id); !s.ok()) {
    (void)runtime_->Delete(id);
    return absl::UnavailableError(absl::StrCat("baseline container: ", s.message()));
  }
  run.start = Since(at);
  at = SteadyClock::now();
  absl::StatusOr<agent::ContainerExit> exit = runtime_->Wait(id, 60000);
  run.wait = Since(at);
  std::string container_log = TailOf(agent::RuncRuntime::ContainerLogPath(spec.bundle_dir));
  at = SteadyClock::now();
  absl::Status deleted = runtime_->Delete(id);
  run.remove = Since(at);
  run.total = Since(start);
  if (!exit.ok()) {
    return absl::UnavailableError(absl::StrCat("baseline container: ", exit.status().message()));
  }
  if (exit->exit_code != 0) {
    return absl::UnavailableError(absl::StrCat(
        "baseline container: drover-init exited with code ", exit->exit_code, " signal ",
        exit->signal, "; its output: ", container_log, "; rank 0 stderr: ",
        TailOf(options_.work_dir + "/job/logs/rank-0.stderr")));
  }
  if (!deleted.ok()) {
    return absl::UnavailableError(absl::StrCat("baseline container: ", deleted.message()));
  }
  return run;
}

absl::StatusOr<absl::Duration> ContainerBaseline::RuncRun(const std::string& bundle,
                                                          const std::string& id) {
  const std::string log = options_.work_dir + "/runc-run.log";
  std::error_code error;
  fs::remove(log, error);
  SteadyClock::time_point start = SteadyClock::now();
  DROVER_ASSIGN_OR_RETURN(int status, Spawn({options_.runc_path, "--root", options_.work_dir + "/runc",
                                             "run", "--bundle", bundle, id},
                                            log));
  absl::Duration took = Since(start);
  if (!Succeeded(status)) {
    // `runc run` exits with the container's code, or 1 with its own error on stderr.
    (void)Spawn({options_.runc_path, "--root", options_.work_dir + "/runc", "delete", "--force", id},
                log);
    return absl::UnavailableError(absl::StrCat("runc run of ", bundle, " failed (wait status ",
                                               status, "): ", TailOf(log)));
  }
  return took;
}

absl::StatusOr<absl::Duration> ContainerBaseline::RunRuncSameConfig() {
  return RuncRun(options_.work_dir + "/same-bundle",
                 absl::StrCat("drover-bench-run-", getpid(), "-", next_id_++));
}

absl::StatusOr<absl::Duration> ContainerBaseline::RunRuncSameConfigUnhardened() {
  return RuncRun(options_.work_dir + "/plain-bundle",
                 absl::StrCat("drover-bench-plain-", getpid(), "-", next_id_++));
}

absl::StatusOr<absl::Duration> ContainerBaseline::RunRuncMinimal() {
  if (!has_minimal()) {
    return absl::FailedPreconditionError("no busybox was given for the minimal bundle");
  }
  return RuncRun(options_.work_dir + "/minimal-bundle",
                 absl::StrCat("drover-bench-min-", getpid(), "-", next_id_++));
}

}  // namespace drover::bench
