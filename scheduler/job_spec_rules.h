// Internal to the job-spec checks (job_spec*.cc): the limits of job.proto, the helpers that
// word every message the same way, and the checks of each section of a spec. Callers use
// scheduler/job_spec.h; nothing else includes this file but sweep_spec.cc, which words its
// messages the same way. Pure functions, any thread.
//
// Every check returns INVALID_ARGUMENT naming the field by its path from the request, as
// ValidateJobSpec documents, and reports only the first problem it finds.
#ifndef DROVER_SCHEDULER_JOB_SPEC_RULES_H_
#define DROVER_SCHEDULER_JOB_SPEC_RULES_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "drover/v1/job.pb.h"

namespace drover::scheduler::job_spec_internal {

// Limits from job.proto. The comments there are the user-facing statement of each one; keep
// both in step (and docs/job-spec.md).
inline constexpr size_t kMaxSpecBytes = 1 << 20;
inline constexpr size_t kMaxNameChars = 128;
inline constexpr size_t kMaxTags = 64;
inline constexpr size_t kMaxTagKeyChars = 63;
inline constexpr size_t kMaxTagValueBytes = 256;
inline constexpr size_t kMaxPathBytes = 1024;
inline constexpr size_t kMaxArguments = 1024;
inline constexpr size_t kMaxArgumentBytes = 32 * 1024;
inline constexpr size_t kMaxArgumentsTotalBytes = 128 * 1024;
inline constexpr size_t kMaxPoolNameChars = 63;  // compute targets and datastores
inline constexpr size_t kMaxImageChars = 512;
inline constexpr size_t kMaxImageTagChars = 128;
inline constexpr size_t kMaxPackages = 256;
inline constexpr size_t kMaxPackageBytes = 512;
inline constexpr size_t kMaxEnvVars = 256;
inline constexpr size_t kMaxEnvNameChars = 256;
inline constexpr size_t kMaxEnvValueBytes = 32 * 1024;
inline constexpr size_t kMaxEnvTotalBytes = 128 * 1024;
inline constexpr int32_t kMaxNodes = 1024;
inline constexpr int32_t kMaxProcessesPerNode = 256;
inline constexpr double kMaxCpus = 1024;
inline constexpr int64_t kMaxMemoryMib = int64_t{16} * 1024 * 1024;
inline constexpr int32_t kMaxGpus = 64;
inline constexpr int64_t kMaxShmMib = 1024 * 1024;
inline constexpr int64_t kMaxRunSeconds = int64_t{365} * 24 * 60 * 60;
inline constexpr int32_t kMinPriority = -1000;
inline constexpr int32_t kMaxPriority = 1000;
inline constexpr int32_t kMaxRetries = 100;
inline constexpr size_t kMaxOutputs = 16;
inline constexpr size_t kMaxInputs = 64;
inline constexpr size_t kMaxInputNameChars = 63;
inline constexpr size_t kMaxIdempotencyKeyChars = 128;

// Values longer than this are described by their size, not quoted, in messages.
inline constexpr size_t kMaxQuotedBytes = 64;

inline constexpr absl::string_view kDefaultName = "default";
inline constexpr absl::string_view kHostImage = "host";
inline constexpr absl::string_view kSha256Prefix = "sha256:";
inline constexpr absl::string_view kReservedEnvPrefix = "DROVER_";

// --- Wording of messages (job_spec_fields.cc) ---

// INVALID_ARGUMENT "`field`: `problem`".
absl::Status Invalid(absl::string_view field, absl::string_view problem);

// 'value', escaped so that a message stays one printable line; long values are cut.
std::string Quote(absl::string_view value);

// The path of a map entry as a client writes it: spec.tags['team'].
std::string MapField(absl::string_view map_field, absl::string_view key);

// The path of a list entry: spec.arguments[3].
std::string ListField(absl::string_view list_field, int index);

// "9 is out of range; use 1 to 8".
std::string OutOfRange(int64_t value, int64_t low, int64_t high);

// "300 bytes is too long; use at most 256 bytes".
std::string TooLong(size_t size, size_t max, absl::string_view unit);

// --- Shared field rules (job_spec_fields.cc) ---

// Whether `s` is exactly `count` digits of [0-9a-f].
bool IsLowerHexDigits(absl::string_view s, size_t count);

// [A-Za-z0-9._-]: job names, experiments, image tags.
bool IsNameChar(char c);
// [A-Za-z0-9._/-]: tag keys.
bool IsTagKeyChar(char c);
// [a-z0-9_-]: compute targets and datastores.
bool IsPoolNameChar(char c);

// The first character of `s` for which `allowed` is false, or npos.
template <typename Pred>
size_t FindDisallowed(absl::string_view s, Pred allowed) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!allowed(s[i])) return i;
  }
  return absl::string_view::npos;
}

