// Authentication of droverd's callers: user tokens (made, hashed and checked here) and
// which listener a call came through. `Authenticator::Check` is what every handler of
// JobService, AdminService and BlobService calls first; the policy itself is in authz.h.
//
// A token is "drv_" and 43 base64url characters (256 bits from the kernel's random
// source). droverd stores only its SHA-256 ("sha256:<hex>"); since a token carries 256
// random bits, a fast unsalted hash is enough, and the store is searched by that hash, so
// no comparison ever runs over the secret itself. Thread-safe: reads the store's committed
// state on every call, so a revoked token stops working with the next call.
#ifndef DROVER_SERVER_AUTH_H_
#define DROVER_SERVER_AUTH_H_

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/authz.h"
#include "storage/store.h"

namespace drover::server {

// The prefix of every user token.
inline constexpr absl::string_view kTokenPrefix = "drv_";
// Longest `authorization` value droverd looks at.
inline constexpr size_t kMaxTokenBytes = 256;

// The metadata with which droverd's own in-process callers (the HTTP gateway) prove that
// they are in this process: its value is the key given to Authenticator::AllowInProcess.
inline constexpr absl::string_view kInProcessKeyMetadata = "drover-in-process-key";

// A new random token. INTERNAL when the kernel's random source fails.
absl::StatusOr<std::string> NewUserToken();
// The hash droverd stores for `token`: "sha256:<64 hex>".
std::string HashUserToken(absl::string_view token);

class NodeIdentity;

class Authenticator {
 public:
  // `nodes` decides whether a client certificate is a valid, unrevoked node certificate.
  Authenticator(storage::Store& store, NodeIdentity& nodes) : store_(store), nodes_(nodes) {}

  // Who makes the call behind `context`: the local admin socket, a valid bearer token, a
  // node's client certificate, or nobody (an in-process call, see AllowInProcess: a valid
  // bearer token or nobody). UNAUTHENTICATED for a token that is malformed,
  // unknown or revoked (a wrong token is never taken for no token) and for a certificate
  // that is no node certificate; PERMISSION_DENIED for a revoked node certificate and for
  // a connection to the local admin socket by another uid than root's or droverd's
  // (admin_socket.h); UNAVAILABLE when the store cannot be read.
  absl::StatusOr<Caller> Identify(const grpc::ServerContextBase& context);

  // Calls through the server's in-process channel (which have no transport security) that
  // carry `key` (random, at least 32 bytes) as `kInProcessKeyMetadata` are identified by
  // their bearer token alone, as a TLS caller without a certificate is; other calls without
  // transport security stay refused. Called once, before the server serves.
  void AllowInProcess(std::string key);

  // Identify, then Authorize(`method`): the caller, or the status to answer with.
  absl::StatusOr<Caller> Check(const grpc::ServerContextBase& context, absl::string_view method);

 private:
  bool IsInProcess(const grpc::ServerContextBase& context) const;

  storage::Store& store_;
  NodeIdentity& nodes_;
  std::string in_process_key_;  // empty: no in-process callers
};

// A write reactor that answers `status` at once: what a streaming handler returns for a
// refused call.
template <typename Response>
class RefusedWriteReactor final : public grpc::ServerWriteReactor<Response> {
 public:
  explicit RefusedWriteReactor(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

template <typename Request>
class RefusedReadReactor final : public grpc::ServerReadReactor<Request> {
 public:
  explicit RefusedReadReactor(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace drover::server

#endif  // DROVER_SERVER_AUTH_H_
