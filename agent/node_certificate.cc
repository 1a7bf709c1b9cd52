#include "agent/node_certificate.h"

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/waiter.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/safe_open.h"
#include "drover/v1/node_identity.grpc.pb.h"

namespace drover::agent {
namespace {

// A certificate or key file: "" when it is missing, not a regular file (a FIFO is never
// waited on) or larger than any certificate.
std::string ReadText(const std::string& path) {
  return ReadSmallFile(path, 64 << 10).value_or("");
}

// Why the files do not hold a usable certificate for `node`; OK when they do.
absl::Status Usable(const std::string& ca_pem, const std::string& node,
                    const NodeCertificateFiles& files, absl::Time now) {
  const std::string cert = ReadText(files.certificate_file);
  const std::string key = ReadText(files.key_file);
  if (cert.empty() || key.empty()) {
    return absl::NotFoundError(absl::StrCat("no node certificate in ", files.certificate_file));
  }
  if (!pki::KeyMatchesCertificate(key, cert)) {
    return absl::FailedPreconditionError(absl::StrCat(files.key_file, " is not the key of ",
                                                      files.certificate_file));
  }
  if (absl::Status s = pki::VerifyCertificate(cert, ca_pem, now); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the node certificate ", files.certificate_file, ": ", s.message()));
  }
  absl::StatusOr<pki::CertificateInfo> info = pki::ReadCertificate(cert);
  if (!info.ok() || info->common_name != node) {
    return absl::FailedPreconditionError(
        absl::StrCat("the node certificate ", files.certificate_file, " is for node '",
                     info.ok() ? info->common_name : "?", "', not '", node, "' (--node-name)"));
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> CaOnlyChannel(const std::string& scheduler,
                                             const std::string& ca_pem) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca_pem;
  return grpc::CreateChannel(scheduler, grpc::SslCredentials(tls));
}

// A new key and a CSR for `node`.
absl::StatusOr<std::pair<std::string, std::string>> KeyAndCsr(const std::string& node) {
  absl::StatusOr<std::string> key = pki::GenerateKey();
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> csr = pki::CreateCsr(*key, node, {"drover-node://" + node});
  if (!csr.ok()) return csr.status();
  return std::make_pair(*std::move(key), *std::move(csr));
}

absl::Status Store(const NodeCertificateFiles& files, const std::string& key,
                   const std::string& certificate) {
  // The key first: a new certificate beside the old key would be a pair that does not match.
  if (absl::Status s = ReplaceFile(files.key_file, key, 0600); !s.ok()) return s;
  return ReplaceFile(files.certificate_file, certificate, 0600);
}

}  // namespace

absl::Status EnsureNodeCertificate(const std::string& scheduler, const std::string& ca_pem,
                                   const std::string& node, const NodeCertificateFiles& files,
                                   const std::string& join_token, const Clock& clock,
                                   absl::Duration patience) {
  absl::Status usable = Usable(ca_pem, node, files, clock.Now());
  if (usable.ok()) return absl::OkStatus();
  if (join_token.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        usable.message(), "; join this node once with --join TOKEN or --join-file FILE (an "
        "administrator runs 'drover node token create'), or give --node-cert/--node-key"));
  }
  if (!files.managed) {
    return absl::FailedPreconditionError(absl::StrCat(
        usable.message(), "; --join writes the agent's own certificate into --work-dir: leave "
        "out --node-cert/--node-key"));
  }
  absl::StatusOr<std::pair<std::string, std::string>> made = KeyAndCsr(node);
  if (!made.ok()) return made.status();
  v1::JoinNodeRequest request;
  request.set_token(join_token);
  request.set_node_name(node);
  request.set_csr_pem(made->second);
  auto stub = v1::NodeIdentityService::NewStub(CaOnlyChannel(scheduler, ca_pem));
  const absl::Time deadline = clock.Now() + patience;
  v1::NodeCertificateResponse response;
  while (true) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));  // gRPC's: real
    context.set_wait_for_ready(true);
    grpc::Status status = stub->JoinNode(&context, request, &response);
    if (status.ok()) break;
    if ((status.error_code() != grpc::StatusCode::UNAVAILABLE &&
         status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) ||
        clock.Now() >= deadline) {
      return FromGrpcStatus(
          status, absl::StrCat("joining droverd at ", scheduler, " as node '", node, "'"));
    }
    Waiter(clock).Pause(absl::Seconds(1));  // the clock's second: a test moves it
  }
  if (!pki::KeyMatchesCertificate(made->first, response.certificate_pem()) ||
      !pki::VerifyCertificate(response.certificate_pem(), ca_pem, clock.Now()).ok()) {
    return absl::InternalError(
        "droverd answered the join with a certificate that is not for this key or not from "
        "the CA of --ca");
  }
  if (absl::Status s = Store(files, made->first, response.certificate_pem()); !s.ok()) return s;
  Log(LogLevel::kInfo, "node_joined",
      {{"node", node}, {"certificate", files.certificate_file}});
  return absl::OkStatus();
}

absl::Time RenewalTime(absl::Time not_before, absl::Time not_after) {
  return not_after - (not_after - not_before) / 3;
}

absl::Status RenewIfDue(const std::shared_ptr<grpc::Channel>& channel, const std::string& node,
                        const NodeCertificateFiles& files, absl::Time now) {
  if (!files.managed) return absl::OkStatus();
  absl::StatusOr<pki::CertificateInfo> info =
      pki::ReadCertificate(ReadText(files.certificate_file));
  if (!info.ok()) return info.status();
  if (now < RenewalTime(info->not_before, info->not_after)) return absl::OkStatus();
  absl::StatusOr<std::pair<std::string, std::string>> made = KeyAndCsr(node);
  if (!made.ok()) return made.status();
  v1::RenewNodeCertificateRequest request;
  request.set_csr_pem(made->second);
  v1::NodeCertificateResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));  // gRPC's: real
  grpc::Status status =
      v1::NodeIdentityService::NewStub(channel)->RenewNodeCertificate(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  if (!pki::KeyMatchesCertificate(made->first, response.certificate_pem())) {
    return absl::InternalError("droverd renewed with a certificate that is not for this key");
  }
  if (absl::Status s = Store(files, made->first, response.certificate_pem()); !s.ok()) return s;
  Log(LogLevel::kInfo, "node_certificate_renewed", {{"node", node}});
  return absl::OkStatus();
}

std::shared_ptr<grpc::ChannelCredentials> NodeChannelCredentials(const NodeCertificateFiles& files) {
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key_file, files.certificate_file, files.ca_file, /*refresh_interval_sec=*/5);
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  options.set_certificate_verifier(
      std::make_shared<grpc::experimental::HostNameCertificateVerifier>());
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace drover::agent
