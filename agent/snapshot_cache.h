// SnapshotCache: the code snapshots on this node, one folder per digest under
// `<work>/snapshots/<hex>`. A snapshot is downloaded from droverd once (BlobClient), checked
// against its digest while it is unpacked, and copied into the job folder of every attempt
// that runs it. Shared by the attempts; any thread: two attempts fetching the same new
// snapshot each download it, and the first unpacked copy is kept.
#ifndef DROVER_AGENT_SNAPSHOT_CACHE_H_
#define DROVER_AGENT_SNAPSHOT_CACHE_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/blob_client.h"
#include "agent/waiter.h"

namespace drover::agent {

class SnapshotCache {
 public:
  // `root` is the cache's folder; `blobs` (not owned) outlives the cache.
  SnapshotCache(std::string root, const BlobClient& blobs) : root_(std::move(root)), blobs_(blobs) {}

  // How long a fetch waits for droverd, which may be restarting: a download that finds it
  // out of reach is tried again (every 200 ms, once it is connected) until `patience` has
  // passed on the waiter's clock, rather than failing the attempt.
  struct Patience {
    // The attempt's waiter: the pauses between tries end early when it is notified.
    Waiter* waiter = nullptr;
    absl::Duration patience = absl::Minutes(2);
    // Whether the attempt was stopped meanwhile (no more tries).
    std::function<bool()> stopped;
    // Waits until droverd is connected or `give_up` (may be null).
    std::function<void(absl::Time give_up)> await_droverd;
  };

  // Copies snapshot `digest` ("sha256:<hex>") into the folder `code_dir`, downloading it
  // first (for job `job_id`) when the cache lacks it. gRPC's code when droverd does not
  // give it (UNAVAILABLE: still out of reach at the end of the patience), the extractor's
  // when it is refused (DATA_LOSS: it does not match its digest), UNAVAILABLE when it cannot
  // be copied.
  absl::Status CopyInto(const std::string& digest, const std::string& job_id,
                        const std::string& code_dir, const Patience& patience) const;

 private:
  // Downloads and unpacks the snapshot into `cached`.
  absl::Status Fetch(const std::string& digest, const std::string& job_id,
                     const std::string& cached, const Patience& patience) const;

  const std::string root_;
  const BlobClient& blobs_;
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_SNAPSHOT_CACHE_H_
