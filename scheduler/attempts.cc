#include "scheduler/attempts.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"
#include "scheduler/job_state.h"

namespace drover::scheduler {
namespace {

using google::protobuf::util::TimeUtil;
using v1::JobStatus;

google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  return TimeUtil::MillisecondsToDuration(absl::ToInt64Milliseconds(d));
}

v1::AttemptRef Ref(const std::string& job_id, int64_t epoch) {
  v1::AttemptRef ref;
  ref.set_job_id(job_id);
  ref.set_epoch(epoch);
  return ref;
}

v1::SchedulerMessage StartMessage(const std::string& job_id, int64_t epoch) {
  v1::SchedulerMessage start;
  *start.mutable_start()->mutable_attempt() = Ref(job_id, epoch);
  return start;
}

}  // namespace

bool AttemptState::Has(const std::string& node) const {
  return std::find(nodes.begin(), nodes.end(), node) != nodes.end();
}

const AttemptState* Attempts::Find(const std::string& job_id) const {
  auto it = attempts_.find(job_id);
  return it == attempts_.end() ? nullptr : &it->second;
}

std::map<std::string, RunningAttempt> Attempts::Running(const JobQueue& jobs) const {
  std::map<std::string, RunningAttempt> running;
  for (const auto& [job_id, attempt] : attempts_) {
    const v1::Job* job = jobs.Find(job_id);
    if (job == nullptr) continue;  // unknown: placement takes its nodes' end as unknown
    RunningAttempt& r = running[job_id];
    // running_since is when the time limit counts from (after a restart: the restart).
    if (attempt.running_since != absl::InfinitePast()) r.running_since = attempt.running_since;
    r.max_run_duration = MaxRunDuration(job->spec());
    r.per_node = PerNodeDemand(job->spec());
  }
  return running;
}

AttemptState& Attempts::Place(const std::string& job_id, int64_t epoch,
                              std::vector<std::string> nodes, std::string exec_token,
                              int32_t master_port, std::string image_digest, absl::Time now) {
  AttemptState& attempt = attempts_[job_id];
  attempt = AttemptState{};
  attempt.epoch = epoch;
  attempt.nodes = std::move(nodes);
  attempt.exec_token = std::move(exec_token);
  attempt.master_port = master_port;
  attempt.image_digest = std::move(image_digest);
  attempt.assigned_at = now;  // the launch timeout counts from here
  return attempt;
}

void Attempts::Restore(const v1::Job& job, std::string exec_token, std::string image_digest,
                       absl::Time now) {
  const JobStatus& status = job.status();
  AttemptState& attempt = attempts_[job.id()];
  attempt = AttemptState{};
  attempt.epoch = status.attempt();
  attempt.nodes.assign(status.nodes().begin(), status.nodes().end());
  attempt.exec_token = std::move(exec_token);
  attempt.master_port = status.master_port();
  attempt.image_digest = std::move(image_digest);
  attempt.started = status.state() != JobStatus::PREPARING;
  if (status.state() == JobStatus::CANCEL_REQUESTED) {
    // Its agents are told to stop when they say hello (again).
    attempt.stopping = true;
    attempt.tally.cause = status.cause() == JobStatus::EARLY_TERMINATED
                              ? JobStatus::EARLY_TERMINATED
                              : JobStatus::CANCELED_BY_USER;
    attempt.tally.message = status.message();
  }
  // The time limit counts from the restart: the true start is in start_time, but a
  // restart should not kill a job at once.
  if (status.state() == JobStatus::RUNNING) attempt.running_since = now;
}

void Attempts::Send(const std::string& node, v1::SchedulerMessage message, AttemptEffects& out) {
  out.push_back(AttemptEffect{.kind = AttemptEffect::kSend, .node = node,
                              .message = std::move(message)});
}

void Attempts::Commit(const std::string& job_id, JobStatus status, AttemptEffects& out) {
  out.push_back(AttemptEffect{.kind = AttemptEffect::kCommit, .job_id = job_id,
                              .status = std::move(status)});
}

