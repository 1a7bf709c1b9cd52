// Which OCI runtime RuncRuntime drives and whether it may: runc or crun, told apart by
// their `--version`, each with the lowest version that has the fixes isolation relies on,
// and where crun must put a container's cgroup to land where runc would. Pure functions.
#ifndef DROVER_AGENT_RUNTIME_OCI_RUNTIME_VERSION_H_
#define DROVER_AGENT_RUNTIME_OCI_RUNTIME_VERSION_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace drover::agent {

// The OCI runtimes RuncRuntime drives, told apart by their `--version`. Both take the same
// command line (create, start, run --detach, exec, kill, delete, state, list); crun, written
// in C, starts a container for about 0.4 of runc's CPU (docs/benchmarks.md, issue 18).
// Where they differ RuncRuntime adapts: crun places a relative cgroupsPath at the root of
// each cgroup hierarchy where runc puts it below its own cgroup (so RuncRuntime gives crun
// the absolute path runc would have chosen, CrunCgroupBase), and its error texts differ.
enum class OciRuntimeKind { kRunc, kCrun };

// Checks the output of `runc --version` for the fix of CVE-2024-21626 (a container process
// reaching the host's file system through a leaked descriptor): upstream 1.1.12 or later, or
// a Debian package that carries the fix backported (`commit: 1.1.5+ds1-1+deb12u1` or a later
// +deb12uN, +deb11u3 or later on Debian 11). FAILED_PRECONDITION saying what to install (and
// naming --allow-unpatched-runc) otherwise, also when the output cannot be read.
absl::Status CheckRuncHasCve202421626Fix(absl::string_view version_output);

// Checks the output of `crun --version` (`crun version 1.8.1`) for 1.4.4 or later, which
// fixed CVE-2022-27650 (processes started with inheritable capabilities); CVE-2024-21626 is
// a descriptor leak of runc's own init, not crun's. FAILED_PRECONDITION saying what to
// install otherwise, also when the output cannot be read.
absl::Status CheckCrunFloor(absl::string_view version_output);

// Which runtime a `--version` output is (crun's first line is `crun version ...`; anything
// else is taken for runc), and the floor check of that runtime.
struct OciRuntimeVersion {
  OciRuntimeKind kind = OciRuntimeKind::kRunc;
  absl::Status floor;
};
OciRuntimeVersion CheckOciRuntimeVersion(absl::string_view version_output);

// The runtime's name and version from its `--version`, for people: "crun 1.8.1",
// "runc 1.1.5+ds1"; the first line when neither shows.
std::string OciRuntimeDescription(absl::string_view version_output);

// The cgroup folder (absolute within each hierarchy, "" for the root) below which crun must
// place a container so that it lands where runc puts a relative cgroupsPath, from the
// /proc/self/cgroup text of the agent: on a cgroup v2 host, beside the agent's own cgroup
// (its parent: a cgroup holding processes cannot hand controllers to children); with v1
// hierarchies, below the agent's own cgroup. crun takes one path for every v1 hierarchy:
// when the agent's paths differ between hierarchies, the memory hierarchy's is taken (the
// limit that matters most to stay under), else the first. Pure.
std::string CrunCgroupBase(absl::string_view proc_self_cgroup);

}  // namespace drover::agent

#endif  // DROVER_AGENT_RUNTIME_OCI_RUNTIME_VERSION_H_
