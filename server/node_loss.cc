// The core's handling of lost nodes: leases, the pause of node-loss handling when most nodes
// vanish at once, the administrator's DeclareNodeLost, the agents of lost nodes that come
// back on their old stream, and the update of the fence that keeps what a stale attempt
// sends out of the logs (server/attempt_fences.h). Part of Core (core.h); runs on the
// CoreLoop thread.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"
#include "server/core.h"
#include "server/server_metrics.h"

namespace drover::server {

using google::protobuf::util::TimeUtil;
using v1::JobStatus;

absl::Status CheckNodeLeaseOptions(const CoreOptions& options) {
  if (options.heartbeat_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--heartbeat-interval: ", absl::FormatDuration(options.heartbeat_interval),
                     " must be positive; write it like 2s or 500ms"));
  }
  if (options.lease < kMinHeartbeatsPerLease * options.heartbeat_interval) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--node-lease: ", absl::FormatDuration(options.lease), " is less than ",
        kMinHeartbeatsPerLease, " heartbeat intervals (--heartbeat-interval ",
        absl::FormatDuration(options.heartbeat_interval),
        "), so a node would be lost for a few late heartbeats; give a lease of at least ",
        absl::FormatDuration(kMinHeartbeatsPerLease * options.heartbeat_interval),
        " or a shorter heartbeat interval"));
  }
  if (!(options.node_loss_pause_fraction >= 0 && options.node_loss_pause_fraction < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--node-loss-pause-fraction: ", options.node_loss_pause_fraction,
                     " is not in [0, 1); give the fraction of silent nodes beyond which "
                     "node-loss handling pauses, such as 0.5, or 0 to never pause"));
  }
  return absl::OkStatus();
}

void Core::CheckLeases(absl::Time now) {
  const bool was_paused = lease_check_.paused;
  lease_check_ = nodes_.CheckLeases(now, options_.lease, options_.node_loss_pause_fraction);
  const scheduler::LeaseCheck& check = lease_check_;
  for (const std::string& node : check.down) {
    Log(LogLevel::kWarning, "node_down",
        {{"node", node}, {"lease", absl::FormatDuration(options_.lease)}});
  }
  if (check.paused != was_paused) {
    if (check.paused) {
      Log(LogLevel::kWarning, "node_loss_paused",
          {{"silent", check.silent},
           {"nodes", check.counted},
           {"fraction", options_.node_loss_pause_fraction},
           {"waiting", absl::StrJoin(check.pending, ",")}});
    } else {
      Log(LogLevel::kWarning, "node_loss_resumed",
          {{"silent", check.silent},
           {"nodes", check.counted},
           {"lost", absl::StrJoin(check.lost, ",")},
           {"waiting", absl::StrJoin(check.pending, ",")}});
    }
  }
  if (options_.metrics != nullptr) {
    options_.metrics->node_loss_paused.With({}).Set(check.paused ? 1 : 0);
    options_.metrics->nodes_waiting_for_loss.With({}).Set(
        static_cast<double>(check.pending.size()));
  }
  for (const std::string& node : check.lost) {
    NodeLost(node, absl::StrCat("node ", node, " stopped answering (no message for ",
                                absl::FormatDuration(options_.lease), ")"));
  }
  SaveLossPause();
}

std::string Core::PauseKey(const std::optional<storage::NodeLossPause>& pause) {
  if (!pause.has_value()) return "";
  std::string key = absl::StrCat(absl::ToUnixMicros(pause->paused_since));
  for (const storage::NodeLossPause::Member& m : pause->nodes) {
    absl::StrAppend(&key, " ", m.name, ":", static_cast<int>(m.role), m.listed ? "" : "?");
  }
  return key;
}

