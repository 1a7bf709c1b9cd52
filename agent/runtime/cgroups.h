// Internal to agent/runtime: where a container's cgroups are and what they say (usage for
// Stats(), the OOM killer's count for Wait()). Reads /proc and the cgroup file systems,
// never writes; any thread.
#ifndef DROVER_AGENT_RUNTIME_CGROUPS_H_
#define DROVER_AGENT_RUNTIME_CGROUPS_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/runtime/container_runtime.h"
#include "agent/runtime/mountinfo.h"

namespace drover::agent {

// The cgroup folders of a process: per v1 controller where v1 hierarchies are mounted
// (hybrid hosts), and the v2 one.
struct CgroupDirs {
  std::map<std::string, std::string> v1;  // controller ("memory", "cpuacct") -> folder
  std::string v2;                         // empty when there is no cgroup2 mount
};

// The folders of the process whose /proc/PID/cgroup reads `proc_cgroup`, under the cgroup
// mounts among `mounts`. A root cgroup ("/") is never chosen: a container is never in one,
// its process is there once it has exited, and the root's counters are the whole machine's.
// Pure.
CgroupDirs ChooseCgroupDirs(absl::string_view proc_cgroup, const std::vector<MountEntry>& mounts);

// ChooseCgroupDirs for process `pid`, from /proc; empty when it cannot be read.
CgroupDirs FindCgroups(pid_t pid);

// `dirs` as text, one folder a line (`<v1 controller> <folder>`, `v2 <folder>`), to keep in
// a container's bundle for a later agent process; and back. The parser skips lines that
// are not of that form or whose folder is not an absolute path without `..` (the file is
// the agent's own, but a damaged one must not lead a read elsewhere). Pure.
std::string FormatCgroupDirs(const CgroupDirs& dirs);
CgroupDirs ParseCgroupDirs(absl::string_view text);

// The file holding the `oom_kill` counter of the memory cgroup `dirs`: v1
// `memory.oom_control` where a v1 memory controller is mounted, else v2 `memory.events`;
// empty when neither is known. Pure.
std::string OomFileOf(const CgroupDirs& dirs);

// Whether the text of a memory.oom_control or memory.events file counts an OOM kill
// (`oom_kill N`, N > 0). Pure.
bool CountsOomKill(absl::string_view text);

// CountsOomKill of the file `oom_file`; false when it is empty or unreadable.
bool ReadOomKilled(const std::string& oom_file);

// Memory and CPU usage from the cgroups `dirs` (v1 controllers first, else v2): a field is
// -1 when its file is missing or unreadable, and keeps ContainerStats' default when `dirs`
// has no folder for it.
ContainerStats ReadCgroupStats(const CgroupDirs& dirs);

// What a container whose processes have all exited used over its life (ContainerExit's
// `usage`): CPU time and memory peak from the cgroups `dirs` (still there until the
// container is deleted), each -1 when `dirs` has no folder for it or its file is missing
// or not a number; `memory_bytes` -1 (what is charged after the end means nothing).
ContainerStats ReadFinalUsage(const CgroupDirs& dirs);

}  // namespace drover::agent

#endif  // DROVER_AGENT_RUNTIME_CGROUPS_H_
