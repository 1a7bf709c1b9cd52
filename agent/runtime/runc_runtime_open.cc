// RuncRuntime (runc_runtime.h), opening the runtime and its command line: Open (the
// runtime's choice and version floor, the root and skeleton folders, the nofile limit),
// running runc or crun and reading their errors, `state`, and reaping the zombies crun
// leaves. The containers' lifecycle is in runc_runtime.cc.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/runtime/cgroups.h"
#include "agent/runtime/oci_runtime_choice.h"
#include "agent/runtime/process.h"
#include "agent/runtime/runc_runtime.h"
#include "agent/runtime/runc_runtime_internal.h"
#include "agent/runtime/runtime_files.h"
#include "common/json.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace drover::agent {
namespace runc_internal {

std::string Tail(absl::string_view text, size_t max) {
  text = absl::StripAsciiWhitespace(text);
  return std::string(text.size() > max ? text.substr(text.size() - max) : text);
}

// runc logs errors as `time="..." level=error msg="..."`: the last msg, unquoted, else the
// tail of the text.
std::string RuncMessage(absl::string_view text) {
  size_t at = text.rfind("msg=\"");
  if (at == absl::string_view::npos) return Tail(text);
  std::string message;
  for (size_t i = at + 5; i < text.size(); ++i) {
    if (text[i] == '"') return message;
    if (text[i] == '\\' && i + 1 < text.size()) ++i;
    message.push_back(text[i]);
  }
  return Tail(text);
}

}  // namespace runc_internal

namespace {

namespace fs = std::filesystem;
using runc_internal::RuncMessage;

// runc refuses rlimits above its own hard limit; 1M is what most distributions allow.
constexpr uint64_t kMaxNofile = 1048576;

// crun's `run --detach` and `create` leave an intermediate crun process (in a session of its
// own) that exits after crun itself has: it is reparented to this process, a child
// subreaper, and would stay a zombie per container. Reaps the zombie children named crun in
// a session other than this process's that are no container's PID 1 (`keep`). Nothing else
// is waited for: Wait() owns PID 1's status, and RunProcess and RunStreaming wait for their
// own children, which share this process's session (rclone's, in their own, are not named
// crun). Orphans are reparented to the subreaper's first live thread, its main thread
// (alive as long as the agent): only that thread's children are read, not every thread's
// (three system calls per thread of the agent, twice per container).
void ReapCrunOrphans(const std::vector<pid_t>& keep) {
  const pid_t own_session = getsid(0);
  absl::StatusOr<std::string> children =
      ReadFile(absl::StrCat("/proc/self/task/", getpid(), "/children"));
  if (!children.ok()) return;
  for (absl::string_view word : absl::StrSplit(*children, ' ', absl::SkipEmpty())) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(word), &pid) || pid <= 0) continue;
    if (std::find(keep.begin(), keep.end(), pid) != keep.end()) continue;
    absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
    if (!stat.ok()) continue;
    size_t open = stat->find('(');
    size_t close = stat->rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    absl::string_view comm = absl::string_view(*stat).substr(open + 1, close - open - 1);
    // After the name: state, ppid, pgrp, session.
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::string_view(*stat).substr(close + 1), ' ', absl::SkipEmpty());
    pid_t session = 0;
    if (comm != "crun" || fields.size() < 4 || fields[0] != "Z" ||
        !absl::SimpleAtoi(fields[3], &session) || session == own_session) {
      continue;
    }
    (void)waitpid(pid, nullptr, WNOHANG);
  }
}

}  // namespace

std::string RuncRuntime::CgroupsPath(absl::string_view id) const {
  std::string relative =
      options_.cgroup_parent.empty() ? std::string(id) : absl::StrCat(options_.cgroup_parent, "/", id);
  if (kind_ == OciRuntimeKind::kCrun) return absl::StrCat(cgroup_base_, "/", relative);
  return relative;
}

