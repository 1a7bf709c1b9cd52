// RuncRuntime (runc_runtime.h): the containers' lifecycle (create, start, exec, signal,
// wait, delete, inspect, list), the records of this process's containers and exit watching.
// Opening the runtime and running its command line are in runc_runtime_open.cc, the
// bundle's preparation in runc_bundle.cc, cgroup reading in cgroups.cc, the mount table in
// mountinfo.cc.
#include "agent/runtime/runc_runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/launcher/init_files.h"
#include "agent/launcher/init_files_read.h"
#include "agent/runtime/cgroups.h"
#include "agent/runtime/oci_runtime_choice.h"
#include "common/json.h"
#include "agent/runtime/process.h"
#include "agent/runtime/runc_bundle.h"
#include "agent/runtime/runc_runtime_internal.h"
#include "agent/runtime/runtime_files.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;
using runc_internal::RuncMessage;
using runc_internal::Tail;

// How long Delete() waits for a killed PID 1 to go away.
constexpr absl::Duration kKillWait = absl::Seconds(15);
// How long Signal() waits for a just-started PID 1 to take signals (AwaitSignalReady).
constexpr absl::Duration kSignalReadyWait = absl::Seconds(2);

// The last `max_bytes` of the file at `path`. For container.log, which the container's
// processes can write to without bound (PID 1's stdout and stderr): never read whole.
absl::StatusOr<std::string> ReadFileTail(const std::string& path, size_t max_bytes = 64 << 10) {
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(ErrnoText("cannot read", path));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::NotFoundError(absl::StrCat("cannot read ", path, ": not a regular file"));
  }
  off_t from = st.st_size > static_cast<off_t>(max_bytes) ? st.st_size - max_bytes : 0;
  std::string text(static_cast<size_t>(st.st_size - from), '\0');
  ssize_t n = pread(fd, text.data(), text.size(), from);
  close(fd);
  text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return text;
}

ContainerExit FromWaitStatus(int status) {
  ContainerExit exit;
  if (WIFEXITED(status)) {
    exit.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    exit.signal = WTERMSIG(status);
  }
  return exit;
}

// drover-init's exit file in the container's state folder (read by init_files_read.h, never
// through a link or from a fifo: the folder is writable from inside the container);
// exit_code -1 / SIGKILL when it is missing (PID 1 was not drover-init, or died before it
// could write).
ContainerExit FromExitFile(const std::string& bundle_dir) {
  ContainerExit exit;
  exit.signal = SIGKILL;
  if (std::optional<ExitRecord> record = ReadExitRecord(bundle_dir + "/state", "init.exit")) {
    exit.exit_code = record->exit_code;
    exit.signal = record->signal;
  }
  return exit;
}

// PID 1 of a PID namespace drops every signal it neither blocks nor catches, even one sent
// from outside (SIGKILL aside). Right after `runc start`, PID 1 may still be runc's init
// (which would die of it with its own exit code) or its program may not have set up its
// signals yet, so a SIGTERM sent at once could be lost. Waits (at most until `deadline`,
// reading /proc/<pid>/status, which costs microseconds, only in that short window) until
// `pid` runs its own program and catches or blocks `signal`. drover-init installs handlers
// for what it takes because a process inside sigtimedwait(2) shows no blocked signals.
// Returns early when the process is gone; a PID 1 that never catches the signal costs the
// whole wait.
void AwaitSignalReady(pid_t pid, int signal, absl::Time deadline) {
  if (pid <= 0 || signal <= 0 || signal >= 64 || signal == SIGKILL || signal == SIGSTOP) return;
  const uint64_t bit = uint64_t{1} << (signal - 1);
  const std::string path = absl::StrCat("/proc/", pid, "/status");
  absl::Duration pause = absl::Microseconds(200);
  while (absl::Now() < deadline) {
    absl::StatusOr<std::string> status = ReadFile(path);
    if (!status.ok()) return;
    bool runc_init = false;
    uint64_t blocked = 0, caught = 0;
    for (absl::string_view line : absl::StrSplit(*status, '\n', absl::SkipEmpty())) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(line, absl::MaxSplits(':', 1));
      absl::string_view value = absl::StripAsciiWhitespace(kv.second);
    // runc's init is `runc:[2:INIT]`; crun's child keeps crun's name until it execs.
    if (kv.first == "Name") runc_init = absl::StartsWith(value, "runc:") || value == "crun";
      if (kv.first == "State" && absl::StartsWith(value, "Z")) return;
      if (kv.first == "SigBlk") (void)absl::SimpleHexAtoi(value, &blocked);
      if (kv.first == "SigCgt") (void)absl::SimpleHexAtoi(value, &caught);
    }
    if (!runc_init && ((blocked | caught) & bit) != 0) return;
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(10));
  }
}

