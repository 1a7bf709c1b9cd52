// MPI's remote launches without ssh. `mpirun`, on node rank 0 of an MPI attempt, starts its
// daemons on the other nodes through drover-rsh (agent/launcher/drover_rsh.cc), which asks
// this node's agent over a Unix socket that belongs to the attempt (ExecRelay); the relay
// asks the agent of the target node over gRPC (AgentPeerService.Exec, PeerExecService),
// which runs the command in its container of the same attempt and streams the output back.
// When either agent goes away meanwhile (a restart), the command runs on, unfollowed.
//
// Who may run what: the relay's socket is bound only into that attempt's container, so a
// request through it is for that attempt; it only reaches the nodes of the attempt, over
// mutual TLS with node certificates (agent/peer_tls.h), and only an agent whose certificate
// names the node it meant to reach; the target agent runs a command only for an attempt it
// runs now, called by a node of that attempt (its certificate says which), given that
// attempt's secret (AssignAttempt.exec_token), which droverd hands only to the attempt's
// agents.
//
// Limits: the relay serves each drover-rsh connection on a thread of its own, at most
// `max_connections` at once (kMaxRelayConnections); past that a connection is answered
// with an error and closed, so that a job that floods its socket gets errors, not an agent
// with thousands of threads.
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
#include "agent/waiter.h"
#include "common/clock.h"
#include "drover/v1/agent_service.grpc.pb.h"

namespace drover::agent {

// How many drover-rsh connections one attempt's relay serves at once, unless the attempt
// needs more (Attempt::StartRelay allows a few per node). mpirun holds one per remote node
// for as long as its daemon there runs (no tree spawn), so this is far above what an MPI
// job of a few hundred nodes uses, and a bounded number of threads (a few MiB each at
// most) per attempt.
inline constexpr int kMaxRelayConnections = 256;

// A node of the attempt as the relay reaches it.
struct ExecPeer {
  std::string node;      // its name: its peer server must present its node certificate
  std::string endpoint;  // HOST:PORT of its AgentPeerService
};

// Whether node `caller` may run commands in this node's container of the attempt
// `assignment`: only its nodes may. PERMISSION_DENIED naming the caller otherwise.
absl::Status CheckCallerOfAttempt(const v1::AssignAttempt& assignment, absl::string_view caller);

// One attempt's relay: accepts drover-rsh connections on a Unix socket and forwards each
// request to the agent of the named host.
class ExecRelay {
 public:
  // A channel to the peer port of a node (PeerTls::Channel).
  using Connect = std::function<std::shared_ptr<grpc::Channel>(const ExecPeer& peer)>;

  // `peers`: every node of the attempt, by every name MPI may use for it (its address and
  // its node name). `clock` (not owned) times how long an unreachable peer is retried.
  ExecRelay(v1::AttemptRef attempt, std::string token, std::map<std::string, ExecPeer> peers,
            Connect connect, int max_connections = kMaxRelayConnections,
            const Clock& clock = RealClock::Get());
  // Stop().
  ~ExecRelay();

  // Creates the socket at `path` (its folder must exist) and starts serving.
  absl::Status Listen(const std::string& path);
  // Closes the socket, cancels the requests in flight and waits for them. Idempotent.
  void Stop();

 private:
  void AcceptLoop();
  // Answers a connection past the limit with an error and closes it.
  void Refuse(int fd) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Serve(int fd);
  // Ends a connection Serve served: closes it and leaves the thread to be joined.
  void Finish(int fd);

  const v1::AttemptRef attempt_;
  const std::string token_;
  const std::map<std::string, ExecPeer> peers_;
  const Connect connect_;
  const int max_connections_;
  const Clock& clock_;
  Waiter waiter_{clock_};  // the pauses between tries to reach a peer; Stop() ends them
  int listen_fd_ = -1;
  std::thread acceptor_;

  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // One thread per open connection, by the connection's socket; `finished_` holds those
  // that are done, which the acceptor joins.
  std::map<int, std::thread> workers_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> finished_ ABSL_GUARDED_BY(mu_);
  int64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<grpc::ClientContext*> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

// The target side: AgentPeerService on every agent.
class PeerExecService final : public v1::AgentPeerService::Service {
 public:
  // The container that runs `attempt` now, when node `caller` (from its certificate) is a
  // node of it and `token` is its secret. PERMISSION_DENIED for another node or a wrong
  // token, NOT_FOUND for an attempt this agent does not run (or no longer),
  // FAILED_PRECONDITION while its processes have not started yet.
  using Lookup = std::function<absl::StatusOr<std::string>(
      const v1::AttemptRef& attempt, const std::string& token, const std::string& caller)>;
  // `clock` (not owned) times how long a call waits for the attempt's processes to start.
  PeerExecService(ContainerRuntime& runtime, Lookup lookup, const Clock& clock = RealClock::Get())
      : runtime_(runtime), lookup_(std::move(lookup)), clock_(clock) {}

  grpc::Status Exec(grpc::ServerContext* context, const v1::ExecRequest* request,
                    grpc::ServerWriter<v1::ExecOutput>* writer) override;

 private:
  ContainerRuntime& runtime_;
  const Lookup lookup_;
  const Clock& clock_;
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_EXEC_RELAY_H_
