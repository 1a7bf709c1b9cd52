// Core: droverd's scheduling core in motion. It owns the job queue, the node registry, the
// agents' links and the attempts in flight, and turns events (a submit committed, an agent
// report, a cancel, a tick of the clock) into placements, persisted status changes and
// messages to agents. Every method runs on the CoreLoop thread; other threads post to it.
//
// Status changes are applied to the in-memory queue at once (so the next decision sees
// them) and written to the store in order with a compare-and-set on the version, by the
// StatusWriter (server/status_writer.h); what clients and watchers see comes only from
// committed writes. The loop never reads the store itself: reads run on a thread of their
// own and post their result back.
//
// It holds no lock: what other threads read is in classes of its own with their threading
// contract in their headers: the registries (server/registries.h, immutable snapshots) and
// the attempts' fences (server/attempt_fences.h, what each node may send and read).
//
// Its methods are in four files: core.cc (restore, placement and assignment, the tick),
// core_agents.cc (the agent protocol, cancel and stop, and the end of an attempt; the
// rules of attempts are scheduler/attempts.h, whose effects the core runs), core_admin.cc
// (what administrators change: compute targets, cordon and drain) and node_loss.cc
// (leases, the pause of node-loss handling).
#ifndef DROVER_SERVER_CORE_H_
#define DROVER_SERVER_CORE_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/clock.h"
#include "common/datastore_policy.h"
#include "drover/v1/admin_service.pb.h"
#include "drover/v1/agent.pb.h"
#include "drover/v1/datastore.pb.h"
#include "drover/v1/image.pb.h"
#include "scheduler/admin_checks.h"
#include "scheduler/attempt_outcome.h"
#include "scheduler/attempts.h"
#include "scheduler/job_queue.h"
#include "scheduler/node_registry.h"
#include "scheduler/placement.h"
#include "scheduler/stored_ends.h"
#include "server/attempt_fences.h"
#include "server/core_loop.h"
#include "server/job_events.h"
#include "server/registries.h"
#include "server/status_writer.h"
#include "storage/log_store.h"
#include "storage/store.h"

namespace drover::server {

class ServerMetrics;

// One agent's stream, as the core sees it. Implemented by the AgentService reactor.
class AgentLink {
 public:
  virtual ~AgentLink() = default;
  // Queues a message for the agent. Thread-safe, never blocks; dropped once the stream ended.
  virtual void Send(v1::SchedulerMessage message) = 0;
  // Ends the stream with `status`; the agent reconnects and says hello again. Thread-safe.
  virtual void Close(const absl::Status& status) = 0;
};

// How many ports from CoreOptions::master_port_base attempts' MASTER_PORTs rotate through.
inline constexpr int32_t kMasterPorts = 1000;

struct CoreOptions {
  // How often agents send a heartbeat (told in the welcome).
  absl::Duration heartbeat_interval = absl::Seconds(2);
  // A node silent this long is DOWN and its attempts end NODE_LOST (after a restart: a node
  // of a restored attempt that has not said hello this long after the restart).
  absl::Duration lease = absl::Seconds(15);
  // When more than this fraction of the nodes are silent at once (see
  // NodeRegistry::CheckLeases), the loss of nodes is not handled until enough are back;
  // 0: never paused.
  double node_loss_pause_fraction = 0.5;
  // SIGTERM to SIGKILL when an attempt is stopped.
  absl::Duration stop_grace = absl::Seconds(10);
  // An attempt whose nodes are not all READY this long after its assignment is stopped and
  // fails with cause LAUNCH_FAILED (retried when `max_retries` allows). Zero: no limit.
  absl::Duration launch_timeout = absl::Minutes(15);
  // First MASTER_PORT handed to distributed attempts: node rank 0 of each gets the next port
  // of the kMasterPorts from here, after the last one handed out on that node, that no other
  // attempt there holds.
  int32_t master_port_base = 29500;
  // droverd's own metrics (jobs and nodes by state, placements...); null: none.
  ServerMetrics* metrics = nullptr;
  // How agents run pip when they build job environments (droverd's --pip-* flags), sent in
  // the AssignAttempt of every job with pip or conda packages.
  v1::PipSettings pip;
  // The secret each attempt's exec token is derived from (with its job and epoch), so that
  // a restarted droverd that sends an assignment again sends the token the attempt's other
  // nodes already have. droverd keeps it in its state folder; empty: a random one.
  std::string exec_token_key;
  // Where HOSTPATH datastores may be (droverd's --datastore-root) and droverd's own state
  // folder, which none may touch; no allowed root: no HOSTPATH datastore is accepted.
  DatastoreRoots datastore_roots;
};

// Checks droverd's --heartbeat-interval, --node-lease and --node-loss-pause-fraction:
// positive durations, a lease of at least kMinHeartbeatsPerLease heartbeat intervals, a
// fraction in [0, 1). INVALID_ARGUMENT naming the flag and the fix otherwise.
inline constexpr int kMinHeartbeatsPerLease = 3;
absl::Status CheckNodeLeaseOptions(const CoreOptions& options);

class Core {
 public:
  // droverd's metrics, or null (set once at construction; any thread may read it).
  ServerMetrics* metrics() const { return options_.metrics; }
  using JobCallback = absl::AnyInvocable<void(absl::StatusOr<v1::Job>) &&>;

