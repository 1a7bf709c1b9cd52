// Internal to agent/runtime: the small file helpers its files share (runc_runtime.cc,
// runc_runtime_open.cc, runc_bundle.cc, cgroups.cc, mountinfo.cc). Any thread.
#ifndef DROVER_AGENT_RUNTIME_RUNTIME_FILES_H_
#define DROVER_AGENT_RUNTIME_RUNTIME_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace drover::agent {

// "WHAT PATH: strerror(errno)".
std::string ErrnoText(absl::string_view what, absl::string_view path);

// The whole file at `path`; NOT_FOUND when it cannot be read.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `content` to `path` through `path`.tmp and a rename (mode 0644); INTERNAL when that
// fails.
absl::Status WriteFile(const std::string& path, absl::string_view content);

}  // namespace drover::agent

#endif  // DROVER_AGENT_RUNTIME_RUNTIME_FILES_H_
