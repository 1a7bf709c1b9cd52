#include "agent/runtime/runc_runtime.h"

#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/launcher/init_files.h"
#include "agent/runtime/json.h"
#include "agent/runtime/process.h"
#include "common/log.h"
#include "common/safe_open.h"
#include "common/status_macros.h"

extern "C" char** environ;

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

// runc refuses rlimits above its own hard limit; 1M is what most distributions allow.
constexpr uint64_t kMaxNofile = 1048576;
// How long Delete() waits for a killed PID 1 to go away.
constexpr absl::Duration kKillWait = absl::Seconds(15);
// How long Signal() waits for a just-started PID 1 to take signals (AwaitSignalReady).
constexpr absl::Duration kSignalReadyWait = absl::Seconds(2);

std::string ErrnoText(absl::string_view what, absl::string_view path) {
  return absl::StrCat(what, " ", path, ": ", strerror(errno));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(ErrnoText("cannot read", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

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

absl::Status WriteFile(const std::string& path, absl::string_view content) {
  std::string temp = path + ".tmp";
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(ErrnoText("cannot create", temp));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return absl::InternalError(ErrnoText("cannot write", temp));
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0 || rename(temp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(ErrnoText("cannot write", path));
  }
  return absl::OkStatus();
}

// One line of /proc/self/mountinfo.
struct MountEntry {
  std::string mount_point;
  std::string fs_type;
  std::string super_options;
};

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size()) {
      int value = 0;
      bool octal = true;
      for (size_t j = 1; j <= 3; ++j) {
        char c = text[i + j];
        if (c < '0' || c > '7') octal = false;
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out.push_back(static_cast<char>(value));
        i += 3;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

std::vector<MountEntry> ReadMountInfo() {
  std::vector<MountEntry> mounts;
  absl::StatusOr<std::string> text = ReadFile("/proc/self/mountinfo");
  if (!text.ok()) return mounts;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 5 || dash == fields.end() || fields.end() - dash < 4) continue;
    MountEntry entry;
    entry.mount_point = Unescape(fields[4]);
    entry.fs_type = std::string(dash[1]);
    entry.super_options = std::string(dash[3]);
    mounts.push_back(std::move(entry));
  }
  return mounts;
}

bool IsUnder(absl::string_view path, absl::string_view dir) {
  return path == dir ||
         (absl::StartsWith(path, dir) && path.size() > dir.size() && path[dir.size()] == '/');
}

// The cgroup folders of process `pid`: per v1 controller where v1 hierarchies are mounted
// (hybrid hosts), and the v2 one.
struct CgroupDirs {
  std::map<std::string, std::string> v1;  // controller ("memory", "cpuacct") -> folder
  std::string v2;                         // empty when there is no cgroup2 mount
};

CgroupDirs FindCgroups(pid_t pid) {
  CgroupDirs dirs;
  absl::StatusOr<std::string> cgroups = ReadFile(absl::StrCat("/proc/", pid, "/cgroup"));
  if (!cgroups.ok()) return dirs;
  std::map<std::string, std::string> v1_paths;  // controller -> path in its hierarchy
  std::string v2_path;
  bool have_v2 = false;
  for (absl::string_view line : absl::StrSplit(*cgroups, '\n', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    // A container is never in a root cgroup; its process is there once it has exited (an
    // unreaped process has left its cgroups), and the root's counters are the whole
    // machine's: a job's last sample showed the node's memory peak as its own.
    if (parts[2] == "/") continue;
    if (parts[0] == "0" && parts[1].empty()) {
      v2_path = parts[2];
      have_v2 = true;
    }
    for (absl::string_view controller : absl::StrSplit(parts[1], ',', absl::SkipEmpty())) {
      v1_paths[std::string(controller)] = parts[2];
    }
  }
  for (const MountEntry& mount : ReadMountInfo()) {
    if (mount.fs_type == "cgroup") {
      for (absl::string_view option : absl::StrSplit(mount.super_options, ',')) {
        auto it = v1_paths.find(std::string(option));
        if (it != v1_paths.end()) dirs.v1[it->first] = absl::StrCat(mount.mount_point, it->second);
      }
    } else if (mount.fs_type == "cgroup2" && have_v2 && dirs.v2.empty()) {
      dirs.v2 = absl::StrCat(mount.mount_point, v2_path == "/" ? "" : v2_path);
    }
  }
  return dirs;
}

// The file holding the `oom_kill` counter of the memory cgroup of process `pid`: v1
// `memory.oom_control` where a v1 memory controller is mounted, else v2 `memory.events`.
std::string FindOomFile(pid_t pid) {
  CgroupDirs dirs = FindCgroups(pid);
  auto memory = dirs.v1.find("memory");
  if (memory != dirs.v1.end()) return memory->second + "/memory.oom_control";
  return dirs.v2.empty() ? "" : dirs.v2 + "/memory.events";
}

// A cgroup file holding one number; -1 when missing or unreadable.
int64_t ReadCgroupNumber(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  int64_t value = -1;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &value)) return -1;
  return value;
}

bool ReadOomKilled(const std::string& oom_file) {
  if (oom_file.empty()) return false;
  absl::StatusOr<std::string> text = ReadFile(oom_file);
  if (!text.ok()) return false;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ' ');
    int64_t count = 0;
    if (kv.first == "oom_kill" && absl::SimpleAtoi(kv.second, &count) && count > 0) return true;
  }
  return false;
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