// A name of 1..`max_chars` characters drawn from `allowed`, starting with a letter or digit.
// `rule` is the pattern as users read it in the docs, for the fix.
template <typename Pred>
absl::Status CheckName(absl::string_view field, absl::string_view value, size_t max_chars,
                       Pred allowed, absl::string_view rule) {
  const std::string fix = absl::StrCat("use 1-", max_chars, " characters of ", rule,
                                       " starting with a letter or digit");
  if (value.empty()) return Invalid(field, absl::StrCat("is empty; ", fix));
  if (value.size() > max_chars) {
    return Invalid(field,
                   absl::StrCat(TooLong(value.size(), max_chars, "characters"), " of ", rule));
  }
  if (size_t bad = FindDisallowed(value, allowed); bad != absl::string_view::npos) {
    return Invalid(field, absl::StrCat(Quote(value), " has the character ",
                                       Quote(value.substr(bad, 1)), " outside ", rule, "; ", fix));
  }
  if (!absl::ascii_isalnum(value[0])) {
    return Invalid(field,
                   absl::StrCat(Quote(value), " does not start with a letter or digit; ", fix));
  }
  return absl::OkStatus();
}

// A job name or experiment: CheckName with [A-Za-z0-9._-], at most kMaxNameChars.
absl::Status CheckJobName(absl::string_view field, absl::string_view value);

// A compute target or datastore name: CheckName with [a-z0-9_-], at most kMaxPoolNameChars.
absl::Status CheckPoolName(absl::string_view field, absl::string_view value);

// A relative path that stays inside its root: no leading '/', no '..' component, no NUL,
// valid UTF-8, at most kMaxPathBytes. `root` names what it is relative to, for the message.
absl::Status CheckRelativePath(absl::string_view field, absl::string_view path,
                               absl::string_view root);

// --- The sections of a spec, each in its own file ---

// spec.environment: image, pip and conda packages, env and secret_env
// (job_spec_environment.cc).
absl::Status CheckEnvironment(const v1::Environment& env);

// spec.arguments, with the data references among them (job_spec_data.cc).
absl::Status CheckArguments(const google::protobuf::RepeatedPtrField<v1::Argument>& arguments);

// spec.inputs: named data references given in the environment (job_spec_data.cc).
absl::Status CheckInputs(const google::protobuf::RepeatedPtrField<v1::DataInput>& inputs);

// spec.outputs: the datastore folders that receive outputs/ (job_spec_data.cc).
absl::Status CheckOutputs(const google::protobuf::RepeatedPtrField<v1::OutputTarget>& outputs);

// spec.node_count, spec.process_count_per_node and spec.distributed_backend, together
// (job_spec_resources.cc).
absl::Status CheckDistribution(const v1::JobSpec& spec);

// spec.resources, which must agree with spec.environment.use_gpu (job_spec_resources.cc).
absl::Status CheckResources(const v1::Resources& r, bool use_gpu);

}  // namespace drover::scheduler::job_spec_internal

#endif  // DROVER_SCHEDULER_JOB_SPEC_RULES_H_
