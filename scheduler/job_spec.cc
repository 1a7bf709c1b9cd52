#include "scheduler/job_spec.h"

// Placeholder until the validation lands in the next commit.
namespace drover::scheduler {
void ApplyJobSpecDefaults(v1::JobSpec* spec) {}
absl::Status ValidateJobSpec(const v1::JobSpec& spec) { return absl::OkStatus(); }
}  // namespace drover::scheduler
