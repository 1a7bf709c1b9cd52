// NodeIdentity: who a node is. droverd takes a node's name from its node certificate only:
// a certificate from the cluster CA (TLS checks that) that carries the URI SAN
// `drover-node://NAME` and the common name NAME, and that was not revoked. Join tokens buy
// a first certificate (JoinNode), a valid certificate buys the next one (Renew). Tokens are
// kept as their SHA-256 only; certificates by fingerprint, with their revocation.
//
// Thread-safe: the gRPC handlers call it from any thread; store callbacks run on the
// store's writer thread and never block.
#ifndef DROVER_SERVER_NODE_IDENTITY_H_
#define DROVER_SERVER_NODE_IDENTITY_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/pki/pki.h"
#include "storage/store.h"

namespace drover::server {

// The node certificate's URI and the node it names (common/pki, shared with the agents).
using pki::kNodeUriScheme;
using pki::NodeNameOfCertificate;

// Join tokens: 32 random bytes, 64 lowercase hex digits.
inline constexpr size_t kJoinTokenLength = 64;

// A new join token (the secret shown once).
absl::StatusOr<std::string> NewJoinToken();
// What droverd stores of a token: its SHA-256, hex. UNAUTHENTICATED for text that cannot be
// a token (the message says so without echoing it).
absl::StatusOr<std::string> JoinTokenHash(absl::string_view token);

// Checks a node's CSR: an EC key of at least 256 bits or an RSA key of at least 2048, the
// common name `node` and no URI but `drover-node://node`. INVALID_ARGUMENT saying what is
// wrong.
absl::Status CheckNodeCsr(const pki::CsrInfo& csr, absl::string_view node);

// The node certificate an agent keeps, its key and the CA it trusts.
struct IssuedNodeCertificate {
  std::string certificate_pem;
  std::string ca_pem;
  absl::Time not_after;
};

class NodeIdentity {
 public:
  using IssueCallback = absl::AnyInvocable<void(absl::StatusOr<IssuedNodeCertificate>) &&>;
  using DoneCallback = absl::AnyInvocable<void(absl::Status) &&>;

  // `ca`: droverd's own CA, with its key; empty when an administrator gave droverd their
  // certificates (then JoinNode and Renew fail: the administrator issues node
  // certificates). `ca_pem`: the CA certificate nodes trust.
  NodeIdentity(storage::Store& store, const Clock& clock, pki::KeyAndCertificate ca,
               std::string ca_pem, absl::Duration certificate_validity);

  // Reads the revoked certificates from the store. Call once before serving.
  absl::Status Load();

  // The node of a TLS peer whose certificate (`peer_pem`, verified against the cluster CA
  // by TLS; empty when it sent none) is a node certificate. UNAUTHENTICATED without one;
  // PERMISSION_DENIED when it was revoked. Records a certificate seen for the first time.
  absl::StatusOr<std::string> Authenticate(const std::string& peer_pem);

  // A new join token for `node` (empty: any name), valid for `ttl`. `done` gets the token
  // and what is stored of it, once durable.
  void CreateToken(absl::Duration ttl, std::string node,
                   absl::AnyInvocable<void(absl::StatusOr<std::pair<std::string, storage::JoinToken>>) &&>
                       done);
  // Every join token kept, newest first.
  absl::StatusOr<std::vector<storage::JoinToken>> ListTokens() { return store_.LoadJoinTokens(); }
  // Revokes the unused tokens whose id starts with `id`; NOT_FOUND when none does.
  void RevokeToken(std::string id, DoneCallback done) {
    store_.RevokeJoinTokens(std::move(id), std::move(done));
  }
  // Uses `token` for `node` and signs `csr_pem`. Errors as NodeIdentityService.JoinNode's.
  void Join(const std::string& token, std::string node, std::string csr_pem, IssueCallback done);
  // A new certificate for an authenticated node's new key.
  void Renew(std::string node, std::string csr_pem, IssueCallback done);
  // Revokes every certificate of `node` (in memory at once, then durably).
  void RevokeNode(std::string node, DoneCallback done);

 private:
  absl::StatusOr<IssuedNodeCertificate> Sign(const std::string& node, const std::string& csr_pem);

  storage::Store& store_;
  const Clock& clock_;
  const pki::KeyAndCertificate ca_;
  const std::string ca_pem_;
  const absl::Duration validity_;
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> revoked_ ABSL_GUARDED_BY(mu_);  // fingerprints
  // Every certificate recorded (issued or seen), fingerprint -> node.
  absl::flat_hash_map<std::string, std::string> known_ ABSL_GUARDED_BY(mu_);
};

}  // namespace drover::server

#endif  // DROVER_SERVER_NODE_IDENTITY_H_
