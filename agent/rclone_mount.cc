// rclone mounts (rclone.h): RcloneMount's life (start, take over from an earlier agent
// process, unmount, leave), the record of its rclone process, and the clean-up of mounts a
// killed agent left.
#include "agent/rclone.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <future>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/rclone_internal.h"
#include "agent/waiter.h"
#include "common/json.h"
#include "agent/runtime/mountinfo.h"
#include "agent/runtime/process.h"
#include "common/log.h"
#include "common/safe_open.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;

// How long rclone may take to exit by itself once unmounted, and after SIGTERM.
constexpr absl::Duration kExitGrace = absl::Seconds(5);

std::string ReadFileText(const std::string& path) {
  std::string text;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buffer[8192];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<size_t>(n));
  close(fd);
  return text;
}

bool IsMounted(const std::string& mountpoint) {
  std::vector<std::string> mounts =
      RcloneMountsUnder(ReadFileText("/proc/self/mountinfo"), mountpoint);
  return std::find(mounts.begin(), mounts.end(), mountpoint) != mounts.end();
}

// Lists `dir` to the end; 0 or the errno of the failure.
int ListFolder(const std::string& dir) {
  DIR* listing = opendir(dir.c_str());
  if (listing == nullptr) return errno;
  errno = 0;
  while (readdir(listing) != nullptr) {
  }
  int error = errno;
  closedir(listing);
  return error;
}

// `fusermount3 -u`, lazily (`-uz`) when that fails (busy), each run through `wrap` (which
// may enter another mount namespace). True when it is gone. (fusermount3 does not follow a
// symlink at the mount point.)
bool FuseUnmount(const RcloneTools& tools, const std::string& mountpoint,
                 const std::function<std::vector<std::string>(std::vector<std::string>)>& wrap) {
  absl::StatusOr<ProcessResult> plain =
      RunProcess(wrap({tools.fusermount, "-u", mountpoint}), kRcloneToolTimeout);
  if (plain.ok() && plain->ok()) return true;
  absl::StatusOr<ProcessResult> lazy =
      RunProcess(wrap({tools.fusermount, "-uz", mountpoint}), kRcloneToolTimeout);
  if (lazy.ok() && lazy->ok()) return true;
  Log(LogLevel::kError, "unmount_failed",
      {{"mountpoint", mountpoint},
       {"error", lazy.ok() ? absl::StripAsciiWhitespace(lazy->err) : lazy.status().message()}});
  return false;
}

std::string DescribeExit(int status) {
  if (WIFSIGNALED(status)) return absl::StrCat("rclone was killed by signal ", WTERMSIG(status));
  return absl::StrCat("rclone exited with code ", WEXITSTATUS(status));
}

// Whether the process of `pidfd` exits before `deadline` (InfinitePast: whether it has).
// A kernel wait (poll): `deadline` is real time, not the mount's clock.
bool PidfdExited(int pidfd, absl::Time deadline) {
  while (true) {
    absl::Duration left = std::max(deadline - absl::Now(), absl::ZeroDuration());
    int timeout_ms = static_cast<int>(
        std::min<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), 1 << 30));
    pollfd pfd = {pidfd, POLLIN, 0};
    int ready = poll(&pfd, 1, timeout_ms);
    if (ready > 0) return true;
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0 || absl::Now() >= deadline) return false;
  }
}

