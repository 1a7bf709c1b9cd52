// Ignore rules for code snapshots, with the semantics of git's `.gitignore` files
// (https://git-scm.com/docs/gitignore): comments, blank lines, trailing-space trimming,
// negation `!`, directory-only patterns (trailing `/`), anchoring (a `/` at the start or in
// the middle), `*`, `?`, `**` (leading `**/`, trailing `/**`, inner `/**/`), bracket
// expressions (`[abc]`, `[a-z]`, `[!a]`, `[^a]`, `[[:digit:]]`) and backslash escapes.
//
// Rules come from any number of ignore files, each tied to the folder it sits in. As in
// git, a file's patterns apply to paths below its folder; the file deepest in the tree
// decides first, and within one file the last matching pattern wins. A path inside an
// excluded folder is excluded whatever later patterns say (`ExcludesWithParents`).
//
// Not supported (git's own extras): `$GIT_DIR/info/exclude`, `core.excludesFile`, and
// case-insensitive matching (`core.ignorecase`).
//
// An `IgnoreRules` is a plain value; const methods may be called from any thread.
#ifndef DROVER_COMMON_ARCHIVE_IGNORE_RULES_H_
#define DROVER_COMMON_ARCHIVE_IGNORE_RULES_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace drover::archive {

// Whether `text` matches the glob `pattern` with git's wildmatch rules in path mode: `*`,
// `?` and bracket expressions never match `/`; `**` between slashes (or at either end)
// matches any number of folders. Exposed for tests and for callers with one-off globs.
bool GlobMatch(absl::string_view pattern, absl::string_view text);

class IgnoreRules {
 public:
  IgnoreRules() = default;

  // Adds the patterns of one ignore file. `folder` is the file's folder relative to the
  // snapshot root, '/'-separated without leading or trailing '/' ("" for the root).
  // `contents` is the file's text. Lines that cannot match anything (for example an
  // unterminated `[`) are kept and simply never match, as in git.
  void AddFile(absl::string_view folder, absl::string_view contents);

  // Whether `path` (relative to the root, '/'-separated, no trailing '/') is excluded by the
  // patterns, looking at `path` alone: callers that walk the tree top-down and never enter
  // excluded folders need nothing more.
  bool Excludes(absl::string_view path, bool is_dir) const;

  // Like `Excludes`, but also true when any folder above `path` is excluded (git cannot
  // re-include a file whose parent folder is excluded).
  bool ExcludesWithParents(absl::string_view path, bool is_dir) const;

  // Whether no file added any pattern.
  bool empty() const { return files_.empty(); }

 private:
  struct Pattern {
    std::string glob;       // without the `!`, the trailing `/` and a leading `/`
    bool negated = false;   // `!pattern`
    bool dir_only = false;  // `pattern/`
    bool basename = false;  // no `/` inside: match the last path component at any depth
  };
  // 1 when the last matching pattern of `patterns` excludes `relative`, 0 when it
  // re-includes it, -1 when none matches.
  static int Decide(const std::vector<Pattern>& patterns, absl::string_view relative, bool is_dir);

  // Patterns by the folder of their file ("" for the root).
  absl::flat_hash_map<std::string, std::vector<Pattern>> files_;
};

}  // namespace drover::archive

#endif  // DROVER_COMMON_ARCHIVE_IGNORE_RULES_H_
