// The checks of a sweep's search space, shared by ValidateSweepSpec (sweep_spec.cc) and
// written in sweep_space_rules.cc. Messages are worded as job_spec_rules.h's.
#ifndef DROVER_SCHEDULER_SWEEP_SPACE_RULES_H_
#define DROVER_SCHEDULER_SWEEP_SPACE_RULES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "drover/v1/sweep.pb.h"

namespace drover::scheduler::sweep_spec_internal {

// A double as messages show it (the form the script would get).
std::string Num(double d);
// INVALID_ARGUMENT naming `field` when `value` is NaN or infinite, ending with `fix`.
absl::Status CheckFinite(const std::string& field, double value, absl::string_view fix);
// sweep.search_space: 1 to kMaxSweepParameters parameters, each a valid flag name with a
// valid distribution, none passed by the trial template already.
absl::Status CheckSearchSpace(const v1::SweepSpec& spec);

}  // namespace drover::scheduler::sweep_spec_internal

#endif  // DROVER_SCHEDULER_SWEEP_SPACE_RULES_H_
