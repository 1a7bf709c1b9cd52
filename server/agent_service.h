// AgentServiceImpl: the gRPC service node agents connect to. One bidirectional stream per
// agent; the node identity of a stream is its node certificate's (NodeIdentity), fixed in
// Connect and nowhere else: a stream without a node certificate is UNAUTHENTICATED, one
// with a revoked certificate PERMISSION_DENIED, and a hello naming another node
// PERMISSION_DENIED. Log chunks go straight to the LogStore and are acknowledged once durable (those
// of an attempt that is not current are acknowledged and dropped, see Core::AcceptsLogs);
// everything else is posted to the core loop.
#ifndef DROVER_SERVER_AGENT_SERVICE_H_
#define DROVER_SERVER_AGENT_SERVICE_H_

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "drover/v1/agent_service.grpc.pb.h"
#include "server/core.h"
#include "server/core_loop.h"
#include "server/node_identity.h"
#include "storage/log_store.h"

namespace drover::server {

class AgentStream;

class AgentServiceImpl final : public v1::AgentService::CallbackService {
 public:
  AgentServiceImpl(Core& core, CoreLoop& loop, storage::LogStore& logs, NodeIdentity& identity)
      : core_(core), loop_(loop), logs_(logs), identity_(identity) {}

  grpc::ServerBidiReactor<v1::AgentMessage, v1::SchedulerMessage>* Connect(
      grpc::CallbackServerContext* context) override;

  // Ends every agent stream with UNAVAILABLE (agents reconnect to the next droverd) and
  // refuses new ones. Used by a graceful stop.
  void CloseAll();

  // Ends the live streams of `node` with `status` (its certificate was revoked).
  void CloseNode(const std::string& node, const absl::Status& status);

 private:
  friend class AgentStream;
  void Forget(AgentStream* stream);

  Core& core_;
  CoreLoop& loop_;
  storage::LogStore& logs_;
  NodeIdentity& identity_;
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<AgentStream*> streams_ ABSL_GUARDED_BY(mu_);
};

}  // namespace drover::server

#endif  // DROVER_SERVER_AGENT_SERVICE_H_
