// RuncRuntime: ContainerRuntime with the runc binary, the only code in Drover that knows
// runc. It writes each container's OCI config itself (oci_spec.h), keeps its containers under
// its own `runc --root` folder (so it never sees or touches other containers on the node),
// prepares the root filesystem (host skeleton or image overlay) and cleans everything up in
// Delete(). Owned by the agent; thread-safe for different container ids, and Wait() may run
// in one thread while Signal() or Delete() of the same id run in others.
//
// Exit watching. Open() makes the calling process a child subreaper
// (PR_SET_CHILD_SUBREAPER, process wide): once `runc create` returns, the container's PID 1
// is a child of the agent, and Wait() polls its pidfd and reaps it with waitpid(pid) for the
// real exit status. The agent process must therefore never reap with waitpid(-1) (nor set
// SIGCHLD to SIG_IGN): that would take the status away from Wait(). A side effect: other
// orphaned descendants of the agent (daemonizing helpers) also become its children; they are
// reaped only by whoever waits for their pid. crun leaves one such process per container
// (an intermediate of `run --detach` and `create`): RuncRuntime reaps those itself.
// When PID 1 is not the agent's child (the agent restarted since Create), Wait() watches the
// pidfd (pidfd_open(2) + poll(2)) and takes the exit status from the file drover-init writes
// before it exits (`--exit-file`, kContainerExitFile in the container, `state/init.exit` in
// the bundle). Without that file (PID 1 was not drover-init, or it was SIGKILLed), Wait()
// reports exit_code -1, signal SIGKILL. runc state is read once per call where needed, never
// polled.
//
// OOM and usage: after PID 1 exits, and before Delete() lets runc remove the cgroup, Wait()
// reads the container's memory cgroup (v1 memory.oom_control or v2 memory.events,
// `oom_kill N`) and its final usage (CPU time, memory peak: ContainerExit::usage). The
// cgroup folders are found at create time from /proc/<pid>/cgroup and kept in the bundle
// (`state.oom_file`, `state.cgroups`) for a later agent process.
//
// Signals. PID 1 of a PID namespace drops any signal it neither catches nor blocks, even
// from outside. Signal() therefore first waits (up to 2 s, reading /proc/<pid>/status) until
// a just-started PID 1 runs its own program and catches the signal; drover-init does that
// first thing. A PID 1 that never catches it costs the 2 s, and the signal is then dropped
// by the kernel (only SIGKILL always works).
//
// The agent passes `args` built with InitCommand (agent/launcher/init_command.h), whose
// defaults are kContainerInitPath and kContainerExitFile.
#ifndef DROVER_AGENT_RUNTIME_RUNC_RUNTIME_H_
#define DROVER_AGENT_RUNTIME_RUNC_RUNTIME_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/runtime/cgroups.h"
#include "agent/runtime/container_runtime.h"
#include "agent/runtime/process.h"
#include "agent/runtime/oci_spec.h"
#include "agent/runtime/oci_runtime_version.h"

namespace drover::agent {

struct RuncOptions {
  // The OCI runtime binary, runc or crun: a path, or a name looked up in PATH; or "auto"
  // (kAutoOciRuntime): crun where it works on this node, else runc (oci_runtime_choice.h).
  std::string runc_path = "auto";
  // runc's state folder (`runc --root`), for example `<agent work dir>/runc`; created when
  // missing. Required.
  std::string root_dir;
  // Where the root skeletons of host-OS containers are kept, each shared read-only by every
  // container with the same mountpoints, for example `<agent work dir>/skeletons`; empty:
  // each bundle gets a skeleton of its own (some twenty more files and folders made and
  // removed per container).
  std::string skeleton_dir;
  // drover-init on the node, bound read-only into every container at kContainerInitPath
  // ("/run/drover/init"); empty: not bound (then args[0] must exist in the rootfs).
  std::string init_binary;
  // Relative cgroup folder the containers go under (`<parent>/<id>`), below the agent's own
  // cgroup; empty (the default): `<id>` right below it, so that Delete() leaves no folder.
  std::string cgroup_parent;
  // How long one runc command may take before it is killed.
  absl::Duration command_timeout = absl::Seconds(60);
  // Accept a runtime that CheckOciRuntimeVersion refuses (`--allow-unpatched-runc`): for a
  // distribution that backported the fixes under a version this check does not know.
  bool allow_unpatched_runc = false;
  // The user namespace of every container: its ids 0..size-1 are host ids host_id..
  // (`--userns-range`). Create() gives the job folder, the state folder and every mount
  // marked `owned_by_container` to the container's root (host_id), so that it can write
  // them. size 0: no user namespace (the container's root is the node's root).
  IdRange userns;
  // The default seccomp filter (oci_spec.h); false only to debug a job that it stops.
  bool seccomp = true;
  // Runs a runc command: RunProcess's contract (process.h). Empty: RunProcess. Unit tests
  // put a scripted runc here.
  std::function<absl::StatusOr<ProcessResult>(const std::vector<std::string>& argv,
                                              absl::Duration timeout,
                                              const std::string& output_path)>
      run_process;
};

// RuncOptions::runc_path that lets Open choose (ChooseOciRuntime).
inline constexpr absl::string_view kAutoOciRuntime = "auto";

class RuncRuntime : public ContainerRuntime {
 public:
  // Checks the options, creates `root_dir`, makes this process a child subreaper and checks
  // that the runtime is runc with the fix for CVE-2024-21626 or crun 1.4.4 or later (unless
  // `allow_unpatched_runc`). With runc_path "auto" it first probes the node and chooses
  // (ChooseOciRuntime; one log line, `oci_runtime`, says which and why). crun, chosen or
  // named, runs without /sys/fs/cgroup/unified where CrunNeedsCgroup2Hidden.
  // INVALID_ARGUMENT for bad options; FAILED_PRECONDITION when runc or init_binary cannot be
  // found, runc lacks the fix or the process cannot become a subreaper.
  static absl::StatusOr<std::unique_ptr<RuncRuntime>> Open(RuncOptions options);