void Attempts::CommitReported(const std::string& job_id, JobStatus status, AttemptEffects& out) {
  out.push_back(AttemptEffect{.kind = AttemptEffect::kCommit, .job_id = job_id,
                              .status = std::move(status), .reported_again = true});
}

v1::SchedulerMessage Attempts::StopMessage(const v1::AttemptRef& attempt, JobStatus::Cause cause,
                                           const std::string& message) const {
  v1::SchedulerMessage stop;
  *stop.mutable_stop()->mutable_attempt() = attempt;
  stop.mutable_stop()->set_cause(cause);
  *stop.mutable_stop()->mutable_grace() = ToProtoDuration(options_.stop_grace);
  stop.mutable_stop()->set_message(message);
  return stop;
}

AttemptEffects Attempts::Report(const std::string& node, const v1::AttemptReport& report,
                                const JobQueue& jobs, absl::Time now) {
  AttemptEffects out;
  const std::string& job_id = report.attempt().job_id();
  const v1::Job* job = jobs.Find(job_id);
  auto it = attempts_.find(job_id);
  bool current = job != nullptr && it != attempts_.end() &&
                 it->second.epoch == report.attempt().epoch() && it->second.Has(node);
  // A node whose part ended may only repeat that (a lost node that came back may not).
  bool ended_here = current && it->second.ended.contains(node);
  if (!current || (ended_here && report.phase() != v1::AttemptReport::ENDED)) {
    // A finished job, an old epoch, a node that is not part of the attempt, or a lost one:
    // fence it off. A report on the current attempt from a node that was never in it is
    // logged: a node may speak only of its own attempts.
    if (it != attempts_.end() && it->second.epoch == report.attempt().epoch() &&
        !it->second.Has(node)) {
      Log(LogLevel::kWarning, "agent_report_refused",
          {{"node", node}, {"job", job_id}, {"epoch", report.attempt().epoch()},
           {"phase", v1::AttemptReport::Phase_Name(report.phase())},
           {"reason", "attempt_not_on_this_node"}});
    }
    if (report.phase() != v1::AttemptReport::ENDED) {
      Log(LogLevel::kInfo, "stale_attempt_stopped",
          {{"job", job_id}, {"epoch", report.attempt().epoch()}, {"node", node}});
      Send(node,
           StopMessage(report.attempt(), JobStatus::CAUSE_UNSPECIFIED,
                       "droverd does not know this attempt"),
           out);
    }
    return out;
  }
  AttemptState& attempt = it->second;
  // The job's status as the changes returned so far leave it.
  JobStatus status = job->status();
  if (report.gpus_size() > 0 && !attempt.gpus.contains(node)) {
    v1::NodeGpus& held = attempt.gpus[node];
    held.set_node(node);
    *held.mutable_gpus() = report.gpus();
  }
  switch (report.phase()) {
    case v1::AttemptReport::PREPARING: {
      attempt.last_preparing[node] = report.reason().empty() ? "PREPARING" : report.reason();
      if (status.state() != JobStatus::PREPARING) break;
      std::string reason = absl::StrCat(report.reason().empty() ? "PREPARING" : report.reason(),
                                        " node=", node);
      if (reason == status.reason()) break;
      if (auto next = Transition(status, JobStatus::PREPARING, reason, now); next.ok()) {
        CommitReported(job_id, *std::move(next), out);
      }
      break;
    }
    case v1::AttemptReport::READY: {
      attempt.ready.insert(node);
      if (attempt.started && !attempt.stopping && !attempt.StartsWhenReady()) {
        // A node prepared the attempt again after its agent restarted before it had the
        // START (sent while it was away): it is sent again.
        Send(node, StartMessage(job_id, attempt.epoch), out);
        break;
      }
      if (attempt.started || attempt.stopping || attempt.ready.size() < attempt.nodes.size()) {
        break;
      }
      PassLaunchBarrier(job_id, attempt, status, now, out);
      break;
    }
    case v1::AttemptReport::RUNNING:
    case v1::AttemptReport::FINALIZING: {
      if (!attempt.started) {
        // The node's processes run, so the launch barrier was passed: droverd restarted after
        // it sent START and before STARTING was stored. The other nodes are sent START again
        // (one whose processes run already ignores it; one that prepared again needs it).
        if (attempt.stopping) break;
        Log(LogLevel::kInfo, "launch_barrier_passed_before_restart",
            {{"job", job_id}, {"node", node}});
        attempt.ready.insert(node);
        PassLaunchBarrier(job_id, attempt, status, now, out);
      }
      if (status.state() == JobStatus::STARTING) {
        auto next = Transition(status, JobStatus::RUNNING, "", now);
        if (!next.ok()) break;
        *next->mutable_start_time() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now));
        attempt.running_since = now;
        status = *next;
        CommitReported(job_id, *std::move(next), out);
        Log(LogLevel::kInfo, "job_running", {{"job", job_id}, {"attempt", attempt.epoch}});
      }
      if (report.phase() != v1::AttemptReport::FINALIZING ||
          status.state() != JobStatus::RUNNING) {
        break;
      }
      if (auto next = Transition(status, JobStatus::FINALIZING, "UPLOADING_OUTPUTS", now);
          next.ok()) {
        CommitReported(job_id, *std::move(next), out);
      }
      break;
    }
    case v1::AttemptReport::ENDED: {
      if (attempt.ended.contains(node)) break;
      attempt.ended.insert(node);
      bool failed = attempt.tally.AddEnded(node, report);
      if (attempt.ended.size() == attempt.nodes.size()) {
        out.push_back(AttemptEffect{.kind = AttemptEffect::kFinish, .job_id = job_id});
      } else if (failed) {
        // The gang ends together.
        StopAttempt(job_id, attempt, attempt.tally.cause, attempt.tally.message, out);
      } else if (job->spec().distributed_backend() == v1::JobSpec::MPI &&
                 node == attempt.nodes.front()) {
        // mpirun, on node rank 0, has ended with every rank: the other nodes' containers
        // only kept them; they end now, without a cause of their own.
        StopAttempt(job_id, attempt, JobStatus::CAUSE_UNSPECIFIED, "mpirun ended", out);
      }
      break;
    }
    default:
      break;
  }
  return out;
}

