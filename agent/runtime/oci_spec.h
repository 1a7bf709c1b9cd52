// The OCI runtime config (config.json) of a job container, built from a ContainerSpec. Pure:
// it reads no files and runs nothing, so unit tests check every field without runc;
// RuncRuntime resolves what needs the node (device numbers, the host's root links, the
// rlimit ceiling) into OciOptions first. Any thread.
//
// What the container gets (docs/containers.md has the full picture):
// - namespaces: new pid, ipc, uts, mount; network: the node's own, or `netns_path`
// - mounts, in order: /proc; /dev (tmpfs) with /dev/pts, /dev/shm (tmpfs, `shm_mib`),
//   /dev/mqueue; /sys and /sys/fs/cgroup read-only; host mode: host /usr and /etc
//   read-only plus `host_dir_binds`, tmpfs on /tmp /run /var /root; a tmpfs at /run/drover
//   holding drover-init (read-only) and the runtime's state folder (read-write); the job
//   folder read-write at /job; then the spec's own binds
// - limits: cpu quota/period, memory limit with memory+swap equal (no swap), pids
// - process: uid 0, the default capability set below, noNewPrivileges, RLIMIT_NOFILE,
//   masked and read-only kernel paths as in `runc spec`, the seccomp allowlist below
// - with `userns` set: a new user namespace whose root is an unprivileged host range; /sys
//   is then a read-only bind of the node's (sysfs cannot be mounted from a user namespace
//   that does not own the network namespace) and device nodes are bound from the node
//   (mknod is not allowed there)
#ifndef DROVER_AGENT_RUNTIME_OCI_SPEC_H_
#define DROVER_AGENT_RUNTIME_OCI_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/runtime/container_runtime.h"
#include "common/json.h"

namespace drover::agent {

// Where the runtime's injected files appear inside every container.
inline constexpr char kContainerDroverDir[] = "/run/drover";
inline constexpr char kContainerInitPath[] = "/run/drover/init";
inline constexpr char kContainerStateDir[] = "/run/drover/state";
inline constexpr char kContainerExitFile[] = "/run/drover/state/init.exit";

// Docker's default capability set without CAP_NET_RAW (raw sockets: packet spoofing on the
// node's network, which jobs share), CAP_MKNOD (device nodes; the device cgroup refuses them
// anyway) and CAP_SETFCAP (file capabilities that a later exec would gain).
const std::vector<std::string>& DefaultCapabilities();
// As in `runc spec` (runc 1.1), plus /sys/devices/virtual/powercap (energy counters, a
// known side channel; Docker masks it too).
const std::vector<std::string>& DefaultMaskedPaths();
const std::vector<std::string>& DefaultReadonlyPaths();

// The default seccomp filter (`linux.seccomp`): an allowlist in the spirit of Docker's default
// profile, written for training jobs (Python, PyTorch, Open MPI, pip, CUDA libraries). What
// is not listed fails with EPERM; clone3 fails with ENOSYS so that libc falls back to clone,
// whose flags are checked. Refused, among others: keyctl, add_key, request_key, bpf,
// kexec_*, mount and the new mount API, umount, pivot_root, setns, unshare and clone of new
// namespaces, ptrace, process_vm_readv/writev, kcmp, perf_event_open, *_module, swapon/off,
// reboot, open_by_handle_at, userfaultfd, io_uring_*, clock and time setting, syslog,
// iopl/ioperm, acct, quotactl. Architectures: the node's own only (NativeSeccompArchitecture);
// a system call of another ABI (i386 `int 0x80`, x32, 32-bit arm) kills the calling thread
// with SIGSYS, so 32-bit programs cannot run in job containers.
Json DefaultSeccompProfile();

// "SCMP_ARCH_X86_64" or "SCMP_ARCH_AARCH64", as this binary is built; "" elsewhere (the
// profile then lists none, and runc filters for its own architecture only).
std::string NativeSeccompArchitecture();

// The syscalls DefaultSeccompProfile() allows whatever their arguments (clone, unshare and
// personality are allowed only with the arguments it checks).
const std::vector<std::string>& SeccompAllowedSyscalls();

// A device node to expose (a GPU), as found on the node.
struct OciDevice {
  std::string path;  // path inside the container
  char type = 'c';   // 'c' or 'b'
  int64_t major = 0;
  int64_t minor = 0;
  uint32_t file_mode = 0666;
  // The node's device node: bound at `path` when the container has a user namespace (where
  // no device node can be made); empty: `path`.
  std::string source;
};

struct OciOptions {
  // Root filesystem, relative to the bundle (or absolute).
  std::string rootfs = "rootfs";
  // Host mode (the spec's `image_rootfs` empty): the rootfs is an empty skeleton made
  // read-only after the mounts, the host's /usr and /etc are bound read-only and tmpfs
  // covers /tmp /run /var /root. Image mode: the rootfs (an overlay) stays writable.
  bool host_os = true;
  // Host mode: real folders of the host's root (not `usr/...` links, on a system without
  // merged /usr) bound read-only at the same path, for example "/bin".
  std::vector<std::string> host_dir_binds;
  // Host path of drover-init, bound read-only at kContainerInitPath; empty: none.
  std::string init_binary;
  // Host folder bound read-write at kContainerStateDir (drover-init's exit file); empty:
  // none.
  std::string state_dir;
  // Relative cgroup path (runc places it under its own cgroup; an absolute path would escape
  // the agent's cgroup).
  std::string cgroups_path;
  // RLIMIT_NOFILE soft and hard; must not exceed the caller's hard limit (runc refuses).
  // 0: no rlimits entry.
  uint64_t nofile_limit = 0;
  std::vector<OciDevice> devices;
  // The job's user namespace: container ids 0..size-1 are host ids host_id.. (size 0: no
  // user namespace, the container's root is the node's root).
  IdRange userns;
  // The seccomp filter; false: none (a debugging aid, never the default).
  bool seccomp = true;
};

// Checks what Create() needs of a spec: id of [A-Za-z0-9_.-] (1..128 chars, not "." or
// ".."), absolute bundle_dir and job_dir and cwd, non-empty args, "KEY=VALUE" env entries,
// absolute mount paths, sane limits. INVALID_ARGUMENT naming the field otherwise.
absl::Status ValidateContainerSpec(const ContainerSpec& spec);

// The config.json value for `spec`. INVALID_ARGUMENT when the spec is not valid. Reads one
// thing of the node: whether each of `spec.mounts` is a file (a read-only file bind gets `ro`
// without `rro`, which crun refuses on files).
absl::StatusOr<Json> BuildOciConfig(const ContainerSpec& spec, const OciOptions& options);

}  // namespace drover::agent

#endif  // DROVER_AGENT_RUNTIME_OCI_SPEC_H_