bool IsEmptyDir(const std::string& path) {
  std::error_code error;
  return fs::is_directory(path, error) && fs::is_empty(path, error) && !error;
}

}  // namespace

std::string RuncRuntime::ContainerLogPath(absl::string_view bundle_dir) {
  return absl::StrCat(bundle_dir, "/container.log");
}

std::string RuncRuntime::ExitFilePath(absl::string_view bundle_dir) {
  return absl::StrCat(bundle_dir, "/state/init.exit");
}

absl::StatusOr<std::shared_ptr<RuncRuntime::Record>> RuncRuntime::Find(absl::string_view id) {
  {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(id);
    if (it != records_.end()) return it->second;
  }
  // Not created by this process (the agent restarted): what runc knows, plus the OOM file
  // recorded in the bundle at create time.
  absl::StatusOr<RuncState> state = State(id);
  if (!state.ok()) {
    if (absl::IsNotFound(state.status())) {
      return absl::NotFoundError(absl::StrCat("container '", id, "' not found"));
    }
    return state.status();
  }
  auto record = std::make_shared<Record>();
  record->id = std::string(id);
  record->bundle_dir = state->bundle;
  record->pid = state->pid;
  record->created = true;
  absl::StatusOr<std::string> oom = ReadFile(absl::StrCat(state->bundle, "/state.oom_file"));
  if (oom.ok()) record->oom_file = std::string(absl::StripAsciiWhitespace(*oom));
  absl::StatusOr<std::string> cgroups = ReadFile(absl::StrCat(state->bundle, "/state.cgroups"));
  if (cgroups.ok()) record->cgroups = ParseCgroupDirs(*cgroups);
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = records_.emplace(std::string(id), record);
  return it->second;
}

absl::Status RuncRuntime::Create(const ContainerSpec& spec) {
  return CreateContainer(spec, /*start=*/false);
}

absl::Status RuncRuntime::Run(const ContainerSpec& spec) {
  return CreateContainer(spec, /*start=*/true);
}

