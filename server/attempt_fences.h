// AttemptFences: which node may send, store and read what, by the current attempt of every
// live job: the fence that keeps a stale attempt's logs out (an old epoch, a lost node, a
// finished job) and the blobs nodes may read. The core owns one and sets a job's fence on
// the loop each time its attempt changes; agent streams (every log chunk), the blob
// service and retention read it on their own threads.
//
// Threading: one absl::Mutex, held only for a lookup or for one job's update, never across
// a call out. It is kept rather than replaced by a snapshot (server/registries.h) or by
// posting to the loop, because either would change what droverd does: the fence changes
// with every placement, READY, node end and loss, so a copy-on-write snapshot of every live
// job's fence at each change would cost O(live jobs) on the loop per event; and a log chunk
// checked on the loop instead of on its stream would wait behind placement rounds (the
// log-ingest path), and be checked against a later fence than the one in force when it
// came. A reader sees a job's fence before or after an update, never half of one.
#ifndef DROVER_SERVER_ATTEMPT_FENCES_H_
#define DROVER_SERVER_ATTEMPT_FENCES_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "drover/v1/agent.pb.h"
#include "drover/v1/job.pb.h"
#include "scheduler/attempts.h"

namespace drover::server {

class AttemptFences {
 public:
  // On the loop: job `job_id`'s fence from its current `attempt` (null: it has none, the
  // fence goes) and the job as the loop holds it (null when unknown: any rank is taken).
  void Set(const std::string& job_id, const scheduler::AttemptState* attempt,
           const v1::Job* job);

  // Every method below: any thread.
  // Whether a log chunk of `attempt` from `node` may be stored: the job's current attempt,
  // on one of its nodes that has not ended its part (not lost). Chunks of anything else (an
  // old epoch, a lost node, a finished job) are refused. The agent streams
  // call it for every chunk.
  bool AcceptsLogs(const std::string& node, const v1::AttemptRef& attempt) const;
  // Whether `attempt` is the current attempt of a live job and `node` was never one of its
  // nodes: what a node may not send anything about.
  bool IsForeignAttempt(const std::string& node, const v1::AttemptRef& attempt) const;
  // Whether `node` runs `rank` of the current `attempt` (for PREPARE and SYSTEM_METRICS:
  // whether `rank` is its node rank): the only streams it may send.
  bool HasStream(const std::string& node, const v1::AttemptRef& attempt, int32_t rank,
                 v1::LogStream stream) const;
  // Whether `node` has a part in the current attempt of some live job that it has not
  // ended (as AcceptsLogs): a node may upload (outputs) and check blobs only then.
  bool RunsAnAttempt(const std::string& node) const;
  // The id of a live job whose current attempt `node` has a part in, not ended, and that
  // reads blob `digest`: its code snapshot (spec.source_snapshot) or its imported image's
  // archive (AssignAttempt.image_digest); "" when none. What a node may download.
  std::string JobReadingBlob(const std::string& node, const std::string& digest) const;
  // Whether `node` has a part, not ended, in the current attempt of live job `job_id`: whose
  // outputs it may upload.
  bool RunsPartOf(const std::string& node, const std::string& job_id) const;
  // The snapshots and image archives the current attempts of live jobs read: what
  // retention never removes.
  absl::flat_hash_set<std::string> BlobsInUse() const;

 private:
  struct Fence {
    int64_t epoch = 0;
    std::set<std::string> nodes;     // the nodes still in it (not ended)
    std::set<std::string> all;       // every node of the attempt, ended or not
    std::vector<std::string> order;  // the nodes by node rank
    int32_t processes_per_node = 0;  // 0: not known (any rank is taken)
    std::set<std::string> blobs;     // the snapshot and image archive its nodes may download
  };
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Fence> fences_ ABSL_GUARDED_BY(mu_);  // by job id
};

}  // namespace drover::server

#endif  // DROVER_SERVER_ATTEMPT_FENCES_H_
