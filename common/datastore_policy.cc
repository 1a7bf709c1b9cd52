#include "common/datastore_policy.h"

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace drover {
namespace {

// Drover's own state folders: droverd's default /var/lib/drover, the agents'
// /var/lib/drover-agent, and any other of the kind.
constexpr absl::string_view kDroverStatePrefix = "/var/lib/drover";

// Backends that serve the node's own files or wrap another remote (which could be local).
constexpr absl::string_view kRefusedBackends[] = {
    "local", "alias", "union", "combine", "crypt", "memory", "cache", "chunker", "compress",
    "hasher"};

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

std::string Quoted(absl::string_view path) { return absl::StrCat("'", absl::CHexEscape(path), "'"); }

// Whether `path` is `folder` or inside it (both absolute and clean).
bool AtOrBelow(absl::string_view path, absl::string_view folder) {
  if (folder == "/") return true;
  return path == folder ||
         (absl::StartsWith(path, folder) && path.size() > folder.size() && path[folder.size()] == '/');
}

// A refused folder that a datastore at `path` would be in (`holds` false) or hold.
struct Conflict {
  std::string folder;
  bool holds = false;
};

// The first of `refused` (clean absolute folders), or /var/lib/drover*, that `path` is, is
// in or holds.
std::optional<Conflict> FindConflict(absl::string_view path, const std::vector<std::string>& refused) {
  for (const std::string& folder : refused) {
    if (AtOrBelow(path, folder)) return Conflict{folder, false};
    if (AtOrBelow(folder, path)) return Conflict{folder, true};
  }
  const std::string drover = absl::StrCat(kDroverStatePrefix, "*");
  if (AtOrBelow("/var/lib", path)) return Conflict{drover, true};
  if (absl::StartsWith(path, kDroverStatePrefix)) return Conflict{drover, false};
  return std::nullopt;
}

bool IsFalse(absl::string_view value) {
  std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(value));
  return lower.empty() || lower == "false" || lower == "0" || lower == "no";
}

}  // namespace

const std::vector<std::string>& AlwaysRefusedHostPaths() {
  static const auto* const kPaths = new std::vector<std::string>{
      "/proc", "/sys", "/dev",   "/etc",  "/boot",  "/run",   "/var/run", "/root",
      "/usr",  "/bin", "/sbin",  "/lib",  "/lib32", "/lib64", "/libx32"};
  return *kPaths;
}

const std::vector<std::string>& AllowedRcloneBackends() {
  // The names rclone's config takes (`rclone config providers`: Name, or its Prefix).
  static const auto* const kBackends = new std::vector<std::string>{
      "azureblob", "b2",  "drive", "dropbox", "ftp",   "gcs",   "google cloud storage",
      "http",      "onedrive", "s3", "sftp",  "smb",   "swift", "webdav"};
  return *kBackends;
}

absl::Status CheckCleanAbsolutePath(absl::string_view field, absl::string_view path) {
  if (path.size() > kMaxHostPathBytes) {
    return Invalid(field, absl::StrCat(path.size(), " bytes is too long; use at most ",
                                       kMaxHostPathBytes, " bytes"));
  }
  if (absl::StrContains(path, absl::string_view("\0", 1))) {
    return Invalid(field, "contains a NUL byte; remove it");
  }
  if (path.empty() || path.front() != '/') {
    return Invalid(field, absl::StrCat(Quoted(path),
                                       " is not absolute; give the folder's full path on the "
                                       "nodes, such as /srv/data/imagenet"));
  }
  std::vector<absl::string_view> clean;
  bool is_clean = true;
  for (absl::string_view part : absl::StrSplit(path.substr(1), '/')) {
    if (part == "..") {
      return Invalid(field, absl::StrCat(Quoted(path),
                                         " has a '..' component; give the folder's path "
                                         "without '..'"));
    }
    if (part.empty() || part == ".") {
      is_clean = false;
    } else {
      clean.push_back(part);
    }
  }
  if (!is_clean && path != "/") {
    return Invalid(field, absl::StrCat(Quoted(path), " is not a clean path; write '/",
                                       absl::StrJoin(clean, "/"),
                                       "' (no '//', '/./' or trailing '/')"));
  }
  return absl::OkStatus();
}

absl::Status CheckDatastoreRoot(absl::string_view flag, absl::string_view root) {
  if (absl::Status s = CheckCleanAbsolutePath(flag, root); !s.ok()) return s;
  if (root == "/") {
    return Invalid(flag,
                   "'/' would offer the nodes' whole file system; name the folders that hold "
                   "data, such as /srv/data");
  }
  for (const std::string& folder : AlwaysRefusedHostPaths()) {
    if (AtOrBelow(root, folder)) {
      return Invalid(flag, absl::StrCat(Quoted(root), " is in ", folder,
                                        ", which no datastore may be in; name a folder that "
                                        "holds data, such as /srv/data"));
    }
  }
  if (absl::StartsWith(root, kDroverStatePrefix)) {
    return Invalid(flag, absl::StrCat(Quoted(root), " is in ", kDroverStatePrefix,
                                      "*, Drover's own state; name a folder that holds data, "
                                      "such as /srv/data"));
  }
  return absl::OkStatus();
}

