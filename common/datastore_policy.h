// Which host folders may be HOSTPATH datastores and which rclone remotes may be RCLONE ones
// (docs/datastores.md, "What an administrator may register"). droverd checks a datastore
// with these at `drover datastore create`; every agent checks it again before it binds,
// copies or writes rclone's config, since a datastore may have been stored before the rules
// or reach the agent some other way. Pure functions of their arguments: no file is touched
// (the agent resolves symlinks itself and checks the real path). Any thread.
#ifndef DROVER_COMMON_DATASTORE_POLICY_H_
#define DROVER_COMMON_DATASTORE_POLICY_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace drover {

// The longest HOSTPATH folder accepted, in bytes.
inline constexpr size_t kMaxHostPathBytes = 1024;

// The folders HOSTPATH datastores may be in, and this process's own folders no datastore
// may touch.
struct DatastoreRoots {
  // `--datastore-root` values: absolute and clean (CheckDatastoreRoot). Empty: no HOSTPATH
  // datastore is allowed at all.
  std::vector<std::string> allowed;
  // Folders of this process (droverd's state folder, the agent's work folder), absolute and
  // clean, refused like the system folders (see CheckHostPathUnderRoots).
  std::vector<std::string> refused;
};

// The system folders no datastore may be, be in or hold, whatever the roots: "/proc",
// "/sys", "/dev", "/etc", "/boot", "/run", "/var/run", "/root", "/usr", "/bin", "/sbin",
// "/lib", "/lib32", "/lib64", "/libx32", and every "/var/lib/drover*" (Drover's own state).
const std::vector<std::string>& AlwaysRefusedHostPaths();

// Checks that `path` is absolute and lexically clean: at most kMaxHostPathBytes, no NUL
// byte, no "..", no empty or "." component, no trailing '/'. INVALID_ARGUMENT naming `field`
// and the clean spelling otherwise.
absl::Status CheckCleanAbsolutePath(absl::string_view field, absl::string_view path);

// Checks one `--datastore-root` value: clean and absolute, not "/", and neither one of the
// always-refused folders nor inside one. INVALID_ARGUMENT naming `flag` otherwise.
absl::Status CheckDatastoreRoot(absl::string_view flag, absl::string_view root);

// Checks that `path` (clean and absolute: CheckCleanAbsolutePath first) may be a HOSTPATH
// datastore: at or below one of `roots.allowed`, and neither equal to, inside nor holding
// any always-refused folder or any of `roots.refused` (a datastore holding droverd's state
// folder would expose it as much as one inside it). The check is lexical: the agent passes
// the real path. INVALID_ARGUMENT naming `field`, the path and the allowed roots otherwise.
absl::Status CheckHostPathUnderRoots(absl::string_view field, absl::string_view path,
                                     const DatastoreRoots& roots);

// The rclone backends (`type`) an RCLONE datastore may use: network storage only, never one
// that reads the node's own files or wraps another remote ("local", "alias", "union",
// "combine", "crypt", "memory", "cache", "chunker", "compress", "hasher"...).
const std::vector<std::string>& AllowedRcloneBackends();

// Checks an RCLONE datastore's options against what a node may be made to do: `type` one of
// AllowedRcloneBackends ("http" only without `allow_write`: it is read-only); no option that
// runs a command ("command", "ssh", any "*_command"), reads a node's file or socket (any
// "*_file", "*_path", "*_dir", "*_socket"; give keys inline, such as sftp's key_pem), or
// uses the node's own credentials ("env_auth", "use_msi", "key_use_agent" unless false); no
// value naming an on-the-fly remote of a refused backend (":local:/etc"); no key outside
// [A-Za-z0-9_] and no value with a line break or NUL byte. INVALID_ARGUMENT naming `field`['KEY'] (or `field`['type']) and what to
// do otherwise; no message carries a value.
absl::Status CheckRcloneRemote(absl::string_view field,
                               const std::map<std::string, std::string>& options,
                               bool allow_write);

}  // namespace drover

#endif  // DROVER_COMMON_DATASTORE_POLICY_H_