// drover-init's exit file ("exit_code=<n> signal=<s>") in the container's state folder;
// exit_code -1 / SIGKILL when it is missing (PID 1 was not drover-init, or died before it
// could write). The state folder is writable from inside the container: the file is read
// only when it is a regular file there, never through a link and never waiting on a fifo.
ContainerExit FromExitFile(const std::string& bundle_dir) {
  ContainerExit exit;
  exit.signal = SIGKILL;
  // ExitFilePath's file, opened below the state folder.
  FileKind kind = FileKind::kMissing;
  absl::StatusOr<std::string> text =
      ReadSmallFileBeneath(bundle_dir + "/state", "init.exit", 4096, &kind);
  if (!text.ok()) {
    if (kind != FileKind::kMissing) LogUnsafeFile(RuncRuntime::ExitFilePath(bundle_dir), kind);
    return exit;
  }
  std::optional<ExitRecord> record = ParseExitRecord(*text);
  if (!record.has_value()) return exit;
  exit.exit_code = record->exit_code;
  exit.signal = record->signal;
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
      if (kv.first == "Name") runc_init = absl::StartsWith(value, "runc:");
      if (kv.first == "State" && absl::StartsWith(value, "Z")) return;
      if (kv.first == "SigBlk") (void)absl::SimpleHexAtoi(value, &blocked);
      if (kv.first == "SigCgt") (void)absl::SimpleHexAtoi(value, &caught);
    }
    if (!runc_init && ((blocked | caught) & bit) != 0) return;
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(10));
  }
}

// Gives `root` and everything below it (on the same file system, links not followed) to
// host id `id`. For folders the agent made for a container before it starts: nothing in
// them is the job's yet.
absl::Status ChownTree(const std::string& root, uint32_t id) {
  static thread_local uint32_t owner = 0;
  static thread_local int failed_errno = 0;
  owner = id;
  failed_errno = 0;
  auto visit = [](const char* path, const struct stat*, int, struct FTW*) -> int {
    if (lchown(path, owner, owner) != 0) {
      failed_errno = errno;
      return 1;
    }
    return 0;
  };
  int result = nftw(root.c_str(), visit, 32, FTW_PHYS | FTW_MOUNT);
  if (result != 0) {
    errno = failed_errno != 0 ? failed_errno : errno;
    return absl::InternalError(ErrnoText("cannot give the container's root", root));
  }
  return absl::OkStatus();
}

