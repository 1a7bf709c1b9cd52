// Internal to agent/environments: what the files of EnvironmentCache share (the cache's
// folder names, the build script's exit codes, file helpers). Defined in
// environment_internal.cc; any thread.
#ifndef DROVER_AGENT_ENVIRONMENTS_ENVIRONMENT_INTERNAL_H_
#define DROVER_AGENT_ENVIRONMENTS_ENVIRONMENT_INTERNAL_H_

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

// `items` sorted, each once.
std::vector<std::string> SortedUnique(const std::vector<std::string>& items);

// The file at `path`; "" when it cannot be read.
std::string ReadText(const std::string& path);

// Appends to the preparation log (O_APPEND: the build container appends to the same file).
void AppendLog(const std::string& path, absl::string_view text);

// Sets the mtime of `path` to now, creating it empty when missing; best effort.
void Touch(const std::string& path);

// Whether anything is mounted at or below `dir` (then removing it could reach through).
bool HasMountUnder(const std::string& dir);

}  // namespace drover::agent

#endif  // DROVER_AGENT_ENVIRONMENTS_ENVIRONMENT_INTERNAL_H_
