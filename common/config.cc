#include "common/config.h"

#include <fstream>
#include <sstream>
#include <string>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"

namespace drover {

absl::Status ApplyConfigText(absl::string_view path, absl::string_view text, FlagSet* flags) {
  int line_number = 0;
  // Keys this file set: a repeatable flag may appear on several lines.
  std::set<std::string, std::less<>> from_file;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    size_t hash = line.find('#');
    if (hash != absl::string_view::npos) line = line.substr(0, hash);
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", line_number, ": expected 'key = value', got '", line, "'"));
    }
    absl::string_view key = absl::StripAsciiWhitespace(line.substr(0, eq));
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    if (!flags->Has(key)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ":", line_number, ": '", key, "' is not a known setting; see --help"));
    }
    if (flags->WasSet(key) && !from_file.contains(key)) continue;  // the command line wins
    from_file.insert(std::string(key));
    absl::Status status = flags->Set(key, value);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_number, ": ", status.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyConfigFile(absl::string_view path, FlagSet* flags) {
  std::ifstream in{std::string(path)};
  if (!in) {
    return absl::NotFoundError(absl::StrCat("config file '", path, "' cannot be read"));
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ApplyConfigText(path, buffer.str(), flags);
}

}  // namespace drover
