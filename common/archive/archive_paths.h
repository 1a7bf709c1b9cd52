// Path rules shared by the snapshot builder and the safe extractor: which entry names and
// which symbolic link targets an archive may carry. Pure functions; any thread.
#ifndef DROVER_COMMON_ARCHIVE_ARCHIVE_PATHS_H_
#define DROVER_COMMON_ARCHIVE_ARCHIVE_PATHS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace drover::archive {

// Longest path (in bytes) and path component an archive entry may have: Linux's PATH_MAX
// and NAME_MAX, so that whatever is accepted can be created.
inline constexpr size_t kMaxPathBytes = 4095;
inline constexpr size_t kMaxComponentBytes = 255;

// Normalises an entry name as stored in an archive: drops a leading "./", "." components,
// repeated and trailing slashes ("./src//a/" -> "src/a"; "./" -> "", the root).
// INVALID_ARGUMENT, with a message that says why (without the name, which the caller
// adds), for an empty or absolute name, a ".." component, a NUL byte, or a path or
// component longer than the limits above.
absl::StatusOr<std::string> NormalizeEntryPath(absl::string_view name);

// Whether a symbolic link at `link_path` (a normalised entry path) whose target is `target`
// stays inside the tree it is extracted into, wherever it is followed from. The rule is
// deliberately stricter than "resolves inside": the target must be relative, non-empty, free
// of NUL bytes, and its ".." components may only come first ("../../lib/x" is fine,
// "x/../y" is not), no more of them than folders above the link. With every folder of the
// tree a real folder (the extractor never writes through links), such a link cannot
// resolve outside the tree even through chains of other links, while "x/../.." could when
// "x" is itself a link.
bool SymlinkStaysInside(absl::string_view link_path, absl::string_view target);

// A name made printable for error messages: quotes and non-printable bytes escaped.
std::string PrintableName(absl::string_view name);

}  // namespace drover::archive

#endif  // DROVER_COMMON_ARCHIVE_ARCHIVE_PATHS_H_
