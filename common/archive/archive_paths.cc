#include "common/archive/archive_paths.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace drover::archive {

absl::StatusOr<std::string> NormalizeEntryPath(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("empty name");
  if (name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("name contains a NUL byte");
  }
  if (name.front() == '/') return absl::InvalidArgumentError("absolute path");
  std::vector<absl::string_view> parts;
  for (absl::string_view part : absl::StrSplit(name, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError("'..' component leaves the destination");
    }
    if (part.size() > kMaxComponentBytes) {
      return absl::InvalidArgumentError(absl::StrCat("a path component is ", part.size(),
                                                     " bytes (limit ", kMaxComponentBytes, ")"));
    }
    parts.push_back(part);
  }
  std::string normalized = absl::StrJoin(parts, "/");
  if (normalized.size() > kMaxPathBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("path is ", normalized.size(), " bytes (limit ", kMaxPathBytes, ")"));
  }
  return normalized;
}

bool SymlinkStaysInside(absl::string_view link_path, absl::string_view target) {
  if (target.empty() || target.size() > kMaxPathBytes) return false;
  if (target.front() == '/' || target.find('\0') != absl::string_view::npos) return false;
  // Folders above the link, inside the tree.
  size_t depth = 0;
  for (char c : link_path) depth += c == '/';
  size_t ups = 0;
  bool descended = false;
  for (absl::string_view part : absl::StrSplit(target, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (descended) return false;
      if (++ups > depth) return false;
    } else {
      descended = true;
    }
  }
  return true;
}

std::string PrintableName(absl::string_view name) { return absl::CHexEscape(name); }

}  // namespace drover::archive
