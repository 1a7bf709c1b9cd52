#include "scheduler/attempt_outcome.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace drover::scheduler {

using v1::JobStatus;

bool RankFailed(const v1::RankExit& e) { return e.exit_code() != 0 || e.signal() != 0; }

bool FailedFirst(const v1::RankExit& e, const std::optional<v1::RankExit>& first) {
  if (!RankFailed(e)) return false;
  if (!first.has_value()) return true;
  if (e.has_end_time() != first->has_end_time()) return e.has_end_time();
  if (!e.has_end_time()) return false;
  return std::make_pair(e.end_time().seconds(), e.end_time().nanos()) <
         std::make_pair(first->end_time().seconds(), first->end_time().nanos());
}

std::string DescribeExit(const v1::RankExit& e) {
  if (e.oom_killed()) {
    return absl::StrCat("rank ", e.rank(), " on ", e.node(), " ran out of memory");
  }
  if (e.signal() != 0) {
    return absl::StrCat("rank ", e.rank(), " on ", e.node(), " was killed by signal ", e.signal());
  }
  return absl::StrCat("rank ", e.rank(), " on ", e.node(), " exited with code ", e.exit_code());
}

void AttemptTally::SetCauseOnce(JobStatus::Cause new_cause, std::string new_message) {
  if (cause != JobStatus::CAUSE_UNSPECIFIED) return;
  cause = new_cause;
  message = std::move(new_message);
}

bool AttemptTally::AddEnded(const std::string& node, const v1::AttemptReport& report) {
  for (v1::RankExit exit : report.exits()) {
    exit.set_node(node);
    exits.push_back(exit);
    if (FailedFirst(exit, first_failure)) first_failure = exit;
  }
  if (!report.outputs_digest().empty()) {
    outputs_digest = report.outputs_digest();
    outputs_size = report.outputs_size();
  }
  bool failed = report.cause() != JobStatus::CAUSE_UNSPECIFIED;
  for (const v1::RankExit& e : report.exits()) failed = failed || RankFailed(e);
  if (failed && cause == JobStatus::CAUSE_UNSPECIFIED) {
    cause = report.cause() != JobStatus::CAUSE_UNSPECIFIED ? report.cause()
                                                           : JobStatus::PROCESS_FAILED;
    message = report.message();
    for (const v1::RankExit& e : report.exits()) {
      if (e.oom_killed()) cause = JobStatus::OUT_OF_MEMORY;
      if (message.empty() && report.has_first_failed_rank() &&
          e.rank() == report.first_failed_rank()) {
        v1::RankExit named = e;
        named.set_node(node);
        message = DescribeExit(named);
      }
    }
  }
  return failed;
}

AttemptEnd DecideEnd(AttemptTally& tally, const v1::Job& job) {
  std::sort(tally.exits.begin(), tally.exits.end(),
            [](const v1::RankExit& a, const v1::RankExit& b) { return a.rank() < b.rank(); });
  bool all_ok = tally.cause == JobStatus::CAUSE_UNSPECIFIED;
  const v1::RankExit* first_by_rank = nullptr;
  for (const v1::RankExit& e : tally.exits) {
    if (RankFailed(e)) {
      all_ok = false;
      if (first_by_rank == nullptr) first_by_rank = &e;
    }
  }
  AttemptEnd end{.cause = tally.cause, .message = tally.message};
  if (job.status().state() == JobStatus::CANCEL_REQUESTED ||
      end.cause == JobStatus::CANCELED_BY_USER || end.cause == JobStatus::EARLY_TERMINATED) {
    end.state = JobStatus::CANCELED;
    // A sweep's early stop keeps its cause; any other cancel is the user's.
    end.cause = job.status().cause() == JobStatus::EARLY_TERMINATED ||
                        end.cause == JobStatus::EARLY_TERMINATED
                    ? JobStatus::EARLY_TERMINATED
                    : JobStatus::CANCELED_BY_USER;
    end.message = job.status().message().empty() ? "canceled by user" : job.status().message();
    return end;
  }
  if (all_ok) {
    end.state = JobStatus::COMPLETED;
    return end;
  }
  end.state = JobStatus::FAILED;
  if (end.cause == JobStatus::CAUSE_UNSPECIFIED) end.cause = JobStatus::PROCESS_FAILED;
  // The rank that failed first names the failure: the others were mostly stopped because
  // of it (under MPI the first report may only say that mpirun failed).
  if (end.cause == JobStatus::PROCESS_FAILED && tally.first_failure.has_value()) {
    end.message = DescribeExit(*tally.first_failure);
  }
  if (end.message.empty() && first_by_rank != nullptr) end.message = DescribeExit(*first_by_rank);
  if (end.cause == JobStatus::TIMEOUT && end.message.empty()) {
    end.message = "max_run_duration exceeded";
  }
  end.retry = job.status().attempt() <= job.spec().max_retries();
  return end;
}

}  // namespace drover::scheduler
