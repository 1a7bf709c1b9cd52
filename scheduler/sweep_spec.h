// Sweep spec defaults and validation, and how a trial's job is made from the sweep's
// template: what droverd checks before it stores a submitted sweep (sweep.proto,
// docs/sweeps.md). Pure functions, any thread.
#ifndef DROVER_SCHEDULER_SWEEP_SPEC_H_
#define DROVER_SCHEDULER_SWEEP_SPEC_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/sweep.pb.h"

namespace drover::scheduler {

// Limits of sweep.proto; keep both in step (and docs/sweeps.md).
inline constexpr int32_t kMaxSweepTrials = 10000;
inline constexpr int64_t kMaxGridPoints = kMaxSweepTrials;
inline constexpr size_t kMaxSweepParameters = 64;
inline constexpr size_t kMaxChoiceValues = 1000;
inline constexpr size_t kMaxParameterNameChars = 63;
inline constexpr size_t kMaxParameterTextBytes = 1024;
inline constexpr int32_t kMaxEvaluationInterval = 1000000;
inline constexpr int32_t kDefaultTpeStartupTrials = 10;
inline constexpr double kDefaultTpeGamma = 0.25;
inline constexpr int32_t kDefaultTpeCandidates = 24;
inline constexpr int32_t kMaxTpeCandidates = 1000;

// One trial's parameters: a value for every parameter of the search space, by name (so in
// the order the script receives them).
using ParameterAssignment = std::map<std::string, v1::ParameterValue>;

// Fills every field the user left empty with its documented default (sweep.proto): the
// trial template's own defaults (ApplyJobSpecDefaults), RANDOM sampling, TPE's knobs,
// GRID's max_total_trials (the grid's size), max_concurrent_trials, evaluation_interval.
// Never changes a field the user set, except that GRID's max_total_trials is cut to the
// grid's size.
void ApplySweepSpecDefaults(v1::SweepSpec* spec);

// Checks every field of a spec after ApplySweepSpecDefaults, the trial template with
// ValidateJobSpec included (its fields named "sweep.trial_template.*"). Returns
// INVALID_ARGUMENT whose message names the field by its path from the request and says
// what to do:
//   sweep.search_space['lr'].loguniform.min: nan is not a number; use a finite natural logarithm
// Only the first problem found is reported.
absl::Status ValidateSweepSpec(const v1::SweepSpec& spec);

// The number of combinations GRID enumerates: the product of the `choice` sizes, capped at
// kMaxGridPoints + 1 (so "too large" needs no overflow care). 0 when a parameter is not a
// `choice` or has no value.
int64_t GridSize(const v1::SweepSpec& spec);

// A parameter value as the script receives it: a number in its shortest form that reads
// back to the same double ("64", "0.001", "1e-05", "-2.5"), a text as it is.
std::string FormatParameterValue(const v1::ParameterValue& value);

// The arguments a trial appends to the template's: "--NAME", VALUE for each parameter in
// name order.
std::vector<std::string> TrialArguments(const ParameterAssignment& parameters);

// The job spec of a trial of a valid sweep: the template, with TrialArguments appended and
// max_run_duration the smaller of the template's and the sweep's max_trial_duration.
v1::JobSpec MakeTrialSpec(const v1::SweepSpec& spec, const ParameterAssignment& parameters);

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_SWEEP_SPEC_H_
