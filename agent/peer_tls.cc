#include "agent/peer_tls.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log.h"
#include "common/pki/pki.h"
#include "common/safe_open.h"

namespace drover::agent {
namespace {

// How often the certificate files are reread (renewal writes new ones; see the header).
constexpr unsigned int kRefreshSeconds = 5;

// Why `certificate_pem`, presented by the peer server, is not the node certificate of
// `node` from the CA in `ca_file`; OK when it is.
absl::Status CheckServer(absl::string_view certificate_pem, const std::string& ca_file,
                         const std::string& node) {
  absl::StatusOr<std::string> ca = ReadSmallFile(ca_file, 64 << 10);
  if (!ca.ok()) return absl::UnavailableError(absl::StrCat("reading --ca: ", ca.status().message()));
  // The chain is checked here rather than by gRPC, which would also demand that the
  // certificate be one for TLS servers: node certificates are issued for TLS clients only
  // (droverd's, and those administrators made from docs/security.md). Real time, not the
  // agent's clock: part of a TLS handshake, whose other checks (gRPC's, of this node's
  // certificate at the peer) read the system's clock too.
  if (absl::Status s = pki::VerifyCertificate(certificate_pem, *ca, absl::Now()); !s.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("the peer's certificate is not from the cluster CA: ", s.message()));
  }
  absl::StatusOr<pki::CertificateInfo> info = pki::ReadCertificate(certificate_pem);
  if (!info.ok()) return absl::UnauthenticatedError(info.status().message());
  absl::StatusOr<std::string> named = pki::NodeNameOfCertificate(*info);
  if (!named.ok()) return named.status();
  if (*named != node) {
    return absl::UnauthenticatedError(absl::StrCat(
        "the agent there is node '", *named, "', not '", node, "' of the attempt"));
  }
  return absl::OkStatus();
}

// The client's check of the peer server (see CheckServer), at every handshake.
class NodeServerVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  NodeServerVerifier(std::string ca_file, std::string node)
      : ca_file_(std::move(ca_file)), node_(std::move(node)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/,
              grpc::Status* sync_status) override {
    grpc::string_ref pem = request->peer_cert();
    absl::Status checked =
        CheckServer(absl::string_view(pem.data(), pem.size()), ca_file_, node_);
    if (checked.ok()) {
      *sync_status = grpc::Status::OK;
    } else {
      Log(LogLevel::kWarning, "peer_server_refused",
          {{"node", node_}, {"error", checked.message()}});
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, std::string(checked.message()));
    }
    return true;  // done synchronously
  }

  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::string ca_file_;
  const std::string node_;
};

// The server's check beyond the chain (which TLS verified against the CA): none. Who may
// call what is decided per call (CallerNode, PeerExecService).
class AcceptVerifiedChain final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest*,
              std::function<void(grpc::Status)>, grpc::Status* sync_status) override {
    *sync_status = grpc::Status::OK;
    return true;
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}
};

}  // namespace

PeerTls::PeerTls(NodeCertificateFiles files)
    : files_(std::move(files)),
      provider_(std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          files_.key_file, files_.certificate_file, files_.ca_file, kRefreshSeconds)) {}

std::shared_ptr<grpc::ServerCredentials> PeerTls::ServerCredentials() const {
  grpc::experimental::TlsServerCredentialsOptions options(provider_);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<AcceptVerifiedChain>());
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> PeerTls::ChannelCredentials(
    const std::string& node) const {
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider_);
  options.watch_identity_key_cert_pairs();
  options.watch_root_certs();
  options.set_verify_server_certs(false);  // NodeServerVerifier checks the chain itself
  options.set_check_call_host(false);      // and the name, which is a node's, not a host's
  options.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<NodeServerVerifier>(
          files_.ca_file, node));
  return grpc::experimental::TlsCredentials(options);
}

std::shared_ptr<grpc::Channel> PeerTls::Channel(const std::string& endpoint,
                                               const std::string& node) const {
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride(node);
  return grpc::CreateCustomChannel(endpoint, ChannelCredentials(node), args);
}

absl::StatusOr<std::string> CallerNode(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  std::vector<grpc::string_ref> pems;
  if (auth != nullptr) pems = auth->FindPropertyValues("x509_pem_cert");
  if (pems.empty()) {
    return absl::UnauthenticatedError("the peer port takes calls from node certificates only");
  }
  absl::StatusOr<pki::CertificateInfo> info =
      pki::ReadCertificate(absl::string_view(pems.front().data(), pems.front().size()));
  if (!info.ok()) return absl::UnauthenticatedError(info.status().message());
  return pki::NodeNameOfCertificate(*info);
}

}  // namespace drover::agent
