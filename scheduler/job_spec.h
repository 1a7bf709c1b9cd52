// Job spec defaults and validation: what droverd checks before it stores a submitted job.
// Pure functions, any thread.
#ifndef DROVER_SCHEDULER_JOB_SPEC_H_
#define DROVER_SCHEDULER_JOB_SPEC_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "drover/v1/job.pb.h"

namespace drover::scheduler {

// Fills every field the user left empty with its documented default (see job.proto), so the
// stored spec shows exactly what will run. Never changes a field the user set.
void ApplyJobSpecDefaults(v1::JobSpec* spec);

// Checks every field of a spec after ApplyJobSpecDefaults. Returns INVALID_ARGUMENT whose
// message names the field by its path from the request ("spec.environment.env['X']",
// "spec.arguments[3].data.datastore"), the offending value where short, and what to do:
//   spec.node_count: 0 is out of range; use 1 to 1024
// Only the first problem found is reported.
absl::Status ValidateJobSpec(const v1::JobSpec& spec);

// The rules of a job's tags, for a submitted spec and for a change of a submitted job's
// tags (JobService.UpdateJobTags): at most 64 tags, keys of 1-63 characters of
// [A-Za-z0-9._/-] starting with a letter or digit, values of at most 256 bytes of UTF-8. INVALID_ARGUMENT naming the entry
// as `field_name` plus the key ("tags['bad key']: ...") otherwise; the first problem only.
absl::Status CheckJobTags(absl::string_view field_name,
                          const google::protobuf::Map<std::string, std::string>& tags);

// The rules a job's data references apply to datastores, for the datastore registry too:
// a name is 1-63 characters of [a-z0-9_-] starting with a letter or digit (as compute
// targets); a path inside a datastore is relative, without a ".." component, at most 1024
// bytes of UTF-8 without NUL (empty: the root). INVALID_ARGUMENT naming `field` otherwise.
absl::Status CheckDatastoreName(absl::string_view field, absl::string_view name);
absl::Status CheckDatastorePath(absl::string_view field, absl::string_view path);

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_JOB_SPEC_H_
