#include "common/archive/ignore_rules.h"

#include <cctype>
#include <cstring>
#include <utility>

#include "absl/strings/str_split.h"

namespace drover::archive {
namespace {

// A port of git's wildmatch (wildmatch.c, WM_PATHNAME, case-sensitive), so that patterns
// behave exactly as users know them from `.gitignore`.
enum WildResult { kMatch = 0, kNoMatch = 1, kAbortAll = -1, kAbortToStarStar = -2 };

class WildMatcher {
 public:
  WildMatcher(absl::string_view pattern, absl::string_view text) : pattern_(pattern), text_(text) {}

  int Match() { return DoWild(0, 0); }

 private:
  // Characters past the end read as NUL, like the C strings git works on.
  unsigned char P(size_t i) const {
    return i < pattern_.size() ? static_cast<unsigned char>(pattern_[i]) : '\0';
  }
  unsigned char T(size_t i) const {
    return i < text_.size() ? static_cast<unsigned char>(text_[i]) : '\0';
  }
  static bool IsGlobSpecial(unsigned char c) {
    return c == '*' || c == '?' || c == '[' || c == '\\';
  }
  bool HasSlashFrom(size_t t) const {
    return t < text_.size() && text_.find('/', t) != absl::string_view::npos;
  }
  bool ClassIs(size_t start, size_t len, const char* name) const {
    return std::strlen(name) == len && pattern_.substr(start, len) == name;
  }

  int DoWild(size_t p, size_t t) {
    unsigned char p_ch;
    for (; (p_ch = P(p)) != '\0'; ++t, ++p) {
      unsigned char t_ch = T(t);
      if (t_ch == '\0' && p_ch != '*') return kAbortAll;
      switch (p_ch) {
        case '\\':
          p_ch = P(++p);
          if (t_ch != p_ch) return kNoMatch;
          continue;
        default:
          if (t_ch != p_ch) return kNoMatch;
          continue;
        case '?':
          if (t_ch == '/') return kNoMatch;
          continue;
        case '*': {
          bool match_slash;
          if (P(++p) == '*') {
            // `**`: special only when it fills a whole path component.
            bool at_start = p < 2;
            bool after_slash = !at_start && P(p - 2) == '/';
            while (P(++p) == '*') {
            }
            if ((at_start || after_slash) &&
                (P(p) == '\0' || P(p) == '/' || (P(p) == '\\' && P(p + 1) == '/'))) {
              // "a/**/b" also matches "a/b": try `**/` as matching nothing.
              if (P(p) == '/' && DoWild(p + 1, t) == kMatch) return kMatch;
              match_slash = true;
            } else {
              match_slash = false;
            }
          } else {
            match_slash = false;
          }
          if (P(p) == '\0') {
            // Trailing `**` matches everything; trailing `*` only what has no more '/'.
            if (!match_slash && HasSlashFrom(t)) return kNoMatch;
            return kMatch;
          }
          if (!match_slash && P(p) == '/') {
            // One `*` followed by '/' matches the rest of this component.
            size_t slash = text_.find('/', t);
            if (slash == absl::string_view::npos) return kNoMatch;
            t = slash;
            break;  // the loop's increments consume both slashes
          }
          while (true) {
            if (t_ch == '\0') break;
            // Skip ahead to the literal that follows the star.
            if (!IsGlobSpecial(P(p))) {
              unsigned char want = P(p);
              while ((t_ch = T(t)) != '\0' && (match_slash || t_ch != '/')) {
                if (t_ch == want) break;
                ++t;
              }
              if (t_ch != want) return kNoMatch;
            }
            int matched = DoWild(p, t);
            if (matched != kNoMatch) {
              if (!match_slash || matched != kAbortToStarStar) return matched;
            } else if (!match_slash && t_ch == '/') {
              return kAbortToStarStar;
            }
            t_ch = T(++t);
          }
          return kAbortAll;
        }
        case '[': {
          p_ch = P(++p);
          if (p_ch == '^') p_ch = '!';
          bool negated = p_ch == '!';
          if (negated) p_ch = P(++p);
          unsigned char prev_ch = 0;
          bool matched = false;
          do {
            if (p_ch == '\0') return kAbortAll;
            if (p_ch == '\\') {
              p_ch = P(++p);
              if (p_ch == '\0') return kAbortAll;
              if (t_ch == p_ch) matched = true;
            } else if (p_ch == '-' && prev_ch != 0 && P(p + 1) != '\0' && P(p + 1) != ']') {
              p_ch = P(++p);
              if (p_ch == '\\') {
                p_ch = P(++p);
                if (p_ch == '\0') return kAbortAll;
              }
              if (t_ch <= p_ch && t_ch >= prev_ch) matched = true;
              p_ch = 0;  // a range cannot start another range
            } else if (p_ch == '[' && P(p + 1) == ':') {
              size_t s = p += 2;
              while ((p_ch = P(p)) != '\0' && p_ch != ']') ++p;
              if (p_ch == '\0') return kAbortAll;
              long len = static_cast<long>(p - s) - 1;
              if (len < 0 || P(p - 1) != ':') {
                // Not a "[:class:]": treat the '[' as an ordinary member.
                p = s - 2;
                p_ch = '[';
                if (t_ch == p_ch) matched = true;
                continue;
              }
              size_t n = static_cast<size_t>(len);
              int c = t_ch;
              if (ClassIs(s, n, "alnum")) {
                matched |= std::isalnum(c) != 0;
              } else if (ClassIs(s, n, "alpha")) {
                matched |= std::isalpha(c) != 0;
              } else if (ClassIs(s, n, "blank")) {
                matched |= c == ' ' || c == '\t';
              } else if (ClassIs(s, n, "cntrl")) {
                matched |= std::iscntrl(c) != 0;
              } else if (ClassIs(s, n, "digit")) {
                matched |= std::isdigit(c) != 0;
              } else if (ClassIs(s, n, "graph")) {
                matched |= std::isgraph(c) != 0;
              } else if (ClassIs(s, n, "lower")) {
                matched |= std::islower(c) != 0;
              } else if (ClassIs(s, n, "print")) {
                matched |= std::isprint(c) != 0;
              } else if (ClassIs(s, n, "punct")) {
                matched |= std::ispunct(c) != 0;
              } else if (ClassIs(s, n, "space")) {
                matched |= std::isspace(c) != 0;
              } else if (ClassIs(s, n, "upper")) {
                matched |= std::isupper(c) != 0;
              } else if (ClassIs(s, n, "xdigit")) {
                matched |= std::isxdigit(c) != 0;
              } else {
                return kAbortAll;  // unknown class name
              }
              p_ch = 0;
            } else if (t_ch == p_ch) {
              matched = true;
            }
          } while (prev_ch = p_ch, (p_ch = P(++p)) != ']');
          if (matched == negated || t_ch == '/') return kNoMatch;
          continue;
        }
      }
    }
    return t < text_.size() ? kNoMatch : kMatch;
  }

