// GrpcDroverClient: DroverClient over gRPC to droverd: TLS checked against the cluster's CA,
// or the local admin socket, or (unary calls) the connection keeper's Unix socket
// (cli/keeper.h). Turns transport failures into one readable line:
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
class Channel;
class Status;
}  // namespace grpc

namespace drover::cli {

// Creates a client for `options.address`. Connecting is lazy: an unreachable server shows
// up as UNAVAILABLE from the first call, not here. INVALID_ARGUMENT for an address gRPC
// cannot use.
// With `options.use_keeper`, unary calls go through the connection keeper (cli/keeper.h)
// when one answers, and one is started when none does; streams and any call the keeper
// cannot carry go direct.
absl::StatusOr<std::unique_ptr<DroverClient>> ConnectGrpc(const ConnectOptions& options);

// The contents of `options.ca_file`; INVALID_ARGUMENT naming `options.ca_source` and the
// fix when it holds no PEM certificate.
absl::StatusOr<std::string> ReadCaFile(const ConnectOptions& options);

// A TLS channel to droverd at `address` checked against `ca_pem`, with the CLI's reconnect
// settings. Initialises OpenSSL on first use in a process.
std::shared_ptr<grpc::Channel> DroverTlsChannel(const std::string& address,
                                                const std::string& ca_pem);

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