absl::Status RuncRuntime::CreateContainer(const ContainerSpec& spec, bool start) {
  DROVER_RETURN_IF_ERROR(ValidateContainerSpec(spec));
  ReapOrphans();  // those of earlier containers, which have surely exited by now
  if (!IsEmptyDir(spec.bundle_dir)) {
    return absl::InvalidArgumentError(absl::StrCat("container '", spec.id, "': bundle_dir '",
                                                   spec.bundle_dir, "' must exist and be empty"));
  }
  auto record = std::make_shared<Record>();
  record->id = spec.id;
  record->bundle_dir = spec.bundle_dir;
  {
    absl::MutexLock lock(&mu_);
    if (!records_.emplace(spec.id, record).second) {
      return absl::AlreadyExistsError(absl::StrCat("container '", spec.id, "' already exists"));
    }
  }
  auto forget = [&] {
    absl::MutexLock lock(&mu_);
    records_.erase(spec.id);
  };
  // runc keeps each container's state in `<root>/<id>`; asking `runc state` would cost a
  // runc start-up (about 20 ms) on every create.
  if (access(absl::StrCat(options_.root_dir, "/", spec.id).c_str(), F_OK) == 0) {
    forget();
    return absl::AlreadyExistsError(
        absl::StrCat("container '", spec.id, "' already exists in runc root ", options_.root_dir));
  }

  OciOptions oci;
  oci.init_binary = options_.init_binary;
  oci.cgroups_path = CgroupsPath(spec.id);
  oci.nofile_limit = nofile_limit_;
  oci.userns = options_.userns;
  oci.seccomp = options_.seccomp;
  absl::Status prepared = PrepareBundle(spec, std::move(oci), options_.skeleton_dir);
  if (!prepared.ok()) {
    (void)CleanBundle(spec.bundle_dir);
    forget();
    return prepared;
  }

  const std::string log_path = ContainerLogPath(spec.bundle_dir);
  const std::string pid_path = spec.bundle_dir + "/runc.pid";
  std::vector<std::string> argv = {options_.runc_path, "--root", options_.root_dir};
  if (start) {
    argv.insert(argv.end(), {"run", "--detach"});
  } else {
    argv.push_back("create");
  }
  argv.insert(argv.end(), {"--bundle", spec.bundle_dir, "--pid-file", pid_path, spec.id});
  const char* command = start ? "runc run" : "runc create";
  absl::StatusOr<ProcessResult> result = RunRuntime(argv, log_path);
  absl::Status created = result.status();
  if (created.ok() && !result->ok()) {
    absl::StatusOr<std::string> log = ReadFileTail(log_path);
    created = absl::UnavailableError(absl::StrCat("container '", spec.id, "': ", command,
                                                  " failed", result->timed_out ? " (timed out)" : "",
                                                  ": ", log.ok() ? RuncMessage(*log) : ""));
  }
  pid_t pid = 0;
  if (created.ok()) {
    absl::StatusOr<std::string> pid_text = ReadFile(pid_path);
    int value = 0;
    if (!pid_text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*pid_text), &value) ||
        value <= 0) {
      created = absl::UnavailableError(
          absl::StrCat("container '", spec.id, "': ", command, " wrote no pid to ", pid_path));
    }
    pid = value;
  }
  if (!created.ok()) {
    // Whatever runc left of this id; a clash with an existing container was refused above.
    (void)Runc({"delete", "--force", spec.id});
    (void)CleanBundle(spec.bundle_dir);
    forget();
    return created;
  }

  CgroupDirs cgroups = FindCgroups(pid);
  std::string oom_file = OomFileOf(cgroups);
  if (!oom_file.empty()) (void)WriteFile(spec.bundle_dir + "/state.oom_file", oom_file + "\n");
  (void)WriteFile(spec.bundle_dir + "/state.cgroups", FormatCgroupDirs(cgroups));
  {
    absl::MutexLock lock(&mu_);
    record->pid = pid;
    record->created = true;
    record->oom_file = oom_file;
    record->cgroups = std::move(cgroups);
  }
  Log(LogLevel::kDebug, start ? "container_started" : "container_created",
      {{"id", spec.id},
       {"pid", pid},
       {"image", spec.image_rootfs.empty() ? "host" : spec.image_rootfs}});
  return absl::OkStatus();
}

