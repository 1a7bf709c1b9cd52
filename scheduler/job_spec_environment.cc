// The checks of spec.environment: the image reference, pip and conda packages, and the
// variables of env and secret_env.
#include <cstddef>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"
#include "common/utf8.h"
#include "scheduler/job_spec_rules.h"

namespace drover::scheduler::job_spec_internal {
namespace {

// An OCI image reference, optionally behind "docker://": [host[:port]/]path[:tag][@digest].
absl::Status CheckImage(absl::string_view field, absl::string_view image) {
  constexpr absl::string_view kFix =
      "use 'host' or an image reference such as 'registry.example.com/team/train:1.0' or "
      "'name@sha256:<64 hex digits>'";
  if (image.empty()) return Invalid(field, absl::StrCat("is empty; ", kFix));
  if (image.size() > kMaxImageChars) {
    return Invalid(field, TooLong(image.size(), kMaxImageChars, "characters"));
  }
  if (image == kHostImage) return absl::OkStatus();

  absl::string_view ref = image;
  absl::ConsumePrefix(&ref, "docker://");
  if (size_t bad = FindDisallowed(ref,
                                  [](char c) {
                                    return absl::ascii_isalnum(c) || c == '.' || c == '_' ||
                                           c == '-' || c == '/' || c == ':' || c == '@';
                                  });
      bad != absl::string_view::npos) {
    return Invalid(field,
                   absl::StrCat(Quote(image), " has the character ", Quote(ref.substr(bad, 1)),
                                " not allowed in an image reference; ", kFix));
  }
  if (ref.empty()) return Invalid(field, absl::StrCat(Quote(image), " names no image; ", kFix));

  absl::string_view name = ref;
  if (size_t at = ref.find('@'); at != absl::string_view::npos) {
    absl::string_view digest = ref.substr(at + 1);
    name = ref.substr(0, at);
    if (!absl::StartsWith(digest, kSha256Prefix) ||
        !IsLowerHexDigits(digest.substr(kSha256Prefix.size()), 64)) {
      return Invalid(field, absl::StrCat(Quote(image),
                                         " has a malformed digest; write name@sha256: followed "
                                         "by 64 lowercase hex digits"));
    }
  }
  // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
  size_t colon = name.rfind(':');
  size_t slash = name.rfind('/');
  if (colon != absl::string_view::npos && (slash == absl::string_view::npos || colon > slash)) {
    absl::string_view tag = name.substr(colon + 1);
    name = name.substr(0, colon);
    if (tag.empty() || tag.size() > kMaxImageTagChars || tag[0] == '.' || tag[0] == '-' ||
        FindDisallowed(tag, IsNameChar) != absl::string_view::npos) {
      return Invalid(field,
                     absl::StrCat(Quote(image), " has a malformed tag; use 1-", kMaxImageTagChars,
                                  " characters of [A-Za-z0-9._-] after the last ':'"));
    }
  }
  std::vector<absl::string_view> parts = absl::StrSplit(name, '/');
  for (size_t i = 0; i < parts.size(); ++i) {
    absl::string_view part = parts[i];
    const bool is_registry =
        i == 0 && parts.size() > 1 &&
        (absl::StrContains(part, '.') || absl::StrContains(part, ':') || part == "localhost");
    if (part.empty()) {
      return Invalid(field, absl::StrCat(Quote(image), " has an empty name component; ", kFix));
    }
    if (is_registry) {
      // host[:port]; the charset check above already refused anything exotic.
      std::vector<absl::string_view> host_port = absl::StrSplit(part, ':');
      if (host_port.size() > 2 || host_port[0].empty() ||
          (host_port.size() == 2 &&
           (host_port[1].empty() || !absl::c_all_of(host_port[1], absl::ascii_isdigit)))) {
        return Invalid(field, absl::StrCat(Quote(image),
                                           " has a malformed registry; write host or host:port "
                                           "before the first '/'"));
      }
      continue;
    }
    const bool lower = absl::c_all_of(part, [](char c) {
      return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '.' || c == '_' || c == '-';
    });
    if (!lower || !absl::ascii_isalnum(part.front()) || !absl::ascii_isalnum(part.back())) {
      return Invalid(field,
                     absl::StrCat(Quote(image), " has the repository component ", Quote(part),
                                  "; use lowercase letters, digits and . _ - "
                                  "between letters or digits"));
    }
  }
  return absl::OkStatus();
}

// One pip or conda requirement. Entries end up one per line in a requirements file handed
// to the installer, so anything that could start a new line or an option is refused.
absl::Status CheckPackage(absl::string_view field, absl::string_view entry,
                          absl::string_view installer) {
  if (entry.empty()) {
    return Invalid(field, absl::StrCat("is empty; write one requirement such as 'numpy>=1.24'"));
  }
  if (entry.size() > kMaxPackageBytes) {
    return Invalid(field, TooLong(entry.size(), kMaxPackageBytes, "bytes"));
  }
  if (entry[0] == '-') {
    return Invalid(field, absl::StrCat(Quote(entry), " is an option, not a package; ", installer,
                                       " options belong in the cluster config, ask an "
                                       "administrator"));
  }
  for (char c : entry) {
    if (absl::ascii_isspace(c)) {
      return Invalid(field, absl::StrCat(Quote(entry),
                                         " contains whitespace; write one requirement without "
                                         "spaces, such as 'numpy>=1.24'"));
    }
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) {
      return Invalid(field, absl::StrCat(Quote(entry),
                                         " contains a character that is not printable ASCII; "
                                         "remove it"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPackages(absl::string_view field,
                           const google::protobuf::RepeatedPtrField<std::string>& entries,
                           absl::string_view installer) {
  if (static_cast<size_t>(entries.size()) > kMaxPackages) {
    return Invalid(field, absl::StrCat(entries.size(), " packages are too many; use at most ",
                                       kMaxPackages, ", or build them into the image"));
  }
  for (int i = 0; i < entries.size(); ++i) {
    if (absl::Status s = CheckPackage(ListField(field, i), entries[i], installer); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

bool IsEnvNameChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

}  // namespace

absl::Status CheckEnvironment(const v1::Environment& env) {
  if (absl::Status s = CheckImage("spec.environment.image", env.image()); !s.ok()) return s;
  if (absl::Status s = CheckPackages("spec.environment.pip_packages", env.pip_packages(), "pip");
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckPackages("spec.environment.conda_packages", env.conda_packages(), "conda");
      !s.ok()) {
    return s;
  }

  if (static_cast<size_t>(env.env().size()) > kMaxEnvVars) {
    return Invalid(
        "spec.environment.env",
        absl::StrCat(env.env().size(), " variables are too many; use at most ", kMaxEnvVars));
  }
  for (int i = 0; i < env.secret_env_size(); ++i) {
    const std::string& name = env.secret_env(i);
    if (!env.env().contains(name)) {
      return Invalid(absl::StrCat("spec.environment.secret_env[", i, "]"),
                     absl::StrCat("'", name.substr(0, 256),
                                  "' is not a variable of spec.environment.env; give its value "
                                  "there (drover submit --secret-env NAME=VALUE does both)"));
    }
  }
  // Map order is unspecified; sort so that the first problem is the same on every run.
  std::vector<absl::string_view> names;
  names.reserve(env.env().size());
  for (const auto& [name, value] : env.env()) names.push_back(name);
  absl::c_sort(names);
  size_t total = 0;
  for (absl::string_view name : names) {
    const std::string& value = env.env().at(std::string(name));
    const std::string field = MapField("spec.environment.env", name);
    constexpr absl::string_view kNameFix = "use letters, digits and '_', not starting with a digit";
    if (name.empty()) return Invalid(field, absl::StrCat("empty variable name; ", kNameFix));
    if (name.size() > kMaxEnvNameChars) {
      return Invalid(field,
                     absl::StrCat("name ", TooLong(name.size(), kMaxEnvNameChars, "characters")));
    }
    if (absl::ascii_isdigit(name[0]) ||
        FindDisallowed(name, IsEnvNameChar) != absl::string_view::npos) {
      return Invalid(field, absl::StrCat("is not a valid variable name; ", kNameFix));
    }
    if (absl::StartsWith(name, kReservedEnvPrefix)) {
      return Invalid(field, absl::StrCat("names starting with ", kReservedEnvPrefix,
                                         " are reserved for the variables drover sets; rename "
                                         "the variable"));
    }
    if (value.size() > kMaxEnvValueBytes) {
      return Invalid(field,
                     absl::StrCat("value ", TooLong(value.size(), kMaxEnvValueBytes, "bytes")));
    }
    if (absl::StrContains(value, absl::string_view("\0", 1))) {
      return Invalid(field, "value contains a NUL byte; remove it");
    }
    if (!IsValidUtf8(value)) return Invalid(field, "value is not valid UTF-8; fix the encoding");
    total += value.size();
  }
  if (total > kMaxEnvTotalBytes) {
    return Invalid("spec.environment.env",
                   absl::StrCat("values total ", total, " bytes, over the limit; use at most ",
                                kMaxEnvTotalBytes,
                                " bytes (128 KiB) together, or put large settings in a file"));
  }
  return absl::OkStatus();
}

}  // namespace drover::scheduler::job_spec_internal
