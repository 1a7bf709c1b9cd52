#include "server/admin_service.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "server/grpc_status.h"

namespace drover::server {
namespace {

// Runs a node change on the core and answers with the node.
template <typename Change>
grpc::ServerUnaryReactor* NodeChange(grpc::CallbackServerContext* context, CoreLoop& loop,
                                     const v1::NodeRequest* request, v1::Node* response,
                                     absl::string_view what, Change change) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->name().empty()) {
    reactor->Finish(ToGrpcStatus(
        absl::InvalidArgumentError("name: required; give the node's name (see drover nodes)")));
    return reactor;
  }
  loop.Post([reactor, response, request, what = std::string(what), change]() {
    absl::StatusOr<v1::Node> node = change(request->name(), request->reason());
    if (node.ok()) {
      Log(LogLevel::kInfo, "node_admin", {{"node", request->name()}, {"action", what},
                                           {"state", v1::Node::State_Name(node->state())}});
      *response = *std::move(node);
    }
    reactor->Finish(ToGrpcStatus(node.status()));
  });
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::ListNodes(grpc::CallbackServerContext* context,
                                                      const v1::ListNodesRequest* request,
                                                      v1::ListNodesResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  loop_.Post([this, reactor, response] {
    for (v1::Node& node : core_.ListNodes()) *response->add_nodes() = std::move(node);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::CordonNode(grpc::CallbackServerContext* context,
                                                       const v1::NodeRequest* request,
                                                       v1::Node* response) {
  return NodeChange(context, loop_, request, response, "cordon",
                    [this](const std::string& n, const std::string& r) { return core_.Cordon(n, r); });
}

grpc::ServerUnaryReactor* AdminServiceImpl::UncordonNode(grpc::CallbackServerContext* context,
                                                         const v1::NodeRequest* request,
                                                         v1::Node* response) {
  return NodeChange(context, loop_, request, response, "uncordon",
                    [this](const std::string& n, const std::string&) { return core_.Uncordon(n); });
}

grpc::ServerUnaryReactor* AdminServiceImpl::DrainNode(grpc::CallbackServerContext* context,
                                                      const v1::NodeRequest* request,
                                                      v1::Node* response) {
  return NodeChange(context, loop_, request, response, "drain",
                    [this](const std::string& n, const std::string& r) { return core_.Drain(n, r); });
}

grpc::ServerUnaryReactor* AdminServiceImpl::PutComputeTarget(
    grpc::CallbackServerContext* context, const v1::PutComputeTargetRequest* request,
    v1::ComputeTarget* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  loop_.Post([this, reactor, request, response] {
    core_.PutTarget(request->target(), [reactor, request, response](absl::Status status) {
      if (status.ok()) {
        *response = request->target();
        Log(LogLevel::kInfo, "target_put", {{"target", request->target().name()}});
      }
      reactor->Finish(ToGrpcStatus(status));
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListComputeTargets(
    grpc::CallbackServerContext* context, const v1::ListComputeTargetsRequest* request,
    v1::ListComputeTargetsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  loop_.Post([this, reactor, response] {
    for (v1::ComputeTarget& target : core_.ListTargets()) *response->add_targets() = std::move(target);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::DeleteComputeTarget(
    grpc::CallbackServerContext* context, const v1::DeleteComputeTargetRequest* request,
    v1::DeleteComputeTargetResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  loop_.Post([this, reactor, request] {
    core_.DeleteTarget(request->name(), [reactor](absl::Status status) {
      reactor->Finish(ToGrpcStatus(status));
    });
  });
  return reactor;
}

}  // namespace drover::server
