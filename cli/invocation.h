// What every drover command shares: the global flags, one command's run (`Invocation`:
// context, parsing with --help, connecting, retries, errors) and the argument helpers.
// Internal to drover_cli; the commands live in commands.cc (jobs), admin_commands.cc
// (nodes and compute targets), logs_command.cc and transfer_commands.cc (snapshots and
// outputs). Main thread only.
#ifndef DROVER_CLI_INVOCATION_H_
#define DROVER_CLI_INVOCATION_H_

#include <array>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cli/commands.h"
#include "cli/drover_client.h"
#include "cli/format.h"
#include "common/flags.h"

namespace drover::cli {

// Waits before each retry of a call that failed UNAVAILABLE: droverd restarting, or a
// connection that broke. Short, so that a dead server is reported within two seconds.
inline constexpr std::array<absl::Duration, 3> kRetryDelays = {
    absl::Milliseconds(250), absl::Milliseconds(500), absl::Seconds(1)};
// Waits before reconnecting a stream that already delivered something (watch, logs -f):
// droverd is then known to exist, so give a restart (recovering its database) about half
// a minute.
inline constexpr std::array<absl::Duration, 7> kReconnectDelays = {
    absl::Milliseconds(250), absl::Milliseconds(500), absl::Seconds(1), absl::Seconds(2),
    absl::Seconds(4),        absl::Seconds(8),        absl::Seconds(12)};

// The exit-code table printed by every --help.
extern const absl::string_view kExitCodesHelp;

// The flags every command accepts, before or after its name.
struct GlobalOptions {
  std::string server;  // empty: $DROVER_SERVER, else localhost:7070
  std::string ca;      // empty: $DROVER_CA, else the config file, else /etc/drover/ca.crt
  std::string token;   // empty: $DROVER_TOKEN, else the config file, else none
  bool json = false;
  bool csv = false;  // --output csv: only commands that call AllowCsv() take it
  absl::Duration timeout = absl::Seconds(30);
};

void AddGlobalFlags(FlagSet* flags, GlobalOptions* global);

// The client config file `drover login` writes: $DROVER_CONFIG, else
// $XDG_CONFIG_HOME/drover/config, else $HOME/.config/drover/config; empty when none of
// these variables is set.
std::string ClientConfigPath(CliContext& ctx);

// What the client config file holds (`key = value` lines: server, ca, token). Missing or
// unreadable file: all empty.
struct ClientConfig {
  std::string server;
  std::string ca;
  std::string token;
};
ClientConfig ReadClientConfig(const std::string& path);
// Writes `config` to `path` (folders made 0700, the file 0600, replaced atomically).
// UNAVAILABLE naming the path when it cannot be written.
absl::Status WriteClientConfig(const std::string& path, const ClientConfig& config);

// `text` with line breaks turned into spaces: errors are one line.
std::string OneLine(absl::string_view text);

// One command's run: the context, the global options and the way out.
class Invocation {
 public:
  explicit Invocation(CliContext& ctx) : ctx_(ctx) {}

  CliContext& ctx() { return ctx_; }
  GlobalOptions& global() { return global_; }
  // The command prints tables as CSV with --output csv (before Parse); others refuse it.
  void AllowCsv() { allow_csv_ = true; }
  std::ostream& out() { return *ctx_.out; }
  std::ostream& err() { return *ctx_.err; }

  // Prints `drover: MESSAGE` on stderr and returns `code`.
  int Fail(int code, absl::string_view message);
  int Usage(const absl::Status& status) { return Fail(kExitUsage, status.message()); }
  int ServerError(const absl::Status& status) {
    return Fail(ExitCodeForServerStatus(status), status.message());
  }

  // Parses a command's flags. Returns an exit code when the command should stop here:
  // after --help (0) or on a usage error (2).
  std::optional<int> Parse(FlagSet& flags, const std::vector<std::string>& args,
                           std::vector<std::string>* positional, bool interspersed,
                           absl::string_view examples);

