// Sweep driver: what droverd does next for one sweep (sweep.proto, docs/sweeps.md), decided
// from the sweep as it stands: which trials to start now (indices and parameters), which
// running trials its early-termination policy stops, and whether the sweep ends.
//
// Pure and stateless: the answer is a function of the stored trials, their jobs' states,
// their primary metric and the time, so droverd may ask after any event (a trial ended, a
// batch of metrics, a tick), and a restarted droverd gets the same answer from the same
// store. Trials are started in index order (0, 1, ...) and an index is stored at most once
// (Store::CreateTrials), so the next index is always the number of trials stored; trial
// i's parameters are a pure function of (spec, i, the finished trials' results), so a
// proposal lost in a crash before it was stored is proposed again as the same trial, or,
// for TPE with more results by then, as a trial no one ever saw. Any thread.
#ifndef DROVER_SCHEDULER_SWEEP_DRIVER_H_
#define DROVER_SCHEDULER_SWEEP_DRIVER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/sweep.pb.h"
#include "scheduler/sweep_policy.h"
#include "scheduler/sweep_sampling.h"
#include "scheduler/sweep_spec.h"

namespace drover::scheduler {

// A stored trial as the driver reads it.
struct DriverTrial {
  int64_t index = 0;
  ParameterAssignment parameters;
  // Its job's state now; a terminal state (COMPLETED, FAILED, CANCELED) ends the trial.
  v1::JobStatus::State job_state = v1::JobStatus::QUEUED;
  // Whether the early-termination policy already stopped it (a stop record is stored).
  bool stopped = false;
  // Its primary metric as rank 0 logged it so far.
  MetricSeries series;
};

// What the driver decides for a sweep now.
struct SweepDecision {
  // Trials to start now, in index order, each with its parameters (ProposeTrial's).
  struct Start {
    int64_t index = 0;
    ParameterAssignment parameters;
  };
  std::vector<Start> start;
  // Running trials its policy stops now (sweep_policy.h; trial_id is the index in decimal).
  std::vector<EarlyStop> stop;
  // Trials to cancel now because the sweep's max_duration passed (indices).
  std::vector<int64_t> cancel;
  // Set when the sweep ends now: COMPLETED with its reason ("TRIAL_LIMIT trials=N",
  // "GRID_DONE trials=N", "MAX_DURATION trials=N"), or FAILED when a proposal failed.
  std::optional<v1::SweepStatus> end;
};

// Whether a job state ends a trial.
bool TrialEnded(v1::JobStatus::State state);

// The decision for a sweep in state `state` (QUEUED or RUNNING; an ended sweep gets an
// empty decision) created at `created`, with its stored `trials` (every index from 0 to
// trials.size() - 1, in order), at time `now`. `spec` passed ValidateSweepSpec after
// ApplySweepSpecDefaults.
//   - Concurrency: trials not ended (stopped ones included until their job ends) count
//     against max_concurrent_trials; new ones are started up to it, and up to
//     max_total_trials (or the grid) in all.
//   - TPE reads the ended trials' results (BestValue of their series).
//   - max_duration passed: nothing starts; every trial not ended is canceled; the sweep
//     ends COMPLETED ("MAX_DURATION") once none is running.
//   - The sweep ends COMPLETED once no trial runs and no more may start.
SweepDecision DecideSweep(const v1::SweepSpec& spec, v1::SweepStatus::State state,
                          absl::Time created, const std::vector<DriverTrial>& trials,
                          absl::Time now);

// The trials ranked as `drover sweep show` lists them: those with a result first, best
// first (ties by index), then those without, by index. Returns indices into `results`,
// each a trial's result (nullopt: none yet).
std::vector<size_t> RankTrials(const std::vector<std::optional<double>>& results,
                               v1::MetricGoal goal);

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_SWEEP_DRIVER_H_
