// The droverd command line: its flags and --config file, checked and turned into the
// DroverdOptions main() starts Droverd with, plus the few settings only main() uses. Kept
// apart from main() so that every check of a value is testable without starting droverd.
// Single-threaded; reads only the files the flags name (--config, the bootstrap token file).
#ifndef DROVER_SERVER_DROVERD_FLAGS_H_
#define DROVER_SERVER_DROVERD_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/log.h"
#include "server/droverd.h"

namespace drover::server {

struct DroverdSettings {
  bool help = false;  // --help: print help_text and exit 0; nothing else is set
  std::string help_text;
  // Everything Droverd::Start takes. `options.core.datastore_roots.refused` holds
  // --state-dir made absolute; main() adds its real path once the folder exists.
  DroverdOptions options;
  std::string address_file;  // --address-file; empty: none
  LogLevel log_level = LogLevel::kInfo;
};

// Parses the arguments (without the program name) and the --config file they name.
// INVALID_ARGUMENT names the flag (or the file and line) and what to write instead;
// NOT_FOUND when the --config file cannot be read.
absl::StatusOr<DroverdSettings> ParseDroverdFlags(const std::vector<std::string>& args);

// Whether `status`, an error of ParseDroverdFlags, is a mistake in the command line itself
// (an unknown flag, a value that is not of the flag's type, an extra argument) rather than a
// bad setting: main() prints the former alone and also logs the latter as droverd_failed.
bool IsDroverdUsageError(const absl::Status& status);

}  // namespace drover::server

#endif  // DROVER_SERVER_DROVERD_FLAGS_H_