  // The client for --server / $DROVER_SERVER. Errors are already printed when this returns
  // null; `*exit_code` says what to return. The command keeps it until it returns: Pause
  // uses it.
  std::unique_ptr<DroverClient> Connect(int* exit_code);
  // Before Connect: this command opens a stream (watch, logs, metrics, an upload or a
  // download), which needs a TLS connection of its own, so its unary calls take that
  // connection too rather than the keeper (one connection instead of two).
  void WillStream() { will_stream_ = true; }

  // For a command without positional arguments: adds the global flags to `flags`, parses
  // `args`, refuses positionals naming `command` ("target list"), then connects. Null with
  // `*exit_code` set when the command should stop (--help, a usage error, no connection).
  std::unique_ptr<DroverClient> ParseAndConnect(FlagSet& flags,
                                                const std::vector<std::string>& args,
                                                absl::string_view command,
                                                absl::string_view examples, int* exit_code);

  // A command that reads one answer and prints it (`drover image list`, `drover nodes`):
  // ParseAndConnect, then `call(client)` (a read, retried on UNAVAILABLE), then
  // `print(response)`. Returns the exit code.
  template <typename Call, typename PrintAnswer>
  int RunRead(FlagSet& flags, const std::vector<std::string>& args, absl::string_view command,
              absl::string_view examples, Call&& call, PrintAnswer&& print) {
    int exit_code = kExitOk;
    std::unique_ptr<DroverClient> client =
        ParseAndConnect(flags, args, command, examples, &exit_code);
    if (client == nullptr) return exit_code;
    auto response = WithRetry([&] { return call(*client); });
    if (!response.ok()) return ServerError(response.status());
    print(*response);
    return kExitOk;
  }

  // A command that deletes one thing by name (`drover image delete NAME`): parses `flags`
  // (the global flags added) and exactly one NAME, connects and runs `call(client, name)`,
  // retried on UNAVAILABLE only when `retry` (a delete that went through may answer
  // NOT_FOUND when repeated); prints `NAME DELETED`, or {"name": ..., "deleted": true} with
  // --output json.
  int RunDeleteByName(FlagSet& flags, const std::vector<std::string>& args,
                      absl::string_view command, absl::string_view examples, bool retry,
                      const std::function<absl::Status(DroverClient&, const std::string&)>& call);

  // The pause before a retry: `delay` in all, spent waiting for the connection to droverd
  // (see DroverClient::AwaitConnection) and then sleeping the rest.
  void Pause(absl::Duration delay);

  // Runs `call` again after UNAVAILABLE, a few times with growing pauses. Only for calls that
  // are safe to repeat: reads, cancels, node and target changes (they set a state, so a
  // repeat changes nothing), blob uploads (content-addressed) and submits carrying an
  // idempotency key.
  template <typename Call>
  auto WithRetry(Call&& call) -> decltype(call()) {
    auto result = call();
    for (absl::Duration delay : kRetryDelays) {
      if (result.ok() || result.status().code() != absl::StatusCode::kUnavailable) break;
      Pause(delay);
      result = call();
    }
    return result;
  }

  // Prints a message for read commands: JSON (`to_json`) when --output json, else
  // `table`'s text.
  void Print(const std::function<std::string()>& to_json, const std::function<std::string()>& table);
  // The same for list commands: a JSON array of the messages `items` when --output json.
  template <typename Range>
  void PrintList(const Range& items, const std::function<std::string()>& table) {
    Print(
        [&] {
          std::vector<std::string> json;
          for (const auto& item : items) json.push_back(MessageToJson(item, /*pretty=*/false));
          return JsonArray(json);
        },
        table);
  }