void Core::SaveLossPause() {
  std::optional<storage::NodeLossPause> pause = nodes_.LossPause();
  std::string key = PauseKey(pause);
  if (key == saved_pause_) return;
  saved_pause_ = key;
  // A fact, like an agent's report: nothing waits for it but DeclareNodeLost (a barrier).
  const bool paused = pause.has_value();
  store_.PutNodeLossPause(std::move(pause), [this, key, paused](absl::Status s) {
    if (s.ok()) {
      // From here on a restarted droverd keeps the pause (node_loss_pause_restored).
      Log(LogLevel::kInfo, "node_loss_pause_stored", {{"paused", paused}});
      return;
    }
    loop_.Post([this, key, s] {
      Log(LogLevel::kWarning, "node_loss_pause_not_stored", {{"error", s.ToString()}});
      if (saved_pause_ == key) saved_pause_ = "unsaved";  // the next tick writes it again
    });
  });
}

v1::NodeLossStatus Core::NodeLoss() const {
  v1::NodeLossStatus status;
  status.set_paused(lease_check_.paused);
  if (lease_check_.paused) {
    *status.mutable_paused_since() =
        TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(nodes_.loss_paused_since()));
  }
  status.set_silent_nodes(lease_check_.silent);
  status.set_counted_nodes(lease_check_.counted);
  for (const std::string& node : lease_check_.pending) status.add_waiting_nodes(node);
  status.set_pause_fraction(options_.node_loss_pause_fraction);
  return status;
}

void Core::DeclareNodeLost(const std::string& node, const std::string& reason,
                           NodeCallback done) {
  absl::Status valid = scheduler::CheckNodeName(node);
  if (valid.ok()) valid = scheduler::CheckNodeReason(reason);
  if (!valid.ok()) {
    std::move(done)(valid);
    return;
  }
  absl::StatusOr<v1::Node> declared = nodes_.DeclareLost(node, reason, clock_.Now());
  if (!declared.ok()) {
    std::move(done)(declared.status());
    return;
  }
  lease_check_.pending.erase(
      std::remove(lease_check_.pending.begin(), lease_check_.pending.end(), node),
      lease_check_.pending.end());
  NodeLost(node, absl::StrCat("node ", node, " was declared lost by an administrator",
                              reason.empty() ? "" : ": ", reason));
  SaveLossPause();  // a node given up during a pause still counts towards it
  Schedule();
  // Answered once what the loss wrote (the pause, the ends of its attempts) is durable.
  store_.Barrier([this, node, declared = *std::move(declared),
                  done = std::move(done)](absl::Status s) mutable {
    loop_.Post([node, s, declared = std::move(declared), done = std::move(done)]() mutable {
      if (!s.ok()) {
        std::move(done)(absl::Status(
            s.code(), absl::StrCat("node '", node, "' is declared lost, but storing that failed: ",
                                   s.message(), "; retry the call")));
        return;
      }
      std::move(done)(std::move(declared));
    });
  });
}

void Core::NodeLost(const std::string& node, const std::string& message) {
  Run(attempts_.NodeLost(node, message));
}

bool Core::NodeSeen(const std::string& node) {
  const v1::Node* known = nodes_.Find(node);
  const bool was_down = known != nullptr && known->state() == v1::Node::DOWN;
  if (nodes_.Seen(node, clock_.Now())) {
    if (was_down) Log(LogLevel::kInfo, "node_back", {{"node", node}});
    return true;
  }
  // Its attempts were ended here while it was away, but it still runs them: have it say
  // hello again, which stops them (HandleReport).
  auto link = links_.find(node);
  if (link != links_.end()) {
    Log(LogLevel::kInfo, "lost_node_reconnect", {{"node", node}});
    link->second->Close(absl::UnavailableError(
        absl::StrCat("node ", node, " was lost and its attempts ended; reconnect and say hello")));
    links_.erase(link);
  }
  return false;
}

void Core::UpdateFence(const std::string& job_id) {
  fences_.Set(job_id, attempts_.Find(job_id), jobs_.Find(job_id));
}

}  // namespace drover::server