absl::Status CheckHostPathUnderRoots(absl::string_view field, absl::string_view path,
                                     const DatastoreRoots& roots) {
  if (roots.allowed.empty()) {
    return Invalid(field,
                   "this cluster allows no HOSTPATH datastores (no --datastore-root is set); an "
                   "administrator starts droverd and every drover-agent with --datastore-root "
                   "naming the folders that hold data, such as --datastore-root /srv/data "
                   "(docs/datastores.md)");
  }
  const std::string allowed = absl::StrJoin(roots.allowed, ", ");
  std::optional<Conflict> conflict = FindConflict(path, AlwaysRefusedHostPaths());
  if (!conflict.has_value()) conflict = FindConflict(path, roots.refused);
  if (conflict.has_value()) {
    return Invalid(field, absl::StrCat(Quoted(path), conflict->holds ? " holds " : " is in ",
                                       conflict->folder,
                                       ", which is never part of a datastore (the node's system "
                                       "folders and Drover's own are refused); choose a folder "
                                       "below an allowed root: ",
                                       allowed));
  }
  for (const std::string& root : roots.allowed) {
    if (AtOrBelow(path, root)) return absl::OkStatus();
  }
  return Invalid(field, absl::StrCat(Quoted(path), " is not below an allowed datastore root (",
                                     allowed,
                                     "); choose a folder there, or an administrator adds "
                                     "--datastore-root to droverd and every drover-agent"));
}

absl::Status CheckRcloneRemote(absl::string_view field,
                               const std::map<std::string, std::string>& options,
                               bool allow_write) {
  const std::string type_field = absl::StrCat(field, "['type']");
  auto type = options.find("type");
  if (type == options.end() || type->second.empty()) {
    return Invalid(type_field,
                   "required for type RCLONE; give the rclone backend, such as type=s3, "
                   "type=azureblob or type=sftp");
  }
  const std::vector<std::string>& backends = AllowedRcloneBackends();
  const std::string backend = absl::AsciiStrToLower(absl::StripAsciiWhitespace(type->second));
  if (std::find(backends.begin(), backends.end(), backend) == backends.end()) {
    return Invalid(type_field,
                   absl::StrCat(Quoted(type->second),
                                " is not an allowed backend: a datastore reaches network "
                                "storage, never the node's own files or another remote; use "
                                "one of ",
                                absl::StrJoin(backends, ", ")));
  }
  if (backend == "http" && allow_write) {
    return Invalid(type_field,
                   "http is read-only; register it without allow_write, or use webdav for a "
                   "server that takes writes");
  }
  for (const auto& [key, value] : options) {
    const std::string key_field = absl::StrCat(field, "['", absl::CHexEscape(key), "']");
    // What could break out of the option's line in rclone's config file (droverd checks
    // the syntax first, with its own messages; an agent trusts nothing that reaches it).
    if (key.empty() || !std::all_of(key.begin(), key.end(), [](char c) {
          return absl::ascii_isalnum(c) || c == '_';
        })) {
      return Invalid(key_field, "is not an option name of [a-z0-9_]");
    }
    if (value.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
      return Invalid(key_field, "the value has a line break or NUL byte");
    }
    const std::string lower = absl::AsciiStrToLower(key);
    if (lower == "command" || lower == "ssh" || absl::EndsWith(lower, "_command")) {
      return Invalid(key_field,
                     "would make rclone run a command on the node; remove it and give the "
                     "credential itself (a token, a password or inline key data)");
    }
    if (absl::EndsWith(lower, "_file") || absl::EndsWith(lower, "_path") ||
        absl::EndsWith(lower, "_dir") || absl::EndsWith(lower, "_socket") ||
        lower == "unix_socket") {
      return Invalid(key_field,
                     "would make rclone read a file of the node; remove it and give the "
                     "content inline instead (for sftp keys: key_pem)");
    }
    if ((lower == "env_auth" || lower == "use_msi" || lower == "key_use_agent") &&
        !IsFalse(value)) {
      return Invalid(key_field,
                     "would use the node's own credentials; remove it and give the "
                     "datastore's credentials in its options");
    }
    const std::string lower_value = absl::AsciiStrToLower(value);
    for (absl::string_view refused : kRefusedBackends) {
      if (absl::StrContains(lower_value, absl::StrCat(":", refused, ":")) ||
          absl::StrContains(lower_value, absl::StrCat(":", refused, ","))) {
        return Invalid(key_field, absl::StrCat("names an on-the-fly '", refused,
                                               "' remote, which could reach the node's own "
                                               "files; remove it"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace drover