// A container whose root is the unprivileged host uid `id` reaches its root filesystem, job
// folder and binds through every folder above them: each must let others (or `id`) search
// it. FAILED_PRECONDITION naming the first that does not.
absl::Status CheckSearchable(const std::string& path, uint32_t id) {
  std::string at = path;
  while (!at.empty() && at != "/") {
    at = at.substr(0, at.rfind('/'));
    const std::string dir = at.empty() ? "/" : at;
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) return absl::InternalError(ErrnoText("cannot stat", dir));
    bool searchable = (st.st_mode & S_IXOTH) != 0 || (st.st_uid == id && (st.st_mode & S_IXUSR));
    if (!searchable) {
      char mode[8];
      snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
      return absl::FailedPreconditionError(absl::StrCat(
          "folder ", dir, " (above ", path, ") is not searchable by others (mode ",
          mode, "): the job container's root, host uid ",
          id, " (--userns-range), must pass through it; chmod o+x ", dir,
          " or move --work-dir"));
    }
  }
  return absl::OkStatus();
}

// Makes `destination` (absolute, in the container) below `rootfs` as a folder, or an empty
// file when `is_dir` is false, with any missing folders above it: runc makes a missing
// mountpoint as the container's root, which in a user namespace may not write the node's
// skeleton or an image's root-owned folders. Never follows a link (an image may hold any):
// where a component is a link or not a folder it stops and leaves the rest to runc, which
// resolves it inside the root. Best effort: errors are runc's to report.
void MakeMountpoint(const std::string& rootfs, absl::string_view destination, bool is_dir) {
  int fd = open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  std::vector<std::string> parts = absl::StrSplit(destination, '/', absl::SkipEmpty());
  for (size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    if (last && !is_dir) {
      int file = openat(fd, parts[i].c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0644);
      if (file >= 0) close(file);
      break;
    }
    if (mkdirat(fd, parts[i].c_str(), 0755) != 0 && errno != EEXIST) break;
    int next = openat(fd, parts[i].c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(fd);
    fd = next;
    if (fd < 0) return;
  }
  close(fd);
}

bool IsEmptyDir(const std::string& path) {
  std::error_code error;
  return fs::is_directory(path, error) && fs::is_empty(path, error) && !error;
}

absl::Status MakeDir(const std::string& path, mode_t mode = 0755) {
  if (mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return absl::InternalError(ErrnoText("cannot create", path));
  }
  return absl::OkStatus();
}

std::string Tail(absl::string_view text, size_t max = 2000) {
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

}  // namespace

std::string RuncRuntime::ContainerLogPath(absl::string_view bundle_dir) {
  return absl::StrCat(bundle_dir, "/container.log");
}

std::string RuncRuntime::ExitFilePath(absl::string_view bundle_dir) {
  return absl::StrCat(bundle_dir, "/state/init.exit");
}

absl::Status CheckRuncHasCve202421626Fix(absl::string_view version_output) {
  std::string version;
  std::string commit;
  for (absl::string_view line : absl::StrSplit(version_output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "runc version ")) version = std::string(line);
    if (absl::ConsumePrefix(&line, "commit:")) commit = std::string(absl::StripAsciiWhitespace(line));
  }
  // "1.1.5+ds1", "1.0.0~rc93+ds1", "1.1.12": the upstream release's numbers.
  int numbers[3] = {0, 0, 0};
  std::vector<absl::string_view> parts =
      absl::StrSplit(version.substr(0, version.find_first_of("+~-")), '.');
  bool parsed = parts.size() == 3;
  for (size_t i = 0; parsed && i < 3; ++i) parsed = absl::SimpleAtoi(parts[i], &numbers[i]);
  if (parsed && std::make_tuple(numbers[0], numbers[1], numbers[2]) >= std::make_tuple(1, 1, 12)) {
    return absl::OkStatus();
  }
  // Debian's security updates: "commit: 1.1.5+ds1-1+deb12u1" (DSA-5615).
  if (parsed) {
    size_t deb = commit.rfind("+deb");
    size_t u = deb == std::string::npos ? std::string::npos : commit.find('u', deb + 4);
    int release = 0;
    int update = 0;
    if (u != std::string::npos &&
        absl::SimpleAtoi(absl::string_view(commit).substr(deb + 4, u - deb - 4), &release) &&
        absl::SimpleAtoi(absl::string_view(commit).substr(u + 1), &update) &&
        ((release == 12 && update >= 1) || (release == 11 && update >= 3))) {
      return absl::OkStatus();
    }
  }
  return absl::FailedPreconditionError(absl::StrCat(
      parsed ? absl::StrCat("version ", version, commit.empty() ? "" : " (", commit,
                            commit.empty() ? "" : ")")
             : "an unknown version",
      " lacks the fix for CVE-2024-21626 (a container can reach the host's files through a "
      "leaked descriptor); install runc 1.1.12 or later, on Debian 12 Debian's runc "
      "1.1.5+ds1-1+deb12u1 or later (apt-get install runc), or, when your distribution "
      "backported the fix under an older version, start drover-agent with "
      "--allow-unpatched-runc"));
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
  absl::StatusOr<std::string> version = runtime->Runc({"--version"});
  if (!version.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "runc '", runtime->options_.runc_path,
        "' does not run (install Debian's runc or set its path): ", version.status().message()));
  }
  if (absl::Status fixed = CheckRuncHasCve202421626Fix(*version); !fixed.ok()) {
    if (!runtime->options_.allow_unpatched_runc) {
      return absl::FailedPreconditionError(
          absl::StrCat("runc '", runtime->options_.runc_path, "': ", fixed.message()));
    }
    Log(LogLevel::kWarning, "runc_unpatched_allowed",
        {{"runc", runtime->options_.runc_path}, {"problem", fixed.message()}});
  }
  return runtime;
}

