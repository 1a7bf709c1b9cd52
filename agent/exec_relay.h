// MPI's remote launches without ssh. `mpirun`, on node rank 0 of an MPI attempt, starts its
// daemons on the other nodes through drover-rsh (agent/launcher/drover_rsh.cc), which asks
// this node's agent over a Unix socket that belongs to the attempt (ExecRelay); the relay
// asks the agent of the target node over gRPC (AgentPeerService.Exec, PeerExecService),
// which runs the command in its container of the same attempt and streams the output back.
// When either agent goes away meanwhile (a restart), the command runs on, unfollowed.
//
// Who may run what: the relay's socket is bound only into that attempt's container, so a
// request through it is for that attempt; it only reaches the nodes of the attempt; and the
// target agent runs a command only for an attempt it runs now, given that attempt's secret
// (AssignAttempt.exec_token), which droverd hands only to the attempt's agents.
#ifndef DROVER_AGENT_EXEC_RELAY_H_
#define DROVER_AGENT_EXEC_RELAY_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/runtime/container_runtime.h"
#include "drover/v1/agent_service.grpc.pb.h"

namespace drover::agent {

// One attempt's relay: accepts drover-rsh connections on a Unix socket and forwards each
// request to the agent of the named host.
class ExecRelay {
 public:
  // `peers`: the AgentPeerService endpoint of every node of the attempt, by every name MPI
  // may use for it (its address and its node name).
  ExecRelay(v1::AttemptRef attempt, std::string token, std::map<std::string, std::string> peers);
  // Stop().
  ~ExecRelay();

  // Creates the socket at `path` (its folder must exist) and starts serving.
  absl::Status Listen(const std::string& path);
  // Closes the socket, cancels the requests in flight and waits for them. Idempotent.
  void Stop();

 private:
  void AcceptLoop();
  void Serve(int fd);

  const v1::AttemptRef attempt_;
  const std::string token_;
  const std::map<std::string, std::string> peers_;
  int listen_fd_ = -1;
  std::thread acceptor_;

  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
  std::set<grpc::ClientContext*> calls_ ABSL_GUARDED_BY(mu_);
  std::set<int> connections_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

// The target side: AgentPeerService on every agent.
class PeerExecService final : public v1::AgentPeerService::Service {
 public:
  // The container that runs `attempt` now, when `token` is its secret. PERMISSION_DENIED for
  // a wrong token, NOT_FOUND for an attempt this agent does not run (or no longer),
  // FAILED_PRECONDITION while its processes have not started yet.
  using Lookup = std::function<absl::StatusOr<std::string>(const v1::AttemptRef& attempt,
                                                           const std::string& token)>;
  PeerExecService(ContainerRuntime& runtime, Lookup lookup)
      : runtime_(runtime), lookup_(std::move(lookup)) {}

  grpc::Status Exec(grpc::ServerContext* context, const v1::ExecRequest* request,
                    grpc::ServerWriter<v1::ExecOutput>* writer) override;

 private:
  ContainerRuntime& runtime_;
  const Lookup lookup_;
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_EXEC_RELAY_H_
