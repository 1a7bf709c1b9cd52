// NodeIdentityServiceImpl: join tokens, node certificates and their revocation over gRPC
// (NodeIdentityService in node_identity.proto). The logic is NodeIdentity's; revoking a
// node also ends its live agent stream. Handlers never block: they answer from store
// callbacks.
#ifndef DROVER_SERVER_NODE_IDENTITY_SERVICE_H_
#define DROVER_SERVER_NODE_IDENTITY_SERVICE_H_

#include <grpcpp/server_context.h>

#include <string>

#include "drover/v1/node_identity.grpc.pb.h"
#include "server/agent_service.h"
#include "server/auth.h"
#include "server/node_identity.h"

namespace drover::server {

// The PEM certificate a TLS peer presented and TLS verified against the cluster CA; empty
// when it presented none.
std::string PeerCertificate(const grpc::ServerContextBase& context);

class NodeIdentityServiceImpl final : public v1::NodeIdentityService::CallbackService {
 public:
  NodeIdentityServiceImpl(NodeIdentity& identity, AgentServiceImpl& agents, Authenticator& auth)
      : identity_(identity), agents_(agents), auth_(auth) {}

  grpc::ServerUnaryReactor* CreateJoinToken(grpc::CallbackServerContext* context,
                                            const v1::CreateJoinTokenRequest* request,
                                            v1::CreateJoinTokenResponse* response) override;
  grpc::ServerUnaryReactor* ListJoinTokens(grpc::CallbackServerContext* context,
                                           const v1::ListJoinTokensRequest* request,
                                           v1::ListJoinTokensResponse* response) override;
  grpc::ServerUnaryReactor* RevokeJoinToken(grpc::CallbackServerContext* context,
                                            const v1::RevokeJoinTokenRequest* request,
                                            v1::RevokeJoinTokenResponse* response) override;
  grpc::ServerUnaryReactor* RevokeNodeCertificates(
      grpc::CallbackServerContext* context, const v1::RevokeNodeCertificatesRequest* request,
      v1::RevokeNodeCertificatesResponse* response) override;
  grpc::ServerUnaryReactor* JoinNode(grpc::CallbackServerContext* context,
                                     const v1::JoinNodeRequest* request,
                                     v1::NodeCertificateResponse* response) override;
  grpc::ServerUnaryReactor* RenewNodeCertificate(grpc::CallbackServerContext* context,
                                                 const v1::RenewNodeCertificateRequest* request,
                                                 v1::NodeCertificateResponse* response) override;

 private:
  NodeIdentity& identity_;
  AgentServiceImpl& agents_;
  Authenticator& auth_;  // the token and revocation methods are an admin's
};

}  // namespace drover::server

#endif  // DROVER_SERVER_NODE_IDENTITY_SERVICE_H_
