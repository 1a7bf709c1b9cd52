// The rules of an attempt's end, apart from the machinery that runs them (server/core.cc):
// how the nodes' ENDED reports add up (which rank failed first, the cause and message the
// job gets, the outputs) and what the job does next (COMPLETED; FAILED, retried or not;
// CANCELED). Pure logic, any thread.
#ifndef DROVER_SCHEDULER_ATTEMPT_OUTCOME_H_
#define DROVER_SCHEDULER_ATTEMPT_OUTCOME_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "drover/v1/agent.pb.h"
#include "drover/v1/job.pb.h"

namespace drover::scheduler {

// Whether a rank failed: a non-zero exit code or a signal.
bool RankFailed(const v1::RankExit& e);

// Whether `e` is a failure that ended before `first` (the failure known so far): by the
// nodes' clocks when both tell. A rank with no end time was killed before it could record
// one (mpirun kills its ranks' wrappers), so it was stopped, not the cause: a failure with
// a time goes first; between two without, the one known first stays first.
bool FailedFirst(const v1::RankExit& e, const std::optional<v1::RankExit>& first);

// "rank 3 on n2 exited with code 1", "... ran out of memory", "... was killed by signal 9".
std::string DescribeExit(const v1::RankExit& e);

// What the reports of one attempt's nodes add up to so far.
struct AttemptTally {
  // Why the attempt ends when it is not its processes' own doing (a cancel, a lost node,
  // a launch failure, a timeout, the first failed rank...): the first one known wins.
  v1::JobStatus::Cause cause = v1::JobStatus::CAUSE_UNSPECIFIED;
  std::string message;
  std::vector<v1::RankExit> exits;            // every node's ranks, each naming its node
  std::optional<v1::RankExit> first_failure;  // by the nodes' clocks (FailedFirst)
  std::string outputs_digest;                 // from the node that uploaded outputs
  int64_t outputs_size = 0;

  // Records `cause` and `message` unless a cause is known already.
  void SetCauseOnce(v1::JobStatus::Cause cause, std::string message);
  // Adds node `node`'s ENDED report: its ranks' exits, its outputs and, when it reports a
  // failure, the cause (OUT_OF_MEMORY when a rank was OOM-killed, PROCESS_FAILED named by
  // the rank the node says failed first, or the node's own cause). Returns whether it
  // reports a failure: the rest of the gang is then stopped.
  bool AddEnded(const std::string& node, const v1::AttemptReport& report);
};

// How the job ends once every node of the attempt ended.
struct AttemptEnd {
  v1::JobStatus::State state = v1::JobStatus::STATE_UNSPECIFIED;  // COMPLETED, FAILED, CANCELED
  v1::JobStatus::Cause cause = v1::JobStatus::CAUSE_UNSPECIFIED;
  std::string message;
  // FAILED, and the job's max_retries allows another attempt: it is queued again.
  bool retry = false;
};

// CANCELED (cause CANCELED_BY_USER, the user's message; EARLY_TERMINATED when a sweep's
// policy stopped it, on the job's CANCEL_REQUESTED status or as the tally's cause) when a
// cancel was requested or is the cause; COMPLETED when no rank failed and there is no cause; FAILED otherwise, named by
// the rank that failed first over every node (others were mostly stopped because of it),
// "max_run_duration exceeded" for a timeout without a message. Retried when FAILED and the
// job's attempt number is at most its max_retries. Sorts `tally.exits` by rank.
AttemptEnd DecideEnd(AttemptTally& tally, const v1::Job& job);

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_ATTEMPT_OUTCOME_H_