absl::StatusOr<std::unique_ptr<RuncRuntime>> RuncRuntime::Open(RuncOptions options) {
  if (options.root_dir.empty() || options.root_dir[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("runc root '", options.root_dir, "' must be an absolute path"));
  }
  if (!options.cgroup_parent.empty() && options.cgroup_parent[0] == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("cgroup parent '", options.cgroup_parent,
                     "' must be relative (an absolute cgroup path escapes the agent's cgroup)"));
  }
  if (!options.init_binary.empty() && access(options.init_binary.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("drover-init '", options.init_binary,
                                                      "' is not executable: ", strerror(errno)));
  }
  std::error_code error;
  fs::create_directories(options.root_dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create runc root '", options.root_dir, "': ", error.message()));
  }
  chmod(options.root_dir.c_str(), 0700);
  // Skeletons half made by an earlier agent process (PrepareBundle renames whole ones into
  // place) are of no use.
  for (const fs::directory_entry& entry : fs::directory_iterator(options.skeleton_dir, error)) {
    if (absl::StartsWith(entry.path().filename().string(), ".partial-")) {
      std::error_code ignored;
      fs::remove_all(entry.path(), ignored);
    }
  }
  error.clear();
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot become a child subreaper: ", strerror(errno)));
  }
  rlimit limit;
  uint64_t nofile = kMaxNofile;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_max != RLIM_INFINITY) {
    nofile = std::min<uint64_t>(nofile, limit.rlim_max);
  }
  auto runtime = std::unique_ptr<RuncRuntime>(new RuncRuntime(std::move(options), nofile));
  const CgroupLayout layout = ProbeCgroupLayout();
  const bool automatic = runtime->options_.runc_path == kAutoOciRuntime;
  std::string reason = "named with --runc";
  if (automatic) {
    OciRuntimeProbe probe = ProbeOciRuntimes(
        runtime->options_.root_dir,
        [&runtime](const std::vector<std::string>& argv) -> absl::StatusOr<std::string> {
          DROVER_ASSIGN_OR_RETURN(ProcessResult result, runtime->RunRuntime(argv, ""));
          if (!result.ok()) return absl::UnavailableError(result.Said());
          return result.out;
        });
    OciRuntimeChoice choice = ChooseOciRuntime(probe);
    runtime->options_.runc_path = choice.path;
    reason = choice.reason;
  }
  absl::StatusOr<std::string> version = runtime->Runc({"--version"});
  if (!version.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "runc '", runtime->options_.runc_path,
        "' does not run (install Debian's runc or set its path): ", version.status().message()));
  }
  OciRuntimeVersion checked = CheckOciRuntimeVersion(*version);
  if (!checked.floor.ok()) {
    if (!runtime->options_.allow_unpatched_runc) {
      return absl::FailedPreconditionError(
          absl::StrCat("runc '", runtime->options_.runc_path, "': ", checked.floor.message()));
    }
    Log(LogLevel::kWarning, "runc_unpatched_allowed",
        {{"runc", runtime->options_.runc_path}, {"problem", checked.floor.message()}});
  }
  runtime->kind_ = checked.kind;
  runtime->description_ = OciRuntimeDescription(*version);
  if (checked.kind == OciRuntimeKind::kCrun) {
    absl::StatusOr<std::string> own = ReadFile("/proc/self/cgroup");
    if (!own.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("crun: cannot read this process's cgroups: ", own.status().message()));
    }
    runtime->cgroup_base_ = CrunCgroupBase(*own);
    if (CrunNeedsCgroup2Hidden(layout)) runtime->hide_mount_ = std::string(kHybridCgroup2Mount);
  }
  Log(LogLevel::kInfo, "oci_runtime",
      {{"runtime", runtime->description_},
       {"path", runtime->options_.runc_path},
       {"chosen", automatic ? "auto" : "--runc"},
       {"reason", reason},
       {"hidden", runtime->hide_mount_.empty() ? "-" : runtime->hide_mount_}});
  return runtime;
}

absl::StatusOr<ProcessResult> RuncRuntime::RunRuntime(const std::vector<std::string>& argv,
                                                      const std::string& output_path) {
  if (options_.run_process) return options_.run_process(argv, options_.command_timeout, output_path);
  return RunProcess(argv, options_.command_timeout, output_path, "", {.hide_mount = hide_mount_});
}

absl::StatusOr<std::string> RuncRuntime::Runc(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {options_.runc_path, "--root", options_.root_dir};
  argv.insert(argv.end(), args.begin(), args.end());
  DROVER_ASSIGN_OR_RETURN(ProcessResult result, RunRuntime(argv, ""));
  if (result.ok()) return result.out;
  std::string what = absl::StrCat("runc ", args.empty() ? "" : args[0]);
  if (result.timed_out) {
    return absl::UnavailableError(absl::StrCat(what, " did not finish within ",
                                               absl::FormatDuration(options_.command_timeout)));
  }
  std::string message = RuncMessage(result.err.empty() ? result.out : result.err);
  // runc: "container does not exist"; crun: "error opening file `<root>/<id>/status`: No
  // such file or directory".
  if (absl::StrContains(message, "does not exist") || absl::StrContains(message, "not exist") ||
      (absl::StrContains(message, absl::StrCat("`", options_.root_dir, "/")) &&
       absl::StrContains(message, "/status`: No such file or directory"))) {
    return absl::NotFoundError(absl::StrCat(what, ": ", message));
  }
  return absl::UnavailableError(absl::StrCat(what, " failed: ", message));
}

absl::StatusOr<RuncRuntime::RuncState> RuncRuntime::State(absl::string_view id) {
  DROVER_ASSIGN_OR_RETURN(std::string out, Runc({"state", std::string(id)}));
  DROVER_ASSIGN_OR_RETURN(Json json, ParseJson(out));
  RuncState state;
  if (const Json* status = JsonFind(json, "status")) state.status = JsonString(*status);
  if (const Json* pid = JsonFind(json, "pid")) state.pid = static_cast<pid_t>(JsonInt(*pid));
  if (const Json* bundle = JsonFind(json, "bundle")) state.bundle = JsonString(*bundle);
  if (state.status == "stopped") state.pid = 0;
  return state;
}

void RuncRuntime::ReapOrphans() {
  if (kind_ != OciRuntimeKind::kCrun) return;
  std::vector<pid_t> keep;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, record] : records_) {
      if (record->pid > 0) keep.push_back(record->pid);
    }
  }
  ReapCrunOrphans(keep);
}

}  // namespace drover::agent
