// Internal to common/safe_open*.cc: the resolution of a path beneath a root, nothing
// followed (safe_open_resolve.cc), and the wording of refusals (safe_open.cc), shared by
// the files that open, read, list and copy beneath a root. Callers use common/safe_open.h.
// Pure functions of the file system; any thread.
#ifndef DROVER_COMMON_SAFE_OPEN_INTERNAL_H_
#define DROVER_COMMON_SAFE_OPEN_INTERNAL_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/safe_open.h"

namespace drover::safe_open_internal {

// --- Resolution (safe_open_resolve.cc) ---

// `a`/`b`, or `b` when `a` is empty.
std::string JoinPath(absl::string_view a, absl::string_view b);

// The components of a path that IsBeneathPath accepted, without "" and ".".
std::vector<std::string> Components(absl::string_view path);

// open(2) of `path` below `root_fd` with nothing followed: the fd, or -errno. Uses openat2(2)
// with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS where the kernel has it, else opens one
// component at a time with O_NOFOLLOW. `flags` are passed through as they are.
int RawOpenBeneath(int root_fd, absl::string_view path, int flags, mode_t mode);

// What `path` below `root_fd` names, nothing followed; `*where` the part of the path that
// has that kind when a folder on the way is not a folder.
FileKind Classify(int root_fd, absl::string_view path, std::string* where);

// --- Refusals and roots (safe_open.cc) ---

// "a symbolic link", "a fifo", ... for messages.
absl::string_view KindNoun(FileKind kind);

// FAILED_PRECONDITION for `path`, where `where` (the path or a folder on the way to it) is of
// `kind`.
absl::Status Refused(absl::string_view path, absl::string_view where, FileKind kind,
                     bool want_dir);

// The folder `root` (a path the caller trusts), opened to resolve paths beneath it.
// NOT_FOUND when it does not exist; UNAVAILABLE otherwise.
absl::StatusOr<UniqueFd> OpenRoot(const std::string& root);

}  // namespace drover::safe_open_internal

#endif  // DROVER_COMMON_SAFE_OPEN_INTERNAL_H_