absl::StatusOr<std::string> RuncRuntime::Runc(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {options_.runc_path, "--root", options_.root_dir};
  argv.insert(argv.end(), args.begin(), args.end());
  DROVER_ASSIGN_OR_RETURN(ProcessResult result, RunProcess(argv, options_.command_timeout));
  if (result.ok()) return result.out;
  std::string what = absl::StrCat("runc ", args.empty() ? "" : args[0]);
  if (result.timed_out) {
    return absl::UnavailableError(absl::StrCat(what, " did not finish within ",
                                               absl::FormatDuration(options_.command_timeout)));
  }
  std::string message = RuncMessage(result.err.empty() ? result.out : result.err);
  if (absl::StrContains(message, "does not exist") || absl::StrContains(message, "not exist")) {
    return absl::NotFoundError(absl::StrCat(what, ": ", message));
  }
  return absl::UnavailableError(absl::StrCat(what, " failed: ", message));
}

absl::StatusOr<RuncRuntime::RuncState> RuncRuntime::State(absl::string_view id) {
  DROVER_ASSIGN_OR_RETURN(std::string out, Runc({"state", std::string(id)}));
  DROVER_ASSIGN_OR_RETURN(Json json, Json::Parse(out));
  RuncState state;
  if (const Json* status = json.Find("status")) state.status = status->AsString();
  if (const Json* pid = json.Find("pid")) state.pid = static_cast<pid_t>(pid->AsInt());
  if (const Json* bundle = json.Find("bundle")) state.bundle = bundle->AsString();
  if (state.status == "stopped") state.pid = 0;
  return state;
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
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = records_.emplace(std::string(id), record);
  return it->second;
}

