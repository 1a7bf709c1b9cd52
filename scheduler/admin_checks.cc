#include "scheduler/admin_checks.h"

#include <map>
#include <string>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "scheduler/job_spec.h"

namespace drover::scheduler {
namespace {

bool IsImageTagChar(char c) {
  return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
}

bool IsImagePathChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '.' || c == '_' || c == '-';
}

constexpr size_t kMaxRcloneOptionKeyChars = 64;
constexpr size_t kMaxRcloneOptionValueBytes = 32 * 1024;
constexpr absl::string_view kMasked = "***";

bool IsRcloneOptionKeyChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_';
}

absl::Status InvalidField(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// A HOSTPATH folder: absolute and clean (no empty, "." or ".." components, no trailing
// '/'), so that what the admin registered is exactly what gets bound into containers, and
// below an allowed root.
absl::Status CheckHostPath(absl::string_view path, const DatastoreRoots& roots) {
  constexpr absl::string_view kField = "datastore.path";
  if (path.empty()) {
    return InvalidField(kField,
                        "required for type HOSTPATH; give the folder that exists at the same "
                        "path on every node, such as /srv/data/imagenet");
  }
  if (path == "/") {
    return InvalidField(kField,
                        "'/' is the nodes' whole file system; give the folder that holds the "
                        "data, such as /srv/data/imagenet");
  }
  if (absl::Status s = CheckCleanAbsolutePath(kField, path); !s.ok()) return s;
  return CheckHostPathUnderRoots(kField, path, roots);
}

absl::Status CheckRcloneOptions(const v1::Datastore& datastore) {
  constexpr absl::string_view kField = "datastore.rclone_options";
  const auto& options = datastore.rclone_options();
  auto type = options.find("type");
  if (type == options.end() || type->second.empty()) {
    return InvalidField("datastore.rclone_options['type']",
                        "required for type RCLONE; give the rclone backend, such as type=s3, "
                        "type=azureblob or type=sftp");
  }
  // Sorted, so that the first problem reported is the same every time.
  std::map<std::string, std::string> sorted(options.begin(), options.end());
  for (const auto& [key, value] : sorted) {
    const std::string field =
        absl::StrCat("datastore.rclone_options['", absl::CHexEscape(key), "']");
    if (key.empty() || key.size() > kMaxRcloneOptionKeyChars ||
        !absl::c_all_of(key, IsRcloneOptionKeyChar)) {
      return InvalidField(field, absl::StrCat("the key must be 1-", kMaxRcloneOptionKeyChars,
                                              " characters of [a-z0-9_]; write option names as "
                                              "rclone's config files do, such as "
                                              "access_key_id"));
    }
    if (value.size() > kMaxRcloneOptionValueBytes) {
      return InvalidField(field, absl::StrCat("the value is ", value.size(),
                                              " bytes, too long; use at most ",
                                              kMaxRcloneOptionValueBytes, " bytes"));
    }
    if (absl::c_any_of(value, [](char c) { return c == '\0' || c == '\r' || c == '\n'; })) {
      return InvalidField(field,
                          "the value has a line break or NUL byte; write it on one line (JSON "
                          "credentials can be minified)");
    }
  }
  return CheckRcloneRemote(kField, sorted, datastore.allow_write());
}

}  // namespace

absl::Status CheckDatastore(const v1::Datastore& datastore, const DatastoreRoots& roots) {
  if (absl::Status s = CheckDatastoreName("datastore.name", datastore.name());
      !s.ok()) {
    return s;
  }
  switch (datastore.type()) {
    case v1::Datastore::HOSTPATH:
      if (!datastore.rclone_options().empty()) {
        return InvalidField("datastore.rclone_options",
                            "apply to type RCLONE only; remove them for a HOSTPATH datastore");
      }
      if (absl::Status s = CheckHostPath(datastore.path(), roots); !s.ok()) return s;
      break;
    case v1::Datastore::RCLONE:
      if (absl::Status s = CheckRcloneOptions(datastore); !s.ok()) return s;
      if (absl::Status s = CheckDatastorePath("datastore.path", datastore.path());
          !s.ok()) {
        return s;
      }
      break;
    case v1::Datastore::TYPE_UNSPECIFIED:
      return InvalidField("datastore.type",
                          "required; use HOSTPATH (a folder on every node) or RCLONE (an "
                          "rclone remote)");
    default:
      return InvalidField("datastore.type",
                          absl::StrCat(static_cast<int>(datastore.type()),
                                       " is not a type; use HOSTPATH or RCLONE"));
  }
  for (int i = 0; i < datastore.secret_keys_size(); ++i) {
    const std::string& key = datastore.secret_keys(i);
    if (!datastore.rclone_options().contains(key)) {
      return InvalidField(absl::StrCat("datastore.secret_keys[", i, "]"),
                          absl::StrCat("'", absl::CHexEscape(key),
                                       "' is not a key of rclone_options; list only options "
                                       "that are set"));
    }
  }
  return absl::OkStatus();
}

bool IsCredentialKey(const v1::Datastore& datastore, absl::string_view key) {
  if (absl::c_linear_search(datastore.secret_keys(), key)) return true;
  const std::string lower = absl::AsciiStrToLower(key);
  for (absl::string_view marker : {"key", "secret", "pass", "token", "sas"}) {
    if (absl::StrContains(lower, marker)) return true;
  }
  return false;
}

v1::Datastore MaskCredentials(v1::Datastore datastore) {
  for (auto& [key, value] : *datastore.mutable_rclone_options()) {
    if (IsCredentialKey(datastore, key)) value = std::string(kMasked);
  }
  return datastore;
}

absl::Status CheckImageName(absl::string_view field, absl::string_view name) {
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": '", name, "' ", why));
  };
  constexpr absl::string_view kFix =
      "; use lowercase path components such as 'busybox' or 'team/train:1.0'";
  if (name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": required; give the image a name such as 'team/train:1.0'"));
  }
  if (name.size() > 255) return invalid(absl::StrCat("is longer than 255 characters", kFix));
  if (name == "host") return invalid("is reserved for the node's own OS; choose another name");
  if (absl::StrContains(name, "://")) {
    return invalid(
        "looks like a registry reference; imported images have plain names, and jobs use "
        "'docker://...' references directly without an import");
  }
  absl::string_view path = name;
  size_t colon = name.rfind(':');
  if (colon != absl::string_view::npos) {
    absl::string_view tag = name.substr(colon + 1);
    path = name.substr(0, colon);
    if (tag.empty() || tag.size() > 128 || tag[0] == '.' || tag[0] == '-' ||
        !absl::c_all_of(tag, IsImageTagChar)) {
      return invalid("has a malformed tag; use 1-128 characters of [A-Za-z0-9._-] after ':'");
    }
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || !absl::c_all_of(part, IsImagePathChar) ||
        !absl::ascii_isalnum(part.front()) || !absl::ascii_isalnum(part.back())) {
      return invalid(absl::StrCat("has the path component '", part, "'", kFix));
    }
  }
  return absl::OkStatus();
}

bool IsBuiltInImage(absl::string_view image) {
  return image == "host" || absl::StartsWith(image, "docker://");
}

}  // namespace drover::scheduler
