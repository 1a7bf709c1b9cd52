#include "agent/runtime/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sched.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace drover::agent {
namespace {

// Output beyond this is dropped: error messages, not data, are what callers read.
constexpr size_t kMaxCapturedBytes = 1 << 20;

// Where a child's stdin, stdout and stderr come from.
struct ChildIo {
  int in = -1;  // dup'ed to 0; -1: /dev/null
  // With an empty `output_path`, `out` and `err` are dup'ed to 1 and 2; else both go to
  // that file, opened O_APPEND (created with `mode`).
  int out = -1;
  int err = -1;
  const char* output_path = nullptr;
  mode_t mode = 0644;
};

// What the child of SpawnHidingMount does before it execs, all in the child: it must touch
// nothing but this (it shares the parent's memory until exec) and only make system calls.
struct HidingChild {
  char* const* argv;
  const ChildIo* io;
  bool new_session;
  const char* hide_mount;
  int error = 0;  // errno of the step that failed, read by the parent after the clone
};

int HidingChildMain(void* arg) {
  HidingChild* child = static_cast<HidingChild*>(arg);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int signal = 1; signal < NSIG; ++signal) {
    if (signal != SIGKILL && signal != SIGSTOP) (void)sigaction(signal, &default_action, nullptr);
  }
  const ChildIo& io = *child->io;
  int in = io.in >= 0 ? io.in : open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = io.output_path != nullptr
                ? open(io.output_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, io.mode)
                : io.out;
  int err = io.output_path != nullptr ? out : io.err;
  // A private copy of the parent's mounts (none of this reaches the parent's namespace),
  // less `hide_mount`.
  if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0 ||
      (child->new_session && setsid() < 0) || unshare(CLONE_NEWNS) != 0 ||
      mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      (umount2(child->hide_mount, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)) {
    child->error = errno;
    _exit(127);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execvp(child->argv[0], child->argv);
  child->error = errno;
  _exit(127);
}

// Spawn's way with `hide_mount`: posix_spawn cannot give a child a mount namespace of its
// own, so this does what glibc's posix_spawn does (a clone sharing the memory, the parent
// suspended until the child execs, every signal blocked meanwhile) with the namespace set up
// in the child. Costs a copy of the mount table per start.
absl::StatusOr<pid_t> SpawnHidingMount(const std::vector<std::string>& argv, const ChildIo& io,
                                       bool new_session, const std::string& hide_mount) {
  std::vector<char*> c_args;
  for (const std::string& arg : argv) c_args.push_back(const_cast<char*>(arg.c_str()));
  c_args.push_back(nullptr);
  HidingChild child{.argv = c_args.data(), .io = &io, .new_session = new_session,
                    .hide_mount = hide_mount.c_str()};
  // execvp looks PATH up on this stack: PATH_MAX and a little.
  constexpr size_t kStackBytes = 256 << 10;
  std::unique_ptr<char[]> stack(new char[kStackBytes]);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pid_t pid = clone(HidingChildMain, stack.get() + kStackBytes, CLONE_VM | CLONE_VFORK | SIGCHLD,
                    &child);
  int clone_error = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run ", argv[0], ": ", strerror(clone_error)));
  }
  if (child.error != 0) {
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot run ", argv[0], " without ", hide_mount, ": ", strerror(child.error)));
  }
  return pid;
}