void Attempts::PassLaunchBarrier(const std::string& job_id, AttemptState& attempt,
                                 JobStatus& status, absl::Time now, AttemptEffects& out) const {
  attempt.started = true;
  // A one-node attempt starts without being told (start_when_ready).
  for (size_t k = 0; k < attempt.nodes.size() && !attempt.StartsWhenReady(); ++k) {
    Send(attempt.nodes[k], StartMessage(job_id, attempt.epoch), out);
  }
  if (auto next = Transition(status, JobStatus::STARTING, "STARTING", now); next.ok()) {
    // Every node has said which GPUs it gave the attempt by its READY.
    for (const std::string& name : attempt.nodes) {
      if (auto held = attempt.gpus.find(name); held != attempt.gpus.end()) {
        *next->add_gpus() = held->second;
      }
    }
    status = *next;
    CommitReported(job_id, *std::move(next), out);
  }
}

AttemptEffects Attempts::Reconnected(const std::string& node,
                                     const std::map<std::string, int64_t>& held,
                                     const JobQueue& jobs) {
  AttemptEffects out;
  for (auto& [job_id, attempt] : attempts_) {
    if (attempt.ended.contains(node) || !attempt.Has(node)) continue;
    if (auto it = held.find(job_id); it != held.end()) {
      // A stop sent while the agent was away (a cancel, a time limit) was lost with the
      // link, and a restarted agent forgot one it had: it goes again.
      if (attempt.stopping && it->second == attempt.epoch) {
        Send(node, StopMessage(Ref(job_id, attempt.epoch), attempt.tally.cause,
                               attempt.tally.message),
             out);
      }
      continue;
    }
    // The agent does not have an attempt it was given: the assignment was lost on the way,
    // or the node lost the attempt.
    const v1::Job* job = jobs.Find(job_id);
    if (!attempt.started && !attempt.stopping && job != nullptr &&
        job->status().attempt() == attempt.epoch) {
      // The assignment was sent while the agent was away: send it again.
      Log(LogLevel::kInfo, "attempt_reassigned", {{"job", job_id}, {"node", node}});
      out.push_back(AttemptEffect{.kind = AttemptEffect::kReassign, .job_id = job_id,
                                  .node = node});
      continue;
    }
    attempt.ended.insert(node);
    attempt.tally.SetCauseOnce(JobStatus::NODE_LOST,
                               absl::StrCat("the agent on ", node, " no longer has the attempt"));
    StopAttempt(job_id, attempt, attempt.tally.cause, attempt.tally.message, out);
    if (attempt.ended.size() == attempt.nodes.size()) {
      // After this pass over the attempts, which Finish changes.
      out.push_back(AttemptEffect{.kind = AttemptEffect::kFinishLater, .job_id = job_id});
    }
  }
  return out;
}