  Core(storage::Store& store, storage::LogStore& logs, JobEventHub& events, CoreLoop& loop,
       const Clock& clock, CoreOptions options);

  // At start, before any placement: every unfinished job (packed as the queue holds it:
  // JobQueue::Pack), the stored compute targets, image and datastore registrations, what
  // administrators set on nodes, and the pause of node-loss handling if one was stored (it
  // goes on, from the same time).
  void Restore(std::vector<scheduler::JobQueue::Packed> unfinished,
               const std::vector<v1::ComputeTarget>& targets,
               const std::vector<v1::Image>& images = {},
               const std::vector<v1::Datastore>& datastores = {},
               const std::vector<storage::NodeAdminState>& node_states = {},
               const std::optional<storage::NodeLossPause>& loss_pause = std::nullopt);

  // A submit was committed.
  void JobCreated(const v1::Job& job);
  // A change of a job's tags was committed (`job` as the store returned it): an unfinished
  // job's copy takes its tags, so that its next assignment carries them.
  void JobTagsChanged(const v1::Job& job);
  // Cancels a job (see JobService.CancelJob); `done` gets the job as committed. With
  // `cause` EARLY_TERMINATED (a sweep's policy stopped the trial, server/sweeps.h) the job
  // ends CANCELED with that cause and `reason` as its message (scheduler::PlanCancel).
  void Cancel(const std::string& job_id, const std::string& reason, JobCallback done,
              v1::JobStatus::Cause cause = v1::JobStatus::CANCELED_BY_USER);
  // Cancels every unfinished task of job array `array_id` as Cancel does; `done` gets the
  // array's first task `fallback` (as read before), or as its cancel committed when it was
  // unfinished, or the first error of a task's cancel.
  void CancelArray(const std::string& array_id, const std::string& reason, v1::Job fallback,
                   JobCallback done);

  // An agent connected and said hello. Returns the node name the link belongs to from now on.
  absl::StatusOr<std::string> AgentHello(std::shared_ptr<AgentLink> link,
                                         const v1::AgentHello& hello);
  // Any later message of that agent (log chunks do not come here).
  void AgentMessage(const std::string& node, const v1::AgentMessage& message);
  // The agent's stream ended.
  void AgentGone(const std::string& node, const AgentLink* link);

