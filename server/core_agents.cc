// Core: the agent protocol (hello and reconciliation of what an agent holds, its reports
// and logs, the launch barrier), cancel and stop, and the end of an attempt, decided by
// scheduler/attempt_outcome.h.
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

using google::protobuf::util::TimeUtil;
using v1::JobStatus;

absl::StatusOr<std::string> Core::AgentHello(std::shared_ptr<AgentLink> link,
                                             const v1::AgentHello& hello) {
  absl::StatusOr<v1::Node> node = nodes_.Register(hello.node(), clock_.Now());
  if (!node.ok()) return node.status();
  const std::string& name = node->name();
  if (auto old = links_.find(name); old != links_.end() && old->second != link) {
    // One live stream per node: the newer one wins (the agent restarted, or its old
    // connection is dead without either side knowing yet). The old one is told why.
    Log(LogLevel::kWarning, "agent_stream_replaced",
        {{"node", name}, {"reason", "a newer stream of the same node said hello"}});
    old->second->Close(absl::AbortedError(absl::StrCat(
        "a newer connection of node '", name,
        "' replaced this one (two agents with one node certificate fight like this)")));
  }
  links_[name] = link;
  Log(LogLevel::kInfo, "agent_connected",
      {{"node", name}, {"attempts", hello.attempts_size()}, {"version", hello.node().agent_version()}});

  v1::SchedulerMessage welcome;
  v1::AgentWelcome* w = welcome.mutable_welcome();
  *w->mutable_heartbeat_interval() = ToProtoDuration(options_.heartbeat_interval);
  *w->mutable_lease() = ToProtoDuration(options_.lease);
  for (const v1::AttemptReport& held : hello.attempts()) {
    for (const storage::LogStreamInfo& stream :
         logs_.Streams(held.attempt().job_id(), held.attempt().epoch())) {
      v1::LogAck* ack = w->add_log_offsets();
      *ack->mutable_attempt() = held.attempt();
      ack->set_rank(stream.rank);
      ack->set_stream(stream.stream);
      ack->set_offset(stream.received);
    }
  }
  link->Send(std::move(welcome));

  // Reconcile what the agent holds with what droverd knows.
  std::map<std::string, int64_t> held_jobs;  // job -> epoch
  for (const v1::AttemptReport& held : hello.attempts()) {
    held_jobs[held.attempt().job_id()] = held.attempt().epoch();
    HandleReport(name, held);
  }
  for (auto& [job_id, attempt] : attempts_) {
    if (std::find(attempt.nodes.begin(), attempt.nodes.end(), name) == attempt.nodes.end()) {
      continue;
    }
    const v1::Job* job = jobs_.Find(job_id);
    if (job != nullptr) {
      nodes_.Allocate(name, job_id, scheduler::PerNodeDemand(job->spec()));
    }
  }
  for (auto& [job_id, attempt] : attempts_) {
    if (attempt.ended.contains(name) ||
        std::find(attempt.nodes.begin(), attempt.nodes.end(), name) == attempt.nodes.end()) {
      continue;
    }
    if (auto held = held_jobs.find(job_id); held != held_jobs.end()) {
      // A stop sent while the agent was away (a cancel, a time limit) was lost with the
      // link, and a restarted agent forgot one it had: it goes again.
      if (attempt.stopping && held->second == attempt.epoch) {
        SendStop(job_id, attempt.epoch, name, attempt.tally.cause, attempt.tally.message);
      }
      continue;
    }
    // The agent does not have an attempt it was given: the assignment was lost on the way,
    // or the node lost the attempt.
    const v1::Job* job = jobs_.Find(job_id);
    if (!attempt.started && !attempt.stopping && job != nullptr &&
        job->status().attempt() == attempt.epoch) {
      // The assignment was sent while the agent was away: send it again.
      Log(LogLevel::kInfo, "attempt_reassigned", {{"job", job_id}, {"node", name}});
      SendAssignments(*job, attempt, name);
      continue;
    } else {
      attempt.ended.insert(name);
      attempt.tally.SetCauseOnce(JobStatus::NODE_LOST,
                                 absl::StrCat("the agent on ", name, " no longer has the attempt"));
    }
    StopAttempt(job_id, attempt.tally.cause, attempt.tally.message);
    if (attempt.ended.size() == attempt.nodes.size()) {
      loop_.Post([this, job_id = job_id] { FinishAttempt(job_id); });
    }
  }
  Schedule();
  return name;
}

