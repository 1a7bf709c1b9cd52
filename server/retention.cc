#include "server/retention.h"

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"
#include "scheduler/job_state.h"

namespace drover::server {
namespace {

using google::protobuf::util::TimeUtil;

// What a pass may change on one ended job.
struct JobDue {
  std::string id;
  std::string snapshot;  // expired and not marked yet; "" otherwise
  std::string outputs;   // likewise
  bool logs = false;     // expired and not removed yet
};

absl::Time EndOf(const v1::JobStatus& status) {
  const google::protobuf::Timestamp& end =
      status.has_end_time() ? status.end_time() : status.update_time();
  return absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(end));
}

const std::vector<v1::LogStream>& RemovedStreams() {
  static const std::vector<v1::LogStream> streams = {v1::STDOUT, v1::STDERR, v1::PREPARE};
  return streams;
}

}  // namespace

void Retention::Start() {
  if (options_.interval <= absl::ZeroDuration() || thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void Retention::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Retention::Loop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.interval);
      if (stopping_) return;
    }
    absl::StatusOr<v1::CollectGarbageResponse> pass = RunPass(/*dry_run=*/false);
    if (!pass.ok() && !absl::IsFailedPrecondition(pass.status())) {
      Log(LogLevel::kWarning, "retention_failed", {{"error", pass.status().message()}});
    }
  }
}

absl::StatusOr<v1::CollectGarbageResponse> Retention::RunPass(bool dry_run) {
  bool idle = false;
  if (!running_pass_.compare_exchange_strong(idle, true)) {
    return absl::FailedPreconditionError(
        "a retention pass is running now; try again once it ended");
  }
  absl::Time started = absl::Now();
  absl::StatusOr<v1::CollectGarbageResponse> pass = Pass(dry_run);
  running_pass_ = false;
  if (pass.ok()) {
    *pass->mutable_took() = TimeUtil::MicrosecondsToDuration(
        absl::ToInt64Microseconds(absl::Now() - started));
    Log(LogLevel::kInfo, dry_run ? "retention_dry_run" : "retention_pass",
        {{"blobs_removed", pass->blobs_removed()},
         {"blob_bytes_removed", pass->blob_bytes_removed()},
         {"blobs_kept", pass->blobs_kept()},
         {"jobs_logs_removed", pass->jobs_logs_removed()},
         {"log_bytes_removed", pass->log_bytes_removed()},
         {"jobs_marked", pass->jobs_marked()},
         {"jobs_deferred", pass->jobs_deferred()},
         {"took_ms", absl::ToInt64Milliseconds(absl::Now() - started)}});
  }
  return pass;
}

