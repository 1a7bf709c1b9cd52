// How drover-bench reaches droverd: over TLS, trusting droverd's CA certificate (the
// benchmarks' --ca, else $DROVER_CA), with the user token in $DROVER_TOKEN on every call
// (droverd refuses calls without one; an admin makes it with drover user create). A server
// "unix:PATH" is droverd's local admin socket: local credentials, no TLS and no token (the
// baseline that tells what TLS and the token check cost).
#ifndef DROVER_BENCH_CHANNEL_H_
#define DROVER_BENCH_CHANNEL_H_

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace drover::bench {

inline std::shared_ptr<grpc::ChannelCredentials> DroverdCredentials(const std::string& server,
                                                                    std::string ca_file) {
  if (server.rfind("unix:", 0) == 0) return grpc::experimental::LocalCredentials(UDS);
  if (ca_file.empty() && std::getenv("DROVER_CA") != nullptr) ca_file = std::getenv("DROVER_CA");
  std::ifstream in(ca_file);
  std::stringstream text;
  if (in) text << in.rdbuf();
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = text.str();  // empty: the handshake fails, and the error says so
  const char* token = std::getenv("DROVER_TOKEN");
  if (token == nullptr || *token == '\0') return grpc::SslCredentials(tls);
  // `authorization: Bearer TOKEN` on every call.
  return grpc::CompositeChannelCredentials(grpc::SslCredentials(tls),
                                           grpc::AccessTokenCredentials(token));
}

// A channel to droverd at `server` (DroverdCredentials), once connected; UNAVAILABLE when
// it cannot be reached within `timeout`.
inline absl::StatusOr<std::shared_ptr<grpc::Channel>> ConnectDroverd(const std::string& server,
                                                                     const std::string& ca_file,
                                                                     absl::Duration timeout) {
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(server, DroverdCredentials(server, ca_file));
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 absl::ToChronoMilliseconds(timeout))) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach droverd at '", server, "' within ",
                     absl::FormatDuration(timeout),
                     "; is it running, and is --server its --listen address?"));
  }
  return channel;
}

}  // namespace drover::bench

#endif  // DROVER_BENCH_CHANNEL_H_
