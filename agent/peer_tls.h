// TLS of the agents' peer port (AgentPeerService, --peer-listen), with node certificates.
// Every agent serves the port with its node certificate and requires the caller's, signed
// by the cluster CA (mutual TLS); a caller (the exec relay of node rank 0) presents its own
// and accepts the server only when its certificate is from the cluster CA and names the
// node it meant to reach (pki::NodeNameOfCertificate), not merely some node at that address.
//
// Renewal: one gRPC FileWatcherCertificateProvider per agent rereads the node key,
// certificate and CA files every few seconds; the server and every channel made here take
// their certificates from it, so a renewed certificate (agent/node_certificate.h) is used
// for the next handshakes without rebuilding anything. Connections already up keep the
// certificate they were made with, which is fine: TLS checks a certificate's validity at
// the handshake only.
//
// gRPC's TLS server logs "No match found for server name: NODE" at each handshake: it
// matches the name the client asks for (TLS SNI, the node's name) against DNS names that a
// node certificate does not have, then serves its only certificate anyway. Harmless; node
// certificates get no DNS names so that none can pass for a host's server certificate.
//
// Thread-safe after construction.
#ifndef DROVER_AGENT_PEER_TLS_H_
#define DROVER_AGENT_PEER_TLS_H_

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/node_certificate.h"

namespace drover::agent {

class PeerTls {
 public:
  // `files`: the node's key and certificate and the cluster CA (--ca), read now and again
  // every few seconds.
  explicit PeerTls(NodeCertificateFiles files);

  // For the peer server: presents the node certificate; refuses a handshake without a client
  // certificate that verifies against the CA.
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;

  // For a channel to the peer port of node `node`: presents the node certificate; the
  // handshake fails (the call is UNAVAILABLE) unless the server's certificate verifies
  // against the CA and is the node certificate of `node`.
  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const std::string& node) const;

  // A channel to the peer port at `endpoint` (HOST:PORT) of node `node`, with those
  // credentials; it asks for the server by the node's name (TLS SNI), not by its address.
  std::shared_ptr<grpc::Channel> Channel(const std::string& endpoint,
                                         const std::string& node) const;

 private:
  const NodeCertificateFiles files_;
  std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> provider_;
};

// The node that made a call to the peer server: the name in its client certificate (which
// TLS verified against the CA). UNAUTHENTICATED when the call carries no node certificate.
absl::StatusOr<std::string> CallerNode(const grpc::ServerContextBase& context);

}  // namespace drover::agent

#endif  // DROVER_AGENT_PEER_TLS_H_