  // Administration. `done` runs on the loop with the node's new state once the change is
  // durable: cordon, drain and uncordon are stored first and applied after the commit (a
  // refused write changes nothing); a declared loss is applied at once and answered after
  // the writes it made. INVALID_ARGUMENT naming `name` or `reason` for a malformed node
  // name or a reason too long or not one line (scheduler::CheckNodeName, CheckNodeReason),
  // NOT_FOUND for an unknown node, the store's errors when the write fails.
  using NodeCallback = absl::AnyInvocable<void(absl::StatusOr<v1::Node>) &&>;
  void Cordon(const std::string& node, const std::string& reason, NodeCallback done);
  void Uncordon(const std::string& node, NodeCallback done);
  void Drain(const std::string& node, const std::string& reason, NodeCallback done);
  // AdminService.DeclareNodeLost: the node is DOWN and its attempts end NODE_LOST now.
  void DeclareNodeLost(const std::string& node, const std::string& reason, NodeCallback done);
  std::vector<v1::Node> ListNodes() const { return nodes_.List(); }
  // Whether lost nodes are handled or that is paused, as of the last tick.
  v1::NodeLossStatus NodeLoss() const;
  using StatusCallback = absl::AnyInvocable<void(absl::Status) &&>;
  // Stores, then applies, a compute target change; `done` runs on the loop after the commit.
  void PutTarget(const v1::ComputeTarget& target, StatusCallback done);
  void DeleteTarget(const std::string& name, StatusCallback done);
  std::vector<v1::ComputeTarget> ListTargets() const { return nodes_.ListTargets(); }
  // What administrators register for jobs (server/registries.h): changed on the loop
  // (stored, then applied; `done` runs on the loop after the commit), read by any thread.
  // The next assignment of a job carries its image's digest and its datastores as
  // registered then.
  ImageRegistry& images() { return images_; }
  DatastoreRegistry& datastores() { return datastores_; }
  const TargetNames& target_names() const { return target_names_; }

  // Leases, timeouts and placement; the loop calls it periodically.
  void Tick();

  // What each node may send and read (server/attempt_fences.h). Any thread.
  const AttemptFences& fences() const { return fences_; }
  bool AcceptsLogs(const std::string& node, const v1::AttemptRef& attempt) const {
    return fences_.AcceptsLogs(node, attempt);
  }
  bool IsForeignAttempt(const std::string& node, const v1::AttemptRef& attempt) const {
    return fences_.IsForeignAttempt(node, attempt);
  }
  bool HasStream(const std::string& node, const v1::AttemptRef& attempt, int32_t rank,
                 v1::LogStream stream) const {
    return fences_.HasStream(node, attempt, rank, stream);
  }
  bool RunsAnAttempt(const std::string& node) const { return fences_.RunsAnAttempt(node); }
  std::string JobReadingBlob(const std::string& node, const std::string& digest) const {
    return fences_.JobReadingBlob(node, digest);
  }
  bool RunsPartOf(const std::string& node, const std::string& job_id) const {
    return fences_.RunsPartOf(node, job_id);
  }
  absl::flat_hash_set<std::string> BlobsInUse() const { return fences_.BlobsInUse(); }

