// The mount table of a process (/proc/PID/mountinfo, proc(5)), parsed: the one reader of
// that format in the agent, used by the runtime (cgroup mounts, mounts left under a bundle)
// and by rclone mounts. Pure functions and a read of /proc; any thread.
#ifndef DROVER_AGENT_RUNTIME_MOUNTINFO_H_
#define DROVER_AGENT_RUNTIME_MOUNTINFO_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace drover::agent {

// One line of mountinfo, the fields the agent uses.
struct MountEntry {
  std::string mount_point;    // escapes decoded
  std::string fs_type;        // "cgroup2", "fuse.rclone", ...
  std::string super_options;  // "rw,memory" (for a v1 cgroup mount: its controllers)
};

// A mountinfo field with its octal escapes decoded: the kernel writes space, tab, newline
// and backslash as `\ooo` (`\040` for a space). A backslash not followed by three octal
// digits is kept as it is.
std::string UnescapeMountField(absl::string_view text);

// The entries of the mountinfo `text`, in its order. Lines that are not mountinfo (no
// mount point, no ` - ` separator, fewer than three fields after it) are skipped.
std::vector<MountEntry> ParseMountInfo(absl::string_view text);

// This process's mount table (/proc/self/mountinfo); empty when it cannot be read.
std::vector<MountEntry> ReadMountInfo();

// Whether the absolute `path` is the folder `dir` or below it ("/a/bc" is not below "/a/b").
// `dir` is written without a trailing slash, and is not "/".
bool IsAtOrUnder(absl::string_view path, absl::string_view dir);

}  // namespace drover::agent

#endif  // DROVER_AGENT_RUNTIME_MOUNTINFO_H_