  // Uploads the file at `path` as blob `digest` of `size` bytes, unless droverd has it
  // already; says which on stderr ("uploading WHAT DIGEST (SIZE) to droverd", "WHAT DIGEST
  // already on droverd; nothing to upload"). Retried after UNAVAILABLE: the blob is
  // content-addressed, so it is stored once, and droverd checks the digest, so a file that
  // changed since it was hashed is refused, not stored. An exit code when the command
  // should stop (the error printed), nullopt when done.
  std::optional<int> UploadBlobFile(DroverClient& client, absl::string_view what,
                                    const std::string& path, const std::string& digest,
                                    int64_t size);

 private:
  CliContext& ctx_;
  GlobalOptions global_;
  DroverClient* client_ = nullptr;  // Connect's, owned by the command
  bool will_stream_ = false;
  bool allow_csv_ = false;
};

// A JOB positional: exactly one, a valid id ("42" is taken for "j-42"). Returns an exit code
// (the error printed) when the command should stop.
std::optional<int> TakeJobId(Invocation& inv, absl::string_view command,
                             const std::vector<std::string>& positional, std::string* job_id);

// A NAME positional (node, compute target): exactly one. `what` names it in the usage line
// ("NODE").
std::optional<int> TakeName(Invocation& inv, absl::string_view command, absl::string_view what,
                            const std::vector<std::string>& positional, std::string* name);

std::optional<int> NoPositionals(Invocation& inv, absl::string_view command,
                                 const std::vector<std::string>& positional);

// A command with actions ("drover node cordon NAME"): `actions` by name. Parses the global
// flags before the action, prints the group's help for --help (or, as a usage error, for a
// missing action) and hands the rest of the arguments to the action.
struct Action {
  absl::string_view name;
  absl::string_view summary;
  int (*handler)(Invocation& inv, const std::vector<std::string>& args);
};
int RunActions(Invocation& inv, absl::string_view command, absl::string_view summary,
               const std::vector<Action>& actions, absl::string_view examples,
               const std::vector<std::string>& args);

// ---- Command handlers, defined in the files named above.
int SubmitCommand(Invocation& inv, const std::vector<std::string>& args);
int ListCommand(Invocation& inv, const std::vector<std::string>& args);
int ShowCommand(Invocation& inv, const std::vector<std::string>& args);
int CancelCommand(Invocation& inv, const std::vector<std::string>& args);
int TagCommand(Invocation& inv, const std::vector<std::string>& args);
int WatchCommand(Invocation& inv, const std::vector<std::string>& args);
int LogsCommand(Invocation& inv, const std::vector<std::string>& args);
int MetricsCommand(Invocation& inv, const std::vector<std::string>& args);
int DownloadCommand(Invocation& inv, const std::vector<std::string>& args);
int NodesCommand(Invocation& inv, const std::vector<std::string>& args);
int NodeCommand(Invocation& inv, const std::vector<std::string>& args);
int TargetCommand(Invocation& inv, const std::vector<std::string>& args);
int UserCommand(Invocation& inv, const std::vector<std::string>& args);
int LoginCommand(Invocation& inv, const std::vector<std::string>& args);
int WhoAmICommand(Invocation& inv, const std::vector<std::string>& args);
int AuditCommand(Invocation& inv, const std::vector<std::string>& args);
int GcCommand(Invocation& inv, const std::vector<std::string>& args);
int SweepCommand(Invocation& inv, const std::vector<std::string>& args);  // sweep_commands.cc

// Builds the snapshot of the folder `source_dir` for `drover submit --source`: describes it
// on stderr, uploads it unless droverd has it already, removes the local archive and sets
// `*digest`. Returns an exit code (the error printed) when the submit should stop.
std::optional<int> UploadSource(Invocation& inv, DroverClient& client,
                                const std::string& source_dir, std::string* digest);

// The exit code for how a job ended: 0 COMPLETED, 10 FAILED, 11 CANCELED.
int ExitCodeForEnd(v1::JobStatus::State state);

}  // namespace drover::cli

#endif  // DROVER_CLI_INVOCATION_H_