AttemptEffects Attempts::NodeLost(const std::string& node, const std::string& message) {
  AttemptEffects out;
  std::vector<std::string> touched;
  std::vector<std::string> finished;
  for (auto& [job_id, attempt] : attempts_) {
    if (!attempt.Has(node) || attempt.ended.contains(node)) continue;
    attempt.ended.insert(node);
    touched.push_back(job_id);
    attempt.tally.SetCauseOnce(JobStatus::NODE_LOST, message);
    // The rest of the gang ends too; the lost node is told when it comes back.
    StopAttempt(job_id, attempt, attempt.tally.cause, attempt.tally.message, out);
    if (attempt.ended.size() == attempt.nodes.size()) finished.push_back(job_id);
  }
  Log(LogLevel::kWarning, "node_lost",
      {{"node", node}, {"jobs", absl::StrJoin(touched, ",")}, {"message", message}});
  for (const std::string& job_id : touched) {
    out.push_back(AttemptEffect{.kind = AttemptEffect::kFence, .job_id = job_id});
  }
  for (const std::string& job_id : finished) {
    out.push_back(AttemptEffect{.kind = AttemptEffect::kFinish, .job_id = job_id});
  }
  return out;
}

AttemptEffects Attempts::Stop(const std::string& job_id, JobStatus::Cause cause,
                              const std::string& message) {
  AttemptEffects out;
  auto it = attempts_.find(job_id);
  if (it != attempts_.end()) StopAttempt(job_id, it->second, cause, message, out);
  return out;
}

void Attempts::StopAttempt(const std::string& job_id, AttemptState& attempt,
                           JobStatus::Cause cause, const std::string& message,
                           AttemptEffects& out) const {
  // `cause` and `message` may be the tally's own: copied before SetCauseOnce.
  const JobStatus::Cause sent_cause = cause;
  const std::string sent_message = message;
  attempt.stopping = true;
  attempt.tally.SetCauseOnce(sent_cause, sent_message);
  for (const std::string& node : attempt.nodes) {
    if (!attempt.ended.contains(node)) {
      Send(node, StopMessage(Ref(job_id, attempt.epoch), sent_cause, sent_message), out);
    }
  }
}

AttemptEffects Attempts::Tick(const JobQueue& jobs, absl::Time now) {
  AttemptEffects out;
  if (options_.launch_timeout > absl::ZeroDuration()) {
    for (auto& [job_id, attempt] : attempts_) {
      if (attempt.started || attempt.stopping) continue;
      if (attempt.assigned_at == absl::InfinitePast()) {
        attempt.assigned_at = now;  // restored at start: its nodes get the full time again
        continue;
      }
      if (now - attempt.assigned_at <= options_.launch_timeout) continue;
      std::string message = NotReadyMessage(attempt, options_.launch_timeout);
      Log(LogLevel::kWarning, "launch_timeout",
          {{"job", job_id}, {"attempt", attempt.epoch}, {"message", message}});
      StopAttempt(job_id, attempt, JobStatus::LAUNCH_FAILED, message, out);
    }
  }
  for (auto& [job_id, attempt] : attempts_) {
    const v1::Job* job = jobs.Find(job_id);
    if (job == nullptr || attempt.stopping || attempt.running_since == absl::InfinitePast()) {
      continue;
    }
    absl::Duration max = MaxRunDuration(job->spec());
    if (max > absl::ZeroDuration() && now - attempt.running_since > max) {
      StopAttempt(job_id, attempt, JobStatus::TIMEOUT,
                  absl::StrCat("max_run_duration ", absl::FormatDuration(max), " exceeded"), out);
    }
  }
  return out;
}

