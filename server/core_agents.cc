// Core: the agent protocol (hello and reconciliation of what an agent holds, its reports),
// cancel and stop, the end of an attempt, and Run(), which carries out what the attempt
// rules (scheduler/attempts.h) decide.
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
#include "server/metric_records.h"
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
  for (const auto& [job_id, attempt] : attempts_.all()) {
    if (!attempt.Has(name)) continue;
    const v1::Job* job = jobs_.Find(job_id);
    if (job != nullptr) {
      nodes_.Allocate(name, job_id, scheduler::PerNodeDemand(job->spec()));
    }
  }
  // Stops it missed go again; attempts it lost end (scheduler::Attempts::Reconnected).
  Run(attempts_.Reconnected(name, held_jobs, jobs_));
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

void Core::AddEndSample(const std::string& node, const v1::AttemptReport& report) {
  const scheduler::AttemptState* attempt = attempts_.Find(report.attempt().job_id());
  // Only once, while the attempt is current and the node's part has not ended: a report
  // sent again (a hello after a reconnect) or a stale one adds nothing.
  if (attempt == nullptr || attempt->epoch != report.attempt().epoch() ||
      attempt->ended.contains(node)) {
    return;
  }
  auto at = absl::c_find(attempt->nodes, node);
  if (at == attempt->nodes.end()) return;
  std::string lines = EndSampleRecords(report.usage());
  if (lines.empty()) return;
  // The agent reports ENDED only once droverd has stored every byte of its files (or gave up
  // on them), and once its part ended no more chunks of it are taken: the end of the stream
  // is this sample's.
  storage::LogStreamKey key{report.attempt().job_id(), report.attempt().epoch(),
                            static_cast<int32_t>(at - attempt->nodes.begin()),
                            v1::SYSTEM_METRICS};
  const int64_t offset = logs_.Received(key);
  logs_.Append(key, offset, lines,
               [job_id = key.job_id, node](absl::StatusOr<int64_t> stored) {
                 if (!stored.ok()) {
                   Log(LogLevel::kWarning, "end_sample_not_stored",
                       {{"job", job_id}, {"node", node}, {"error", stored.status().message()}});
                 }
               });
}

void Core::HandleReport(const std::string& node, const v1::AttemptReport& report) {
  if (report.phase() == v1::AttemptReport::ENDED && report.has_usage()) {
    AddEndSample(node, report);
  }
  if (report.phase() == v1::AttemptReport::ENDED &&
      stored_ends_.Reported(node, report.attempt(), jobs_.Find(report.attempt().job_id()))) {
    // What the end decided may be stored already (a hello that reports it again): the store
    // says. A read that fails leaves it to a later commit, or to the agent's own patience.
    const std::string& job_id = report.attempt().job_id();
    writer_.ReadJob(job_id, [this, job_id](absl::StatusOr<v1::Job> stored) {
      if (stored.ok()) {
        SendEndsStored(stored_ends_.StoredJob(job_id, &*stored));
      } else if (absl::IsNotFound(stored.status())) {
        SendEndsStored(stored_ends_.StoredJob(job_id, nullptr));
      }
    });
  }
  Run(attempts_.Report(node, report, jobs_, clock_.Now()));
}

void Core::Run(scheduler::AttemptEffects effects) {
  for (scheduler::AttemptEffect& effect : effects) {
    switch (effect.kind) {
      case scheduler::AttemptEffect::kCommit:
        // The job as the effects before left it: each change follows the one before.
        if (const v1::Job* job = jobs_.Find(effect.job_id); job != nullptr) {
          if (effect.reported_again) {
            writer_.CommitReported(*job, std::move(effect.status));
          } else {
            writer_.Commit(*job, std::move(effect.status));
          }
        }
        break;
      case scheduler::AttemptEffect::kSend:
        SendTo(effect.node, std::move(effect.message));
        break;
      case scheduler::AttemptEffect::kReassign: {
        const v1::Job* job = jobs_.Find(effect.job_id);
        const scheduler::AttemptState* attempt = attempts_.Find(effect.job_id);
        if (job != nullptr && attempt != nullptr) SendAssignments(*job, *attempt, effect.node);
        break;
      }
      case scheduler::AttemptEffect::kFence:
        UpdateFence(effect.job_id);
        break;
      case scheduler::AttemptEffect::kFinish:
        FinishAttempt(effect.job_id);
        break;
      case scheduler::AttemptEffect::kFinishLater:
        loop_.Post([this, job_id = std::move(effect.job_id)] { FinishAttempt(job_id); });
        break;
      case scheduler::AttemptEffect::kSchedule:
        // An attempt's end frees nodes: one round after the burst of reports, not one per
        // report (each round also walks every running attempt).
        RequestSchedule();
        break;
    }
  }
}

void Core::FinishAttempt(const std::string& job_id) {
  std::optional<scheduler::FinishedAttempt> finished =
      attempts_.Finish(job_id, jobs_, clock_.Now());
  if (!finished.has_value()) return;
  UpdateFence(job_id);
  // Its logs are all in (an agent reports its end once droverd stored them): close them.
  logs_.EndAttempt(job_id, finished->epoch);
  for (const std::string& node : finished->nodes) nodes_.Release(node, job_id);
  Run(std::move(finished->effects));
}