// posix_spawnp with signals unblocked and at their defaults, stdio from `io`, in a session
// of its own when `new_session` says so; with a `hide_mount`, SpawnHidingMount.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const ChildIo& io,
                            const SpawnOptions& options = {}) {
  if (!options.hide_mount.empty()) {
    return SpawnHidingMount(argv, io, options.new_session, options.hide_mount);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (io.in >= 0) {
    posix_spawn_file_actions_adddup2(&actions, io.in, 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  if (io.output_path != nullptr) {
    posix_spawn_file_actions_addopen(&actions, 1, io.output_path, O_WRONLY | O_CREAT | O_APPEND,
                                     io.mode);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  } else {
    posix_spawn_file_actions_adddup2(&actions, io.out, 1);
    posix_spawn_file_actions_adddup2(&actions, io.err, 2);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      (options.new_session ? POSIX_SPAWN_SETSID : 0));
  std::vector<char*> c_args;
  for (const std::string& arg : argv) c_args.push_back(const_cast<char*>(arg.c_str()));
  c_args.push_back(nullptr);
  pid_t pid = 0;
  int spawn_error = posix_spawnp(&pid, c_args[0], &actions, &attr, c_args.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (spawn_error != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run ", argv[0], ": ", strerror(spawn_error)));
  }
  return pid;
}

}  // namespace

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

bool WaitPidExit(pid_t pid, absl::Time deadline, int wake_fd) {
  int fd = PidfdOpen(pid);
  if (fd < 0) return errno == ESRCH;
  bool exited = false;
  while (true) {
    int timeout_ms = -1;
    if (deadline != absl::InfiniteFuture()) {
      absl::Duration left = std::max(deadline - absl::Now(), absl::ZeroDuration());
      timeout_ms = static_cast<int>(std::min<int64_t>(
          absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))), 1 << 30));
    }
    pollfd pfd[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int ready = poll(pfd, wake_fd >= 0 ? 2 : 1, timeout_ms);
    if (ready > 0) {
      // The process's exit wins over a wake that came at the same time.
      exited = pfd[0].revents != 0;
      break;
    }
    if (ready < 0 && errno != EINTR) break;
    if (absl::Now() >= deadline) break;
  }
  close(fd);
  return exited;
}


absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         absl::Duration timeout,
                                         const std::string& output_path,
                                         const std::string& input,
                                         const SpawnOptions& options) {
  constexpr size_t kMaxInputBytes = 64 << 10;
  if (input.size() > kMaxInputBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("input for ", argv[0], " is larger than ", kMaxInputBytes, " bytes"));
  }
  int in_pipe[2] = {-1, -1};
  if (!input.empty()) {
    // Written whole before the start: it fits in the pipe, so nothing waits on the reader.
    if (pipe2(in_pipe, O_CLOEXEC) != 0) {
      return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
    }
    ssize_t written = write(in_pipe[1], input.data(), input.size());
    close(in_pipe[1]);
    if (written != static_cast<ssize_t>(input.size())) {
      close(in_pipe[0]);
      return absl::InternalError(absl::StrCat("writing the input of ", argv[0], " failed"));
    }
  }
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  bool capture = output_path.empty();
  if (capture && (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)) {
    if (in_pipe[0] >= 0) close(in_pipe[0]);
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  ChildIo io{.in = in_pipe[0], .out = out_pipe[1], .err = err_pipe[1]};
  if (!capture) io.output_path = output_path.c_str();
  absl::StatusOr<pid_t> spawned = Spawn(argv, io, options);
  if (in_pipe[0] >= 0) close(in_pipe[0]);
  if (capture) {
    close(out_pipe[1]);
    close(err_pipe[1]);
  }
  if (!spawned.ok()) {
    if (capture) {
      close(out_pipe[0]);
      close(err_pipe[0]);
    }
    return spawned.status();
  }
  pid_t pid = *spawned;

  ProcessResult result;
  absl::Time deadline = absl::Now() + timeout;
  if (capture) {
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
      int64_t wait_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (wait_ms <= 0) {
        result.timed_out = true;
        break;
      }
      int ready = poll(fds, 2, static_cast<int>(std::min<int64_t>(wait_ms, 60000)));
      if (ready < 0 && errno != EINTR) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        char buffer[8192];
        ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
        if (n > 0) {
          std::string& sink = i == 0 ? result.out : result.err;
          if (sink.size() < kMaxCapturedBytes) sink.append(buffer, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
        }
      }
    }
    for (pollfd& fd : fds) {
      if (fd.fd >= 0) close(fd.fd);
    }
  }
  // Wait for this pid only: the containers are our children too.
  if (!result.timed_out && !WaitPidExit(pid, deadline)) result.timed_out = true;
  if (result.timed_out) kill(pid, SIGKILL);
  while (waitpid(pid, &result.status, 0) < 0 && errno == EINTR) {
  }
  return result;
}

