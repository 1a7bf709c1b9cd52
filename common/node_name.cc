#include "common/node_name.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace drover {
namespace {

constexpr char kNodeNameRule[] =
    "use 1-63 characters of [a-z0-9-], starting with a letter or digit";

bool ValidNodeName(absl::string_view name) {
  if (name.empty() || name.size() > 63 || !absl::ascii_isalnum(name[0])) return false;
  for (char c : name) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-')) return false;
  }
  return true;
}

}  // namespace

absl::Status CheckNodeName(absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError("name: required; give the node's name (see drover nodes)");
  }
  if (name.size() > 63) {
    return absl::InvalidArgumentError(absl::StrCat("name: ", name.size(),
                                                   " characters is too long for a node name; ",
                                                   kNodeNameRule));
  }
  if (!ValidNodeName(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "name: '", absl::CHexEscape(name), "' is not a valid node name; ", kNodeNameRule));
  }
  return absl::OkStatus();
}

}  // namespace drover
