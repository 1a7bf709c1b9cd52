// Fuzz target: common/archive/ignore_rules.h, the `.gitignore` / `.droverignore` files of
// the folder a user submits (a cloned repository is someone else's text). Input: the lines
// of an ignore file, a line "%%", then paths to test ("/" at the end: a folder). The same
// file is added at the root and in folder "sub". Invariants: a path excluded is also
// excluded with its parents; a glob without special characters (or NUL) matches itself; and no
// pattern takes long (libFuzzer's -timeout catches backtracking blow-ups).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/archive/archive_paths.h"
#include "common/archive/ignore_rules.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover;
  absl::string_view text = fuzz::AsText(data, size);
  size_t split = text.find("\n%%\n");
  absl::string_view rules = text.substr(0, split);
  absl::string_view paths_text =
      split == absl::string_view::npos ? absl::string_view() : text.substr(split + 4);

  archive::IgnoreRules ignore;
  ignore.AddFile("", rules);
  ignore.AddFile("sub", rules);

  std::vector<absl::string_view> patterns = absl::StrSplit(rules, '\n');
  std::vector<absl::string_view> paths = absl::StrSplit(paths_text, '\n', absl::SkipEmpty());
  if (paths.size() > 64) paths.resize(64);
  if (patterns.size() > 64) patterns.resize(64);
  for (absl::string_view path : paths) {
    bool is_dir = absl::ConsumeSuffix(&path, "/");
    if (path.empty()) continue;
    const std::string below = "sub/" + std::string(path);
    for (absl::string_view p : {path, absl::string_view(below)}) {
      if (ignore.Excludes(p, is_dir)) {
        FUZZ_CHECK(ignore.ExcludesWithParents(p, is_dir), archive::PrintableName(p));
      }
    }
    for (absl::string_view pattern : patterns) (void)archive::GlobMatch(pattern, path);
  }
  for (absl::string_view pattern : patterns) {
    // Paths hold no NUL, and a pattern ends at one, as in git.
    if (pattern.find_first_of(absl::string_view("*?[\\\0", 5)) == absl::string_view::npos) {
      FUZZ_CHECK(archive::GlobMatch(pattern, pattern), archive::PrintableName(pattern));
    }
  }
  return 0;
}
