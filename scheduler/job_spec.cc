// ApplyJobSpecDefaults and ValidateJobSpec: the order in which a spec's sections are checked
// (so which problem is reported first), and the checks of the fields that belong to no
// section of their own: names, tags, the source, the run's limits, the idempotency key.
// The sections are checked in job_spec_environment.cc, job_spec_data.cc and
// job_spec_resources.cc; the limits and the wording of messages are in job_spec_rules.h.
#include "scheduler/job_spec.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/utf8.h"
#include "scheduler/job_array.h"
#include "scheduler/job_spec_rules.h"

namespace drover::scheduler {
namespace {

using v1::Argument;
using v1::DataReference;
using v1::Environment;
using v1::JobSpec;
using v1::Resources;

using job_spec_internal::CheckArguments;
using job_spec_internal::CheckDistribution;
using job_spec_internal::CheckEnvironment;
using job_spec_internal::CheckJobName;
using job_spec_internal::CheckName;
using job_spec_internal::CheckInputs;
using job_spec_internal::CheckOutputs;
using job_spec_internal::CheckPoolName;
using job_spec_internal::CheckRelativePath;
using job_spec_internal::CheckResources;
using job_spec_internal::Invalid;
using job_spec_internal::IsLowerHexDigits;
using job_spec_internal::IsTagKeyChar;
using job_spec_internal::kDefaultName;
using job_spec_internal::kHostImage;
using job_spec_internal::kMaxIdempotencyKeyChars;
using job_spec_internal::kMaxPriority;
using job_spec_internal::kMaxRetries;
using job_spec_internal::kMaxRunSeconds;
using job_spec_internal::kMaxSpecBytes;
using job_spec_internal::kMaxTagKeyChars;
using job_spec_internal::kMaxTags;
using job_spec_internal::kMaxTagValueBytes;
using job_spec_internal::kMinPriority;
using job_spec_internal::kSha256Prefix;
using job_spec_internal::MapField;
using job_spec_internal::OutOfRange;
using job_spec_internal::Quote;
using job_spec_internal::TooLong;

absl::Status CheckMaxRunDuration(const JobSpec& spec) {
  if (!spec.has_max_run_duration()) return absl::OkStatus();
  constexpr absl::string_view kField = "spec.max_run_duration";
  const int64_t seconds = spec.max_run_duration().seconds();
  const int32_t nanos = spec.max_run_duration().nanos();
  if (nanos < -999'999'999 || nanos > 999'999'999 || (seconds > 0 && nanos < 0) ||
      (seconds < 0 && nanos > 0)) {
    return Invalid(kField, absl::StrCat("nanos ", nanos,
                                        " is malformed; use 0 to 999999999 with the sign of "
                                        "seconds"));
  }
  const std::string shown = absl::FormatDuration(absl::Seconds(seconds) + absl::Nanoseconds(nanos));
  if (seconds < 0 || nanos < 0) {
    return Invalid(kField, absl::StrCat(shown, " is negative; use 0 (no limit) up to ",
                                        kMaxRunSeconds, "s (365 days)"));
  }
  if (seconds > kMaxRunSeconds || (seconds == kMaxRunSeconds && nanos > 0)) {
    return Invalid(kField, absl::StrCat(shown, " is over the limit; use at most ", kMaxRunSeconds,
                                        "s (365 days), or 0 for no limit"));
  }
  return absl::OkStatus();
}

absl::Status CheckIdempotencyKey(absl::string_view key) {
  constexpr absl::string_view kField = "spec.idempotency_key";
  if (key.size() > kMaxIdempotencyKeyChars) {
    return Invalid(kField, TooLong(key.size(), kMaxIdempotencyKeyChars, "characters"));
  }
  for (char c : key) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) {
      return Invalid(kField, absl::StrCat(Quote(key),
                                          " has a character that is not printable ASCII; use "
                                          "printable ASCII only"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckJobTags(absl::string_view field_name,
                          const google::protobuf::Map<std::string, std::string>& tags) {
  if (static_cast<size_t>(tags.size()) > kMaxTags) {
    return Invalid(field_name,
                   absl::StrCat(tags.size(), " tags are too many; use at most ", kMaxTags));
  }
  std::vector<absl::string_view> keys;
  keys.reserve(tags.size());
  for (const auto& [key, value] : tags) keys.push_back(key);
  absl::c_sort(keys);
  for (absl::string_view key : keys) {
    const std::string field = MapField(field_name, key);
    if (absl::Status s = CheckName(field, key, kMaxTagKeyChars, IsTagKeyChar, "[A-Za-z0-9._/-]");
        !s.ok()) {
      return s;
    }
    const std::string& value = tags.at(std::string(key));
    if (value.size() > kMaxTagValueBytes) {
      return Invalid(field,
                     absl::StrCat("value ", TooLong(value.size(), kMaxTagValueBytes, "bytes")));
    }
    if (!IsValidUtf8(value)) return Invalid(field, "value is not valid UTF-8; fix the encoding");
  }
  return absl::OkStatus();
}

void ApplyJobSpecDefaults(v1::JobSpec* spec) {
  if (spec->experiment().empty()) spec->set_experiment(std::string(kDefaultName));
  if (spec->compute_target().empty()) spec->set_compute_target(std::string(kDefaultName));
  Environment* env = spec->mutable_environment();
  if (env->image().empty()) env->set_image(std::string(kHostImage));
  if (spec->node_count() == 0) spec->set_node_count(1);
  if (spec->process_count_per_node() == 0) spec->set_process_count_per_node(1);
  if (spec->distributed_backend() == JobSpec::DISTRIBUTED_BACKEND_UNSPECIFIED) {
    spec->set_distributed_backend(JobSpec::NONE);
  }
  Resources* r = spec->mutable_resources();
  if (r->cpus() == 0) r->set_cpus(1);
  if (r->memory_mib() == 0) r->set_memory_mib(1024);
  if (r->gpus() == 0 && env->use_gpu()) r->set_gpus(1);
  if (r->shm_mib() == 0) r->set_shm_mib(1024);
  for (Argument& arg : *spec->mutable_arguments()) {
    if (arg.has_data() && arg.data().mode() == DataReference::MODE_UNSPECIFIED) {
      arg.mutable_data()->set_mode(DataReference::MOUNT);
    }
  }
  for (v1::DataInput& input : *spec->mutable_inputs()) {
    if (input.data().mode() == DataReference::MODE_UNSPECIFIED) {
      input.mutable_data()->set_mode(DataReference::MOUNT);
    }
  }
}

absl::Status ValidateJobSpec(const v1::JobSpec& spec) {
  // First, so that an oversized spec (unknown fields included) costs no further work.
  if (size_t size = spec.ByteSizeLong(); size > kMaxSpecBytes) {
    return Invalid("spec", absl::StrCat(size, " bytes serialized is over the limit; use at most ",
                                        kMaxSpecBytes,
                                        " bytes (1 MiB), and move large data into the source "
                                        "snapshot or a datastore"));
  }
  if (!spec.name().empty()) {
    if (absl::Status s = CheckJobName("spec.name", spec.name()); !s.ok()) return s;
  }
  if (absl::Status s = CheckJobName("spec.experiment", spec.experiment()); !s.ok()) return s;
  if (absl::Status s = CheckJobTags("spec.tags", spec.tags()); !s.ok()) return s;

  if (!spec.source_snapshot().empty()) {
    absl::string_view digest = spec.source_snapshot();
    if (!absl::ConsumePrefix(&digest, kSha256Prefix) || !IsLowerHexDigits(digest, 64)) {
      return Invalid("spec.source_snapshot",
                     absl::StrCat(Quote(spec.source_snapshot()),
                                  " is not a snapshot digest; write 'sha256:' followed by 64 "
                                  "lowercase hex digits, as `drover submit` does"));
    }
  }
  if (spec.entry_script().empty()) {
    return Invalid("spec.entry_script",
                   "is empty; name the script to run, relative to the source folder, such as "
                   "'train.py'");
  }
  if (absl::Status s =
          CheckRelativePath("spec.entry_script", spec.entry_script(), "the source folder");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckArguments(spec.arguments()); !s.ok()) return s;

  if (absl::Status s = CheckPoolName("spec.compute_target", spec.compute_target()); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckEnvironment(spec.environment()); !s.ok()) return s;

  if (absl::Status s = CheckDistribution(spec); !s.ok()) return s;
  if (absl::Status s = CheckResources(spec.resources(), spec.environment().use_gpu()); !s.ok()) {
    return s;
  }

  if (absl::Status s = CheckMaxRunDuration(spec); !s.ok()) return s;
  if (spec.priority() < kMinPriority || spec.priority() > kMaxPriority) {
    return Invalid("spec.priority", OutOfRange(spec.priority(), kMinPriority, kMaxPriority));
  }
  if (spec.max_retries() < 0 || spec.max_retries() > kMaxRetries) {
    return Invalid("spec.max_retries", OutOfRange(spec.max_retries(), 0, kMaxRetries));
  }
  if (absl::Status s = CheckInputs(spec.inputs()); !s.ok()) return s;
  if (absl::Status s = CheckOutputs(spec.outputs()); !s.ok()) return s;
  if (absl::Status s = CheckJobArray(spec); !s.ok()) return s;
  if (spec.has_sweep_trial()) {
    return Invalid("spec.sweep_trial",
                   "is set by droverd on the trial jobs of a sweep; leave it empty and submit "
                   "a sweep instead (drover sweep submit)");
  }
  return CheckIdempotencyKey(spec.idempotency_key());
}

}  // namespace drover::scheduler
