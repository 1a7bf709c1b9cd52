// Fuzz target: a JobSpec in its JSON form (`drover submit -f FILE`, cli/submit_spec.h) and
// droverd's defaults and validation of it (scheduler/job_spec.h). Invariants: a spec that
// parses is written back as JSON that parses to the same spec (what `drover job show`
// prints can be submitted again); defaults are idempotent; and what validation accepts is
// usable: its arguments print and parse back as themselves, its data references name
// datastores and paths the datastore rules accept.
#include <google/protobuf/util/json_util.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cli/submit_spec.h"
#include "common/proto_bytes.h"
#include "drover/v1/job.pb.h"
#include "scheduler/job_spec.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover;
  absl::StatusOr<v1::JobSpec> spec = cli::ParseJobSpecJson(fuzz::AsText(data, size));
  if (!spec.ok()) return 0;

  std::string json;
  FUZZ_CHECK(google::protobuf::util::MessageToJsonString(*spec, &json).ok(),
             spec->ShortDebugString());
  absl::StatusOr<v1::JobSpec> back = cli::ParseJobSpecJson(json);
  FUZZ_CHECK(back.ok(), std::string(back.status().message()) + " in " + json);
  FUZZ_CHECK(SerializeDeterministic(*back) == SerializeDeterministic(*spec),
             json + " parsed as " + back->ShortDebugString());

  v1::JobSpec stored = *spec;
  scheduler::ApplyJobSpecDefaults(&stored);
  v1::JobSpec twice = stored;
  scheduler::ApplyJobSpecDefaults(&twice);
  FUZZ_CHECK(SerializeDeterministic(twice) == SerializeDeterministic(stored),
             stored.ShortDebugString());
  if (!scheduler::ValidateJobSpec(stored).ok()) return 0;

  for (int i = 0; i < stored.arguments_size(); ++i) {
    const v1::Argument& argument = stored.arguments(i);
    std::string text = cli::FormatArgument(argument);
    absl::StatusOr<v1::Argument> again = cli::ParseArgument(text);
    FUZZ_CHECK(again.ok(), std::string(again.status().message()) + " for " + text);
    FUZZ_CHECK(SerializeDeterministic(*again) == SerializeDeterministic(argument),
               text + " parsed as " + again->ShortDebugString() + ", was " + argument.ShortDebugString());
    if (argument.has_data()) {
      FUZZ_CHECK(scheduler::CheckDatastoreName("x", argument.data().datastore()).ok(), text);
      FUZZ_CHECK(scheduler::CheckDatastorePath("x", argument.data().path()).ok(), text);
    }
  }
  for (const v1::DataInput& input : stored.inputs()) {
    // A valid input's name is a variable name, and `--input` reads back what it wrote.
    std::string text = absl::StrCat(input.name(), "=", cli::FormatDataReference(input.data()));
    absl::StatusOr<v1::DataInput> again = cli::ParseInput(text);
    FUZZ_CHECK(again.ok(), std::string(again.status().message()) + " for " + text);
    FUZZ_CHECK(SerializeDeterministic(*again) == SerializeDeterministic(input),
               text + " parsed as " + again->ShortDebugString() + ", was " + input.ShortDebugString());
    for (char c : input.name()) FUZZ_CHECK(absl::ascii_isalnum(c) || c == '_', text);
  }
  for (const v1::OutputTarget& output : stored.outputs()) {
    FUZZ_CHECK(scheduler::CheckDatastoreName("x", output.datastore()).ok(), output.ShortDebugString());
    FUZZ_CHECK(scheduler::CheckDatastorePath("x", output.path()).ok(), output.ShortDebugString());
  }
  return 0;
}
