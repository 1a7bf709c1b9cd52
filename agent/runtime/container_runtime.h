// ContainerRuntime: how drover-agent runs a job's processes in a container. RuncRuntime is
// the implementation (the only code that knows runc); tests of the agent's logic use a fake.
//
// One container per attempt per node. Its PID 1 is `drover-init` (agent/launcher), which
// starts the node's ranks, writes each one's stdout/stderr and exit status to files in the
// job folder's logs/, reaps, and stops the other ranks when one fails. The runtime knows
// nothing of ranks: it creates, starts, signals, watches and deletes containers.
//
// Threads: methods may block for as long as runc takes (tens of ms); the agent calls them
// off its event loop. Implementations are thread-safe for different container ids.
#ifndef DROVER_AGENT_RUNTIME_CONTAINER_RUNTIME_H_
#define DROVER_AGENT_RUNTIME_CONTAINER_RUNTIME_H_

#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace drover::agent {

// A range of host ids (uids and gids alike) that a container's ids 0..size-1 map to.
struct IdRange {
  uint32_t host_id = 0;
  uint32_t size = 0;  // 0: no user namespace
};

struct BindMount {
  std::string source;       // path on the node
  std::string destination;  // path in the container
  bool read_only = true;
  // A folder the agent made for this container to write (not a datastore, nothing shared):
  // with a user namespace, the runtime gives it and everything in it to the container's
  // root before the container starts.
  bool owned_by_container = false;
};

// A device node to add to a container (a GPU).
struct DeviceNode {
  // Path in the container, under /dev/ (for example "/dev/nvidia0").
  std::string path;
  // The device node on the node whose type and major/minor it gets; empty: `path`.
  std::string source;
};

struct ContainerSpec {
  // Unique on the machine, [A-Za-z0-9_.-]; the agent uses "drover-<job>-<epoch>-<hash of
  // its work folder>", so that several agents on one machine never share a cgroup.
  std::string id;
  // Folder the runtime owns for this container (config.json, rootfs, overlay dirs); it
  // must exist and be empty. Delete() removes what the runtime put there.
  std::string bundle_dir;

  // Root filesystem. Empty `image_rootfs`: the node's own OS, read-only (host `/usr`, `/etc`
  // and the usual `bin lib lib64 sbin` links, tmpfs on `/tmp /run /var /root`). Otherwise an
  // unpacked image root, shared read-only between containers, under a per-container
  // copy-on-write overlay (upper/work dirs in bundle_dir).
  std::string image_rootfs;

  // The job folder on the node, mounted read-write at `/job` and the working directory
  // (`code/`, `outputs/`, `logs/` live in it).
  std::string job_dir;
  std::string cwd = "/job/code";
  // argv of PID 1 and its environment ("KEY=VALUE").
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::vector<BindMount> mounts;

  std::string hostname;
  // Network namespace to join (for example /var/run/netns/NAME); empty: the node's own.
  std::string netns_path;

  // Limits (cgroup): CPU cores (fractions allowed; 0: none), memory in MiB (0: none),
  // processes, and the size of /dev/shm in MiB.
  double cpus = 0;
  int64_t memory_mib = 0;
  int64_t pids_limit = 4096;
  int64_t shm_mib = 64;
  // Device nodes to add (GPUs), allowed read, write and mknod (`rwm`) in the device cgroup.
  std::vector<DeviceNode> devices;
};

// What a running container uses now, from its cgroup (v1 or v2).
struct ContainerStats {
  // CPU time of every process, user and system, since the container started.
  int64_t cpu_ns = 0;
  // Memory charged to the container now, and the most it was charged so far (-1 when the
  // kernel does not record it: cgroup v2 before Linux 5.19).
  int64_t memory_bytes = 0;
  int64_t memory_peak_bytes = -1;
};

// How a container's PID 1 ended.
struct ContainerExit {
  int exit_code = -1;  // -1 when a signal ended it
  int signal = 0;
  bool oom_killed = false;  // the container's memory cgroup recorded an OOM kill
  // When it failed: the last line PID 1 itself wrote (not the ranks), for example
  // drover-init's usage error; empty when none.
  std::string last_message;
  // What the container used over its whole life, read after PID 1 exited and before its
  // cgroup was removed: `cpu_ns` and `memory_peak_bytes`, each -1 when it could not be read
  // (the cgroup was gone, a file missing or not a number); `memory_bytes` is not read.
  ContainerStats usage{.cpu_ns = -1, .memory_bytes = -1, .memory_peak_bytes = -1};
};

