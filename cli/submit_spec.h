// How `drover submit` turns its command line into a JobSpec: the spec flags, the `-f FILE`
// JSON form, and the SCRIPT ARGS positionals with their `ds://` data references. Pure
// functions and a value type; no I/O except through the readers passed in. Main thread.
#ifndef DROVER_CLI_SUBMIT_SPEC_H_
#define DROVER_CLI_SUBMIT_SPEC_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/flags.h"
#include "drover/v1/job.pb.h"

namespace drover::cli {

// One command-line argument of the entry script:
//   ds://NAME/PATH[?mode=mount|download|upload][&rw=true]  a data reference
//   \ds://...                                              the literal text ds://... (one
//                                                          leading backslash is removed)
//   anything else                                          a literal string
// INVALID_ARGUMENT names the argument and the accepted syntax.
absl::StatusOr<v1::Argument> ParseArgument(absl::string_view text);

// The text of an argument as a user would type it back: the inverse of ParseArgument.
std::string FormatArgument(const v1::Argument& argument);

// A data reference as the user would type it: ds://NAME/PATH[?mode=...][&rw=true].
std::string FormatDataReference(const v1::DataReference& ref);

// A named input written NAME=ds://DATASTORE/PATH[?mode=...][&rw=true] (spec.inputs; the
// name is checked by droverd). INVALID_ARGUMENT naming the text and the syntax otherwise.
absl::StatusOr<v1::DataInput> ParseInput(absl::string_view text);

// An output target written `ds://NAME/PATH` (PATH: the folder inside the datastore that
// receives the job's outputs/). INVALID_ARGUMENT naming the text and the syntax otherwise.
absl::StatusOr<v1::OutputTarget> ParseOutputTarget(absl::string_view text);

// Parses a JobSpec written in protobuf's JSON form. Field names may be the proto names
// (`node_count`) or the JSON names (`nodeCount`); enum values any case ("pytorch"). An
// entry of `arguments` may also be a plain string, read as on the command line by
// ParseArgument: ["--data", "ds://imagenet/train?mode=download"], and an entry of `outputs`
// a string read by ParseOutputTarget: ["ds://results/run7"]. INVALID_ARGUMENT carries the
// parser's message, or names the entry ("arguments[1]: ...", "outputs[0]: ...").
absl::StatusOr<v1::JobSpec> ParseJobSpecJson(absl::string_view json);

// Reads a file named on the command line ("-" is stdin); NOT_FOUND / PERMISSION_DENIED /
// INTERNAL with a readable message.
using FileReader = std::function<absl::StatusOr<std::string>(const std::string& path)>;
// Looks up a variable of the CLI's own environment.
using EnvLookup = std::function<std::optional<std::string>(absl::string_view name)>;

// The flags of `drover submit` that describe the job. Register() binds them to a FlagSet;
// after FlagSet::Parse, Build() produces the spec.
class SubmitSpecFlags {
 public:
  void Register(FlagSet* flags);

  // The spec: the `-f` file's fields if one was given, then every spec flag given on the
  // command line (scalars replace the file's value; --tag and --env add or replace single
  // keys; --pip, --conda and --outputs-to replace the file's lists), then `positional`
  // (SCRIPT, then its ARGS, replacing the file's entry script and arguments).
  // INVALID_ARGUMENT for a bad value or a missing entry script, with a message meant for the
  // user; errors reading the file keep their code.
  absl::StatusOr<v1::JobSpec> Build(const FlagSet& flags, const std::vector<std::string>& positional,
                                    const FileReader& read_file, const EnvLookup& getenv) const;

 private:
  std::string file_;
  std::string name_;
  std::string experiment_;
  std::vector<std::string> tags_;
  std::string target_;
  std::string image_;
  std::vector<std::string> pip_;
  std::vector<std::string> conda_;
  std::vector<std::string> env_;
  std::vector<std::string> secret_env_;
  std::vector<std::string> inputs_;
  std::vector<std::string> outputs_to_;
  bool gpu_ = false;
  bool horovod_ = false;
  int32_t nodes_ = 0;
  int32_t processes_per_node_ = 0;
  v1::JobSpec::DistributedBackend backend_ = v1::JobSpec::DISTRIBUTED_BACKEND_UNSPECIFIED;
  double cpus_ = 0;
  int64_t memory_mib_ = 0;
  int32_t gpus_ = 0;
  int64_t shm_mib_ = 0;
  absl::Duration max_run_duration_ = absl::ZeroDuration();
  int32_t priority_ = 0;
  int32_t max_retries_ = 0;
  std::string snapshot_;
  std::string idempotency_key_;
  std::string array_;
};

// Parses --array's "INDICES[%N]" ("0-999%50", "1,3,7-9"): the indices as written (droverd
// checks them) and N as max_running. INVALID_ARGUMENT naming --array for a limit that is
// not a whole number of at least 1, or no indices.
absl::StatusOr<v1::ArraySpec> ParseArrayFlag(absl::string_view text);

// Parses "2h", "90m", "1h30m", "45s" and "3d" (days); "0" means no limit. INVALID_ARGUMENT
// for negative or unreadable durations.
absl::StatusOr<absl::Duration> ParseRunDuration(absl::string_view text);

}  // namespace drover::cli

#endif  // DROVER_CLI_SUBMIT_SPEC_H_
