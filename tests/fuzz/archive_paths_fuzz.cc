// Fuzz target: common/archive/archive_paths.h, the rules every archive entry name and link
// target passes before extraction. Input: an entry name, a newline, a link target.
// Invariants: a normalised name is normalised already (normalising is idempotent), is
// relative, has no "." or ".." component, no empty component and fits the limits; a link
// target judged to stay inside does, resolved lexically from the link's folder.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_split.h"
#include "common/archive/archive_paths.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover;
  absl::string_view text = fuzz::AsText(data, size);
  size_t newline = text.find('\n');
  absl::string_view name = text.substr(0, newline);
  absl::string_view target =
      newline == absl::string_view::npos ? absl::string_view() : text.substr(newline + 1);

  absl::StatusOr<std::string> normal = archive::NormalizeEntryPath(name);
  if (!normal.ok()) return 0;
  std::string printable = archive::PrintableName(name);
  absl::StatusOr<std::string> twice = archive::NormalizeEntryPath(*normal);
  // The root ("./" becomes "") is the one normal form that is not itself an entry name.
  if (!normal->empty()) {
    FUZZ_CHECK(twice.ok() && *twice == *normal, printable);
  }
  FUZZ_CHECK(normal->size() <= archive::kMaxPathBytes, printable);
  std::vector<absl::string_view> parent;  // the link's folder, component by component
  if (!normal->empty()) {
    std::vector<absl::string_view> parts = absl::StrSplit(*normal, '/');
    for (absl::string_view part : parts) {
      FUZZ_CHECK(!part.empty() && part != "." && part != "..", printable);
      FUZZ_CHECK(part.size() <= archive::kMaxComponentBytes, printable);
      FUZZ_CHECK(part.find('\0') == absl::string_view::npos, printable);
    }
    parts.pop_back();
    parent = parts;
  }

  if (!archive::SymlinkStaysInside(*normal, target)) return 0;
  size_t depth = parent.size();
  for (absl::string_view part : absl::StrSplit(target, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      FUZZ_CHECK(depth > 0, printable + " -> " + archive::PrintableName(target) + " leaves the tree");
      --depth;
    } else {
      ++depth;
    }
  }
  return 0;
}
