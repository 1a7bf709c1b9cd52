// StatusWriter: how droverd's core makes job status changes durable. The core owns one;
// the store, the loop, the reader thread, the in-memory queue and the event hub are
// injected. Every method runs on the CoreLoop (`loop`); it posts the store's answers back
// there, and runs the store's reads on `reader` so that the loop never waits for the disk.
//
// A change is applied to the in-memory job at once (so that the next decision sees it) and
// written with a compare-and-set on the version; watchers and metrics hear of it only once
// committed. A write with a callback is a decision (a placement): when the store refuses
// it, the in-memory job goes back and the callback gets the error. A write without is a
// fact (what an agent reported, a job's end): when the disk refuses it (full, I/O error),
// or a cancel was stored first (ABORTED), the in-memory job keeps it, the job is
// "unsaved", and SaveUnsaved() stores its newest status once the store takes it.
#ifndef DROVER_SERVER_STATUS_WRITER_H_
#define DROVER_SERVER_STATUS_WRITER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "drover/v1/job.pb.h"
#include "scheduler/job_queue.h"
#include "server/core_loop.h"
#include "server/job_events.h"
#include "storage/store.h"

namespace drover::server {

class ServerMetrics;

class StatusWriter {
 public:
  using JobCallback = absl::AnyInvocable<void(absl::StatusOr<v1::Job>) &&>;

  // Everything given must outlive the writer; `metrics` may be null. `saved` runs on the
  // loop each time SaveUnsaved() stored the last change of an unsaved job (placement may
  // go on); `committed` (optional) on the loop with every committed job, after watchers.
  StatusWriter(storage::Store& store, CoreLoop& loop, CoreLoop& reader, scheduler::JobQueue& jobs,
               const Clock& clock, JobEventHub& events, ServerMetrics* metrics,
               absl::AnyInvocable<void()> saved,
               absl::AnyInvocable<void(const v1::Job&)> committed = nullptr);

  // Applies `next` to the in-memory job now and writes it over `current`'s version; `done`
  // (optional, makes it a decision) runs on the loop after the commit with the committed
  // job, or the store's error. A decision about a job with unsaved changes is not written:
  // `done` gets the error that keeps them unsaved. A fact about such a job is kept to be
  // written after them.
  void Commit(const v1::Job& current, v1::JobStatus next, JobCallback done = nullptr) {
    Write(current, std::move(next), std::move(done), storage::Store::Durability::kFlushed);
  }
  // Commit() of a fact that whoever reported it reports again after droverd restarts (an
  // agent's phase report: its hello says where each attempt stands), or that droverd works
  // out again (why a job waits): committed, so a crash of droverd loses nothing, but not
  // flushed to disk before droverd goes on (Store::Durability::kCommitted); a power cut may
  // take it back to the status before, which the next report moves on again.
  void CommitReported(const v1::Job& current, v1::JobStatus next) {
    Write(current, std::move(next), nullptr, storage::Store::Durability::kCommitted);
  }
  // A status write committed: tells watchers and metrics (also for writes made elsewhere,
  // a cancel).
  void Committed(const v1::Job& job);
  // Writes the newest status of every unsaved job (the core calls it each tick): reads the
  // stored job off the loop, then writes over its version. A cancel or an end stored
  // meanwhile wins over a kept change that is not the job's end.
  void SaveUnsaved();
  // Reads job `job_id` on the reader thread and runs `then` on the loop with it.
  void ReadJob(std::string job_id, JobCallback then);

  // The error that keeps changes of `job_id` out of the store; nullopt when none is.
  std::optional<absl::Status> UnsavedError(const std::string& job_id) const;
  // Whether placements wait: some job has unsaved changes, or the disk refused a
  // placement less than a second before `now`.
  bool PlacementsPaused(absl::Time now) const {
    return !unsaved_.empty() || now < placement_paused_until_;
  }

 private:
  void Write(const v1::Job& current, v1::JobStatus next, JobCallback done,
             storage::Store::Durability durability);
  // A status write failed with `error`; returns what its `done` is told.
  absl::Status Failed(const std::string& job_id, bool decision, v1::JobStatus written,
                      const absl::Status& error);
  // SaveUnsaved's second half, on the loop with the stored job.
  void SaveUnsaved(const std::string& job_id, absl::StatusOr<v1::Job> stored);

  storage::Store& store_;
  CoreLoop& loop_;
  CoreLoop& reader_;
  scheduler::JobQueue& jobs_;
  const Clock& clock_;
  JobEventHub& events_;
  ServerMetrics* const metrics_;
  absl::AnyInvocable<void()> saved_;
  absl::AnyInvocable<void(const v1::Job&)> committed_;

  // Jobs whose in-memory status is ahead of the store because the disk refused a write.
  struct Unsaved {
    v1::JobStatus status;  // the newest, to store (its version is set when written)
    int64_t changes = 0;   // bumped by every change, to tell whether a write was the last
    bool writing = false;  // a write of it is in flight
    absl::Status error;    // why the last write failed
  };
  std::map<std::string, Unsaved> unsaved_;
  // After the disk refused a placement, none is tried again before this.
  absl::Time placement_paused_until_ = absl::InfinitePast();
};

}  // namespace drover::server

#endif  // DROVER_SERVER_STATUS_WRITER_H_