absl::Status RuncRuntime::PrepareBundle(const ContainerSpec& spec) {
  const std::string& bundle = spec.bundle_dir;
  OciOptions oci;
  oci.rootfs = "rootfs";
  oci.host_os = spec.image_rootfs.empty();
  oci.init_binary = options_.init_binary;
  oci.state_dir = bundle + "/state";
  oci.cgroups_path =
      options_.cgroup_parent.empty() ? spec.id : absl::StrCat(options_.cgroup_parent, "/", spec.id);
  oci.nofile_limit = nofile_limit_;
  oci.userns = options_.userns;
  oci.seccomp = options_.seccomp;
  for (const DeviceNode& node : spec.devices) {
    const std::string& path = node.source.empty() ? node.path : node.source;
    struct stat st;
    if (stat(path.c_str(), &st) != 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) {
      return absl::InvalidArgumentError(
          absl::StrCat("container '", spec.id, "': device '", path, "' is not a device node"));
    }
    if (oci.userns.size > 0 && (st.st_mode & (S_IROTH | S_IWOTH)) != (S_IROTH | S_IWOTH)) {
      // Bound, not made (no mknod in a user namespace): the container's root is an
      // unprivileged host uid and opens the node's own file as one of "others".
      char mode[8];
      snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
      return absl::FailedPreconditionError(absl::StrCat(
          "container '", spec.id, "': device '", path, "' (mode ", mode,
          ") cannot be opened by the job's root, an unprivileged host uid under --userns-range; "
          "make it readable and writable by others (chmod 0666, NVIDIA's default) or run the "
          "agent with --userns-range=none"));
    }
    OciDevice device;
    device.path = node.path;
    device.source = path;
    device.type = S_ISCHR(st.st_mode) ? 'c' : 'b';
    device.major = major(st.st_rdev);
    device.minor = minor(st.st_rdev);
    device.file_mode = st.st_mode & 07777;
    oci.devices.push_back(device);
  }

  DROVER_RETURN_IF_ERROR(MakeDir(oci.state_dir));
  if (oci.userns.size > 0) {
    DROVER_RETURN_IF_ERROR(CheckSearchable(bundle + "/rootfs", oci.userns.host_id));
    DROVER_RETURN_IF_ERROR(CheckSearchable(spec.job_dir + "/", oci.userns.host_id));
    // What the container's root writes: drover-init's exit file, the job folder, and the
    // folders the agent made for it.
    DROVER_RETURN_IF_ERROR(ChownTree(oci.state_dir, oci.userns.host_id));
    DROVER_RETURN_IF_ERROR(ChownTree(spec.job_dir, oci.userns.host_id));
    for (const BindMount& mount : spec.mounts) {
      if (mount.owned_by_container) DROVER_RETURN_IF_ERROR(ChownTree(mount.source, oci.userns.host_id));
    }
  }
  const std::string rootfs = bundle + "/rootfs";
  DROVER_RETURN_IF_ERROR(MakeDir(rootfs));

  if (oci.host_os) {
    // An empty skeleton: mountpoints, and the host's root links (`bin -> usr/bin` ...).
    for (const char* dir :
         {"usr", "etc", "tmp", "run", "var", "root", "proc", "dev", "sys", "job"}) {
      DROVER_RETURN_IF_ERROR(MakeDir(absl::StrCat(rootfs, "/", dir)));
    }
    for (const char* name : {"bin", "sbin", "lib", "lib32", "lib64", "libx32"}) {
      std::string host = absl::StrCat("/", name);
      struct stat st;
      if (lstat(host.c_str(), &st) != 0) continue;
      std::string inside = absl::StrCat(rootfs, "/", name);
      if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlink(host.c_str(), target, sizeof target - 1);
        if (n <= 0) continue;
        if (symlink(std::string(target, static_cast<size_t>(n)).c_str(), inside.c_str()) != 0) {
          return absl::InternalError(ErrnoText("cannot create link", inside));
        }
      } else if (S_ISDIR(st.st_mode)) {
        DROVER_RETURN_IF_ERROR(MakeDir(inside));
        oci.host_dir_binds.push_back(host);
      }
    }
  } else {
    // The image stays read-only and shared; this container's writes land in upper/.
    for (const std::string& path : {spec.image_rootfs, bundle}) {
      if (absl::StrContains(path, ",") || absl::StrContains(path, ":")) {
        return absl::InvalidArgumentError(
            absl::StrCat("container '", spec.id, "': path '", path,
                         "' must not contain ',' or ':' (overlay options)"));
      }
    }
    struct stat st;
    if (stat(spec.image_rootfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat("container '", spec.id, "': image_rootfs '",
                                                     spec.image_rootfs, "' is not a folder"));
    }
    DROVER_RETURN_IF_ERROR(MakeDir(bundle + "/upper"));
    DROVER_RETURN_IF_ERROR(MakeDir(bundle + "/work"));
    // The merged root takes its owner from upper/: the container's root owns its `/`, as
    // the image (unpacked shifted into the range, ImageCache) has it.
    if (oci.userns.size > 0) DROVER_RETURN_IF_ERROR(ChownTree(bundle + "/upper", oci.userns.host_id));
    std::string data = absl::StrCat("lowerdir=", spec.image_rootfs, ",upperdir=", bundle,
                                    "/upper,workdir=", bundle, "/work");
    if (mount("overlay", rootfs.c_str(), "overlay", 0, data.c_str()) != 0) {
      return absl::UnavailableError(absl::StrCat("container '", spec.id,
                                                 "': cannot mount the image overlay on ", rootfs,
                                                 ": ", strerror(errno)));
    }
  }

  if (oci.userns.size > 0) {
    for (const char* dir : {"/proc", "/dev", "/sys", "/job", kContainerDroverDir}) {
      MakeMountpoint(rootfs, dir, true);
    }
    for (const BindMount& mount : spec.mounts) {
      struct stat st {};
      bool is_dir = stat(mount.source.c_str(), &st) != 0 || S_ISDIR(st.st_mode);
      MakeMountpoint(rootfs, mount.destination, is_dir);
    }
  }

  DROVER_ASSIGN_OR_RETURN(Json config, BuildOciConfig(spec, oci));
  DROVER_RETURN_IF_ERROR(WriteFile(bundle + "/config.json", config.Dump(2) + "\n"));
  return absl::OkStatus();
}

