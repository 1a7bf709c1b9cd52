// GrpcDroverClient: DroverClient over one gRPC channel to droverd (plaintext for now; TLS and
// bearer tokens arrive with the security work). Turns transport failures into one readable line:
//   cannot reach droverd at localhost:7070 (connection refused); is it running? set
//   --server or DROVER_SERVER
// Not thread-safe; one per command.
#ifndef DROVER_CLI_GRPC_DROVER_CLIENT_H_
#define DROVER_CLI_GRPC_DROVER_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "cli/drover_client.h"

namespace grpc {
class Status;
}  // namespace grpc

namespace drover::cli {

// Creates a client for `options.address`. Connecting is lazy: an unreachable server shows
// up as UNAVAILABLE from the first call, not here. INVALID_ARGUMENT for an address gRPC
// cannot use.
absl::StatusOr<std::unique_ptr<DroverClient>> ConnectGrpc(const ConnectOptions& options);

// What a failed call tells the user. `connected` says whether the channel had reached
// droverd: transport codes without a connection become "cannot reach droverd at ADDRESS
// (why); ...", CANCELLED (which the CLI never causes itself: droverd stopping) becomes
// UNAVAILABLE, everything else keeps droverd's message (flattened to one line). gRPC words
// a retry's failure vaguely ("tcp handshaker shutdown") after a clear first one
// ("Connection refused"), so `last_reason` (may be null) carries the last clear reason from
// call to call. Exposed for tests.
absl::Status ReadableStatus(const grpc::Status& status, const std::string& address,
                            absl::Duration timeout, bool connected, std::string* last_reason);

}  // namespace drover::cli

#endif  // DROVER_CLI_GRPC_DROVER_CLIENT_H_
