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
//   masked and read-only kernel paths as in `runc spec`
#ifndef DROVER_AGENT_RUNTIME_OCI_SPEC_H_
#define DROVER_AGENT_RUNTIME_OCI_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/runtime/container_runtime.h"
#include "agent/runtime/json.h"

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

// A device node to expose (a GPU), as found on the node.
struct OciDevice {
  std::string path;  // same path inside the container
  char type = 'c';   // 'c' or 'b'
  int64_t major = 0;
  int64_t minor = 0;
  uint32_t file_mode = 0666;
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
};

// Checks what Create() needs of a spec: id of [A-Za-z0-9_.-] (1..128 chars, not "." or
// ".."), absolute bundle_dir and job_dir and cwd, non-empty args, "KEY=VALUE" env entries,
// absolute mount paths, sane limits. INVALID_ARGUMENT naming the field otherwise.
absl::Status ValidateContainerSpec(const ContainerSpec& spec);

// The config.json value for `spec`. INVALID_ARGUMENT when the spec is not valid.
absl::StatusOr<Json> BuildOciConfig(const ContainerSpec& spec, const OciOptions& options);

}  // namespace drover::agent

#endif  // DROVER_AGENT_RUNTIME_OCI_SPEC_H_