absl::Status RuncRuntime::Start(absl::string_view id) {
  DROVER_ASSIGN_OR_RETURN(std::shared_ptr<Record> record, Find(id));
  absl::StatusOr<std::string> out = Runc({"start", std::string(id)});
  if (!out.ok()) {
    return absl::Status(out.status().code(),
                        absl::StrCat("container '", id, "': ", out.status().message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<pid_t> RuncRuntime::Pid(absl::string_view id) {
  DROVER_ASSIGN_OR_RETURN(std::shared_ptr<Record> record, Find(id));
  absl::MutexLock lock(&mu_);
  if (record->exit.has_value() || record->pid <= 0) {
    return absl::FailedPreconditionError(absl::StrCat("container '", id, "' has exited"));
  }
  return record->pid;
}

absl::StatusOr<ContainerStats> RuncRuntime::Stats(absl::string_view id) {
  absl::StatusOr<std::shared_ptr<Record>> record = Find(id);
  if (!record.ok()) return absl::NotFoundError(record.status().message());
  pid_t pid;
  CgroupDirs cgroups;
  {
    absl::MutexLock lock(&mu_);
    if ((*record)->exit.has_value() || (*record)->pid <= 0) {
      return absl::NotFoundError(absl::StrCat("container '", id, "' has exited"));
    }
    pid = (*record)->pid;
    cgroups = (*record)->cgroups;
  }
  // The folders found when the container was created (or read back from its bundle by a
  // later agent process): not looked up again in /proc at every sample.
  if (cgroups.v1.empty() && cgroups.v2.empty()) cgroups = FindCgroups(pid);
  ContainerStats stats = ReadCgroupStats(cgroups);
  if (stats.memory_bytes < 0 || stats.cpu_ns < 0) {
    return absl::UnavailableError(absl::StrCat("container '", id, "': cannot read its cgroup's ",
                                               stats.memory_bytes < 0 ? "memory" : "cpu",
                                               " usage"));
  }
  return stats;
}

absl::StatusOr<int> RuncRuntime::Exec(absl::string_view id, const std::vector<std::string>& args,
                                      const std::function<void(bool, absl::string_view)>& output,
                                      const std::function<bool()>& stop) {
  DROVER_ASSIGN_OR_RETURN(std::shared_ptr<Record> record, Find(id));
  std::vector<std::string> argv = {options_.runc_path, "--root", options_.root_dir, "exec",
                                   std::string(id)};
  argv.insert(argv.end(), args.begin(), args.end());
  DROVER_ASSIGN_OR_RETURN(int status, RunStreaming(argv, output, stop, OnStop::kLeave,
                                                   {.hide_mount = hide_mount_}));
  // runc exec exits with the process's code (and 255 with its own message on stderr when
  // it could not start it).
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

absl::Status RuncRuntime::Signal(absl::string_view id, int signal, bool all) {
  DROVER_ASSIGN_OR_RETURN(std::shared_ptr<Record> record, Find(id));
  pid_t pid;
  {
    absl::MutexLock lock(&mu_);
    pid = record->exit.has_value() ? 0 : record->pid;
  }
  AwaitSignalReady(pid, signal, absl::Now() + kSignalReadyWait);
  std::vector<std::string> args = {"kill"};
  if (all) args.push_back("--all");
  args.push_back(std::string(id));
  args.push_back(absl::StrCat(signal));
  absl::StatusOr<std::string> out = Runc(args);
  if (!out.ok()) {
    absl::string_view message = out.status().message();
    // crun: "kill container: No such process".
    if (absl::StrContains(message, "not running") ||
        absl::StrContains(message, "process already finished") ||
        absl::StrContains(message, "No such process")) {
      return absl::FailedPreconditionError(absl::StrCat("container '", id, "' is not running"));
    }
    return absl::Status(out.status().code(), absl::StrCat("container '", id, "': ", message));
  }
  return absl::OkStatus();
}

absl::StatusOr<ContainerExit> RuncRuntime::AwaitExit(const std::shared_ptr<Record>& record,
                                                     absl::Time deadline, int wake_fd) {
  pid_t pid;
  {
    absl::MutexLock lock(&mu_);
    if (record->exit.has_value()) return *record->exit;
    pid = record->pid;
  }
  while (true) {
    if (pid > 0 && !WaitPidExit(pid, deadline, wake_fd)) {
      return absl::DeadlineExceededError(
          absl::StrCat("container '", record->id, "' still runs (pid ", pid, ")"));
    }
    absl::MutexLock lock(&mu_);
    if (record->exit.has_value()) return *record->exit;  // another thread reaped it
    ContainerExit exit;
    if (pid > 0) {
      int status = 0;
      pid_t done = waitpid(pid, &status, WNOHANG);
      if (done == 0) continue;  // the pidfd said it exited; the zombie is not there yet
      exit = done == pid ? FromWaitStatus(status) : FromExitFile(record->bundle_dir);
    } else {
      exit = FromExitFile(record->bundle_dir);
    }
    exit.oom_killed = ReadOomKilled(record->oom_file);
    exit.usage = ReadFinalUsage(record->cgroups);
    if (exit.exit_code != 0) {
      // What PID 1 itself said last (drover-init's own errors), for the failure message.
      absl::StatusOr<std::string> log = ReadFileTail(ContainerLogPath(record->bundle_dir));
      if (log.ok()) {
        absl::string_view text = absl::StripTrailingAsciiWhitespace(*log);
        size_t line = text.rfind('\n');
        exit.last_message = Tail(line == absl::string_view::npos ? text : text.substr(line + 1));
      }
    }
    record->exit = exit;
    return exit;
  }
}

absl::StatusOr<ContainerExit> RuncRuntime::Wait(absl::string_view id, int timeout_ms) {
  absl::Time deadline =
      timeout_ms < 0 ? absl::InfiniteFuture() : absl::Now() + absl::Milliseconds(timeout_ms);
  DROVER_ASSIGN_OR_RETURN(std::shared_ptr<Record> record, Find(id));
  return AwaitExit(record, deadline);
}

absl::StatusOr<ContainerExit> RuncRuntime::WaitOrWake(absl::string_view id, int timeout_ms,
                                                      int wake_fd) {
  absl::Time deadline =
      timeout_ms < 0 ? absl::InfiniteFuture() : absl::Now() + absl::Milliseconds(timeout_ms);
  DROVER_ASSIGN_OR_RETURN(std::shared_ptr<Record> record, Find(id));
  return AwaitExit(record, deadline, wake_fd);
}

absl::Status RuncRuntime::Delete(absl::string_view id) {
  std::shared_ptr<Record> record;
  {
    absl::StatusOr<std::shared_ptr<Record>> found = Find(id);
    if (!found.ok()) return absl::IsNotFound(found.status()) ? absl::OkStatus() : found.status();
    record = *found;
  }
  bool exited;
  {
    absl::MutexLock lock(&mu_);
    exited = record->exit.has_value();
  }
  if (!exited) {
    // PID 1 dies with SIGKILL, and with it everything in its PID namespace. An error here
    // (it exited meanwhile, or was never started) is fine: AwaitExit() tells.
    (void)Runc({"kill", std::string(id), "KILL"});
    // Reap PID 1 (our child) and keep its exit for a Wait() that is still watching.
    absl::StatusOr<ContainerExit> exit = AwaitExit(record, absl::Now() + kKillWait);
    if (!exit.ok()) {
      return absl::UnavailableError(absl::StrCat(
          "container '", id, "' did not die after SIGKILL: ", exit.status().message()));
    }
  }
  absl::StatusOr<std::string> deleted = Runc({"delete", "--force", std::string(id)});
  ReapOrphans();
  if (!deleted.ok() && !absl::IsNotFound(deleted.status())) return deleted.status();
  DROVER_RETURN_IF_ERROR(CleanBundle(record->bundle_dir));
  {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(id);
    if (it != records_.end() && it->second == record) records_.erase(it);
  }
  Log(LogLevel::kDebug, "container_deleted", {{"id", id}});
  return absl::OkStatus();
}

absl::StatusOr<ContainerState> RuncRuntime::Inspect(absl::string_view id) {
  absl::StatusOr<RuncState> state = State(id);
  if (!state.ok()) {
    if (absl::IsNotFound(state.status())) {
      return absl::NotFoundError(absl::StrCat("container '", id, "' not found"));
    }
    return absl::UnavailableError(
        absl::StrCat("container '", id, "': runc state: ", state.status().message()));
  }
  if (state->status == "created") return ContainerState::kCreated;
  if (state->status == "running" || state->status == "paused") return ContainerState::kRunning;
  if (state->status == "stopped") return ContainerState::kStopped;
  return absl::UnavailableError(
      absl::StrCat("container '", id, "': runc state says '", state->status, "'"));
}

absl::StatusOr<std::vector<ContainerInfo>> RuncRuntime::List() {
  DROVER_ASSIGN_OR_RETURN(std::string out, Runc({"list", "--format", "json"}));
  DROVER_ASSIGN_OR_RETURN(Json json, ParseJson(out));
  std::vector<ContainerInfo> containers;
  for (const Json& item : JsonItems(json)) {  // runc prints `null` when there are none
    ContainerInfo info;
    if (const Json* id = JsonFind(item, "id")) info.id = JsonString(*id);
    std::string status;
    if (const Json* s = JsonFind(item, "status")) status = JsonString(*s);
    if (const Json* pid = JsonFind(item, "pid"); pid != nullptr && status != "stopped") {
      info.pid = static_cast<pid_t>(JsonInt(*pid));
    }
    info.running = status == "running";
    if (const Json* bundle = JsonFind(item, "bundle")) info.bundle_dir = JsonString(*bundle);
    containers.push_back(std::move(info));
  }
  return containers;
}

}  // namespace drover::agent