 private:
  // To the API's duration (milliseconds).
  static google::protobuf::Duration ToProtoDuration(absl::Duration d);
  void Schedule();
  // Runs Schedule() once, after what is already posted to the loop.
  void RequestSchedule();
  void Assign(const scheduler::Placement& placement);
  void HandleReport(const std::string& node, const v1::AttemptReport& report);
  // The first ENDED `report` of `node` for the current attempt: its usage becomes the last
  // sample of the node's SYSTEM_METRICS (EndSampleRecords).
  void AddEndSample(const std::string& node, const v1::AttemptReport& report);
  // Runs what the attempt rules (scheduler/attempts.h) decided, in order: status commits,
  // messages to nodes, assignments sent again, fences, attempts' ends, placement rounds.
  void Run(scheduler::AttemptEffects effects);
  // Every node of the attempt ended: releases its nodes, closes its logs and ends the job
  // (or queues it again) as scheduler::Attempts::Finish decides.
  void FinishAttempt(const std::string& job_id);
  void StopAttempt(const std::string& job_id, v1::JobStatus::Cause cause,
                   const std::string& message);
  void SendTo(const std::string& node, v1::SchedulerMessage message);
  // Tells each node which of the ends it reported are stored (EndsStored).
  void SendEndsStored(const scheduler::SettledEnds& settled);
  // The attempt's secret for exec relays between its nodes (AssignAttempt.exec_token).
  std::string ExecToken(const std::string& job_id, int64_t epoch) const;
  // MASTER_PORT for an attempt whose node rank 0 is `node`.
  int32_t FreeMasterPort(const std::string& node);
  // Sends the attempt's AssignAttempt to each of its nodes (or only to `only_node`).
  void SendAssignments(const v1::Job& job, const scheduler::AttemptState& attempt,
                       const std::string& only_node = "");
  // Node `node` is lost: its part of every attempt ends with `message` (NODE_LOST).
  void NodeLost(const std::string& node, const std::string& message);
  // Leases and the pause of node-loss handling (node_loss.cc).
  void CheckLeases(absl::Time now);
  // A message came from `node`'s agent. False when the node was lost meanwhile: its stream
  // is closed, so that the agent says hello again and its stale attempts are stopped.
  bool NodeSeen(const std::string& node);
  // Stores the pause of node-loss handling when it began, changed or ended since the last
  // write (node_loss.cc).
  void SaveLossPause();
  // What a stored pause is compared by: when it began and the nodes it counts, each with
  // its role (not last_seen, which moves with every heartbeat). "" for no pause.
  static std::string PauseKey(const std::optional<storage::NodeLossPause>& pause);
  // Stores a cordon or drain (`state`) or, with `state` empty, an uncordon of `node`, then
  // applies it with `apply` and answers `done`.
  void ChangeNodeAdmin(const std::string& node, std::optional<storage::NodeAdminState> state,
                       absl::AnyInvocable<absl::StatusOr<v1::Node>()> apply, NodeCallback done);
  // Sets what `fences_` says of `job_id` from attempts_.
  void UpdateFence(const std::string& job_id);

  storage::Store& store_;
  storage::LogStore& logs_;
  JobEventHub& events_;
  CoreLoop& loop_;
  const Clock& clock_;
  const CoreOptions options_;

  scheduler::JobQueue jobs_;
  scheduler::NodeRegistry nodes_;
  absl::flat_hash_map<std::string, std::shared_ptr<AgentLink>> links_;  // by node name
  scheduler::Attempts attempts_;  // the attempts in flight, by job id
  // The ends nodes reported whose decision is not stored yet (told once it is).
  scheduler::StoredEnds stored_ends_;
  absl::Time metrics_updated_ = absl::InfinitePast();  // when Tick last set the gauges
  // Cancels being stored, by job: the callbacks of every cancel of it meanwhile, all
  // answered with the stored result.
  std::map<std::string, std::vector<JobCallback>> cancels_;
  bool schedule_requested_ = false;
  scheduler::LeaseCheck lease_check_;  // the last one
  // What SaveLossPause last wrote (PauseKey in node_loss.cc); "" when no pause is stored.
  std::string saved_pause_;
  // By node: where FreeMasterPort looks first, as an offset from master_port_base.
  absl::flat_hash_map<std::string, int32_t> next_master_port_;

  // The fence of every live job's current attempt, read by other threads.
  AttemptFences fences_;

  // Status changes to the store, and the jobs whose changes wait for the disk.
  StatusWriter writer_;
  // Read by other threads as snapshots (server/registries.h).
  TargetNames target_names_;
  ImageRegistry images_;
  DatastoreRegistry datastores_;

  // The thread the store's reads run on (ReadJob), so that they never hold up the loop.
  // Last: it stops, finishing the reads it has, before the rest of the core goes.
  CoreLoop reader_;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_CORE_H_
