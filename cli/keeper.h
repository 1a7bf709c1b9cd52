// The connection keeper: the process behind `drover __keeper`, started detached by the CLI
// (cli/keeper_socket.h) so that a `drover` command reaches droverd without a TLS stack of its
// own. It holds ONE TLS channel to droverd and forwards every unary call arriving on its
// Unix socket, whatever the method, with the caller's metadata (the bearer token included)
// as the caller sent it: it holds no token and grants nothing. Only processes of its own uid
// may connect (SO_PEERCRED at accept); others are closed at once.
//
// It exits when no call came for `idle` (a call that found droverd unreachable does not
// count, so a broken droverd does not keep it alive), and within a second when its socket
// file is removed or replaced. Streams (logs --follow, watch, blob transfers) do not go
// through it. Runs on the thread that calls RunKeeper; gRPC's threads run the calls.
#ifndef DROVER_CLI_KEEPER_H_
#define DROVER_CLI_KEEPER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace drover::cli {

struct KeeperOptions {
  std::string socket_path;  // FOLDER/HASH.sock; FOLDER must pass CheckPrivateFolder
  std::string address;      // droverd, HOST:PORT
  std::string ca_file;      // droverd's CA certificate (PEM)
  absl::Duration idle = absl::Minutes(5);
};

// `drover __keeper --socket PATH --server ADDRESS --ca FILE [--idle SECONDS]` parsed.
// INVALID_ARGUMENT naming the flag.
absl::StatusOr<KeeperOptions> ParseKeeperArgs(const std::vector<std::string>& args);

// Serves until the keeper should exit (see above). Returns OK then; FAILED_PRECONDITION
// when the folder is unsafe, ALREADY_EXISTS when another keeper holds the socket,
// INVALID_ARGUMENT for an unreadable CA, UNAVAILABLE when the socket cannot be bound.
absl::Status RunKeeper(const KeeperOptions& options);

}  // namespace drover::cli

#endif  // DROVER_CLI_KEEPER_H_
