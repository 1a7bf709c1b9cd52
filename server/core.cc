#include "server/core.h"

#include <algorithm>
#include <random>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/archive/sha256.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "scheduler/job_spec.h"
#include "scheduler/job_state.h"
#include "scheduler/placement.h"
#include "server/server_metrics.h"

namespace drover::server {
namespace {

using google::protobuf::util::TimeUtil;
using v1::JobStatus;

bool IsPlaced(JobStatus::State s) {
  return s == JobStatus::PREPARING || s == JobStatus::STARTING || s == JobStatus::RUNNING ||
         s == JobStatus::FINALIZING || s == JobStatus::CANCEL_REQUESTED;
}

// `options` with a random exec_token_key when it has none.
CoreOptions WithExecTokenKey(CoreOptions options) {
  if (options.exec_token_key.empty()) {
    std::random_device random;
    for (int i = 0; i < 8; ++i) {
      absl::StrAppend(&options.exec_token_key, absl::Hex(random(), absl::kZeroPad8));
    }
  }
  return options;
}

}  // namespace

google::protobuf::Duration Core::ToProtoDuration(absl::Duration d) {
  return TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(d));
}

Core::Core(storage::Store& store, storage::LogStore& logs, JobEventHub& events, CoreLoop& loop,
           const Clock& clock, CoreOptions options)
    : store_(store), logs_(logs), events_(events), loop_(loop), clock_(clock),
      options_(WithExecTokenKey(std::move(options))),
      attempts_(scheduler::AttemptsOptions{.stop_grace = options_.stop_grace,
                                           .launch_timeout = options_.launch_timeout}),
      writer_(store, loop, reader_, jobs_, clock, events, options_.metrics,
              [this] { RequestSchedule(); },
              [this](const v1::Job& job) { SendEndsStored(stored_ends_.Committed(job)); }),
      images_(store, loop, clock),
      datastores_(store, loop, clock, options_.datastore_roots) {
  target_names_.Set(nodes_.ListTargets());
}

void Core::Restore(std::vector<scheduler::JobQueue::Packed> unfinished,
                   const std::vector<v1::ComputeTarget>& targets,
                   const std::vector<v1::Image>& images,
                   const std::vector<v1::Datastore>& datastores,
                   const std::vector<storage::NodeAdminState>& node_states,
                   const std::optional<storage::NodeLossPause>& loss_pause) {
  // Nodes first: a node that says hello after the restart is cordoned from its first
  // message, and the pause's nodes keep their last_seen (Expect below leaves them).
  for (const storage::NodeAdminState& state : node_states) nodes_.RestoreAdmin(state);
  if (loss_pause.has_value()) nodes_.RestoreLossPause(*loss_pause, clock_.Now());
  saved_pause_ = PauseKey(loss_pause);
  images_.Restore(images);
  datastores_.Restore(datastores);
  for (const v1::ComputeTarget& target : targets) {
    if (absl::Status s = nodes_.PutTarget(target); !s.ok()) {
      Log(LogLevel::kWarning, "target_not_restored", {{"target", target.name()}, {"error", s.message()}});
    }
  }
  target_names_.Set(nodes_.ListTargets());
  for (scheduler::JobQueue::Packed& packed : unfinished) {
    // A queued job stays packed; any other is a v1::Job in the queue, read below.
    const bool queued = packed.state() == JobStatus::QUEUED;
    const std::string id = queued ? std::string() : packed.id();
    jobs_.Restore(std::move(packed));
    if (queued) continue;
    const v1::Job* held = jobs_.Find(id);
    if (held == nullptr) continue;
    const v1::Job& job = *held;
    const JobStatus& status = job.status();
    if (IsPlaced(status.state()) && status.nodes_size() > 0) {
      // The image digest is not stored with the attempt: what the name has now (a
      // re-import while droverd was down reaches an agent that has to prepare it again).
      attempts_.Restore(job, ExecToken(job.id(), status.attempt()), images_.DigestOf(job.spec()),
                        clock_.Now());
      // Its nodes' leases run from now: one that never comes back is lost like any other.
      // What it holds there counts from now too (a draining node stays DRAINING).
      for (const std::string& node : job.status().nodes()) {
        nodes_.Expect(node, clock_.Now());
        nodes_.Allocate(node, job.id(), scheduler::PerNodeDemand(job.spec()));
      }
      UpdateFence(job.id());
    }
  }
  if (loss_pause.has_value()) {
    Log(LogLevel::kWarning, "node_loss_pause_restored",
        {{"since", absl::FormatTime(absl::RFC3339_sec, loss_pause->paused_since,
                                    absl::UTCTimeZone())},
         {"nodes", loss_pause->nodes.size()}});
    // Listed as paused from the first call on; CheckLeases logs only a change from here.
    lease_check_.paused = true;
    CheckLeases(clock_.Now());  // stores the pause again only if it changed
  }
}