// A folder, not a symlink to one.
bool PlainFolder(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::optional<uint64_t> ProcessStartTime(pid_t pid) {
  return StartTimeFromStat(ReadFileText(absl::StrCat("/proc/", pid, "/stat")));
}

// The command line of `pid` (empty for a zombie or a process that is gone).
std::vector<std::string> ProcessArgs(pid_t pid) {
  std::string text = ReadFileText(absl::StrCat("/proc/", pid, "/cmdline"));
  std::vector<std::string> args;
  size_t begin = 0;
  for (size_t end; (end = text.find('\0', begin)) != std::string::npos; begin = end + 1) {
    args.push_back(text.substr(begin, end - begin));
  }
  return args;
}

// Whether `pid` is in this process's mount namespace.
bool InOwnMountNamespace(pid_t pid) {
  struct stat own {}, its {};
  if (stat("/proc/self/ns/mnt", &own) != 0) return true;
  if (stat(absl::StrCat("/proc/", pid, "/ns/mnt").c_str(), &its) != 0) return true;
  return own.st_dev == its.st_dev && own.st_ino == its.st_ino;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RcloneMount>> RcloneMount::Start(const RcloneTools& tools,
                                                                RcloneMountSpec spec,
                                                                absl::Duration timeout,
                                                                const std::function<bool()>& stop) {
  const std::string what = absl::StrCat("datastore '", spec.datastore, "'");
  std::error_code error;
  fs::create_directories(spec.mountpoint, error);
  if (!error) fs::create_directories(spec.cache_dir, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat(what, ": cannot create ", spec.mountpoint, ": ", error.message()));
  }
  // A symlink on the way would put the mount (and later unmounts) elsewhere.
  if (!PlainFolder(spec.mountpoint) || !PlainFolder(fs::path(spec.mountpoint).parent_path())) {
    return absl::UnavailableError(
        absl::StrCat(what, ": the mount point ", spec.mountpoint, " is not a plain folder"));
  }
  // A session of its own: rclone serves the job's mount also while no agent runs.
  absl::StatusOr<pid_t> started =
      StartProcess(RcloneMountArgs(tools, spec), spec.log_path, /*new_session=*/true);
  if (!started.ok()) {
    fs::remove(spec.mountpoint, error);
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": ", started.status().message(), "; install rclone on the node"));
  }
  // From here on the object owns rclone: every failure below is cleaned up by Unmount.
  std::unique_ptr<RcloneMount> mount(
      new RcloneMount(tools, std::move(spec), *started, /*child=*/true));
  // Not reaped yet, so the pid is still rclone's.
  mount->pidfd_ = PidfdOpen(*started);
  mount->recorded_pid_ = *started;
  mount->start_time_ = ProcessStartTime(*started).value_or(0);
  const RcloneMountSpec& s = mount->spec_;
  const absl::Time deadline = tools.clock->Now() + timeout;
  auto fail = [&](absl::Status status) {
    (void)mount->Unmount(absl::ZeroDuration());
    return status;
  };
  // Recorded before anything can use the mount: the next agent process finds it.
  if (absl::Status recorded = mount->WriteRecord(RcloneProcessRecord::State::kMounted);
      !recorded.ok()) {
    return fail(absl::UnavailableError(
        absl::StrCat(what, ": cannot record its rclone process: ", recorded.message())));
  }
  auto rclone_failed = [&](absl::string_view how) {
    return absl::UnavailableError(absl::StrCat(what, ": mounting ", s.remote, " on node ", s.node,
                                               " failed (", how, "): ",
                                               RcloneError(ReadFileText(s.log_path))));
  };
  // Nothing tells the agent when rclone mounts, ends or is stopped: looked at every 20 ms.
  Waiter waiter(*tools.clock);
  constexpr absl::Duration kRecheck = absl::Milliseconds(20);
  absl::Status answer = absl::OkStatus();
  // Whether rclone ended or the attempt was stopped (then `answer` says which).
  auto gone = [&] {
    if (std::string how; mount->Exited(&how)) {
      answer = rclone_failed(how);
    } else if (stop && stop()) {
      answer = absl::CancelledError(absl::StrCat(what, ": mount stopped"));
    }
    return !answer.ok();
  };
  // 1. The mount appears.
  if (!waiter.WaitUntil(deadline, [&] { return IsMounted(s.mountpoint) || gone(); }, kRecheck)) {
    return fail(rclone_failed(absl::StrCat("not mounted after ", absl::FormatDuration(timeout))));
  }
  if (!answer.ok()) return fail(answer);
  // 2. Its root answers: rclone mounts before it has talked to the remote, so a wrong
  // address or password shows only now. A call into the mount blocks until rclone answers:
  // it runs on a thread of its own, and ending rclone makes it return.
  std::promise<int> listed;
  std::future<int> result = listed.get_future();
  std::thread lister([&listed, &waiter, path = s.mountpoint] {
    listed.set_value(ListFolder(path));
    waiter.Notify();
  });
  auto answered = [&] {
    return result.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  };
  if (!waiter.WaitUntil(deadline, [&] { return answered() || gone(); }, kRecheck)) {
    answer = rclone_failed(
        absl::StrCat("its root did not answer within ", absl::FormatDuration(timeout)));
  }
  if (!answer.ok() && !answered()) {
    // The FUSE connection goes with rclone: the listing returns.
    mount->Signal(SIGKILL);
  }
  lister.join();
  if (int listing_error = result.get(); answer.ok() && listing_error != 0) {
    answer = rclone_failed(absl::StrCat("listing its root: ", strerror(listing_error)));
  }
  if (!answer.ok()) return fail(answer);
  Log(LogLevel::kInfo, "rclone_mounted",
      {{"datastore", s.datastore}, {"mountpoint", s.mountpoint}, {"pid", mount->pid_},
       {"read_write", s.read_write}});
  return mount;
}

