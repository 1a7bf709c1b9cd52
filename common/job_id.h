// Job ids: "j-" followed by the job's sequence number in the store ("j-42"). Pure functions,
// any thread.
#ifndef DROVER_COMMON_JOB_ID_H_
#define DROVER_COMMON_JOB_ID_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace drover {

// "j-42" for 42.
std::string FormatJobId(int64_t sequence);

// The sequence number of a job id. Accepts "j-42" and, for convenience on the command line,
// "42". INVALID_ARGUMENT for anything else, with a message naming `field`.
absl::StatusOr<int64_t> ParseJobId(absl::string_view id, absl::string_view field = "job_id");

}  // namespace drover

#endif  // DROVER_COMMON_JOB_ID_H_