void Core::JobCreated(const v1::Job& job) {
  if (options_.metrics != nullptr) options_.metrics->jobs_submitted.With({}).Increment();
  jobs_.Update(job);
  RequestSchedule();
}

void Core::JobTagsChanged(const v1::Job& job) {
  const v1::Job* held = jobs_.Find(job.id());
  if (held == nullptr) return;  // finished: nothing of it is kept here
  // Only the tags: the copy's status may be ahead of the store's.
  v1::Job updated = *held;
  *updated.mutable_spec()->mutable_tags() = job.spec().tags();
  jobs_.Reset(updated);
}

void Core::RequestSchedule() {
  // Submits come in bursts: one placement round after the burst, not one per job.
  if (schedule_requested_) return;
  schedule_requested_ = true;
  loop_.Post([this] {
    schedule_requested_ = false;
    Schedule();
  });
}


void Core::Schedule() {
  absl::Time now = clock_.Now();
  // What was unpacked of queued jobs since the last round goes back to their packed form.
  jobs_.ReleaseCopies();
  // While the state disk refuses writes, a placement could not be stored either.
  if (writer_.PlacementsPaused(now)) return;
  scheduler::PlacementRound round =
      scheduler::PlaceQueuedJobs(jobs_, nodes_, attempts_.Running(jobs_), now);
  for (const scheduler::Placement& placement : round.placed) Assign(placement);
  for (const auto& [job_id, reason] : round.waiting) {
    const v1::Job* job = jobs_.Find(job_id);
    if (job == nullptr || job->status().reason() == reason) continue;
    absl::StatusOr<JobStatus> next =
        scheduler::Transition(job->status(), JobStatus::QUEUED, reason, clock_.Now());
    // Worked out again by every round (after a restart too): need not be flushed.
    if (next.ok()) writer_.CommitReported(*job, *std::move(next));
  }
}

void Core::Assign(const scheduler::Placement& placement) {
  v1::Job job = *jobs_.Find(placement.job_id);
  int64_t epoch = job.status().attempt() + 1;
  absl::StatusOr<JobStatus> next = scheduler::Transition(
      job.status(), JobStatus::PREPARING,
      absl::StrCat("ASSIGNED nodes=", absl::StrJoin(placement.nodes, ",")), clock_.Now());
  if (!next.ok()) return;
  next->set_attempt(static_cast<int32_t>(epoch));
  next->clear_nodes();
  for (const std::string& node : placement.nodes) next->add_nodes(node);
  next->clear_exits();
  next->clear_cause();
  next->clear_message();
  next->clear_start_time();
  next->clear_gpus();
  for (const std::string& node : placement.nodes) {
    nodes_.Allocate(node, job.id(), placement.per_node);
  }
  // The digest the name has now: a re-import reaches the next attempt, not this one (nor
  // an assignment sent to it again). The launch timeout counts from now.
  scheduler::AttemptState& attempt =
      attempts_.Place(job.id(), epoch, placement.nodes, ExecToken(job.id(), epoch),
                      /*master_port=*/0, images_.DigestOf(job.spec()), clock_.Now());
  // Chosen with the attempt in place (its old one, if any, gone).
  attempt.master_port = FreeMasterPort(placement.nodes.front());
  next->set_master_port(attempt.master_port);
  UpdateFence(job.id());
  if (options_.metrics != nullptr) options_.metrics->attempts_placed.With({}).Increment();
  Log(LogLevel::kInfo, "job_placed",
      {{"job", job.id()}, {"attempt", epoch}, {"nodes", absl::StrJoin(placement.nodes, ",")}});
  // The attempt and its layout are durable before any agent hears of it.
  writer_.Commit(job, *std::move(next), [this, job_id = job.id(), epoch](absl::StatusOr<v1::Job> committed) {
    const scheduler::AttemptState* attempt = attempts_.Find(job_id);
    if (attempt == nullptr || attempt->epoch != epoch) return;
    if (!committed.ok()) {
      for (const std::string& node : attempt->nodes) nodes_.Release(node, job_id);
      attempts_.Forget(job_id);
      UpdateFence(job_id);
      return;
    }
    SendAssignments(*committed, *attempt);
  });
}