absl::Status RuncRuntime::Create(const ContainerSpec& spec) {
  return CreateContainer(spec, /*start=*/false);
}

absl::Status RuncRuntime::Run(const ContainerSpec& spec) {
  return CreateContainer(spec, /*start=*/true);
}

absl::Status RuncRuntime::CreateContainer(const ContainerSpec& spec, bool start) {
  DROVER_RETURN_IF_ERROR(ValidateContainerSpec(spec));
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

  absl::Status prepared = PrepareBundle(spec);
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
  absl::StatusOr<ProcessResult> result = RunProcess(argv, options_.command_timeout, log_path);
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

  std::string oom_file = FindOomFile(pid);
  if (!oom_file.empty()) (void)WriteFile(spec.bundle_dir + "/state.oom_file", oom_file + "\n");
  {
    absl::MutexLock lock(&mu_);
    record->pid = pid;
    record->created = true;
    record->oom_file = oom_file;
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
  absl::StatusOr<pid_t> pid = Pid(id);
  if (!pid.ok()) return absl::NotFoundError(pid.status().message());
  CgroupDirs dirs = FindCgroups(*pid);
  ContainerStats stats;
  auto memory = dirs.v1.find("memory");
  auto cpu = dirs.v1.find("cpuacct");
  if (memory != dirs.v1.end()) {
    stats.memory_bytes = ReadCgroupNumber(memory->second + "/memory.usage_in_bytes");
    stats.memory_peak_bytes = ReadCgroupNumber(memory->second + "/memory.max_usage_in_bytes");
  } else if (!dirs.v2.empty()) {
    stats.memory_bytes = ReadCgroupNumber(dirs.v2 + "/memory.current");
    stats.memory_peak_bytes = ReadCgroupNumber(dirs.v2 + "/memory.peak");
  }
  if (cpu != dirs.v1.end()) {
    stats.cpu_ns = ReadCgroupNumber(cpu->second + "/cpuacct.usage");
  } else if (!dirs.v2.empty()) {
    absl::StatusOr<std::string> text = ReadFile(dirs.v2 + "/cpu.stat");
    stats.cpu_ns = -1;
    for (absl::string_view line : absl::StrSplit(text.ok() ? *text : "", '\n', absl::SkipEmpty())) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, ' ');
      int64_t usec = 0;
      if (kv.first == "usage_usec" && absl::SimpleAtoi(kv.second, &usec)) stats.cpu_ns = usec * 1000;
    }
  }
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
  DROVER_ASSIGN_OR_RETURN(int status, RunStreaming(argv, output, stop, OnStop::kLeave));
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
    if (absl::StrContains(message, "not running") ||
        absl::StrContains(message, "process already finished")) {
      return absl::FailedPreconditionError(absl::StrCat("container '", id, "' is not running"));
    }
    return absl::Status(out.status().code(), absl::StrCat("container '", id, "': ", message));
  }
  return absl::OkStatus();
}

