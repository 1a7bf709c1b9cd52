#include "server/standby_server.h"

#include <grpcpp/server_builder.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/leader_redirect.h"

namespace drover::server {

absl::StatusOr<std::unique_ptr<StandbyServer>> StandbyServer::Start(
    const std::string& listen, std::shared_ptr<grpc::ServerCredentials> credentials) {
  auto server = std::unique_ptr<StandbyServer>(new StandbyServer());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, std::move(credentials), &server->port_);
  // As the leading droverd: no second process may share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Agents ping every few seconds (server/droverd.cc allows the same).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
  builder.RegisterCallbackGenericService(&server->service_);
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on '", listen,
        "'; is another droverd running there, or is the address not on this machine?"));
  }
  return server;
}

StandbyServer::~StandbyServer() { Stop(); }

void StandbyServer::SetLeader(std::string address) {
  absl::MutexLock lock(&mu_);
  leader_ = std::move(address);
}

std::string StandbyServer::leader() const {
  absl::MutexLock lock(&mu_);
  return leader_;
}

void StandbyServer::Stop() {
  if (server_ == nullptr) return;
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
}

grpc::ServerGenericBidiReactor* StandbyServer::Service::CreateReactor(
    grpc::GenericCallbackServerContext* context) {
  class Refuse : public grpc::ServerGenericBidiReactor {
   public:
    Refuse(grpc::GenericCallbackServerContext* context, const std::string& leader) {
      std::string message;
      if (leader.empty()) {
        message =
            "this droverd stands by and no droverd leads right now (a standby takes over "
            "within seconds); retry in a moment";
      } else {
        context->AddTrailingMetadata(kLeaderMetadataKey, leader);
        message = absl::StrCat("this droverd stands by; the droverd that leads is at ", leader,
                               ": retry the call there");
      }
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, message));
    }
    void OnDone() override { delete this; }
  };
  return new Refuse(context, server_.leader());
}

}  // namespace drover::server
