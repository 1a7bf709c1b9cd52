// The job state machine: which status changes are allowed and what a cancel does. Pure
// functions, any thread.
#ifndef DROVER_SCHEDULER_JOB_STATE_H_
#define DROVER_SCHEDULER_JOB_STATE_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "drover/v1/job.pb.h"

namespace drover::scheduler {

using State = v1::JobStatus::State;

// COMPLETED, FAILED and CANCELED.
bool IsTerminal(State state);

// "QUEUED", "RUNNING", ...
std::string StateName(State state);

// Accepts state names in any case ("queued", "RUNNING"). INVALID_ARGUMENT lists the names.
absl::StatusOr<State> ParseStateName(absl::string_view name);

// OK when a job may move from `from` to `to`; FAILED_PRECONDITION naming both otherwise.
// Staying in the same state (a reason change) is allowed for non-terminal states.
absl::Status CheckTransition(State from, State to);

// The status after a successful state change: `next` with version incremented,
// update_time = now, end_time set when terminal. Fails like CheckTransition.
absl::StatusOr<v1::JobStatus> Transition(const v1::JobStatus& current, State to,
                                         absl::string_view reason, absl::Time now);

// What a cancel request does to a job in `current`:
//  - QUEUED: CANCELED at once (cause CANCELED_BY_USER);
//  - placed (PREPARING .. FINALIZING): CANCEL_REQUESTED, the nodes finish it later;
//  - CANCEL_REQUESTED or CANCELED: nothing to change (returns nullopt);
//  - COMPLETED or FAILED: FAILED_PRECONDITION naming the state.
// `reason` (the user's words, may be empty) goes into the status message.
// With `cause` EARLY_TERMINATED (a sweep's policy stopped the job) the message is `reason`
// as it is, and the cause is EARLY_TERMINATED: at once for a queued job, and on the
// CANCEL_REQUESTED status of a placed one, whose end keeps it (DecideEnd).
absl::StatusOr<std::optional<v1::JobStatus>> PlanCancel(
    absl::string_view job_id, const v1::JobStatus& current, absl::string_view reason,
    absl::Time now, v1::JobStatus::Cause cause = v1::JobStatus::CANCELED_BY_USER);

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_JOB_STATE_H_