absl::StatusOr<std::unique_ptr<RcloneMount>> RcloneMount::Adopt(const RcloneTools& tools,
                                                                RcloneMountSpec spec) {
  std::string problem;
  RcloneProcessRecord::State state;
  std::unique_ptr<RcloneMount> mount = Find(tools, spec, &problem, &state);
  if (state == RcloneProcessRecord::State::kReleased) {
    mount->unmounted_ = true;  // nothing left to do
    return mount;
  }
  if (state == RcloneProcessRecord::State::kReleasing) {
    // The job's processes had ended: Unmount finishes what was begun, whatever is left.
    Log(LogLevel::kInfo, "rclone_release_resumed",
        {{"datastore", spec.datastore}, {"mountpoint", spec.mountpoint}, {"pid", mount->pid_}});
    return mount;
  }
  if (!problem.empty()) {
    (void)mount->Unmount(absl::ZeroDuration());  // whatever is left of it
    return absl::FailedPreconditionError(
        absl::StrCat("datastore '", spec.datastore, "': ", problem));
  }
  Log(LogLevel::kInfo, "rclone_adopted",
      {{"datastore", spec.datastore}, {"mountpoint", spec.mountpoint}, {"pid", mount->pid_},
       {"namespace", mount->other_namespace() ? "earlier agent's" : "own"}});
  return mount;
}

void RcloneMount::RemoveLeftover(const RcloneTools& tools, const RcloneMountSpec& spec) {
  std::string problem;
  RcloneProcessRecord::State state;
  std::unique_ptr<RcloneMount> mount = Find(tools, spec, &problem, &state);
  if (mount->pid_ != 0) {
    Log(LogLevel::kWarning, "rclone_leftover_ended",
        {{"datastore", spec.datastore}, {"mountpoint", spec.mountpoint}, {"pid", mount->pid_}});
  }
  (void)mount->Unmount(absl::ZeroDuration());
}

