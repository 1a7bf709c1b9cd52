// Retention: droverd's garbage collection (docs/operations.md#retention). A pass, run every
// `interval` on its own thread and on an administrator's request (drover gc), removes:
//
// - the logs (every rank's stdout and stderr, every node's preparation log; metrics are
//   kept) of jobs that ended longer than `logs` ago;
// - blobs nothing refers to any more: a blob is kept while it is an imported image's
//   archive, the code snapshot of a job not ended or ended less than `snapshots` ago, the
//   outputs of a job ended less than `outputs` ago, read by an attempt running now, or used
//   (uploaded, checked, submitted with) less than `upload_grace` ago;
//
// and marks each job whose logs, snapshot or outputs went (JobStatus.*_removed_time), so
// that `drover logs` and `drover download` can say why they are gone. What a removed blob
// counted against its holders' quotas is freed.
//
// A pass reads every job once (pages of the store, on this thread, never the core loop) and
// changes at most `max_job_changes` jobs; the rest waits for the next pass.
#ifndef DROVER_SERVER_RETENTION_H_
#define DROVER_SERVER_RETENTION_H_

#include <atomic>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "drover/v1/admin_service.pb.h"
#include "server/core.h"
#include "server/server_metrics.h"
#include "storage/blob_store.h"
#include "storage/log_store.h"
#include "storage/store.h"

namespace drover::server {

struct RetentionOptions {
  // How long after a job ended its logs, code snapshot and outputs are kept; zero: forever.
  absl::Duration logs = absl::Hours(24 * 30);
  absl::Duration snapshots = absl::Hours(24 * 30);
  absl::Duration outputs = absl::Hours(24 * 90);
  // How long a blob nothing refers to is kept after it was last used (a snapshot uploaded
  // for a job not submitted yet).
  absl::Duration upload_grace = absl::Hours(24);
  // Time between passes; zero: only when an administrator asks.
  absl::Duration interval = absl::Hours(1);
  // Most jobs one pass changes (marks, removes logs of).
  int max_job_changes = 10000;
};

class Retention {
 public:
  Retention(RetentionOptions options, storage::Store& store, const storage::BlobStore& blobs,
            storage::LogStore& logs, const Core& core, const Clock& clock,
            ServerMetrics* metrics)
      : options_(options), store_(store), blobs_(blobs), logs_(logs), core_(core),
        clock_(clock), metrics_(metrics) {}
  ~Retention() { Stop(); }

  // Starts the periodic passes (none when the interval is zero).
  void Start();
  // Stops them, waiting for a pass in progress. Idempotent.
  void Stop();

  // One pass now; with `dry_run` only counts what it would remove. FAILED_PRECONDITION
  // while another pass runs. Thread-safe.
  absl::StatusOr<v1::CollectGarbageResponse> RunPass(bool dry_run);

  const RetentionOptions& options() const { return options_; }

 private:
  absl::StatusOr<v1::CollectGarbageResponse> Pass(bool dry_run);
  void Loop();

  const RetentionOptions options_;
  storage::Store& store_;
  const storage::BlobStore& blobs_;
  storage::LogStore& logs_;
  const Core& core_;
  const Clock& clock_;
  ServerMetrics* const metrics_;
  std::atomic<bool> running_pass_{false};
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_RETENTION_H_