void Core::AgentGone(const std::string& node, const AgentLink* link) {
  auto it = links_.find(node);
  if (it != links_.end() && it->second.get() == link) {
    links_.erase(it);
    Log(LogLevel::kInfo, "agent_disconnected", {{"node", node}});
  }
}

void Core::AgentMessage(const std::string& node, const v1::AgentMessage& message) {
  if (!NodeSeen(node)) return;
  if (message.has_report()) HandleReport(node, message.report());
}

void Core::HandleReport(const std::string& node, const v1::AttemptReport& report) {
  const std::string& job_id = report.attempt().job_id();
  const v1::Job* job = jobs_.Find(job_id);
  auto it = attempts_.find(job_id);
  bool current = job != nullptr && it != attempts_.end() &&
                 it->second.epoch == report.attempt().epoch() &&
                 std::find(it->second.nodes.begin(), it->second.nodes.end(), node) !=
                     it->second.nodes.end();
  // A node whose part ended may only repeat that (a lost node that came back may not).
  bool ended_here = current && it->second.ended.contains(node);
  if (!current || (ended_here && report.phase() != v1::AttemptReport::ENDED)) {
    // A finished job, an old epoch, a node that is not part of the attempt, or a lost one:
    // fence it off. A report on the current attempt from a node that was never in it is
    // logged: a node may speak only of its own attempts.
    if (it != attempts_.end() && it->second.epoch == report.attempt().epoch() &&
        std::find(it->second.nodes.begin(), it->second.nodes.end(), node) ==
            it->second.nodes.end()) {
      Log(LogLevel::kWarning, "agent_report_refused",
          {{"node", node}, {"job", job_id}, {"epoch", report.attempt().epoch()},
           {"phase", v1::AttemptReport::Phase_Name(report.phase())},
           {"reason", "attempt_not_on_this_node"}});
    }
    if (report.phase() != v1::AttemptReport::ENDED) {
      Log(LogLevel::kInfo, "stale_attempt_stopped",
          {{"job", job_id}, {"epoch", report.attempt().epoch()}, {"node", node}});
      v1::SchedulerMessage stop;
      *stop.mutable_stop()->mutable_attempt() = report.attempt();
      *stop.mutable_stop()->mutable_grace() = ToProtoDuration(options_.stop_grace);
      stop.mutable_stop()->set_message("droverd does not know this attempt");
      SendTo(node, std::move(stop));
    }
    return;
  }
  Attempt& attempt = it->second;
  JobStatus::State state = job->status().state();
  absl::Time now = clock_.Now();
  if (report.gpus_size() > 0 && !attempt.gpus.contains(node)) {
    v1::NodeGpus& held = attempt.gpus[node];
    held.set_node(node);
    *held.mutable_gpus() = report.gpus();
  }
  switch (report.phase()) {
    case v1::AttemptReport::PREPARING: {
      attempt.last_preparing[node] = report.reason().empty() ? "PREPARING" : report.reason();
      if (state != JobStatus::PREPARING) break;
      std::string reason = absl::StrCat(report.reason().empty() ? "PREPARING" : report.reason(),
                                        " node=", node);
      if (reason == job->status().reason()) break;
      if (auto next = scheduler::Transition(job->status(), JobStatus::PREPARING, reason, now);
          next.ok()) {
        CommitStatus(*job, *std::move(next));
      }
      break;
    }
    case v1::AttemptReport::READY: {
      attempt.ready.insert(node);
      if (attempt.started && !attempt.stopping && !StartsWhenReady(attempt)) {
        // A node prepared the attempt again after its agent restarted before it had the
        // START (sent while it was away): it is sent again.
        SendStart(job_id, attempt.epoch, node);
        break;
      }
      if (attempt.started || attempt.stopping || attempt.ready.size() < attempt.nodes.size()) {
        break;
      }
      PassLaunchBarrier(job_id, attempt);
      break;
    }
    case v1::AttemptReport::RUNNING:
    case v1::AttemptReport::FINALIZING: {
      if (!attempt.started) {
        // The node's processes run, so the launch barrier was passed: droverd restarted after
        // it sent START and before STARTING was stored. The other nodes are sent START again
        // (one whose processes run already ignores it; one that prepared again needs it).
        if (attempt.stopping) break;
        Log(LogLevel::kInfo, "launch_barrier_passed_before_restart", {{"job", job_id}, {"node", node}});
        attempt.ready.insert(node);
        PassLaunchBarrier(job_id, attempt);
        job = jobs_.Find(job_id);
        state = job->status().state();
      }
      if (state == JobStatus::STARTING) {
        auto next = scheduler::Transition(job->status(), JobStatus::RUNNING, "", now);
        if (!next.ok()) break;
        *next->mutable_start_time() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now));
        attempt.running_since = now;
        CommitStatus(*job, *std::move(next));
        Log(LogLevel::kInfo, "job_running", {{"job", job_id}, {"attempt", attempt.epoch}});
        job = jobs_.Find(job_id);
        state = job->status().state();
      }
      if (report.phase() != v1::AttemptReport::FINALIZING || state != JobStatus::RUNNING) break;
      if (auto next =
              scheduler::Transition(job->status(), JobStatus::FINALIZING, "UPLOADING_OUTPUTS", now);
          next.ok()) {
        CommitStatus(*job, *std::move(next));
      }
      break;
    }
    case v1::AttemptReport::ENDED: {
      if (attempt.ended.contains(node)) break;
      attempt.ended.insert(node);
      bool failed = attempt.tally.AddEnded(node, report);
      if (attempt.ended.size() == attempt.nodes.size()) {
        FinishAttempt(job_id);
      } else if (failed) {
        // The gang ends together.
        StopAttempt(job_id, attempt.tally.cause, attempt.tally.message);
      } else if (job->spec().distributed_backend() == v1::JobSpec::MPI &&
                 node == attempt.nodes.front()) {
        // mpirun, on node rank 0, has ended with every rank: the other nodes' containers
        // only kept them; they end now, without a cause of their own.
        StopAttempt(job_id, JobStatus::CAUSE_UNSPECIFIED, "mpirun ended");
      }
      break;
    }
    default:
      break;
  }
}

