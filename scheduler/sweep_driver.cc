// The sweep driver's decisions (sweep_driver.h).
#include "scheduler/sweep_driver.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace drover::scheduler {
namespace {

v1::SweepStatus Ended(v1::SweepStatus::State state, std::string reason, std::string message,
                      absl::Time now) {
  v1::SweepStatus status;
  status.set_state(state);
  status.set_reason(std::move(reason));
  status.set_message(std::move(message));
  const auto at =
      google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(now));
  *status.mutable_update_time() = at;
  *status.mutable_end_time() = at;
  return status;
}

}  // namespace

bool TrialEnded(v1::JobStatus::State state) {
  return state == v1::JobStatus::COMPLETED || state == v1::JobStatus::FAILED ||
         state == v1::JobStatus::CANCELED;
}

SweepDecision DecideSweep(const v1::SweepSpec& spec, v1::SweepStatus::State state,
                          absl::Time created, const std::vector<DriverTrial>& trials,
                          absl::Time now) {
  SweepDecision decision;
  if (state != v1::SweepStatus::QUEUED && state != v1::SweepStatus::RUNNING) return decision;
  const int64_t stored = static_cast<int64_t>(trials.size());

  int64_t running = 0;
  for (const DriverTrial& trial : trials) {
    if (!TrialEnded(trial.job_state)) ++running;
  }

  const absl::Duration max_duration =
      absl::Seconds(spec.max_duration().seconds()) + absl::Nanoseconds(spec.max_duration().nanos());
  if (max_duration > absl::ZeroDuration() && now >= created + max_duration) {
    for (const DriverTrial& trial : trials) {
      if (!TrialEnded(trial.job_state)) decision.cancel.push_back(trial.index);
    }
    if (running == 0) {
      decision.end = Ended(v1::SweepStatus::COMPLETED, absl::StrCat("MAX_DURATION trials=", stored),
                           absl::StrCat("max_duration passed after ", stored, " trials"), now);
    }
    return decision;
  }

  // Early termination: every trial is compared; only running ones not stopped yet stop.
  if (spec.has_early_termination()) {
    std::vector<TrialMetrics> metrics;
    metrics.reserve(trials.size());
    for (const DriverTrial& trial : trials) {
      metrics.push_back(TrialMetrics{.trial_id = absl::StrCat(trial.index),
                                     .running = !TrialEnded(trial.job_state) && !trial.stopped,
                                     .series = trial.series});
    }
    decision.stop = EvaluateEarlyTermination(spec, metrics);
  }

  // New trials, up to the concurrency limit and the total.
  std::vector<FinishedTrial> finished;
  for (const DriverTrial& trial : trials) {
    if (!TrialEnded(trial.job_state)) continue;
    std::optional<double> best = BestValue(trial.series, spec.primary_metric_goal());
    if (best.has_value()) {
      finished.push_back(
          FinishedTrial{.index = trial.index, .parameters = trial.parameters, .result = *best});
    }
  }
  const int64_t total = spec.max_total_trials();
  bool exhausted = stored >= total;
  for (int64_t index = stored; !exhausted && running < spec.max_concurrent_trials(); ++index) {
    if (index >= total) {
      exhausted = true;
      break;
    }
    absl::StatusOr<TrialProposal> proposal = ProposeTrial(spec, index, finished);
    if (!proposal.ok()) {
      decision.start.clear();
      decision.end = Ended(v1::SweepStatus::FAILED, "PROPOSAL_FAILED",
                           absl::StrCat("trial ", index, ": ", proposal.status().message()), now);
      return decision;
    }
    if (proposal->exhausted) {
      exhausted = true;
      break;
    }
    decision.start.push_back(
        SweepDecision::Start{.index = index, .parameters = std::move(proposal->parameters)});
    ++running;
  }
  if (!exhausted && stored + static_cast<int64_t>(decision.start.size()) >= total) {
    exhausted = true;
  }
  if (exhausted && decision.start.empty() && running == 0) {
    const bool grid = spec.sampling().method() == v1::Sampling::GRID;
    decision.end =
        Ended(v1::SweepStatus::COMPLETED,
              absl::StrCat(grid ? "GRID_DONE" : "TRIAL_LIMIT", " trials=", stored),
              absl::StrCat("every trial ended (", stored, grid ? " grid points" : " trials", ")"),
              now);
  }
  return decision;
}

std::vector<size_t> RankTrials(const std::vector<std::optional<double>>& results,
                               v1::MetricGoal goal) {
  std::vector<size_t> order(results.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const bool maximize = goal == v1::MAXIMIZE;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const std::optional<double>& ra = results[a];
    const std::optional<double>& rb = results[b];
    if (ra.has_value() != rb.has_value()) return ra.has_value();
    if (!ra.has_value()) return false;
    return maximize ? *ra > *rb : *ra < *rb;
  });
  return order;
}

}  // namespace drover::scheduler
