// The drover command-line client: a table of subcommands (submit, list, show, cancel, watch,
// logs, download, nodes, node, target, image, datastore, help, version) and the global flags
// every one of them accepts (--server, --output, --timeout). RunDrover() is the whole program
// minus the process: main.cc hands it the arguments and the real world (streams,
// environment, gRPC, clock), tests hand it fakes. Main thread only.
#ifndef DROVER_CLI_COMMANDS_H_
#define DROVER_CLI_COMMANDS_H_

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cli/drover_client.h"

namespace drover::cli {

// Exit codes: what a script should do next. Documented in docs/cli.md and `drover help`.
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,      // unexpected or internal error
  kExitUsage = 2,         // bad flags or arguments, detected before anything changed
  kExitInvalid = 3,       // droverd refused the request: INVALID_ARGUMENT
  kExitNotFound = 4,      // NOT_FOUND: no such job, node, target, image or datastore
  kExitConflict = 5,      // ALREADY_EXISTS, FAILED_PRECONDITION, ABORTED; a job without
                          // outputs to download
  kExitUnavailable = 6,   // UNAVAILABLE, DEADLINE_EXCEEDED: unreachable or busy; retry
  kExitAuth = 7,          // UNAUTHENTICATED (log in: a token) or PERMISSION_DENIED (a role or
                          // another user's job: ask an admin)
  kExitJobFailed = 10,    // watch, logs -f: the job ended FAILED
  kExitJobCanceled = 11,  // watch, logs -f: the job ended CANCELED
};

// The exit code for an error status from droverd (or the client's transport).
int ExitCodeForServerStatus(const absl::Status& status);

// Everything the commands need from outside. Each member must be set.
struct CliContext {
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  // Read by `-f -`.
  std::istream* in = nullptr;
  // The CLI's environment variables (DROVER_SERVER, `--env NAME`).
  std::function<std::optional<std::string>(absl::string_view)> getenv;
  // Makes the client for a command; called at most once per command, after its flags parsed.
  std::function<absl::StatusOr<std::unique_ptr<DroverClient>>(const ConnectOptions&)> connect;
  std::function<absl::Time()> now;
  // Waits between retries.
  std::function<void(absl::Duration)> sleep;
  // A fresh idempotency key for a submit that names none.
  std::function<absl::StatusOr<std::string>()> new_idempotency_key;
  // Folder for temporary files (snapshot archives, downloads). Empty: $TMPDIR, else /tmp.
  std::string temp_dir;
  // Zone of the times `show` and `watch` print.
  absl::TimeZone zone = absl::UTCTimeZone();
};

// Runs `drover ARGS...` (`args` without the program name) and returns the exit code.
// Output goes to ctx.out, the one-line error (`drover: ...`) to ctx.err.
int RunDrover(const std::vector<std::string>& args, CliContext& ctx);

// "drover-" and 32 hex digits from /dev/urandom; INTERNAL when it cannot be read.
absl::StatusOr<std::string> RandomIdempotencyKey();

// The CLI's version, "0.1.0".
absl::string_view DroverVersion();

}  // namespace drover::cli

#endif  // DROVER_CLI_COMMANDS_H_
