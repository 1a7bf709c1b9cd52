// StoredEnds: when a node may forget the end of an attempt it reported. An agent keeps each
// ended attempt's last report (in memory, and its record on disk) so that a droverd that
// restarts before storing what that end decided hears it again in the agent's hello; without
// it, the new droverd would take the attempt for lost and run the job again. What the end
// decided is stored with one of the job's later status writes: the job's end, its return to
// the queue, or a later attempt. Once such a write is committed, droverd tells the node
// (EndsStored) and the agent drops the report and the record at once, instead of after its
// 10-minute fallback.
//
// Pure logic, fed by droverd's core on its loop: every ENDED report (Reported), every
// committed status write (Committed) and the stored job when Reported asked for it
// (StoredJob). It holds only the ends not yet settled, by job.
#ifndef DROVER_SCHEDULER_STORED_ENDS_H_
#define DROVER_SCHEDULER_STORED_ENDS_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "drover/v1/agent.pb.h"
#include "drover/v1/job.pb.h"

namespace drover::scheduler {

// The attempts each node may forget, by node.
using SettledEnds = std::map<std::string, std::vector<v1::AttemptRef>>;

class StoredEnds {
 public:
  // Whether the stored `job` settles the end of its attempt `epoch`: the job ended, waits
  // to be placed again, or a later attempt was stored.
  static bool Settles(const v1::Job& job, int64_t epoch);

  // `node` reported the end of `attempt`; `live` is the job as droverd's core holds it (null
  // when it holds none: the job ended, or it is unknown). Returns whether the caller must
  // read the stored job and pass it to StoredJob(): true unless `live` still runs this
  // attempt, in which case the write that settles it is still to come (Committed). An
  // attempt later than the live job's is ignored (no node can have run it).
  bool Reported(const std::string& node, const v1::AttemptRef& attempt, const v1::Job* live);
  // A status write of `job` was committed: the ends it settles.
  SettledEnds Committed(const v1::Job& job);
  // The stored job `job_id` as Reported() asked (`stored` null: there is none, it was
  // deleted): the ends it settles.
  SettledEnds StoredJob(const std::string& job_id, const v1::Job* stored);

  // How many reported ends wait for their job's status to be stored.
  size_t pending() const;

 private:
  // Removes and returns the ends of `job_id` that `settled` says are settled.
  template <typename Pred>
  SettledEnds Take(const std::string& job_id, Pred settled);

  // By job: (node, epoch) of each end reported and not yet settled.
  std::map<std::string, std::set<std::pair<std::string, int64_t>>> pending_;
};

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_STORED_ENDS_H_