std::string Core::ExecToken(const std::string& job_id, int64_t epoch) const {
  // 128 bits of SHA-256 over the secret key and the attempt; only its agents ever see it.
  std::string digest =
      archive::Sha256Digest(absl::StrCat(options_.exec_token_key, "\n", job_id, "\n", epoch));
  return digest.substr(digest.find(':') + 1, 32);
}

int32_t Core::FreeMasterPort(const std::string& node) {
  // The next port of the range, after the last one handed out on this node, that no other
  // live attempt with the same first node uses: a rank of an earlier attempt still trying
  // to rendezvous (a stale one on a lost node) does not find a later attempt there.
  std::set<int32_t> used;
  for (const auto& [id, other] : attempts_.all()) {
    if (!other.nodes.empty() && other.nodes.front() == node) used.insert(other.master_port);
  }
  int32_t& next = next_master_port_[node];
  for (int32_t i = 0; i < kMasterPorts; ++i) {
    int32_t port = options_.master_port_base + (next + i) % kMasterPorts;
    if (!used.contains(port)) {
      next = (next + i + 1) % kMasterPorts;
      return port;
    }
  }
  int32_t port = options_.master_port_base + kMasterPorts;  // every one taken: past the range
  while (used.contains(port)) ++port;
  return port;
}

void Core::SendAssignments(const v1::Job& job, const scheduler::AttemptState& attempt,
                           const std::string& only_node) {
  const v1::JobSpec& spec = job.spec();
  // The datastores as registered now, credentials included: a change reaches the next
  // attempt, not this one. One deleted since the submit is left out; the agent then fails
  // the attempt naming it.
  std::map<std::string, v1::Datastore> datastores = datastores_.ReferencedBy(spec);
  int ppn = spec.process_count_per_node();
  for (size_t rank = 0; rank < attempt.nodes.size(); ++rank) {
    if (!only_node.empty() && attempt.nodes[rank] != only_node) continue;
    v1::SchedulerMessage message;
    v1::AssignAttempt* assign = message.mutable_assign();
    assign->mutable_attempt()->set_job_id(job.id());
    assign->mutable_attempt()->set_epoch(attempt.epoch);
    *assign->mutable_spec() = spec;
    assign->set_node_rank(static_cast<int32_t>(rank));
    assign->set_node_count(static_cast<int32_t>(attempt.nodes.size()));
    assign->set_first_rank(static_cast<int32_t>(rank) * ppn);
    assign->set_world_size(static_cast<int32_t>(attempt.nodes.size()) * ppn);
    assign->set_start_when_ready(attempt.StartsWhenReady());
    assign->set_exec_token(attempt.exec_token);
    assign->set_master_port(attempt.master_port);
    for (const std::string& name : attempt.nodes) {
      const v1::Node* node = nodes_.Find(name);
      assign->add_node_addresses(node != nullptr && node->addresses_size() > 0 ? node->addresses(0)
                                                                                : std::string());
      assign->add_node_names(name);
      assign->add_node_peer_endpoints(node != nullptr ? node->peer_endpoint() : std::string());
    }
    assign->set_image_digest(attempt.image_digest);
    for (const auto& [name, datastore] : datastores) *assign->add_datastores() = datastore;
    // What the node's environment build installs from (Horovod is installed with pip too).
    if (!spec.environment().pip_packages().empty() || !spec.environment().conda_packages().empty() ||
        spec.environment().horovod()) {
      *assign->mutable_pip() = options_.pip;
    }
    SendTo(attempt.nodes[rank], std::move(message));
  }
}

void Core::SendTo(const std::string& node, v1::SchedulerMessage message) {
  auto it = links_.find(node);
  if (it != links_.end()) it->second->Send(std::move(message));
}

void Core::SendEndsStored(const scheduler::SettledEnds& settled) {
  // A node away now misses it: its agent forgets them after 10 minutes instead.
  for (const auto& [node, attempts] : settled) {
    v1::SchedulerMessage message;
    for (const v1::AttemptRef& ref : attempts) *message.mutable_ends_stored()->add_attempts() = ref;
    SendTo(node, std::move(message));
  }
}

void Core::Tick() {
  absl::Time now = clock_.Now();
  if (options_.metrics != nullptr && now - metrics_updated_ >= absl::Seconds(1)) {
    metrics_updated_ = now;
    options_.metrics->SetJobStates(jobs_.CountByState());
    std::map<v1::Node::State, int> nodes;
    nodes_.ForEach([&nodes](const v1::Node& node) { ++nodes[node.state()]; });
    options_.metrics->SetNodeStates(nodes);
  }
  writer_.SaveUnsaved();
  CheckLeases(now);
  // Launch timeouts and time limits.
  Run(attempts_.Tick(jobs_, now));
  Schedule();
}

}  // namespace drover::server