absl::StatusOr<v1::CollectGarbageResponse> Retention::Pass(bool dry_run) {
  const absl::Time now = clock_.Now();
  v1::CollectGarbageResponse response;
  response.set_dry_run(dry_run);
  *response.mutable_start_time() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now));
  auto expired = [now](absl::Duration keep, const v1::JobStatus& status) {
    return keep > absl::ZeroDuration() && EndOf(status) + keep <= now;
  };

  // The blobs as they are before anything that refers to them is read: one uploaded after
  // this is not even looked at.
  absl::StatusOr<std::vector<storage::BlobInfo>> blobs = blobs_.List();
  if (!blobs.ok()) return blobs.status();
  absl::flat_hash_set<std::string> live = core_.BlobsInUse();
  absl::StatusOr<std::vector<v1::Image>> images = store_.LoadImages();
  if (!images.ok()) return images.status();
  for (const v1::Image& image : *images) live.insert(image.digest());

  std::vector<JobDue> due;
  storage::ListJobsQuery query;
  query.page_size = 500;
  while (true) {
    absl::StatusOr<storage::ListJobsPage> page = store_.ListJobs(query);
    if (!page.ok()) return page.status();
    for (const v1::Job& job : page->jobs) {
      const v1::JobStatus& status = job.status();
      const std::string& snapshot = job.spec().source_snapshot();
      if (!scheduler::IsTerminal(status.state())) {
        if (!snapshot.empty()) live.insert(snapshot);
        continue;
      }
      JobDue job_due{.id = job.id()};
      if (!snapshot.empty() && !status.has_snapshot_removed_time()) {
        if (expired(options_.snapshots, status)) {
          job_due.snapshot = snapshot;
        } else {
          live.insert(snapshot);
        }
      }
      if (!status.outputs_digest().empty() && !status.has_outputs_removed_time()) {
        if (expired(options_.outputs, status)) {
          job_due.outputs = status.outputs_digest();
        } else {
          live.insert(status.outputs_digest());
        }
      }
      job_due.logs = !status.has_logs_removed_time() && expired(options_.logs, status);
      if (!job_due.snapshot.empty() || !job_due.outputs.empty() || job_due.logs) {
        due.push_back(std::move(job_due));
      }
    }
    if (page->next_before_sequence == 0) break;
    query.before_sequence = page->next_before_sequence;
  }

  // Blobs nothing refers to and unused for the grace time go.
  const absl::Time unused_since = now - options_.upload_grace;
  absl::flat_hash_set<std::string> present;
  std::vector<std::string> removed;
  for (const storage::BlobInfo& blob : *blobs) {
    bool gone = false;
    if (!live.contains(blob.digest) && blob.used < unused_since) {
      if (dry_run) {
        gone = true;
      } else if (absl::StatusOr<bool> done = blobs_.RemoveIfUnusedSince(blob.digest, unused_since);
                 !done.ok()) {
        Log(LogLevel::kWarning, "retention_blob_kept",
            {{"digest", blob.digest}, {"error", done.status().message()}});
      } else {
        gone = *done;
      }
    }
    if (gone) {
      removed.push_back(blob.digest);
      response.set_blobs_removed(response.blobs_removed() + 1);
      response.set_blob_bytes_removed(response.blob_bytes_removed() + blob.size);
    } else {
      present.insert(blob.digest);
      response.set_blobs_kept(response.blobs_kept() + 1);
      response.set_blob_bytes_kept(response.blob_bytes_kept() + blob.size);
    }
  }
  if (!dry_run && !removed.empty()) {
    absl::Status forgotten;
    absl::Notification done;
    store_.ForgetBlobs(removed, [&](absl::Status s) {
      forgotten = s;
      done.Notify();
    });
    done.WaitForNotification();
    if (!forgotten.ok()) return forgotten;
  }
  if (metrics_ != nullptr && !dry_run) {
    metrics_->retention_removed_bytes.With({"blobs"}).Increment(
        static_cast<double>(response.blob_bytes_removed()));
    metrics_->blob_bytes.With({}).Set(static_cast<double>(response.blob_bytes_kept()));
  }

  // Jobs: their logs go, and each is marked with what it lost.
  int changes = 0;
  std::vector<std::pair<std::string, v1::JobStatus>> updates;
  for (const JobDue& job_due : due) {
    bool snapshot_gone = !job_due.snapshot.empty() && !present.contains(job_due.snapshot);
    bool outputs_gone = !job_due.outputs.empty() && !present.contains(job_due.outputs);
    if (!snapshot_gone && !outputs_gone && !job_due.logs) continue;
    if (changes >= options_.max_job_changes) {
      response.set_jobs_deferred(response.jobs_deferred() + 1);
      continue;
    }
    ++changes;
    bool logs_gone = false;
    if (job_due.logs) {
      absl::StatusOr<int64_t> freed = logs_.RemoveStreams(job_due.id, RemovedStreams(), dry_run);
      if (freed.ok()) {
        logs_gone = true;
        response.set_jobs_logs_removed(response.jobs_logs_removed() + 1);
        response.set_log_bytes_removed(response.log_bytes_removed() + *freed);
      } else {
        Log(LogLevel::kWarning, "retention_logs_kept",
            {{"job", job_due.id}, {"error", freed.status().message()}});
      }
    }
    if (snapshot_gone || outputs_gone) response.set_jobs_marked(response.jobs_marked() + 1);
    if (dry_run || (!logs_gone && !snapshot_gone && !outputs_gone)) continue;
    absl::StatusOr<v1::Job> job = store_.GetJob(job_due.id);
    if (!job.ok()) continue;
    v1::JobStatus status = job->status();
    google::protobuf::Timestamp stamp = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now));
    if (logs_gone) *status.mutable_logs_removed_time() = stamp;
    if (snapshot_gone) *status.mutable_snapshot_removed_time() = stamp;
    if (outputs_gone) *status.mutable_outputs_removed_time() = stamp;
    status.set_version(status.version() + 1);
    updates.emplace_back(job_due.id, std::move(status));
  }
  if (metrics_ != nullptr && !dry_run) {
    metrics_->retention_removed_bytes.With({"logs"}).Increment(
        static_cast<double>(response.log_bytes_removed()));
  }
  absl::BlockingCounter written(static_cast<int>(updates.size()));
  for (auto& [job_id, status] : updates) {
    int64_t expected = status.version() - 1;
    store_.UpdateJobStatus(job_id, expected, std::move(status),
                           storage::Store::Durability::kFlushed,
                           [&written, job_id = job_id](absl::StatusOr<v1::Job> job) {
                             // ABORTED: it changed meanwhile; the next pass marks it.
                             if (!job.ok()) {
                               Log(LogLevel::kWarning, "retention_mark_failed",
                                   {{"job", job_id}, {"error", job.status().message()}});
                             }
                             written.DecrementCount();
                           });
  }
  written.Wait();
  return response;
}

}  // namespace drover::server