std::unique_ptr<RcloneMount> RcloneMount::Find(const RcloneTools& tools,
                                               const RcloneMountSpec& spec, std::string* problem,
                                               RcloneProcessRecord::State* state) {
  std::unique_ptr<RcloneMount> mount(new RcloneMount(tools, spec, 0, /*child=*/false));
  *state = RcloneProcessRecord::State::kMounted;
  absl::StatusOr<RcloneProcessRecord> record = ReadRcloneRecord(spec.record_path);
  if (!record.ok()) {
    *problem = absl::IsNotFound(record.status())
                   ? "no record of its rclone process (mounted by an older drover-agent?); its "
                     "mount is not taken over"
                   : std::string(record.status().message());
    return mount;
  }
  *state = record->state;
  mount->start_time_ = record->start_time;
  mount->recorded_pid_ = record->pid;
  if (record->state == RcloneProcessRecord::State::kReleased) return mount;
  const pid_t pid = record->pid;
  const std::string ended = absl::StrCat(
      "its rclone process (pid ", pid, ") ended while no drover-agent ran on node ", spec.node,
      ", and with it the job's mount; files written through it and not uploaded yet are lost");
  // The pidfd first: if the checks below find the recorded process, it is the pidfd's.
  int pidfd = PidfdOpen(pid);
  std::vector<std::string> args = pidfd >= 0 ? ProcessArgs(pid) : std::vector<std::string>{};
  if (pidfd < 0 || ProcessStartTime(pid) != record->start_time || args.size() < 4 ||
      args[1] != "mount" || args[2] != spec.remote || args[3] != spec.mountpoint) {
    // Gone, or the pid is another process's now: never signalled.
    if (pidfd >= 0) close(pidfd);
    *problem = ended;
    return mount;
  }
  mount->pid_ = pid;
  mount->pidfd_ = pidfd;
  if (!InOwnMountNamespace(pid)) {
    mount->ns_fd_ = open(absl::StrCat("/proc/", pid, "/ns/mnt").c_str(), O_RDONLY | O_CLOEXEC);
  }
  // What was read of /proc/PID above is the recorded process's only if it still runs.
  if (PidfdExited(pidfd, absl::InfinitePast())) {
    mount->CloseFds();
    mount->pid_ = 0;
    *problem = ended;
    return mount;
  }
  if (!InOwnMountNamespace(pid) && mount->ns_fd_ < 0) {
    *problem = absl::StrCat("the mount namespace of its rclone process (pid ", pid,
                            ") cannot be opened: ", strerror(errno));
    return mount;
  }
  if (!PlainFolder(spec.mountpoint)) {
    *problem = absl::StrCat("its mount point ", spec.mountpoint, " is not a plain folder");
    return mount;
  }
  std::optional<std::string> table = mount->MountTable();
  std::vector<std::string> mounted =
      table ? RcloneMountsUnder(*table, spec.mountpoint) : std::vector<std::string>{};
  if (std::find(mounted.begin(), mounted.end(), spec.mountpoint) == mounted.end()) {
    *problem = absl::StrCat("its rclone process (pid ", pid, ") runs, but its mount at ",
                            spec.mountpoint, " is gone");
  }
  return mount;
}

RcloneMount::~RcloneMount() {
  if (!left_) (void)Unmount(absl::ZeroDuration());
  CloseFds();
}

void RcloneMount::Leave() {
  if (unmounted_ || left_) return;
  left_ = true;
  Log(LogLevel::kInfo, "rclone_left_running",
      {{"datastore", spec_.datastore}, {"mountpoint", spec_.mountpoint}, {"pid", pid_}});
  CloseFds();
}

void RcloneMount::CloseFds() {
  if (pidfd_ >= 0) close(pidfd_);
  if (ns_fd_ >= 0) close(ns_fd_);
  pidfd_ = -1;
  ns_fd_ = -1;
}

