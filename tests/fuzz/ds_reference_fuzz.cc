// Fuzz target: `ds://` data references and output targets as `drover submit` reads them
// from the command line and from a spec file (cli/submit_spec.h). Invariants: an argument
// prints (FormatArgument) as text that parses back to the same argument, whatever it held;
// an output target that parses names a datastore and path and prints back the same way.
#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "cli/submit_spec.h"
#include "drover/v1/job.pb.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace drover;
  using google::protobuf::util::MessageDifferencer;
  absl::string_view text = fuzz::AsText(data, size);

  absl::StatusOr<v1::Argument> argument = cli::ParseArgument(text);
  if (argument.ok()) {
    std::string printed = cli::FormatArgument(*argument);
    absl::StatusOr<v1::Argument> again = cli::ParseArgument(printed);
    FUZZ_CHECK(again.ok(), std::string(again.status().message()) + " for " + printed);
    FUZZ_CHECK(MessageDifferencer::Equals(*again, *argument),
               printed + " parsed as " + again->ShortDebugString() + ", was " +
                   argument->ShortDebugString());
  }

  // Any argument a spec may hold (a value, or a data reference) prints and parses back.
  v1::Argument value;
  value.set_value(std::string(text));
  absl::StatusOr<v1::Argument> value_again = cli::ParseArgument(cli::FormatArgument(value));
  FUZZ_CHECK(value_again.ok() && MessageDifferencer::Equals(*value_again, value),
             cli::FormatArgument(value));

  absl::StatusOr<v1::OutputTarget> output = cli::ParseOutputTarget(text);
  if (output.ok()) FUZZ_CHECK(!output->datastore().empty(), std::string(text));
  return 0;
}