void Core::CancelArray(const std::string& array_id, const std::string& reason,
                       v1::Job fallback, JobCallback done) {
  std::vector<std::string> ids = jobs_.TasksOfArray(array_id);
  if (ids.empty()) {
    std::move(done)(std::move(fallback));
    return;
  }
  Log(LogLevel::kInfo, "job_array_cancel", {{"array", array_id}, {"tasks", ids.size()}});
  struct Pending {
    size_t left;
    absl::StatusOr<v1::Job> first;  // the lowest index's answer
    absl::Status error;
    JobCallback done;
  };
  auto pending = std::make_shared<Pending>(
      Pending{ids.size(), absl::UnknownError("unanswered"), absl::OkStatus(), std::move(done)});
  // The first task answers: as its cancel committed, or as it ended before.
  const bool first_canceled = ids.front() == fallback.id();
  if (!first_canceled) pending->first = std::move(fallback);
  for (size_t i = 0; i < ids.size(); ++i) {
    Cancel(ids[i], reason, [pending, i, first_canceled](absl::StatusOr<v1::Job> job) {
      if (!job.ok() && pending->error.ok()) pending->error = job.status();
      if (i == 0 && first_canceled) pending->first = std::move(job);
      if (--pending->left > 0) return;
      if (!pending->error.ok()) {
        std::move(pending->done)(pending->error);
      } else {
        std::move(pending->done)(std::move(pending->first));
      }
    });
  }
}

void Core::Cancel(const std::string& job_id, const std::string& reason, JobCallback done,
                  JobStatus::Cause cause) {
  const v1::Job* live = jobs_.Find(job_id);
  if (live == nullptr) {
    // Not live: finished or unknown. Its last write may still be on its way to disk; the
    // store keeps order, so answer from the store after what is queued.
    store_.Barrier([this, job_id, reason, cause, done = std::move(done)](absl::Status) mutable {
      // On the loop, where a write of the job that failed meanwhile is known (unsaved).
      loop_.Post([this, job_id, reason, cause, done = std::move(done)]() mutable {
        if (std::optional<absl::Status> error = writer_.UnsavedError(job_id)) {
          std::move(done)(*std::move(error));
          return;
        }
        writer_.ReadJob(job_id, [this, job_id, reason, cause,
                         done = std::move(done)](absl::StatusOr<v1::Job> stored) mutable {
          if (!stored.ok()) {
            std::move(done)(stored.status());
            return;
          }
          absl::StatusOr<std::optional<JobStatus>> plan =
              scheduler::PlanCancel(job_id, stored->status(), reason, clock_.Now(), cause);
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
    });
    return;
  }
  v1::Job current = *live;
  absl::StatusOr<std::optional<JobStatus>> plan =
      scheduler::PlanCancel(job_id, current.status(), reason, clock_.Now(), cause);
  if (!plan.ok()) {
    std::move(done)(plan.status());
    return;
  }
  if (!plan->has_value()) {
    // Already canceling: answer with the committed job, after the writes in flight (read
    // on the reader thread, not the store's writer).
    store_.Barrier([this, job_id, done = std::move(done)](absl::Status) mutable {
      reader_.Post([this, job_id, done = std::move(done)]() mutable {
        std::move(done)(store_.GetJob(job_id));
      });
    });
    return;
  }
  if (std::optional<absl::Status> error = writer_.UnsavedError(job_id)) {
    std::move(done)(*std::move(error));  // its earlier changes wait for the disk
    return;
  }
  if (auto it = cancels_.find(job_id); it != cancels_.end()) {
    it->second.push_back(std::move(done));  // answered with the cancel being stored
    return;
  }
  cancels_[job_id].push_back(std::move(done));
  bool stop = (*plan)->state() == JobStatus::CANCEL_REQUESTED;
  std::string message = (*plan)->message();
  const JobStatus::Cause stop_cause =
      cause == JobStatus::EARLY_TERMINATED ? cause : JobStatus::CANCELED_BY_USER;
  // Unlike other changes, a cancel takes effect only once stored: a cancel the client was
  // told failed (the disk refused it) changes nothing, not even how the job's end is read.
  // What agents report meanwhile is decided without it; when such a change is stored
  // first, the cancel fails as a conflict (ABORTED: read again and retry).
  const int64_t expected = current.status().version();
  store_.UpdateJobStatus(
      job_id, expected, **std::move(plan), storage::Store::Durability::kFlushed,
      [this, job_id, expected, stop, message, stop_cause](absl::StatusOr<v1::Job> committed) {
        loop_.Post([this, job_id, expected, stop, message, stop_cause,
                    committed = std::move(committed)]() mutable {
          if (committed.ok()) {
            writer_.Committed(*committed);
            // A report that came meanwhile was written after it and wins.
            if (const v1::Job* live = jobs_.Find(job_id);
                live != nullptr && live->status().version() == expected) {
              jobs_.Update(*committed);
            }
            Log(LogLevel::kInfo, "job_cancel", {{"job", job_id}, {"stop_processes", stop}});
            if (stop) StopAttempt(job_id, stop_cause, message);
          } else if (std::optional<absl::Status> error = writer_.UnsavedError(job_id)) {
            committed = *std::move(error);
          }
          std::vector<JobCallback> waiting = std::move(cancels_[job_id]);
          cancels_.erase(job_id);
          for (JobCallback& done : waiting) std::move(done)(committed);
        });
      });
}

void Core::StopAttempt(const std::string& job_id, JobStatus::Cause cause,
                       const std::string& message) {
  Run(attempts_.Stop(job_id, cause, message));
}

}  // namespace drover::server
