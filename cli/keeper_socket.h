// The connection keeper's rendezvous: where its Unix socket lives, who may use it, and how
// the CLI starts one. No gRPC here: the CLI's cheap path (a connect(2) to a socket) and the
// keeper's checks on its own socket (cli/keeper.h) share these functions.
//
// The keeper (`drover __keeper`, one per user and droverd) holds one TLS channel to droverd
// and forwards unary calls from its socket; see docs/cli.md ("The connection keeper") and
// docs/security.md. The socket is `FOLDER/HASH.sock`, FOLDER = $XDG_RUNTIME_DIR/drover,
// else /tmp/drover-UID; the folder must be the caller's own, 0700 and not a symlink.
// Any thread; no shared state.
#ifndef DROVER_CLI_KEEPER_SOCKET_H_
#define DROVER_CLI_KEEPER_SOCKET_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace drover::cli {

// How long a keeper waits for a call before it exits, unless DROVER_KEEPER_IDLE says.
inline constexpr absl::Duration kKeeperIdle = absl::Minutes(5);

// The keeper's folder for `runtime_dir` ($XDG_RUNTIME_DIR; empty: unset), made (0700) when
// missing: RUNTIME_DIR/drover, else /tmp/drover-UID. FAILED_PRECONDITION, with the reason
// and the fix, when the folder is a symlink, not a folder, not owned by `uid`, or open to
// group or others; UNAVAILABLE when it cannot be made.
absl::StatusOr<std::string> KeeperFolder(absl::string_view runtime_dir, uid_t uid);

// FAILED_PRECONDITION unless `folder` is a real folder (not a symlink) owned by `uid` with
// no group or other permission bits; NOT_FOUND when it does not exist.
absl::Status CheckPrivateFolder(const std::string& folder, uid_t uid);

// The socket's file name for one droverd as this CLI reaches it: a hash of the address,
// the CA file's path and contents and the CLI's version (a rotated CA or an upgraded CLI
// gets a keeper of its own). 16 hex digits and ".sock".
std::string KeeperSocketName(absl::string_view address, absl::string_view ca_file,
                             absl::string_view ca_pem, absl::string_view version);

// Connects to the keeper's socket at `path` and checks that the process listening there
// runs as `uid` (SO_PEERCRED). Returns the connected socket (close-on-exec, blocking);
// the caller owns it. UNAVAILABLE when no keeper answers (no file, a stale file),
// PERMISSION_DENIED when another user's process listens there, INVALID_ARGUMENT when the
// path is too long for a Unix socket.
absl::StatusOr<int> ConnectToKeeper(const std::string& path, uid_t uid);

// The uid of the process at the other end of Unix socket `fd`; INTERNAL when unknown.
absl::StatusOr<uid_t> PeerUid(int fd);

// Starts `program` with `args` and this process's environment less DROVER_TOKEN (a keeper
// holds no token), detached: its own session, stdin/out/err on /dev/null, no inherited
// descriptor but those. Does not wait for it. INTERNAL when it cannot start.
absl::Status SpawnDetached(const std::string& program, const std::vector<std::string>& args);

}  // namespace drover::cli

#endif  // DROVER_CLI_KEEPER_SOCKET_H_
