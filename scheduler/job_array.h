// Job arrays (docs/job-arrays.md): the indices of an ArraySpec, its checks, the tasks one
// array submit becomes, and the limit on how many of an array's tasks are placed at once.
// Pure functions, any thread.
#ifndef DROVER_SCHEDULER_JOB_ARRAY_H_
#define DROVER_SCHEDULER_JOB_ARRAY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "drover/v1/job.pb.h"

namespace drover::scheduler {

// Limits of ArraySpec (job.proto; keep docs/job-arrays.md in step).
inline constexpr int64_t kMaxArrayTasks = 100000;
inline constexpr int64_t kMaxArrayIndex = 2147483647;
inline constexpr size_t kMaxArrayIndicesBytes = 4096;
// The tag every task carries with its array's id: ListJobs finds an array's tasks by it.
// Users may neither set nor change it.
inline constexpr char kArrayTag[] = "drover.array";

// The indices `text` names ("0-999", "1,3,7-9", "0-99:5"), ascending, each once.
// INVALID_ARGUMENT naming `field` and what to write otherwise: an empty text or item, junk,
// an inverted range, a step below 1, an index above kMaxArrayIndex (no overflow on any
// input), more than kMaxArrayTasks tasks.
absl::StatusOr<std::vector<int64_t>> ParseArrayIndices(absl::string_view field,
                                                       absl::string_view text);

// Checks `spec.array` (when set) and refuses a submitted `spec.array_task` (droverd sets
// it). INVALID_ARGUMENT naming "spec.array.indices", "spec.array.max_running" or
// "spec.array_task". Part of ValidateJobSpec.
absl::Status CheckJobArray(const v1::JobSpec& spec);

// An array's id, "a-" and 16 lowercase hex digits of `seed`.
std::string FormatArrayId(uint64_t seed);
// Whether `id` is written as FormatArrayId writes it.
bool IsArrayId(absl::string_view id);

// The tasks of array job `array` (its spec validated, `spec.array` set): one job per index
// of `indices`, in that order, each with `array`'s status, owner and create time and its
// spec with `array` cleared, `array_task` set and the tag kArrayTag = `array_id`. With an
// idempotency key K, task I gets the key "K/I", so that a retried submit finds every task.
// Each task past the first `max_running` starts with the reason ArrayLimitReason.
std::vector<v1::Job> MakeArrayTasks(const v1::Job& array, const std::string& array_id,
                                    const std::vector<int64_t>& indices);

// The reason of a task held back by its array's limit:
// "ARRAY_LIMIT array=a-... max_running=N".
std::string ArrayLimitReason(const v1::ArrayTask& task);
std::string ArrayLimitReason(absl::string_view array_id, int32_t max_running);

// Whether a job in `state` counts against its array's `max_running`: every state from
// PREPARING to the end of the attempt (not QUEUED, not terminal).
bool CountsAgainstArrayLimit(v1::JobStatus::State state);

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_JOB_ARRAY_H_