absl::StatusOr<pid_t> StartProcess(const std::vector<std::string>& argv,
                                   const std::string& output_path, bool new_session) {
  absl::StatusOr<pid_t> spawned = Spawn(
      argv, {.output_path = output_path.c_str(), .mode = 0600}, {.new_session = new_session});
  return spawned;
}

absl::StatusOr<int> RunStreaming(const std::vector<std::string>& argv,
                                 const std::function<void(bool, absl::string_view)>& output,
                                 const std::function<bool()>& stop, OnStop on_stop,
                                 const SpawnOptions& options) {
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    close(out_pipe[0]);
    close(out_pipe[1]);
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  absl::StatusOr<pid_t> spawned =
      Spawn(argv, {.out = out_pipe[1], .err = err_pipe[1]}, options);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (!spawned.ok()) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return spawned.status();
  }
  pid_t pid = *spawned;
  int pidfd = PidfdOpen(pid);
  fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
  fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
  pollfd fds[3] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}, {pidfd, POLLIN, 0}};
  // Reads what is there now; false once the pipe is closed.
  auto drain = [&](int i) {
    char buffer[16384];
    while (true) {
      ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        output(i == 1, absl::string_view(buffer, static_cast<size_t>(n)));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && errno == EAGAIN;
    }
  };
  absl::Time terminated_at = absl::InfiniteFuture();
  bool exited = false;
  int open_pipes = 2;
  while (!exited) {
    int ready = poll(fds, 3, 200);
    if (ready < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      if (!drain(i)) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_pipes;
      }
    }
    // Without a pidfd (kernels before 5.3), the end of its output tells.
    if (pidfd >= 0 ? fds[2].revents != 0 : open_pipes == 0) exited = true;
    if (!exited && stop && stop()) {
      if (on_stop == OnStop::kLeave) {
        // Its output is read on (and dropped) so that it never blocks writing it, until it
        // exits (or, without a pidfd, closes its output).
        std::thread([pid, watch = std::vector<pollfd>(fds, fds + 3)]() mutable {
          char buffer[16384];
          while (watch[2].fd >= 0 || watch[0].fd >= 0 || watch[1].fd >= 0) {
            if (poll(watch.data(), watch.size(), -1) < 0) {
              if (errno == EINTR) continue;
              break;
            }
            if (watch[2].fd >= 0 && watch[2].revents != 0) break;
            for (int i = 0; i < 2; ++i) {
              if (watch[i].fd < 0 || watch[i].revents == 0) continue;
              ssize_t n = read(watch[i].fd, buffer, sizeof buffer);
              if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
                close(watch[i].fd);
                watch[i].fd = -1;
              }
            }
          }
          for (const pollfd& p : watch) {
            if (p.fd >= 0) close(p.fd);
          }
          int status = 0;
          while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
          }
        }).detach();
        return absl::CancelledError("stopped following it; it runs on");
      }
      if (terminated_at == absl::InfiniteFuture()) {
        kill(pid, SIGTERM);
        terminated_at = absl::Now();
      } else if (absl::Now() - terminated_at > absl::Seconds(5)) {
        kill(pid, SIGKILL);
      }
    }
  }
  // The process has ended: what it wrote is in the pipes now. Its descendants may keep them
  // open (a daemon), so the pipes are read up to what is there, not to their end.
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd >= 0) {
      drain(i);
      close(fds[i].fd);
    }
  }
  if (pidfd >= 0) close(pidfd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string ProcessResult::Said() const {
  std::string text(absl::StripAsciiWhitespace(err.empty() ? out : err));
  std::replace(text.begin(), text.end(), '\n', ' ');
  if (timed_out) return "timed out";
  if (WIFEXITED(status)) {
    return absl::StrCat("exit code ", WEXITSTATUS(status), text.empty() ? "" : ": ", text);
  }
  return absl::StrCat("killed by signal ", WTERMSIG(status));
}

}  // namespace drover::agent
