// Internal to agent/environments: what the files of EnvironmentCache share (the cache's
// folder names, the build script's exit codes, file helpers). Defined in
// environment_internal.cc; any thread.
#ifndef DROVER_AGENT_ENVIRONMENTS_ENVIRONMENT_INTERNAL_H_
#define DROVER_AGENT_ENVIRONMENTS_ENVIRONMENT_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace drover::agent {

// Folders under the cache's root: a build in progress, an evicted environment being removed.
inline constexpr char kBuildPrefix[] = ".build-";
inline constexpr char kTrashPrefix[] = ".trash-";
// The script's refusals (see EnvironmentBuildScript).
inline constexpr int kNoConda = 90;
inline constexpr int kNoPython = 91;
inline constexpr int kNoPip = 92;
inline constexpr int kNoVenv = 93;
inline constexpr int kCondaWithoutPython = 94;
inline constexpr int kCannotBuildHorovod = 95;
// What the image lacks to build Horovod, one item a line, in the build's job folder.
inline constexpr char kHorovodMissingFile[] = "missing";

// The preparation log's file in the attempt's log folder: drover-init names the build's one
// process's output so (first rank 0), and the cache writes its own lines to it too.
inline constexpr char kPrepareLog[] = "rank-0.stdout";

// `items` sorted, each once.
std::vector<std::string> SortedUnique(const std::vector<std::string>& items);

// The file at `path` (the agent's own files and the host's); "" when it cannot be read.
std::string ReadText(const std::string& path);

// A file the build container wrote, `name` below `dir` (a folder the container writes in:
// the preparation log's, its job folder): read only when it is a regular file there, never
// through a link and never waiting on a FIFO (anything else is logged and read as empty),
// from byte `from` on, at most the last `max_bytes` of it.
std::string ReadContainerFile(const std::string& dir, absl::string_view name, int64_t from = 0,
                              size_t max_bytes = size_t{1} << 20);

// Appends to the preparation log `name` in `dir` (O_APPEND: the build container appends to
// the same file). The folder is the container's too: written only when the log is a regular
// file there (created if missing), never through a link or into a FIFO.
void AppendLog(const std::string& dir, absl::string_view name, absl::string_view text);

// Sets the mtime of `path` to now, creating it empty when missing; best effort.
void Touch(const std::string& path);

// Whether anything is mounted at or below `dir` (then removing it could reach through).
bool HasMountUnder(const std::string& dir);

}  // namespace drover::agent

#endif  // DROVER_AGENT_ENVIRONMENTS_ENVIRONMENT_INTERNAL_H_
