#include "scheduler/job_state.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/time_util.h"

namespace drover::scheduler {
namespace {

using v1::JobStatus;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

bool IsPlaced(State s) {
  return s == JobStatus::PREPARING || s == JobStatus::STARTING || s == JobStatus::RUNNING ||
         s == JobStatus::FINALIZING;
}

}  // namespace

bool IsTerminal(State state) {
  return state == JobStatus::COMPLETED || state == JobStatus::FAILED ||
         state == JobStatus::CANCELED;
}

std::string StateName(State state) { return JobStatus::State_Name(state); }

absl::StatusOr<State> ParseStateName(absl::string_view name) {
  State state;
  if (JobStatus::State_Parse(absl::AsciiStrToUpper(name), &state) &&
      state != JobStatus::STATE_UNSPECIFIED) {
    return state;
  }
  std::vector<std::string> names;
  for (int i = JobStatus::QUEUED; i <= JobStatus::State_MAX; ++i) {
    if (JobStatus::State_IsValid(i)) {
      names.push_back(absl::AsciiStrToLower(JobStatus::State_Name(static_cast<State>(i))));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a job state; use one of ",
                                                 absl::StrJoin(names, ", ")));
}

absl::Status CheckTransition(State from, State to) {
  bool allowed = false;
  if (IsTerminal(from)) {
    allowed = false;
  } else if (from == to) {
    allowed = true;  // a new reason in the same state
  } else if (IsTerminal(to)) {
    allowed = true;  // any live job can end: failure, cancel or completion is decided above
    if (to == JobStatus::COMPLETED) allowed = from == JobStatus::FINALIZING;
  } else {
    switch (from) {
      case JobStatus::QUEUED:
        allowed = to == JobStatus::PREPARING;
        break;
      case JobStatus::PREPARING:
        allowed = to == JobStatus::STARTING || to == JobStatus::QUEUED ||
                  to == JobStatus::CANCEL_REQUESTED;
        break;
      case JobStatus::STARTING:
        allowed = to == JobStatus::RUNNING || to == JobStatus::QUEUED ||
                  to == JobStatus::CANCEL_REQUESTED;
        break;
      case JobStatus::RUNNING:
        // Back to QUEUED when an attempt is lost and the job is retried.
        allowed = to == JobStatus::FINALIZING || to == JobStatus::QUEUED ||
                  to == JobStatus::CANCEL_REQUESTED;
        break;
      case JobStatus::FINALIZING:
        allowed = to == JobStatus::QUEUED || to == JobStatus::CANCEL_REQUESTED;
        break;
      case JobStatus::CANCEL_REQUESTED:
        allowed = false;  // only the terminal CANCELED/FAILED, handled above
        break;
      default:
        allowed = false;
    }
  }
  if (allowed) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("a job cannot go from ", StateName(from), " to ", StateName(to)));
}

absl::StatusOr<v1::JobStatus> Transition(const v1::JobStatus& current, State to,
                                         absl::string_view reason, absl::Time now) {
  if (absl::Status s = CheckTransition(current.state(), to); !s.ok()) return s;
  v1::JobStatus next = current;
  next.set_state(to);
  next.set_reason(std::string(reason));
  next.set_version(current.version() + 1);
  *next.mutable_update_time() = ToProto(now);
  if (IsTerminal(to)) *next.mutable_end_time() = ToProto(now);
  return next;
}

absl::StatusOr<std::optional<v1::JobStatus>> PlanCancel(absl::string_view job_id,
                                                        const v1::JobStatus& current,
                                                        absl::string_view reason,
                                                        absl::Time now,
                                                        v1::JobStatus::Cause cause) {
  const bool early = cause == JobStatus::EARLY_TERMINATED;
  State state = current.state();
  if (state == JobStatus::CANCEL_REQUESTED || state == JobStatus::CANCELED) {
    return std::optional<v1::JobStatus>();
  }
  if (state == JobStatus::COMPLETED || state == JobStatus::FAILED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job '", job_id, "' already ended ", StateName(state), "; only live jobs can be canceled"));
  }
  std::string message = early            ? std::string(reason)
                        : reason.empty() ? "canceled by user"
                                         : absl::StrCat("canceled: ", reason);
  if (state == JobStatus::QUEUED) {
    absl::StatusOr<v1::JobStatus> next = Transition(current, JobStatus::CANCELED, "CANCELED", now);
    if (!next.ok()) return next.status();
    next->set_cause(early ? JobStatus::EARLY_TERMINATED : JobStatus::CANCELED_BY_USER);
    next->set_message(message);
    return std::optional<v1::JobStatus>(*std::move(next));
  }
  if (IsPlaced(state)) {
    absl::StatusOr<v1::JobStatus> next =
        Transition(current, JobStatus::CANCEL_REQUESTED, "STOPPING_PROCESSES", now);
    if (!next.ok()) return next.status();
    if (early) next->set_cause(JobStatus::EARLY_TERMINATED);
    next->set_message(message);
    return std::optional<v1::JobStatus>(*std::move(next));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("job '", job_id, "' is in state ", StateName(state), " and cannot be canceled"));
}

}  // namespace drover::scheduler
