// The wording of job-spec messages and the rules that several sections share: names and
// paths relative to a root.
#include <string>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/utf8.h"
#include "scheduler/job_spec_rules.h"

namespace drover::scheduler::job_spec_internal {

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

std::string Quote(absl::string_view value) {
  if (value.size() > kMaxQuotedBytes) {
    return absl::StrCat("'", absl::CHexEscape(value.substr(0, kMaxQuotedBytes)), "...'");
  }
  return absl::StrCat("'", absl::CHexEscape(value), "'");
}

std::string MapField(absl::string_view map_field, absl::string_view key) {
  return absl::StrCat(map_field, "[", Quote(key), "]");
}

std::string ListField(absl::string_view list_field, int index) {
  return absl::StrCat(list_field, "[", index, "]");
}

std::string OutOfRange(int64_t value, int64_t low, int64_t high) {
  return absl::StrCat(value, " is out of range; use ", low, " to ", high);
}

std::string TooLong(size_t size, size_t max, absl::string_view unit) {
  return absl::StrCat(size, " ", unit, " is too long; use at most ", max, " ", unit);
}

namespace {

bool IsLowerHex(char c) { return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'); }

}  // namespace

bool IsLowerHexDigits(absl::string_view s, size_t count) {
  return s.size() == count && absl::c_all_of(s, IsLowerHex);
}

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-'; }

bool IsTagKeyChar(char c) { return IsNameChar(c) || c == '/'; }

bool IsPoolNameChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '-';
}

absl::Status CheckJobName(absl::string_view field, absl::string_view value) {
  return CheckName(field, value, kMaxNameChars, IsNameChar, "[A-Za-z0-9._-]");
}

absl::Status CheckPoolName(absl::string_view field, absl::string_view value) {
  return CheckName(field, value, kMaxPoolNameChars, IsPoolNameChar, "[a-z0-9_-]");
}

absl::Status CheckRelativePath(absl::string_view field, absl::string_view path,
                               absl::string_view root) {
  if (path.size() > kMaxPathBytes) {
    return Invalid(field, TooLong(path.size(), kMaxPathBytes, "bytes"));
  }
  if (absl::StrContains(path, absl::string_view("\0", 1))) {
    return Invalid(field, absl::StrCat(Quote(path), " contains a NUL byte; remove it"));
  }
  if (!IsValidUtf8(path)) {
    return Invalid(field, absl::StrCat(Quote(path), " is not valid UTF-8; fix the encoding"));
  }
  if (absl::StartsWith(path, "/")) {
    return Invalid(field, absl::StrCat(Quote(path), " is absolute; use a path relative to ", root));
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") {
      return Invalid(field, absl::StrCat(Quote(path), " has a '..' component; use a path inside ",
                                         root, " without '..'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace drover::scheduler::job_spec_internal