  // Where the container's own stdout and stderr go (drover-init's messages, and runc's
  // error when create fails): `<bundle_dir>/container.log`. Removed by Delete().
  static std::string ContainerLogPath(absl::string_view bundle_dir);
  // The host path of drover-init's exit file: `<bundle_dir>/state/init.exit`.
  static std::string ExitFilePath(absl::string_view bundle_dir);

  // Which runtime runs the containers, for people: "crun 1.8.1" or "runc 1.1.5+ds1".
  const std::string& Description() const { return description_; }

  // ContainerRuntime. Beyond the interface's codes: Create() also gives INVALID_ARGUMENT when
  // bundle_dir is not an empty folder or image_rootfs is not a folder, and UNAVAILABLE when
  // the overlay cannot be mounted; on any failure it leaves bundle_dir empty. Signal() gives
  // FAILED_PRECONDITION when PID 1 has exited. Delete() gives UNAVAILABLE when PID 1 does
  // not die within 15 s of SIGKILL or a mount under bundle_dir cannot be removed (then the
  // bundle's files are kept: removing through a mount could delete an image).
  absl::Status Create(const ContainerSpec& spec) override;
  absl::Status Start(absl::string_view id) override;
  absl::Status Run(const ContainerSpec& spec) override;
  absl::StatusOr<pid_t> Pid(absl::string_view id) override;
  absl::StatusOr<ContainerStats> Stats(absl::string_view id) override;
  absl::StatusOr<int> Exec(absl::string_view id, const std::vector<std::string>& args,
                           const std::function<void(bool, absl::string_view)>& output,
                           const std::function<bool()>& stop) override;
  absl::Status Signal(absl::string_view id, int signal, bool all) override;
  absl::StatusOr<ContainerExit> Wait(absl::string_view id, int timeout_ms) override;
  // One poll() on PID 1's pidfd and `wake_fd` together: no look every few milliseconds.
  absl::StatusOr<ContainerExit> WaitOrWake(absl::string_view id, int timeout_ms,
                                           int wake_fd) override;
  absl::Status Delete(absl::string_view id) override;
  absl::StatusOr<std::vector<ContainerInfo>> List() override;
  // `runc state`: "created" while the exec fifo waits for `runc start`, "running" (or
  // "paused") from then on, "stopped" once PID 1 is gone.
  absl::StatusOr<ContainerState> Inspect(absl::string_view id) override;

 private:
  // What the runtime knows of one container. Shared with a Wait() in progress, so that a
  // Delete() meanwhile can hand it the exit status it reaped. Fields are guarded by `mu_`
  // once the record is in `records_`.
  struct Record {
    std::string id;
    std::string bundle_dir;
    pid_t pid = 0;
    bool created = false;  // `runc create` (or `runc run --detach`) succeeded
    std::string oom_file;  // memory.oom_control (v1) or memory.events (v2); empty: unknown
    CgroupDirs cgroups;    // the container's, found at create time; empty: unknown
    std::optional<ContainerExit> exit;
  };

  struct RuncState {
    std::string status;  // "created", "running", "paused", "stopped"
    pid_t pid = 0;
    std::string bundle;
  };

  explicit RuncRuntime(RuncOptions options, uint64_t nofile_limit)
      : options_(std::move(options)), nofile_limit_(nofile_limit) {}

  // The cgroupsPath of container `id` in its OCI config.
  std::string CgroupsPath(absl::string_view id) const;
  // crun only: reaps the intermediate crun processes earlier creates left to this subreaper
  // (zombies otherwise, one per container), never a container's PID 1.
  void ReapOrphans() ABSL_LOCKS_EXCLUDED(mu_);

  // Runs one runtime command (options_.run_process, else RunProcess with hide_mount_).
  absl::StatusOr<ProcessResult> RunRuntime(const std::vector<std::string>& argv,
                                           const std::string& output_path);
  // Runs `runc --root R <args>`; UNAVAILABLE with runc's message when it fails, NOT_FOUND
  // when runc says the container does not exist.
  absl::StatusOr<std::string> Runc(const std::vector<std::string>& args);
  // `runc state`: NOT_FOUND when runc does not know `id`.
  absl::StatusOr<RuncState> State(absl::string_view id);
  // The record of `id`, rebuilt from runc state (after an agent restart) when missing.
  absl::StatusOr<std::shared_ptr<Record>> Find(absl::string_view id);
  // Create() and Run(): `runc create`, or with `start` `runc run --detach`.
  absl::Status CreateContainer(const ContainerSpec& spec, bool start);
  // Waits (at most until `deadline`, or until `wake_fd` is readable when it is >= 0) for
  // `record`'s PID 1 to exit and records how. DEADLINE_EXCEEDED when it still runs.
  absl::StatusOr<ContainerExit> AwaitExit(const std::shared_ptr<Record>& record,
                                          absl::Time deadline, int wake_fd = -1);

  RuncOptions options_;  // runc_path is set once by Open, then never changes
  const uint64_t nofile_limit_;
  // Set once by Open(): which runtime `runc_path` is, and for crun CrunCgroupBase.
  OciRuntimeKind kind_ = OciRuntimeKind::kRunc;
  std::string cgroup_base_;
  // Set once by Open: kHybridCgroup2Mount when crun must not see it, else empty.
  std::string hide_mount_;
  std::string description_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Record>, std::less<>> records_ ABSL_GUARDED_BY(mu_);
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_RUNTIME_RUNC_RUNTIME_H_