// Where a container is in its life, as the runtime sees it now.
enum class ContainerState {
  kCreated,  // PID 1 exists but has not run `args` (Create() without Start())
  kRunning,  // PID 1 runs `args` (Start() or Run() reached it)
  kStopped,  // PID 1 has exited (or died before it ran `args`)
};

// A container the runtime finds on the node (for recovery after an agent restart).
struct ContainerInfo {
  std::string id;
  pid_t pid = 0;       // PID 1 of the container on the node, 0 when stopped
  bool running = false;
  std::string bundle_dir;
};

class ContainerRuntime {
 public:
  virtual ~ContainerRuntime() = default;

  // Writes the OCI config from `spec` and creates the container (its PID 1 exists but has
  // not run `args` yet). Errors: INVALID_ARGUMENT (bad spec), ALREADY_EXISTS (id in use),
  // UNAVAILABLE (runc failed; the message has runc's error).
  virtual absl::Status Create(const ContainerSpec& spec) = 0;
  // Runs PID 1's program. Errors: NOT_FOUND, UNAVAILABLE.
  virtual absl::Status Start(absl::string_view id) = 0;
  // Create() and Start() in one step, for a container nothing has to wait for between the
  // two (one runtime call instead of two: `runc run --detach`). Same errors as Create().
  virtual absl::Status Run(const ContainerSpec& spec) = 0;
  // PID 1's process id on the node, for watching its exit (pidfd) without polling runc.
  virtual absl::StatusOr<pid_t> Pid(absl::string_view id) = 0;
  // Runs `args` as another process of running container `id` (its environment, working
  // directory, limits and namespaces), handing its output to `output(is_stderr, bytes)` as
  // it comes, until it exits. Returns its exit code, 128 + signal when a signal ended it.
  // When `stop` (asked every 200 ms) returns true first, the process is left running (it
  // ends by itself or with the container) and Exec returns CANCELLED. Errors: NOT_FOUND,
  // UNAVAILABLE.
  virtual absl::StatusOr<int> Exec(absl::string_view id, const std::vector<std::string>& args,
                                   const std::function<void(bool, absl::string_view)>& output,
                                   const std::function<bool()>& stop) = 0;
  // What the running container uses. NOT_FOUND when it does not run, UNAVAILABLE when its
  // cgroup cannot be read.
  virtual absl::StatusOr<ContainerStats> Stats(absl::string_view id) = 0;
  // Sends `signal` to PID 1, or with `all` to every process of the container.
  virtual absl::Status Signal(absl::string_view id, int signal, bool all) = 0;
  // Blocks until PID 1 exited (at most `timeout_ms`, -1 forever) and returns how.
  // DEADLINE_EXCEEDED on timeout.
  virtual absl::StatusOr<ContainerExit> Wait(absl::string_view id, int timeout_ms) = 0;
  // Wait(), also ending (DEADLINE_EXCEEDED) as soon as `wake_fd` is readable: the watch loop
  // of an attempt sleeps here until PID 1 exits or a STOP or the agent's stop writes to its
  // eventfd, instead of looking every few milliseconds. The caller drains `wake_fd`. This
  // default waits at most 20 ms and ignores `wake_fd` (the caller looks again soon); the
  // real runtime waits on both at once.
  virtual absl::StatusOr<ContainerExit> WaitOrWake(absl::string_view id, int timeout_ms,
                                                   int wake_fd) {
    (void)wake_fd;
    return Wait(id, timeout_ms < 0 ? 20 : std::min(timeout_ms, 20));
  }
  // Kills what still runs, deletes the container, its cgroup and overlay mounts, and
  // empties bundle_dir. NOT_FOUND is not an error (already gone). Idempotent.
  virtual absl::Status Delete(absl::string_view id) = 0;
  // Every container this runtime created on the node (by its runc root), running or not.
  virtual absl::StatusOr<std::vector<ContainerInfo>> List() = 0;
  // Where container `id` is now, asked of the runtime itself (not remembered): what a
  // taken-over attempt decides by. NOT_FOUND when the runtime has no such container,
  // UNAVAILABLE when it cannot tell.
  virtual absl::StatusOr<ContainerState> Inspect(absl::string_view id) = 0;
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_RUNTIME_CONTAINER_RUNTIME_H_