bool RcloneMount::Exited(std::string* how) {
  if (pid_ == 0) {
    *how = "rclone exited";
    return true;
  }
  if (child_) {
    int status = 0;
    pid_t done;
    while ((done = waitpid(pid_, &status, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (done != pid_ && !(done < 0 && errno == ECHILD)) return false;
    *how = done == pid_ ? DescribeExit(status) : "rclone exited";
  } else {
    // Not this process's child (the agent that started it is gone): no exit status.
    if (pidfd_ >= 0 && !PidfdExited(pidfd_, absl::InfinitePast())) return false;
    *how = absl::StrCat("rclone (pid ", pid_, ") exited");
  }
  pid_ = 0;
  return true;
}

void RcloneMount::Signal(int signal) {
  if (pid_ == 0) return;
  if (pidfd_ >= 0) {
    syscall(SYS_pidfd_send_signal, pidfd_, signal, nullptr, 0);
  } else if (child_) {
    kill(pid_, signal);  // not reaped: still rclone
  }
}

std::vector<std::string> RcloneMount::InNamespace(std::vector<std::string> argv) const {
  if (ns_fd_ < 0) return argv;
  // nsenter opens the namespace through this process's descriptor, which keeps it alive
  // even once rclone has exited.
  std::vector<std::string> wrapped = {
      tools_.nsenter, absl::StrCat("--mount=/proc/", getpid(), "/fd/", ns_fd_), "--"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

std::optional<std::string> RcloneMount::MountTable() const {
  if (ns_fd_ < 0) return ReadFileText("/proc/self/mountinfo");
  absl::StatusOr<ProcessResult> run =
      RunProcess(InNamespace({"cat", "/proc/self/mountinfo"}), kRcloneToolTimeout);
  if (!run.ok() || !run->ok()) return std::nullopt;
  return run->out;
}

bool RcloneMount::Mounted() const {
  std::optional<std::string> table = MountTable();
  if (!table) return true;
  std::vector<std::string> mounts = RcloneMountsUnder(*table, spec_.mountpoint);
  return std::find(mounts.begin(), mounts.end(), spec_.mountpoint) != mounts.end();
}

absl::Status RcloneMount::WriteRecord(RcloneProcessRecord::State state) {
  // Without a record (none was made, or it is unreadable) there is nothing to update.
  if (spec_.record_path.empty() || recorded_pid_ == 0) return absl::OkStatus();
  const std::string text =
      RcloneRecordText({.pid = recorded_pid_, .start_time = start_time_, .state = state});
  // Written whole and renamed over the old one: a reader sees one record or the other.
  return ReplaceFile(spec_.record_path, text, 0600);
}

int RcloneMount::PendingUploads() const {
  // rclone's VFS cache keeps a JSON record per cached file; `Dirty` is true until the file
  // is uploaded.
  int pending = 0;
  std::error_code error;
  for (fs::recursive_directory_iterator it(spec_.cache_dir + "/vfsMeta", error), end;
       !error && it != end; it.increment(error)) {
    if (!it->is_regular_file(error)) continue;
    absl::StatusOr<Json> record = ParseJson(ReadFileText(it->path().string()));
    // One being rewritten right now counts as pending: the next look decides. A record
    // without `Dirty` (another rclone's format) holds nothing back.
    const Json* dirty = record.ok() ? JsonFind(*record, "Dirty") : nullptr;
    if (!record.ok() || (dirty != nullptr && JsonBool(*dirty))) ++pending;
  }
  return pending;
}

void RcloneMount::EndProcess(absl::Duration grace) {
  if (pid_ == 0) return;
  auto exits_within = [this](absl::Duration wait) {
    // Kernel waits: real time.
    // A child is not reaped before the waitpid below: its pid stays rclone's.
    return pidfd_ >= 0 ? PidfdExited(pidfd_, absl::Now() + wait)
                       : !child_ || WaitPidExit(pid_, absl::Now() + wait);
  };
  if (!exits_within(grace)) {
    Signal(SIGTERM);
    if (!exits_within(kExitGrace)) {
      Signal(SIGKILL);
      exits_within(kExitGrace);
    }
  }
  if (child_) {
    int status = 0;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = 0;
}

absl::Status RcloneMount::Unmount(absl::Duration flush_timeout) {
  if (unmounted_ || left_) return absl::OkStatus();
  unmounted_ = true;
  const std::string what = absl::StrCat("datastore '", spec_.datastore, "'");
  absl::Status result = absl::OkStatus();
  if (spec_.read_write && flush_timeout > absl::ZeroDuration()) {
    // rclone's records say when the uploads are done: looked at every 50 ms.
    Waiter waiter(*tools_.clock);
    int pending = 0;
    std::string how;
    bool exited = false;
    const bool flushed = waiter.WaitUntil(
        tools_.clock->Now() + flush_timeout,
        [&] { return (pending = PendingUploads()) == 0 || (exited = Exited(&how)); },
        absl::Milliseconds(50));
    if (exited && pending > 0) {
      result = absl::UnavailableError(absl::StrCat(
          what, ": ", pending, " file(s) written through the mount were not uploaded: ", how,
          ": ", RcloneError(ReadFileText(spec_.log_path))));
    } else if (!flushed) {
      result = absl::UnavailableError(absl::StrCat(
          what, ": ", pending, " file(s) written through the mount were not uploaded within ",
          absl::FormatDuration(flush_timeout), ": ", RcloneError(ReadFileText(spec_.log_path))));
    }
  }
  // A later agent process finishes the release rather than take the mount over.
  if (absl::Status s = WriteRecord(RcloneProcessRecord::State::kReleasing); !s.ok()) {
    Log(LogLevel::kWarning, "rclone_record_failed", {{"error", s.message()}});
  }
  // In the mount namespace the mount lives in (an earlier agent's, when taken over from
  // one that had its own).
  auto unmount = [this] {
    return FuseUnmount(tools_, spec_.mountpoint,
                       [this](std::vector<std::string> argv) { return InNamespace(argv); });
  };
  const bool mounted = Mounted();
  bool gone = !mounted || unmount();
  // Once unmounted rclone exits by itself; one that never mounted is ended at once.
  EndProcess(mounted ? kExitGrace : absl::ZeroDuration());
  // An rclone still mounting when it was ended (a mount that failed slowly, a loaded node)
  // leaves its mount behind, served by nobody: unmount that too.
  if (!mounted && Mounted()) gone = unmount();
  gone = gone && !Mounted();
  std::error_code error;
  if (gone) {
    fs::remove(spec_.mountpoint, error);  // an empty folder (or a symlink): never recursively
    fs::remove_all(spec_.cache_dir, error);
    if (absl::Status s = WriteRecord(RcloneProcessRecord::State::kReleased); !s.ok()) {
      Log(LogLevel::kWarning, "rclone_record_failed", {{"error", s.message()}});
    }
    Log(LogLevel::kInfo, "rclone_unmounted",
        {{"datastore", spec_.datastore}, {"mountpoint", spec_.mountpoint}});
  } else if (result.ok()) {
    result = absl::UnavailableError(
        absl::StrCat(what, ": cannot unmount ", spec_.mountpoint, " (see the agent's log)"));
  }
  CloseFds();
  return result;
}

std::vector<std::string> RcloneMountsUnder(absl::string_view mountinfo, const std::string& dir) {
  std::vector<std::string> found;
  for (MountEntry& mount : ParseMountInfo(mountinfo)) {
    if (mount.fs_type == "fuse.rclone" && IsAtOrUnder(mount.mount_point, dir)) {
      found.push_back(std::move(mount.mount_point));
    }
  }
  std::sort(found.begin(), found.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return found;
}

std::vector<std::string> UnmountLeftoverRcloneMounts(const RcloneTools& tools,
                                                     const std::string& dir,
                                                     const std::set<std::string>& keep) {
  std::vector<std::string> mounts = RcloneMountsUnder(ReadFileText("/proc/self/mountinfo"), dir);
  std::erase_if(mounts, [&keep](const std::string& mountpoint) {
    return std::any_of(keep.begin(), keep.end(), [&mountpoint](const std::string& kept) {
      return mountpoint == kept || absl::StartsWith(mountpoint, kept + "/");
    });
  });
  for (const std::string& mountpoint : mounts) {
    // Lazily: a container of the killed agent may still hold it. Its rclone, no longer
    // anyone's child here, exits once it is unmounted.
    absl::StatusOr<ProcessResult> run = RunProcess({tools.fusermount, "-uz", mountpoint}, kRcloneToolTimeout);
    bool ok = run.ok() && run->ok();
    Log(ok ? LogLevel::kWarning : LogLevel::kError, "stale_mount_removed",
        {{"mountpoint", mountpoint}, {"ok", ok}});
  }
  return mounts;
}

}  // namespace drover::agent
