#include "server/node_identity_service.h"

#include "common/grpc_status.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"

namespace drover::server {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

v1::JoinTokenInfo Describe(const storage::JoinToken& token) {
  v1::JoinTokenInfo info;
  info.set_id(token.hash.substr(0, 12));
  info.set_node_name(token.node);
  *info.mutable_create_time() = ToProto(token.create_time);
  *info.mutable_expire_time() = ToProto(token.expire_time);
  if (token.used_time != absl::UnixEpoch()) {
    *info.mutable_use_time() = ToProto(token.used_time);
    info.set_used_by(token.used_by);
  }
  info.set_revoked(token.revoked);
  return info;
}

// Answers a NodeCertificateResponse.
NodeIdentity::IssueCallback Answer(grpc::ServerUnaryReactor* reactor,
                                   v1::NodeCertificateResponse* response) {
  return [reactor, response](absl::StatusOr<IssuedNodeCertificate> issued) {
    if (issued.ok()) {
      response->set_certificate_pem(issued->certificate_pem);
      response->set_ca_pem(issued->ca_pem);
      *response->mutable_not_after() = ToProto(issued->not_after);
    }
    reactor->Finish(ToGrpcStatus(issued.status()));
  };
}

}  // namespace

std::string PeerCertificate(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return "";
  std::vector<grpc::string_ref> values = auth->FindPropertyValues("x509_pem_cert");
  if (values.empty()) return "";
  return std::string(values.front().data(), values.front().size());
}

grpc::ServerUnaryReactor* NodeIdentityServiceImpl::CreateJoinToken(
    grpc::CallbackServerContext* context, const v1::CreateJoinTokenRequest* request,
    v1::CreateJoinTokenResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::StatusOr<Caller> caller =
          auth_.Check(*context, "/drover.v1.NodeIdentityService/CreateJoinToken");
      !caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  absl::Duration ttl = absl::Hours(1);
  if (request->has_ttl()) {
    ttl = absl::Seconds(request->ttl().seconds()) + absl::Nanoseconds(request->ttl().nanos());
  }
  identity_.CreateToken(
      ttl, request->node_name(),
      [reactor, response](absl::StatusOr<std::pair<std::string, storage::JoinToken>> made) {
        if (made.ok()) {
          response->set_token(made->first);
          *response->mutable_info() = Describe(made->second);
        }
        reactor->Finish(ToGrpcStatus(made.status()));
      });
  return reactor;
}

grpc::ServerUnaryReactor* NodeIdentityServiceImpl::ListJoinTokens(
    grpc::CallbackServerContext* context, const v1::ListJoinTokensRequest*,
    v1::ListJoinTokensResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::StatusOr<Caller> caller =
          auth_.Check(*context, "/drover.v1.NodeIdentityService/ListJoinTokens");
      !caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  absl::StatusOr<std::vector<storage::JoinToken>> tokens = identity_.ListTokens();
  if (tokens.ok()) {
    for (const storage::JoinToken& token : *tokens) *response->add_tokens() = Describe(token);
  }
  reactor->Finish(ToGrpcStatus(tokens.status()));
  return reactor;
}

grpc::ServerUnaryReactor* NodeIdentityServiceImpl::RevokeJoinToken(
    grpc::CallbackServerContext* context, const v1::RevokeJoinTokenRequest* request,
    v1::RevokeJoinTokenResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::StatusOr<Caller> caller =
          auth_.Check(*context, "/drover.v1.NodeIdentityService/RevokeJoinToken");
      !caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  identity_.RevokeToken(request->id(), [reactor, id = request->id()](absl::Status s) {
    if (s.ok()) Log(LogLevel::kInfo, "join_token_revoked", {{"id", id}});
    reactor->Finish(ToGrpcStatus(s));
  });
  return reactor;
}

grpc::ServerUnaryReactor* NodeIdentityServiceImpl::RevokeNodeCertificates(
    grpc::CallbackServerContext* context, const v1::RevokeNodeCertificatesRequest* request,
    v1::RevokeNodeCertificatesResponse*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::StatusOr<Caller> caller =
          auth_.Check(*context, "/drover.v1.NodeIdentityService/RevokeNodeCertificates");
      !caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  const std::string node = request->node_name();
  identity_.RevokeNode(node, [this, reactor, node](absl::Status s) {
    if (s.ok()) {
      agents_.CloseNode(node, absl::PermissionDeniedError(absl::StrCat(
                                  "the certificate of node '", node,
                                  "' was revoked; join the node again with a new token")));
    }
    reactor->Finish(ToGrpcStatus(s));
  });
  return reactor;
}

grpc::ServerUnaryReactor* NodeIdentityServiceImpl::JoinNode(grpc::CallbackServerContext* context,
                                                            const v1::JoinNodeRequest* request,
                                                            v1::NodeCertificateResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  identity_.Join(request->token(), request->node_name(), request->csr_pem(),
                 Answer(reactor, response));
  return reactor;
}

grpc::ServerUnaryReactor* NodeIdentityServiceImpl::RenewNodeCertificate(
    grpc::CallbackServerContext* context, const v1::RenewNodeCertificateRequest* request,
    v1::NodeCertificateResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> node = identity_.Authenticate(PeerCertificate(*context));
  if (!node.ok()) {
    Log(LogLevel::kWarning, "node_renewal_refused",
        {{"peer", context->peer()}, {"error", node.status().message()}});
    reactor->Finish(ToGrpcStatus(node.status()));
    return reactor;
  }
  identity_.Renew(*node, request->csr_pem(), Answer(reactor, response));
  return reactor;
}

}  // namespace drover::server