void Core::SendStart(const std::string& job_id, int64_t epoch, const std::string& node) {
  v1::SchedulerMessage start;
  start.mutable_start()->mutable_attempt()->set_job_id(job_id);
  start.mutable_start()->mutable_attempt()->set_epoch(epoch);
  SendTo(node, std::move(start));
}

void Core::PassLaunchBarrier(const std::string& job_id, Attempt& attempt) {
  attempt.started = true;
  // A one-node attempt starts without being told (start_when_ready).
  for (size_t k = 0; k < attempt.nodes.size() && !StartsWhenReady(attempt); ++k) {
    SendStart(job_id, attempt.epoch, attempt.nodes[k]);
  }
  const v1::Job* job = jobs_.Find(job_id);
  if (job == nullptr) return;
  if (auto next = scheduler::Transition(job->status(), JobStatus::STARTING, "STARTING", clock_.Now());
      next.ok()) {
    // Every node has said which GPUs it gave the attempt by its READY.
    for (const std::string& name : attempt.nodes) {
      if (auto held = attempt.gpus.find(name); held != attempt.gpus.end()) {
        *next->add_gpus() = held->second;
      }
    }
    CommitStatus(*job, *std::move(next));
  }
}

void Core::FinishAttempt(const std::string& job_id) {
  auto it = attempts_.find(job_id);
  const v1::Job* job = jobs_.Find(job_id);
  if (it == attempts_.end()) return;
  Attempt attempt = std::move(it->second);
  attempts_.erase(it);
  UpdateFence(job_id);
  // Its logs are all in (an agent reports its end once droverd stored them): close them.
  logs_.EndAttempt(job_id, attempt.epoch);
  for (const std::string& node : attempt.nodes) nodes_.Release(node, job_id);
  if (job == nullptr) return;

  scheduler::AttemptEnd end = scheduler::DecideEnd(attempt.tally, *job);
  absl::Time now = clock_.Now();
  if (end.state == JobStatus::COMPLETED) {
    // Reports that were not seen (the agent reconnected, or droverd restarted, meanwhile):
    // the job passes through their states, so the recorded history stays a valid one.
    for (auto [step, step_reason] : {std::pair{JobStatus::STARTING, "STARTING"},
                                     std::pair{JobStatus::RUNNING, ""},
                                     std::pair{JobStatus::FINALIZING, "UPLOADING_OUTPUTS"}}) {
      if (job->status().state() == JobStatus::FINALIZING) break;
      if (job->status().state() == step) continue;  // not again with a new version
      absl::StatusOr<JobStatus> next = scheduler::Transition(job->status(), step, step_reason, now);
      if (!next.ok()) continue;
      if (step == JobStatus::RUNNING && !next->has_start_time()) {
        *next->mutable_start_time() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now));
      }
      CommitStatus(*job, *std::move(next));
      job = jobs_.Find(job_id);
    }
  }
  absl::StatusOr<JobStatus> next =
      end.retry ? scheduler::Transition(
                      job->status(), JobStatus::QUEUED,
                      absl::StrCat("RETRYING after attempt ", job->status().attempt()), now)
                : scheduler::Transition(job->status(), end.state, scheduler::StateName(end.state),
                                        now);
  if (!next.ok()) {
    Log(LogLevel::kError, "attempt_end_refused", {{"job", job_id}, {"error", next.status().message()}});
    return;
  }
  next->set_cause(end.retry ? JobStatus::CAUSE_UNSPECIFIED : end.cause);
  next->set_message(end.message);
  next->clear_exits();
  for (const v1::RankExit& e : attempt.tally.exits) *next->add_exits() = e;
  next->set_outputs_digest(attempt.tally.outputs_digest);
  next->set_outputs_size(attempt.tally.outputs_size);
  Log(LogLevel::kInfo, end.retry ? "job_retried" : "job_ended",
      {{"job", job_id}, {"attempt", attempt.epoch}, {"state", scheduler::StateName(end.state)},
       {"cause", JobStatus::Cause_Name(end.cause)}, {"message", end.message}});
  CommitStatus(*job, *std::move(next));
  Schedule();
}

