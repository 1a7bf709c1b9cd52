#include "agent/runtime/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace drover::agent {
namespace {

// Output beyond this is dropped: error messages, not data, are what callers read.
constexpr size_t kMaxCapturedBytes = 1 << 20;

}  // namespace

int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

bool WaitPidExit(pid_t pid, absl::Time deadline) {
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
    pollfd pfd = {fd, POLLIN, 0};
    int ready = poll(&pfd, 1, timeout_ms);
    if (ready > 0) {
      exited = true;
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
                                         const std::string& output_path) {
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  bool capture = output_path.empty();
  if (capture && (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  if (capture) {
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  } else {
    posix_spawn_file_actions_addopen(&actions, 1, output_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
  }
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> c_args;
  for (const std::string& arg : argv) c_args.push_back(const_cast<char*>(arg.c_str()));
  c_args.push_back(nullptr);
  pid_t pid = 0;
  int spawn_error = posix_spawnp(&pid, c_args[0], &actions, &attr, c_args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (capture) {
    close(out_pipe[1]);
    close(err_pipe[1]);
  }
  if (spawn_error != 0) {
    if (capture) {
      close(out_pipe[0]);
      close(err_pipe[0]);
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run ", argv[0], ": ", strerror(spawn_error)));
  }

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

}  // namespace drover::agent