  absl::string_view pattern_;
  absl::string_view text_;
};

// git's trim_trailing_spaces: drops trailing spaces unless the first of them is escaped.
absl::string_view TrimTrailingSpaces(absl::string_view line) {
  size_t last_space = absl::string_view::npos;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (c == ' ') {
      if (last_space == absl::string_view::npos) last_space = i;
    } else if (c == '\\') {
      ++i;
      if (i >= line.size()) return line;
      last_space = absl::string_view::npos;
    } else {
      last_space = absl::string_view::npos;
    }
  }
  return last_space == absl::string_view::npos ? line : line.substr(0, last_space);
}

absl::string_view Basename(absl::string_view path) {
  size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

bool GlobMatch(absl::string_view pattern, absl::string_view text) {
  return WildMatcher(pattern, text).Match() == kMatch;
}

void IgnoreRules::AddFile(absl::string_view folder, absl::string_view contents) {
  // A UTF-8 byte order mark at the start is not part of the first pattern.
  if (contents.substr(0, 3) == "\xEF\xBB\xBF") contents.remove_prefix(3);
  std::vector<Pattern>& patterns = files_[std::string(folder)];
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    line = TrimTrailingSpaces(line);
    Pattern pattern;
    if (!line.empty() && line.front() == '!') {
      pattern.negated = true;
      line.remove_prefix(1);
    }
    if (!line.empty() && line.back() == '/') {
      pattern.dir_only = true;
      line.remove_suffix(1);
    }
    pattern.basename = line.find('/') == absl::string_view::npos;
    if (!pattern.basename && line.front() == '/') line.remove_prefix(1);
    if (line.empty()) continue;
    pattern.glob = std::string(line);
    patterns.push_back(std::move(pattern));
  }
  if (patterns.empty()) files_.erase(std::string(folder));
}

int IgnoreRules::Decide(const std::vector<Pattern>& patterns, absl::string_view relative,
                        bool is_dir) {
  absl::string_view base = Basename(relative);
  for (auto it = patterns.rbegin(); it != patterns.rend(); ++it) {
    if (it->dir_only && !is_dir) continue;
    bool hit = it->basename ? GlobMatch(it->glob, base) : GlobMatch(it->glob, relative);
    if (hit) return it->negated ? 0 : 1;
  }
  return -1;
}

bool IgnoreRules::Excludes(absl::string_view path, bool is_dir) const {
  if (files_.empty()) return false;
  // From the deepest folder holding an ignore file up to the root.
  size_t end = path.size();
  while (true) {
    size_t slash = end == 0 ? absl::string_view::npos : path.rfind('/', end - 1);
    absl::string_view folder =
        slash == absl::string_view::npos ? absl::string_view() : path.substr(0, slash);
    auto it = files_.find(folder);
    if (it != files_.end()) {
      absl::string_view relative = folder.empty() ? path : path.substr(folder.size() + 1);
      int decision = Decide(it->second, relative, is_dir);
      if (decision >= 0) return decision == 1;
    }
    if (slash == absl::string_view::npos) return false;
    end = slash;
  }
}

bool IgnoreRules::ExcludesWithParents(absl::string_view path, bool is_dir) const {
  for (size_t slash = path.find('/'); slash != absl::string_view::npos;
       slash = path.find('/', slash + 1)) {
    if (Excludes(path.substr(0, slash), /*is_dir=*/true)) return true;
  }
  return Excludes(path, is_dir);
}

}  // namespace drover::archive