void Core::Cancel(const std::string& job_id, const std::string& reason, JobCallback done) {
  const v1::Job* live = jobs_.Find(job_id);
  if (live == nullptr) {
    // Not live: finished or unknown. Its last write may still be on its way to disk; the
    // store keeps order, so answer from the store after what is queued.
    store_.Barrier([this, job_id, reason, done = std::move(done)](absl::Status) mutable {
      // On the loop, where a write of the job that failed meanwhile is known (unsaved_).
      loop_.Post([this, job_id, reason, done = std::move(done)]() mutable {
        if (auto it = unsaved_.find(job_id); it != unsaved_.end()) {
          std::move(done)(it->second.error);
          return;
        }
        absl::StatusOr<v1::Job> stored = store_.GetJob(job_id);
        if (!stored.ok()) {
          std::move(done)(stored.status());
          return;
        }
        absl::StatusOr<std::optional<JobStatus>> plan =
            scheduler::PlanCancel(job_id, stored->status(), reason, clock_.Now());
        if (!plan.ok()) {
          std::move(done)(plan.status());
        } else if (plan->has_value()) {
          std::move(done)(absl::InternalError(absl::StrCat(
              "job '", job_id, "' is unfinished in the store but unknown to the scheduler")));
        } else {
          std::move(done)(*std::move(stored));
        }
      });
    });
    return;
  }
  v1::Job current = *live;
  absl::StatusOr<std::optional<JobStatus>> plan =
      scheduler::PlanCancel(job_id, current.status(), reason, clock_.Now());
  if (!plan.ok()) {
    std::move(done)(plan.status());
    return;
  }
  if (!plan->has_value()) {
    // Already canceling: answer with the committed job, after the writes in flight.
    store_.Barrier([this, job_id, done = std::move(done)](absl::Status) mutable {
      std::move(done)(store_.GetJob(job_id));
    });
    return;
  }
  if (auto it = unsaved_.find(job_id); it != unsaved_.end()) {
    std::move(done)(it->second.error);  // its earlier changes wait for the disk
    return;
  }
  if (auto it = cancels_.find(job_id); it != cancels_.end()) {
    it->second.push_back(std::move(done));  // answered with the cancel being stored
    return;
  }
  cancels_[job_id].push_back(std::move(done));
  bool stop = (*plan)->state() == JobStatus::CANCEL_REQUESTED;
  std::string message = (*plan)->message();
  // Unlike other changes, a cancel takes effect only once stored: a cancel the client was
  // told failed (the disk refused it) changes nothing, not even how the job's end is read.
  // What agents report meanwhile is decided without it; when such a change is stored
  // first, the cancel fails as a conflict (ABORTED: read again and retry).
  const int64_t expected = current.status().version();
  store_.UpdateJobStatus(
      job_id, expected, **std::move(plan),
      [this, job_id, expected, stop, message](absl::StatusOr<v1::Job> committed) {
        loop_.Post([this, job_id, expected, stop, message,
                    committed = std::move(committed)]() mutable {
          if (committed.ok()) {
            Committed(*committed);
            // A report that came meanwhile was written after it and wins.
            if (const v1::Job* live = jobs_.Find(job_id);
                live != nullptr && live->status().version() == expected) {
              jobs_.Update(*committed);
            }
            Log(LogLevel::kInfo, "job_cancel", {{"job", job_id}, {"stop_processes", stop}});
            if (stop) StopAttempt(job_id, JobStatus::CANCELED_BY_USER, message);
          } else if (auto it = unsaved_.find(job_id); it != unsaved_.end()) {
            committed = it->second.error;
          }
          std::vector<JobCallback> waiting = std::move(cancels_[job_id]);
          cancels_.erase(job_id);
          for (JobCallback& done : waiting) std::move(done)(committed);
        });
      });
}

void Core::StopAttempt(const std::string& job_id, JobStatus::Cause cause,
                       const std::string& message) {
  auto it = attempts_.find(job_id);
  if (it == attempts_.end()) return;
  Attempt& attempt = it->second;
  attempt.stopping = true;
  attempt.tally.SetCauseOnce(cause, message);
  for (const std::string& node : attempt.nodes) {
    if (!attempt.ended.contains(node)) SendStop(job_id, attempt.epoch, node, cause, message);
  }
}

void Core::SendStop(const std::string& job_id, int64_t epoch, const std::string& node,
                    JobStatus::Cause cause, const std::string& message) {
  v1::SchedulerMessage stop;
  stop.mutable_stop()->mutable_attempt()->set_job_id(job_id);
  stop.mutable_stop()->mutable_attempt()->set_epoch(epoch);
  stop.mutable_stop()->set_cause(cause);
  *stop.mutable_stop()->mutable_grace() = ToProtoDuration(options_.stop_grace);
  stop.mutable_stop()->set_message(message);
  SendTo(node, std::move(stop));
}

}  // namespace drover::server