absl::StatusOr<ContainerExit> RuncRuntime::AwaitExit(const std::shared_ptr<Record>& record,
                                                     absl::Time deadline) {
  pid_t pid;
  {
    absl::MutexLock lock(&mu_);
    if (record->exit.has_value()) return *record->exit;
    pid = record->pid;
  }
  while (true) {
    if (pid > 0 && !WaitPidExit(pid, deadline)) {
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

absl::Status RuncRuntime::CleanBundle(absl::string_view bundle_dir) {
  if (bundle_dir.empty() || bundle_dir == "/") return absl::OkStatus();
  std::string bundle(bundle_dir);
  // Deepest first. Whatever stays mounted keeps its files: removing through a mount could
  // delete an image or a job folder.
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::vector<std::string> points;
    for (const MountEntry& mount : ReadMountInfo()) {
      if (IsUnder(mount.mount_point, bundle)) points.push_back(mount.mount_point);
    }
    if (points.empty()) break;
    std::sort(points.begin(), points.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    for (const std::string& point : points) {
      if (umount2(point.c_str(), UMOUNT_NOFOLLOW) != 0 && errno != EINVAL && errno != ENOENT) {
        umount2(point.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW);
      }
    }
  }
  for (const MountEntry& mount : ReadMountInfo()) {
    if (IsUnder(mount.mount_point, bundle)) {
      return absl::UnavailableError(
          absl::StrCat("cannot unmount ", mount.mount_point, "; its bundle files are kept"));
    }
  }
  std::error_code error;
  if (!fs::exists(bundle, error)) return absl::OkStatus();
  for (const fs::directory_entry& entry : fs::directory_iterator(bundle, error)) {
    std::error_code remove_error;
    fs::remove_all(entry.path(), remove_error);
    if (remove_error) {
      return absl::InternalError(
          absl::StrCat("cannot remove ", entry.path().string(), ": ", remove_error.message()));
    }
  }
  if (error)
    return absl::InternalError(absl::StrCat("cannot list ", bundle, ": ", error.message()));
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
  DROVER_ASSIGN_OR_RETURN(Json json, Json::Parse(out));
  std::vector<ContainerInfo> containers;
  for (const Json& item : json.items()) {  // runc prints `null` when there are none
    ContainerInfo info;
    if (const Json* id = item.Find("id")) info.id = id->AsString();
    std::string status;
    if (const Json* s = item.Find("status")) status = s->AsString();
    if (const Json* pid = item.Find("pid"); pid != nullptr && status != "stopped") {
      info.pid = static_cast<pid_t>(pid->AsInt());
    }
    info.running = status == "running";
    if (const Json* bundle = item.Find("bundle")) info.bundle_dir = bundle->AsString();
    containers.push_back(std::move(info));
  }
  return containers;
}

}  // namespace drover::agent
