// Child processes for drover-agent (runc, umoci, skopeo). The agent is a child subreaper
// whose containers are its children too, so everything here waits for exactly its own pid,
// never with waitpid(-1). Thread-safe.
#ifndef DROVER_AGENT_RUNTIME_PROCESS_H_
#define DROVER_AGENT_RUNTIME_PROCESS_H_

#include <sys/types.h>
#include <sys/wait.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace drover::agent {

int PidfdOpen(pid_t pid);

// Waits until process `pid` exits (a child or not) or `deadline` passes; true when it
// exited or is gone. Uses a pidfd: no polling of /proc. With `wake_fd` (>= 0) it also
// returns (false) as soon as that descriptor is readable (an eventfd another thread writes
// to end the wait early); the caller drains it.
bool WaitPidExit(pid_t pid, absl::Time deadline, int wake_fd = -1);

// How RunProcess and RunStreaming start their child.
struct SpawnOptions {
  // In a session (and process group) of its own.
  bool new_session = false;
  // Non-empty: the child runs in a mount namespace of its own, a private copy of the
  // agent's, with the mount at this path detached (absent there: nothing to detach). For
  // crun on a hybrid cgroup layout, which must not see /sys/fs/cgroup/unified
  // (oci_runtime_choice.h). Nothing the child mounts reaches the agent's namespace.
  std::string hide_mount;
};

struct ProcessResult {
  int status = 0;  // raw wait status
  bool timed_out = false;
  std::string out;  // at most 1 MiB of each is kept
  std::string err;
  bool ok() const { return !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0; }
  // How it ended and what it said (stderr, else stdout), on one line, for errors and logs:
  // "exit code 9: no devices found", "timed out", "killed by signal 9".
  std::string Said() const;
};

// Runs `argv` (argv[0] looked up in PATH) with stdin from /dev/null, signals unblocked and
// at their defaults. Without `output_path`, stdout and stderr are captured through pipes;
// with it, both go to that file (O_APPEND): `runc create` hands its stdio to the container,
// which would hold a pipe open forever. A process still running at `timeout` is killed and
// reported `timed_out`. A non-empty `input` is its stdin instead (at most 64 KiB, a pipe's
// capacity: for small secrets that must not appear on a command line). FAILED_PRECONDITION
// when it cannot be started (also when `options.hide_mount` cannot be set up);
// INVALID_ARGUMENT for a larger `input`.
absl::StatusOr<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                         absl::Duration timeout,
                                         const std::string& output_path = "",
                                         const std::string& input = "",
                                         const SpawnOptions& options = {});

// Starts `argv` (argv[0] looked up in PATH) in the background, stdin from /dev/null, stdout
// and stderr appended to `output_path` (created 0600), signals at their defaults, and
// returns its pid: the caller owns the child and reaps it by that pid. With `new_session` it
// runs in a session (and process group) of its own, so that no signal meant for the
// agent's group or terminal (Ctrl-C, a hang-up) reaches it: a process that outlives the
// agent. FAILED_PRECONDITION when it cannot be started.
absl::StatusOr<pid_t> StartProcess(const std::vector<std::string>& argv,
                                   const std::string& output_path, bool new_session = false);

// Runs `argv` (stdin /dev/null) and hands its output to `output(is_stderr, bytes)` as it
// comes, until the process exits; then what is already in its pipes (descendants that
// outlive it, such as a daemon, may keep them open: their later output is not waited for).
// `stop`, asked every 200 ms, ends it: SIGTERM, then SIGKILL 5 s later; or with
// OnStop::kLeave, RunStreaming returns CANCELLED at once and leaves it running (a thread
// of its own drains its output, unread, and reaps it). Returns the raw wait status;
// FAILED_PRECONDITION when it cannot be started. Callbacks run on the caller.
enum class OnStop { kTerminate, kLeave };
absl::StatusOr<int> RunStreaming(const std::vector<std::string>& argv,
                                 const std::function<void(bool, absl::string_view)>& output,
                                 const std::function<bool()>& stop,
                                 OnStop on_stop = OnStop::kTerminate,
                                 const SpawnOptions& options = {});

}  // namespace drover::agent

#endif  // DROVER_AGENT_RUNTIME_PROCESS_H_
