// Which OCI runtime drover-agent runs when none is named (`--runc auto`, the default): crun
// where it is installed, new enough and able to apply a job's limits on the node's cgroup
// layout, runc otherwise. ChooseOciRuntime is pure over what ProbeOciRuntimes found, so
// every rule is unit-tested without the node; RuncRuntime::Open runs both.
//
// crun and hybrid layouts. A hybrid node mounts the cgroup v1 controllers under
// /sys/fs/cgroup and a cgroup2 hierarchy at /sys/fs/cgroup/unified. crun 1.8 refuses every
// container there when that cgroup2 hierarchy holds a controller ("cgroups in hybrid mode
// not supported, drop all controllers from cgroupv2"); it tells the layout by statfs(2) of
// /sys/fs/cgroup/unified alone. runc on the same node applies every limit through the v1
// hierarchies and only adds its processes to the cgroup2 tree. So when every controller
// a job's limits use (memory, cpu, pids, devices) is a v1 hierarchy, crun can apply them
// all: the agent runs crun in a private mount namespace without /sys/fs/cgroup/unified
// (SpawnOptions::hide_mount), where crun sees the v1 layout and places the container in
// the same v1 cgroups runc would. The container's processes stay in the agent's cgroup2
// group, whose controllers (often only `hugetlb`) no job limit uses.
#ifndef DROVER_AGENT_RUNTIME_OCI_RUNTIME_CHOICE_H_
#define DROVER_AGENT_RUNTIME_OCI_RUNTIME_CHOICE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace drover::agent {

// The path at which hybrid layouts mount cgroup2, and which crun's check reads.
inline constexpr absl::string_view kHybridCgroup2Mount = "/sys/fs/cgroup/unified";

// The node's cgroup file systems, as /sys/fs/cgroup shows them.
struct CgroupLayout {
  enum class Kind {
    kUnknown,  // /sys/fs/cgroup is neither cgroup2 nor a tmpfs of hierarchies
    kV1,       // only v1 hierarchies
    kHybrid,   // v1 hierarchies and a cgroup2 at kHybridCgroup2Mount
    kV2,       // cgroup2 at /sys/fs/cgroup
  };
  Kind kind = Kind::kUnknown;
  // The controllers bound to a v1 hierarchy (/proc/cgroups: a non-zero hierarchy id, enabled).
  std::vector<std::string> v1_controllers;
  // The controllers of the cgroup2 hierarchy's root (its cgroup.controllers).
  std::vector<std::string> cgroup2_controllers;
};

// What the agent found on the node for ChooseOciRuntime.
struct OciRuntimeProbe {
  // crun's path; empty when it is not installed.
  std::string crun_path;
  // What `crun --version` printed; empty when it did not run.
  std::string crun_version;
  CgroupLayout layout;
  // The runtime's state folder holds containers that runc made (`<id>/state.json`): a
  // restarted agent must go on with the runtime that knows them.
  bool runc_containers = false;
};

// What the agent runs, and why.
struct OciRuntimeChoice {
  // The runtime's path (or name, looked up in PATH): `runc`, or the probe's crun_path.
  std::string path;
  // crun only: run it without kHybridCgroup2Mount (header comment).
  bool hide_cgroup2 = false;
  // Why, for the log: "crun 1.8.1 installed, hybrid cgroups: cgroup2 (hugetlb) hidden
  // from crun", "crun is not installed".
  std::string reason;
};

// The controllers whose limits a job's OCI config sets (oci_spec.cc: memory, cpu quota,
// pids, device rules), which crun must find as v1 hierarchies on a v1 or hybrid node.
const std::vector<std::string>& JobCgroupControllers();

// For crun (chosen or named with --runc): whether it must run with cgroup2 hidden on
// `layout`: a hybrid layout whose cgroup2 holds a controller. Pure.
bool CrunNeedsCgroup2Hidden(const CgroupLayout& layout);

// The choice for `--runc auto`, in this order: runc while runc's containers are on the
// node; runc when crun is missing, does not run or is older than its floor
// (CheckCrunFloor); runc when the layout is unknown, or is v1 or hybrid without a v1
// hierarchy for each of JobCgroupControllers; crun otherwise, with cgroup2 hidden where
// CrunNeedsCgroup2Hidden. Pure.
OciRuntimeChoice ChooseOciRuntime(const OciRuntimeProbe& probe);

// /proc/cgroups ("#subsys_name hierarchy num_cgroups enabled"): the enabled controllers
// bound to a v1 hierarchy. Pure.
std::vector<std::string> V1ControllersFromProcCgroups(absl::string_view proc_cgroups);

// Reads the node: statfs(2) of /sys/fs/cgroup and kHybridCgroup2Mount, /proc/cgroups, the
// cgroup2 root's cgroup.controllers. Unreadable parts stay empty (kind kUnknown).
CgroupLayout ProbeCgroupLayout();

// Reads the node for ChooseOciRuntime: crun in PATH (then /usr/bin/crun, /usr/sbin/crun),
// its `--version` through `run_version` (argv → stdout; an error: it did not run),
// ProbeCgroupLayout, and whether `runtime_root` holds a runc container.
OciRuntimeProbe ProbeOciRuntimes(
    const std::string& runtime_root,
    const std::function<absl::StatusOr<std::string>(const std::vector<std::string>&)>&
        run_version);

}  // namespace drover::agent

#endif  // DROVER_AGENT_RUNTIME_OCI_RUNTIME_CHOICE_H_