std::optional<FinishedAttempt> Attempts::Finish(const std::string& job_id, const JobQueue& jobs,
                                                absl::Time now) {
  auto it = attempts_.find(job_id);
  if (it == attempts_.end()) return std::nullopt;
  AttemptState attempt = std::move(it->second);
  attempts_.erase(it);
  FinishedAttempt finished{.epoch = attempt.epoch, .nodes = attempt.nodes};
  const v1::Job* job = jobs.Find(job_id);
  if (job == nullptr) return finished;
  AttemptEffects& out = finished.effects;

  AttemptEnd end = DecideEnd(attempt.tally, *job);
  JobStatus status = job->status();
  if (end.state == JobStatus::COMPLETED) {
    // Reports that were not seen (the agent reconnected, or droverd restarted, meanwhile):
    // the job passes through their states, so the recorded history stays a valid one.
    for (auto [step, step_reason] : {std::pair{JobStatus::STARTING, "STARTING"},
                                     std::pair{JobStatus::RUNNING, ""},
                                     std::pair{JobStatus::FINALIZING, "UPLOADING_OUTPUTS"}}) {
      if (status.state() == JobStatus::FINALIZING) break;
      if (status.state() == step) continue;  // not again with a new version
      absl::StatusOr<JobStatus> next = Transition(status, step, step_reason, now);
      if (!next.ok()) continue;
      if (step == JobStatus::RUNNING && !next->has_start_time()) {
        *next->mutable_start_time() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now));
      }
      status = *next;
      Commit(job_id, *std::move(next), out);
    }
  }
  absl::StatusOr<JobStatus> next =
      end.retry ? Transition(status, JobStatus::QUEUED,
                             absl::StrCat("RETRYING after attempt ", status.attempt()), now)
                : Transition(status, end.state, StateName(end.state), now);
  if (!next.ok()) {
    Log(LogLevel::kError, "attempt_end_refused",
        {{"job", job_id}, {"error", next.status().message()}});
    return finished;
  }
  next->set_cause(end.retry ? JobStatus::CAUSE_UNSPECIFIED : end.cause);
  next->set_message(end.message);
  next->clear_exits();
  for (const v1::RankExit& e : attempt.tally.exits) *next->add_exits() = e;
  next->set_outputs_digest(attempt.tally.outputs_digest);
  next->set_outputs_size(attempt.tally.outputs_size);
  Log(LogLevel::kInfo, end.retry ? "job_retried" : "job_ended",
      {{"job", job_id}, {"attempt", attempt.epoch}, {"state", StateName(end.state)},
       {"cause", JobStatus::Cause_Name(end.cause)}, {"message", end.message}});
  Commit(job_id, *std::move(next), out);
  out.push_back(AttemptEffect{.kind = AttemptEffect::kSchedule});
  return finished;
}

std::string Attempts::NotReadyMessage(const AttemptState& attempt, absl::Duration waited) {
  std::vector<std::pair<std::string, std::string>> late;  // node, its last PREPARING reason
  for (const std::string& node : attempt.nodes) {
    if (attempt.ready.contains(node)) continue;
    auto last = attempt.last_preparing.find(node);
    late.emplace_back(node, last == attempt.last_preparing.end() ? "no report" : last->second);
  }
  std::string within = absl::StrCat(" not ready within ", absl::FormatDuration(waited));
  if (late.size() == 1) {
    return absl::StrCat("node ", late[0].first, within, " (last: ", late[0].second, ")");
  }
  return absl::StrCat("nodes ",
                      absl::StrJoin(late, ", ",
                                    [](std::string* out, const auto& l) {
                                      absl::StrAppend(out, l.first, " (last: ", l.second, ")");
                                    }),
                      within);
}

}  // namespace drover::scheduler
