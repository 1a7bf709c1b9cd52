#include "server/status_writer.h"

#include <utility>

#include "common/log.h"
#include "scheduler/job_state.h"
#include "server/server_metrics.h"

namespace drover::server {
namespace {

using v1::JobStatus;

// The store refused a write because of the disk (full, or an I/O error): the write can go
// through later, unlike a refused version or a malformed record.
bool IsDiskError(const absl::Status& status) {
  return absl::IsResourceExhausted(status) || absl::IsUnavailable(status);
}

}  // namespace

StatusWriter::StatusWriter(storage::Store& store, CoreLoop& loop, CoreLoop& reader,
                           scheduler::JobQueue& jobs, const Clock& clock, JobEventHub& events,
                           ServerMetrics* metrics, absl::AnyInvocable<void()> saved,
                           absl::AnyInvocable<void(const v1::Job&)> committed)
    : store_(store), loop_(loop), reader_(reader), jobs_(jobs), clock_(clock), events_(events),
      metrics_(metrics), saved_(std::move(saved)), committed_(std::move(committed)) {}

void StatusWriter::Write(const v1::Job& current, JobStatus next, JobCallback done,
                         storage::Store::Durability durability) {
  // `current` may be the queue's own copy, which the Update below replaces: read it first.
  const std::string job_id = current.id();
  if (auto it = unsaved_.find(job_id); it != unsaved_.end() && done != nullptr) {
    // A placement waits until what happened before it is stored.
    loop_.Post([error = it->second.error, done = std::move(done)]() mutable {
      std::move(done)(error);
    });
    return;
  }
  const int64_t expected_version = current.status().version();
  v1::Job updated = current;
  *updated.mutable_status() = next;
  jobs_.Update(updated);
  if (auto it = unsaved_.find(job_id); it != unsaved_.end()) {
    // Written after the earlier changes, by SaveUnsaved().
    it->second.status = std::move(next);
    it->second.changes += 1;
    return;
  }
  const bool decision = done != nullptr;
  store_.UpdateJobStatus(
      job_id, expected_version, next, durability,
      [this, job_id, decision, written = next, done = std::move(done)](
          absl::StatusOr<v1::Job> committed) mutable {
        loop_.Post([this, job_id, decision, written = std::move(written),
                    committed = std::move(committed), done = std::move(done)]() mutable {
          if (committed.ok()) {
            Committed(*committed);
          } else {
            committed = Failed(job_id, decision, std::move(written), committed.status());
          }
          if (done) std::move(done)(std::move(committed));
        });
      });
}

void StatusWriter::Committed(const v1::Job& job) {
  events_.Publish(job);
  if (metrics_ != nullptr && scheduler::IsTerminal(job.status().state())) {
    metrics_->jobs_finished.With({v1::JobStatus::State_Name(job.status().state())})
        .Increment();
  }
  if (committed_) committed_(job);
}

absl::Status StatusWriter::Failed(const std::string& job_id, bool decision,
                                     JobStatus written, const absl::Status& error) {
  if (decision && IsDiskError(error)) {
    // A placement the disk refused: try again in a moment rather than at every round.
    placement_paused_until_ = clock_.Now() + absl::Seconds(1);
  }
  auto it = unsaved_.find(job_id);
  if (it == unsaved_.end() && !decision && (IsDiskError(error) || absl::IsAborted(error))) {
    // What the agents reported happened all the same: keep it and store it later (after a
    // refused write, or over a cancel stored meanwhile).
    it = unsaved_.emplace(job_id, Unsaved{}).first;
    Log(LogLevel::kWarning, "job_status_unsaved",
        {{"job", job_id}, {"state", scheduler::StateName(written.state())},
         {"error", error.message()}});
  }
  if (it != unsaved_.end()) {
    // A write that failed because an earlier one of the job did (a version conflict) fails
    // for the earlier one's reason.
    if (IsDiskError(error) || it->second.error.ok()) it->second.error = error;
    if (!decision) {
      // Later changes failed after this one (version conflict): the last one is the newest.
      it->second.status = std::move(written);
      it->second.changes += 1;
    } else if (const v1::Job* job = jobs_.Find(job_id); job != nullptr) {
      // The decision did not happen: back to the newest change still to be stored.
      v1::Job back = *job;
      *back.mutable_status() = it->second.status;
      jobs_.Reset(back);
    }
    return it->second.error;
  }
  if (!IsDiskError(error)) {
    Log(LogLevel::kError, "job_status_write_failed",
        {{"job", job_id}, {"error", error.ToString()}});
  }
  // The in-memory job ran ahead of the store; take the stored one back.
  ReadJob(job_id, [this](absl::StatusOr<v1::Job> stored) {
    if (stored.ok()) jobs_.Reset(*stored);
  });
  return error;
}

void StatusWriter::ReadJob(std::string job_id, JobCallback then) {
  reader_.Post([this, job_id = std::move(job_id), then = std::move(then)]() mutable {
    absl::StatusOr<v1::Job> job = store_.GetJob(job_id);
    loop_.Post([job = std::move(job), then = std::move(then)]() mutable {
      std::move(then)(std::move(job));
    });
  });
}

void StatusWriter::SaveUnsaved() {
  for (auto& [job_id, unsaved] : unsaved_) {
    if (unsaved.writing) continue;
    // A read of the stored job, then a write over it, in flight.
    unsaved.writing = true;
    ReadJob(job_id, [this, job_id = job_id](absl::StatusOr<v1::Job> stored) {
      SaveUnsaved(job_id, std::move(stored));
    });
  }
}

void StatusWriter::SaveUnsaved(const std::string& job_id, absl::StatusOr<v1::Job> stored) {
  auto entry = unsaved_.find(job_id);
  if (entry == unsaved_.end()) return;
  Unsaved& unsaved = entry->second;
  if (!stored.ok()) {
    unsaved.writing = false;  // the next tick tries again
    return;
  }
  JobStatus::State stored_state = stored->status().state();
  if (scheduler::IsTerminal(stored_state) ||
      (stored_state == JobStatus::CANCEL_REQUESTED &&
       !scheduler::IsTerminal(unsaved.status.state()))) {
    // A cancel stored meanwhile wins over what was kept, unless that is the job's end.
    jobs_.Reset(*stored);
    unsaved_.erase(entry);
    return;
  }
  JobStatus status = unsaved.status;
  status.set_version(stored->status().version() + 1);
  store_.UpdateJobStatus(
      job_id, stored->status().version(), std::move(status), storage::Store::Durability::kFlushed,
      [this, job_id = job_id, changes = unsaved.changes](absl::StatusOr<v1::Job> committed) {
        loop_.Post([this, job_id, changes, committed = std::move(committed)]() mutable {
          auto it = unsaved_.find(job_id);
          if (it == unsaved_.end()) return;
          it->second.writing = false;
          if (!committed.ok()) {
            it->second.error = committed.status();
            return;
          }
          Committed(*committed);
          if (it->second.changes != changes) return;  // changed meanwhile: store that too
          unsaved_.erase(it);
          // The in-memory job takes the stored version, so that later changes follow it:
          // Reset, as it held a higher one when more than one change was kept (each bumps
          // the version in memory; the store took them as one).
          if (jobs_.Find(job_id) != nullptr) jobs_.Reset(*committed);
          Log(LogLevel::kInfo, "job_status_saved",
              {{"job", job_id}, {"state", scheduler::StateName(committed->status().state())}});
          saved_();
        });
      });
}

std::optional<absl::Status> StatusWriter::UnsavedError(const std::string& job_id) const {
  auto it = unsaved_.find(job_id);
  if (it == unsaved_.end()) return std::nullopt;
  return it->second.error;
}

}  // namespace drover::server
