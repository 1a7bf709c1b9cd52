#include "server/auth.h"

#include "server/node_identity.h"

#include <fcntl.h>
#include <unistd.h>

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/auth_context.h>
#include <openssl/crypto.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/archive/sha256.h"

namespace drover::server {
namespace {

constexpr absl::string_view kBearer = "Bearer ";

std::string Property(const grpc::AuthContext& auth, const char* name) {
  std::vector<grpc::string_ref> values = auth.FindPropertyValues(name);
  if (values.empty()) return "";
  return std::string(values.front().data(), values.front().size());
}

}  // namespace

absl::StatusOr<std::string> NewUserToken() {
  unsigned char bytes[32];
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  bool ok = fd >= 0 && ::read(fd, bytes, sizeof bytes) == static_cast<ssize_t>(sizeof bytes);
  if (fd >= 0) ::close(fd);
  if (!ok) return absl::InternalError("cannot read /dev/urandom to make a token");
  std::string encoded;
  absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes), &encoded);
  return absl::StrCat(kTokenPrefix, encoded);
}

std::string HashUserToken(absl::string_view token) { return archive::Sha256Digest(token); }

void Authenticator::AllowInProcess(std::string key) { in_process_key_ = std::move(key); }

bool Authenticator::IsInProcess(const grpc::ServerContextBase& context) const {
  if (in_process_key_.empty()) return false;
  const auto& metadata = context.client_metadata();
  auto found = metadata.find(std::string(kInProcessKeyMetadata));
  if (found == metadata.end() || found->second.size() != in_process_key_.size()) return false;
  return CRYPTO_memcmp(found->second.data(), in_process_key_.data(), in_process_key_.size()) == 0;
}

absl::StatusOr<Caller> Authenticator::Identify(const grpc::ServerContextBase& context) {
  Caller caller;
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  // The local admin socket hands connections of root and droverd's own uid to gRPC with
  // local credentials, and any other with none (admin_socket.h); the TCP port is TLS only.
  const std::string transport =
      auth == nullptr ? "" : Property(*auth, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
  if (transport == "local") {
    caller.kind = Caller::Kind::kLocalAdmin;
    caller.name = std::string(kLocalSocketOwner);
    caller.role = v1::User::ADMIN;
    return caller;
  }
  // droverd's own HTTP gateway calls in-process (server/http/http_gateway.h), always on a
  // user's behalf, proving it with the key only this process knows: such a call is that
  // user's bearer token or nobody, never admin by its transport and never a node.
  const bool in_process = transport.empty() && IsInProcess(context);
  if (transport != GRPC_SSL_TRANSPORT_SECURITY_TYPE && !in_process) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the local admin socket is for root and droverd's own user (uid ", geteuid(),
        ") only; run drover as one of them (sudo), or call droverd over TLS with a token"));
  }
  const auto& metadata = context.client_metadata();
  auto found = metadata.find("authorization");
  if (found != metadata.end()) {
    absl::string_view value(found->second.data(), found->second.size());
    if (value.size() > kMaxTokenBytes + kBearer.size()) {
      return absl::UnauthenticatedError(
          "the authorization token is too long to be a drover token; check --token or "
          "DROVER_TOKEN");
    }
    if (!absl::StartsWith(value, kBearer) ||
        !absl::StartsWith(value.substr(kBearer.size()), kTokenPrefix)) {
      return absl::UnauthenticatedError(absl::StrCat(
          "the authorization metadata is not 'Bearer ", kTokenPrefix,
          "...'; pass the token drover user create printed"));
    }
    absl::StatusOr<v1::User> user =
        store_.FindUserByToken(HashUserToken(value.substr(kBearer.size())));
    if (absl::IsNotFound(user.status())) {
      return absl::UnauthenticatedError(
          "the token is unknown or was revoked; ask an admin for a new one (drover user token "
          "NAME)");
    }
    if (!user.ok()) {
      return absl::UnavailableError(
          absl::StrCat("droverd cannot check the token now: ", user.status().message()));
    }
    caller.kind = Caller::Kind::kUser;
    caller.name = user->name();
    caller.role = user->role();
    return caller;
  }
  // gRPC verified a presented certificate against droverd's CA; a node's, if it names one
  // and was not revoked.
  if (auth != nullptr && !in_process) {
    std::string pem = Property(*auth, GRPC_X509_PEM_CERT_PROPERTY_NAME);
    if (!pem.empty()) {
      absl::StatusOr<std::string> node = nodes_.Authenticate(pem);
      if (!node.ok()) return node.status();
      caller.kind = Caller::Kind::kNode;
      caller.name = *std::move(node);
    }
  }
  return caller;
}

absl::StatusOr<Caller> Authenticator::Check(const grpc::ServerContextBase& context,
                                            absl::string_view method) {
  absl::StatusOr<Caller> caller = Identify(context);
  if (!caller.ok()) return caller.status();
  if (absl::Status allowed = Authorize(*caller, method); !allowed.ok()) return allowed;
  return caller;
}

}  // namespace drover::server
