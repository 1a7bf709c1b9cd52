// Sweep sampling: which parameters a sweep's next trial runs with (sweep.proto's Sampling,
// docs/sweeps.md). GRID enumerates the grid, RANDOM draws from each distribution, TPE
// draws where the finished trials with good results are dense.
//
// Pure and deterministic: a proposal depends only on the spec, the trial's index and (TPE)
// the finished trials given, never on the time, the order of calls or the C++ library's
// random distributions. Random bits come from SplitMix64 and become doubles by exact
// arithmetic, so RANDOM's choice, randint, uniform and quniform draws are the same bits on
// every platform; loguniform, normal and TPE's densities also go through the C library's
// exp, log, cos and erf, which C libraries may round differently in the last bit. Any
// thread.
#ifndef DROVER_SCHEDULER_SWEEP_SAMPLING_H_
#define DROVER_SCHEDULER_SWEEP_SAMPLING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "drover/v1/sweep.pb.h"
#include "scheduler/sweep_spec.h"

namespace drover::scheduler {

// A trial that ended with a result, as the samplers read it.
struct FinishedTrial {
  // The trial's index (0 for the sweep's first trial); breaks ties between equal results.
  int64_t index = 0;
  ParameterAssignment parameters;
  // The trial's primary metric (BestValue of its series, sweep_policy.h). Trials without a
  // finite result are left out by the caller, or ignored here.
  double result = 0;
};

// What ProposeTrial answers.
struct TrialProposal {
  // No trial `index`: it is at least max_total_trials, or (GRID) the grid's size.
  bool exhausted = false;
  // The trial's parameters, one for every parameter of the search space (empty when
  // exhausted).
  ParameterAssignment parameters;
};

// The parameters of trial `index` (0, 1, ...) of a sweep that passed ValidateSweepSpec
// after ApplySweepSpecDefaults. `finished` are the trials that ended with a result so far,
// in any order; only TPE reads them, and ignores a trial's value of a parameter that does
// not fit the parameter's distribution (a spec changed under it). Calling it again with
// the same arguments gives the same answer.
//   GRID: the index-th combination (sweep.proto's Sampling.GRID gives the order).
//   RANDOM: independent draws seeded by (seed, index).
//   TPE: RANDOM's draw while fewer than n_startup_trials trials finished with a finite
//     result; otherwise, for each parameter, the best of n_ei_candidates candidates drawn
//     from the good trials' density l(x) by l(x) / g(x).
// INVALID_ARGUMENT when `index` is negative.
absl::StatusOr<TrialProposal> ProposeTrial(const v1::SweepSpec& spec, int64_t index,
                                           const std::vector<FinishedTrial>& finished);

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_SWEEP_SAMPLING_H_
