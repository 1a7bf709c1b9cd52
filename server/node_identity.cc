#include "server/node_identity.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "scheduler/node_registry.h"

namespace drover::server {

absl::StatusOr<std::string> NewJoinToken() { return pki::RandomHex(kJoinTokenLength / 2); }

absl::StatusOr<std::string> JoinTokenHash(absl::string_view token) {
  token = absl::StripAsciiWhitespace(token);
  if (token.size() != kJoinTokenLength ||
      token.find_first_not_of("0123456789abcdef") != absl::string_view::npos) {
    return absl::UnauthenticatedError(absl::StrCat(
        "this is not a join token (a token has ", kJoinTokenLength,
        " hex digits, as 'drover node token create' prints it)"));
  }
  return pki::Sha256Hex(token);
}

absl::Status CheckNodeCsr(const pki::CsrInfo& csr, absl::string_view node) {
  if (csr.key_type == "EC") {
    if (csr.key_bits < 256) {
      return absl::InvalidArgumentError(absl::StrCat(
          "csr: an EC key of ", csr.key_bits, " bits is too weak; use P-256 or larger"));
    }
  } else if (csr.key_type == "RSA") {
    if (csr.key_bits < 2048) {
      return absl::InvalidArgumentError(absl::StrCat(
          "csr: an RSA key of ", csr.key_bits, " bits is too weak; use EC P-256 (or RSA 2048+)"));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("csr: a ", csr.key_type, " key is not accepted; use EC P-256"));
  }
  if (csr.common_name != node) {
    return absl::InvalidArgumentError(absl::StrCat("csr: its common name '",
                                                   absl::CHexEscape(csr.common_name),
                                                   "' is not the node's name '", node, "'"));
  }
  for (const std::string& uri : csr.uris) {
    if (uri != absl::StrCat(kNodeUriScheme, node)) {
      return absl::InvalidArgumentError(
          absl::StrCat("csr: it asks for the name '", absl::CHexEscape(uri),
                       "'; a node certificate names only ", kNodeUriScheme, node));
    }
  }
  return absl::OkStatus();
}

NodeIdentity::NodeIdentity(storage::Store& store, const Clock& clock, pki::KeyAndCertificate ca,
                           std::string ca_pem, absl::Duration certificate_validity)
    : store_(store),
      clock_(clock),
      ca_(std::move(ca)),
      ca_pem_(std::move(ca_pem)),
      validity_(certificate_validity) {}

absl::Status NodeIdentity::Load() {
  absl::StatusOr<std::vector<storage::NodeCertificateRecord>> records =
      store_.LoadNodeCertificates();
  if (!records.ok()) return records.status();
  absl::MutexLock lock(&mu_);
  for (const storage::NodeCertificateRecord& record : *records) {
    known_[record.fingerprint] = record.node;
    if (record.revoked != absl::UnixEpoch()) revoked_.insert(record.fingerprint);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> NodeIdentity::Authenticate(const std::string& peer_pem) {
  if (peer_pem.empty()) {
    return absl::UnauthenticatedError(
        "no node certificate: an agent connects with the node certificate it got by joining "
        "('drover-agent --join TOKEN', or --node-cert/--node-key)");
  }
  absl::StatusOr<pki::CertificateInfo> info = pki::ReadCertificate(peer_pem);
  if (!info.ok()) return absl::UnauthenticatedError("the client certificate cannot be read");
  absl::StatusOr<std::string> node = NodeNameOfCertificate(*info);
  if (!node.ok()) return node.status();
  {
    absl::MutexLock lock(&mu_);
    if (revoked_.contains(info->fingerprint)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "the certificate of node '", *node,
          "' was revoked; join the node again with a new token ('drover node token create')"));
    }
    if (known_.contains(info->fingerprint)) return node;
    known_[info->fingerprint] = *node;
  }
  // An administrator's certificate seen for the first time: recorded, so that revoking the
  // node revokes it too after a restart.
  store_.PutNodeCertificate({.fingerprint = info->fingerprint,
                             .node = *node,
                             .not_after = info->not_after,
                             .recorded = clock_.Now()},
                            [node = *node](absl::Status s) {
                              if (!s.ok()) {
                                Log(LogLevel::kWarning, "node_certificate_not_recorded",
                                    {{"node", node}, {"error", s.message()}});
                              }
                            });
  return node;
}

void NodeIdentity::CreateToken(
    absl::Duration ttl, std::string node,
    absl::AnyInvocable<void(absl::StatusOr<std::pair<std::string, storage::JoinToken>>) &&> done) {
  if (ttl <= absl::ZeroDuration() || ttl > absl::Hours(24 * 7)) {
    std::move(done)(absl::InvalidArgumentError(absl::StrCat(
        "ttl: ", absl::FormatDuration(ttl), " is not between 1s and 7 days (168h)")));
    return;
  }
  if (!node.empty()) {
    if (absl::Status s = scheduler::CheckNodeName(node); !s.ok()) {
      std::move(done)(absl::InvalidArgumentError(absl::StrCat("node_", s.message())));
      return;
    }
  }
  absl::StatusOr<std::string> token = NewJoinToken();
  if (!token.ok()) {
    std::move(done)(token.status());
    return;
  }
  absl::StatusOr<std::string> hash = JoinTokenHash(*token);
  if (!hash.ok()) {
    std::move(done)(hash.status());
    return;
  }
  const absl::Time now = clock_.Now();
  storage::JoinToken record{.hash = *hash,
                            .node = std::move(node),
                            .create_time = now,
                            .expire_time = now + ttl};
  store_.PutJoinToken(record, [token = *std::move(token), record,
                               done = std::move(done)](absl::Status s) mutable {
    if (!s.ok()) {
      std::move(done)(s);
      return;
    }
    Log(LogLevel::kInfo, "join_token_created",
        {{"id", record.hash.substr(0, 12)}, {"node", record.node},
         {"expires", absl::FormatTime(record.expire_time)}});
    std::move(done)(std::make_pair(std::move(token), record));
  });
}

absl::StatusOr<IssuedNodeCertificate> NodeIdentity::Sign(const std::string& node,
                                                          const std::string& csr_pem) {
  absl::StatusOr<pki::CsrInfo> csr = pki::ReadCsr(csr_pem);
  if (!csr.ok()) return absl::InvalidArgumentError(absl::StrCat("csr: ", csr.status().message()));
  if (absl::Status s = CheckNodeCsr(*csr, node); !s.ok()) return s;
  const absl::Time now = clock_.Now();
  absl::StatusOr<std::string> certificate = pki::IssueCertificateForCsr(
      ca_, csr_pem,
      {.common_name = node,
       .uris = {absl::StrCat(kNodeUriScheme, node)},
       .client = true,
       .validity = validity_},
      now);
  if (!certificate.ok()) return certificate.status();
  absl::StatusOr<pki::CertificateInfo> info = pki::ReadCertificate(*certificate);
  if (!info.ok()) return info.status();
  {
    absl::MutexLock lock(&mu_);
    known_[info->fingerprint] = node;
  }
  store_.PutNodeCertificate(
      {.fingerprint = info->fingerprint, .node = node, .not_after = info->not_after,
       .recorded = now},
      [](absl::Status) {});
  return IssuedNodeCertificate{.certificate_pem = *std::move(certificate),
                               .ca_pem = ca_pem_,
                               .not_after = info->not_after};
}

void NodeIdentity::Join(const std::string& token, std::string node, std::string csr_pem,
                        IssueCallback done) {
  if (ca_.key_pem.empty()) {
    std::move(done)(absl::FailedPreconditionError(
        "this droverd serves an administrator's certificates (--tls-cert) and has no CA key to "
        "sign node certificates with; give the node a certificate from your CA "
        "(drover-agent --node-cert/--node-key, see docs/security.md)"));
    return;
  }
  absl::StatusOr<std::string> hash = JoinTokenHash(token);
  if (!hash.ok()) {
    std::move(done)(hash.status());
    return;
  }
  if (absl::Status s = scheduler::CheckNodeName(node); !s.ok()) {
    std::move(done)(absl::InvalidArgumentError(absl::StrCat("node_", s.message())));
    return;
  }
  // The CSR is checked before the token is used up: a mistake on the node's side costs no
  // token.
  absl::StatusOr<pki::CsrInfo> csr = pki::ReadCsr(csr_pem);
  if (!csr.ok()) {
    std::move(done)(absl::InvalidArgumentError(absl::StrCat("csr: ", csr.status().message())));
    return;
  }
  if (absl::Status s = CheckNodeCsr(*csr, node); !s.ok()) {
    std::move(done)(s);
    return;
  }
  store_.UseJoinToken(
      *hash, node, clock_.Now(),
      [this, node, csr_pem = std::move(csr_pem),
       done = std::move(done)](absl::StatusOr<storage::JoinToken> used) mutable {
        if (!used.ok()) {
          absl::Status s = used.status();
          Log(LogLevel::kWarning, "node_join_refused", {{"node", node}, {"error", s.message()}});
          if (absl::IsNotFound(s)) {
            s = absl::UnauthenticatedError(
                "the join token is unknown to this droverd; create one with 'drover node token "
                "create'");
          } else if (absl::IsFailedPrecondition(s)) {
            s = absl::StrContains(s.message(), "is for node")
                    ? absl::PermissionDeniedError(s.message())
                    : absl::UnauthenticatedError(s.message());
          }
          std::move(done)(s);
          return;
        }
        absl::StatusOr<IssuedNodeCertificate> issued = Sign(node, csr_pem);
        if (issued.ok()) {
          Log(LogLevel::kInfo, "node_joined",
              {{"node", node}, {"token", used->hash.substr(0, 12)},
               {"not_after", absl::FormatTime(issued->not_after)}});
        }
        std::move(done)(std::move(issued));
      });
}

void NodeIdentity::Renew(std::string node, std::string csr_pem, IssueCallback done) {
  if (ca_.key_pem.empty()) {
    std::move(done)(absl::FailedPreconditionError(
        "this droverd has no CA key to sign node certificates with (an administrator's "
        "certificates); renew the node's certificate from your CA"));
    return;
  }
  absl::StatusOr<IssuedNodeCertificate> issued = Sign(node, csr_pem);
  if (issued.ok()) {
    Log(LogLevel::kInfo, "node_certificate_renewed",
        {{"node", node}, {"not_after", absl::FormatTime(issued->not_after)}});
  } else if (absl::IsInvalidArgument(issued.status()) &&
             absl::StrContains(issued.status().message(), "name")) {
    issued = absl::PermissionDeniedError(issued.status().message());
  }
  std::move(done)(std::move(issued));
}

void NodeIdentity::RevokeNode(std::string node, DoneCallback done) {
  if (absl::Status s = scheduler::CheckNodeName(node); !s.ok()) {
    std::move(done)(absl::InvalidArgumentError(absl::StrCat("node_", s.message())));
    return;
  }
  int revoked = 0;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [fingerprint, name] : known_) {
      if (name == node && revoked_.insert(fingerprint).second) ++revoked;
    }
  }
  Log(LogLevel::kWarning, "node_certificates_revoked", {{"node", node}, {"certificates", revoked}});
  store_.RevokeNodeCertificates(node, clock_.Now(), std::move(done));
}

}  // namespace drover::server
