// The node certificate: how drover-agent proves to droverd which node it is. The agent
// makes its own EC P-256 key and a CSR; droverd signs it in exchange for a one-time join
// token (first start, `--join`) or for the current certificate (renewal, when a third of
// its life is left). Key and certificate live in files, 0600: `<work-dir>/node.key` and
// `node.crt` (the agent's own, renewed by it), or files an administrator gives with
// `--node-key/--node-cert` (renewed by the administrator). The channel to droverd, the
// peer port and the exec relay's channels to other agents (agent/peer_tls.h) read them
// through gRPC's file watcher, so a renewed certificate is used without a restart.
//
// Called from the agent's start (EnsureNodeCertificate) and its shipping thread (renewal);
// no state of its own. gRPC calls' deadlines are real time; every other time is the
// caller's clock.
#ifndef DROVER_AGENT_NODE_CERTIFICATE_H_
#define DROVER_AGENT_NODE_CERTIFICATE_H_

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/pki/pki.h"

namespace drover::agent {

struct NodeCertificateFiles {
  std::string certificate_file;
  std::string key_file;
  std::string ca_file;  // the CA droverd is trusted with (--ca)
  // The agent's own files (in its work folder): it writes them at a join and renews them.
  bool managed = true;
};

// Makes sure a usable node certificate for `node` is in `files`: one that is there, is
// the key's, verifies against the CA and names `node` is kept. Otherwise, with a
// `join_token`, joins: a new key and CSR, droverd's NodeIdentityService.JoinNode over TLS
// (retried while droverd cannot be reached, up to `patience`), both files written 0600.
// FAILED_PRECONDITION without a certificate and without a token (the message says what to
// do); droverd's error (UNAUTHENTICATED for a bad token...) when it refuses. Whether a
// certificate is valid, and the patience, are read from `clock`.
absl::Status EnsureNodeCertificate(const std::string& scheduler, const std::string& ca_pem,
                                   const std::string& node, const NodeCertificateFiles& files,
                                   const std::string& join_token, const Clock& clock,
                                   absl::Duration patience = absl::Minutes(2));

// When a certificate valid from `not_before` to `not_after` is renewed: when a third of
// its life is left.
absl::Time RenewalTime(absl::Time not_before, absl::Time not_after);

// If the certificate in `files` is due at `now` (RenewalTime: also one already expired),
// asks droverd for a new one over `channel` (which carries the current one) and replaces
// both files. OK when not due or renewed (or not the agent's own: `managed` false); the
// RPC's error otherwise (the agent tries again later).
absl::Status RenewIfDue(const std::shared_ptr<grpc::Channel>& channel, const std::string& node,
                        const NodeCertificateFiles& files, absl::Time now);

// Channel credentials for droverd: TLS trusting the CA in `files`, presenting the node
// certificate and key, reread from the files when they change.
std::shared_ptr<grpc::ChannelCredentials> NodeChannelCredentials(const NodeCertificateFiles& files);

}  // namespace drover::agent

#endif  // DROVER_AGENT_NODE_CERTIFICATE_H_
