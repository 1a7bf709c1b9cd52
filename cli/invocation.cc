#include "cli/invocation.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/job_id.h"

namespace drover::cli {
namespace {

constexpr absl::string_view kDefaultServer = "localhost:7070";

// gRPC targets that need no ":PORT" of their own.
bool HasScheme(absl::string_view address) {
  for (absl::string_view scheme : {"unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:"}) {
    if (absl::StartsWith(address, scheme)) return true;
  }
  return false;
}

bool LooksLikeAddress(absl::string_view address) {
  if (HasScheme(address)) return true;
  size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0 || colon + 1 == address.size()) return false;
  for (char c : address.substr(colon + 1)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

const absl::string_view kExitCodesHelp =
    "Exit codes:\n"
    "  0   ok\n"
    "  1   unexpected or internal error\n"
    "  2   usage error: bad flags or arguments (nothing was changed)\n"
    "  3   droverd refused the request as invalid (the message names the field)\n"
    "  4   no such job, node, compute target, image or datastore\n"
    "  5   conflict with the current state (already exists, failed precondition,\n"
    "      aborted; download: the job has no outputs)\n"
    "  6   droverd unreachable or busy (unavailable, deadline exceeded); retry\n"
    "  10  watch, logs -f: the job ended FAILED\n"
    "  11  watch, logs -f: the job ended CANCELED\n";

void AddGlobalFlags(FlagSet* flags, GlobalOptions* global) {
  flags->Custom(
      "server",
      [global](absl::string_view v) -> absl::Status {
        if (v.empty()) return absl::InvalidArgumentError("needs HOST:PORT, for example localhost:7070");
        global->server = std::string(v);
        return absl::OkStatus();
      },
      "droverd to talk to", "HOST:PORT", "$DROVER_SERVER, else localhost:7070");
  flags->Custom(
      "ca",
      [global](absl::string_view v) -> absl::Status {
        if (v.empty()) return absl::InvalidArgumentError("needs a file: droverd's CA certificate");
        global->ca = std::string(v);
        return absl::OkStatus();
      },
      "droverd's CA certificate (droverd writes it to <state-dir>/tls/ca.crt)", "FILE",
      "$DROVER_CA, else /etc/drover/ca.crt");
  flags->Custom(
      "output,o",
      [global](absl::string_view v) -> absl::Status {
        std::string lower = absl::AsciiStrToLower(v);
        if (lower != "table" && lower != "json" && lower != "csv") {
          return absl::InvalidArgumentError(
              absl::StrCat("'", v, "' is not an output format; use table or json (or csv for drover metrics)"));
        }
        global->json = lower == "json";
        global->csv = lower == "csv";
        return absl::OkStatus();
      },
      "Output format: table (for people) or json (for programs)", "FORMAT", "table");
  flags->Custom(
      "timeout",
      [global](absl::string_view v) -> absl::Status {
        absl::Duration d;
        if (!absl::ParseDuration(v, &d) || d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) {
          return absl::InvalidArgumentError(absl::StrCat("'", v, "' is not a positive duration; write for example 10s or 2m"));
        }
        global->timeout = d;
        return absl::OkStatus();
      },
      "Deadline of each call to droverd (streams wait without one)", "DURATION", "30s");
}

std::string OneLine(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"\r\n", " "}, {"\n", " "}, {"\r", " "}});
}

int Invocation::Fail(int code, absl::string_view message) {
  *ctx_.err << "drover: " << OneLine(message) << std::endl;
  return code;
}

std::optional<int> Invocation::Parse(FlagSet& flags, const std::vector<std::string>& args,
                                     std::vector<std::string>* positional, bool interspersed,
                                     absl::string_view examples) {
  absl::Status status = flags.Parse(args, positional, interspersed);
  if (!status.ok()) return Usage(status);
  if (flags.help_requested()) {
    out() << flags.Help() << "\nExamples:\n" << examples << "\n" << kExitCodesHelp;
    return kExitOk;
  }
  if (global_.csv && !allow_csv_) {
    return Fail(kExitUsage, "--output csv is for drover metrics only; use table or json here");
  }
  return std::nullopt;
}

std::unique_ptr<DroverClient> Invocation::Connect(int* exit_code) {
  std::string address = global_.server;
  std::string source = "--server";
  if (address.empty()) {
    std::optional<std::string> from_env = ctx_.getenv("DROVER_SERVER");
    if (from_env.has_value() && !from_env->empty()) {
      address = *from_env;
      source = "DROVER_SERVER";
    } else {
      address = std::string(kDefaultServer);
    }
  }
  if (!LooksLikeAddress(address)) {
    *exit_code = Fail(kExitUsage, absl::StrCat(source, ": '", address,
                                               "' is not HOST:PORT; for example localhost:7070"));
    return nullptr;
  }
  ConnectOptions options{.address = address, .ca_file = global_.ca, .timeout = global_.timeout};
  if (options.ca_file.empty()) {
    std::optional<std::string> from_env = ctx_.getenv("DROVER_CA");
    if (from_env.has_value() && !from_env->empty()) {
      options.ca_file = *from_env;
      options.ca_source = "DROVER_CA";
    } else {
      options.ca_file = "/etc/drover/ca.crt";
      options.ca_source = "the default CA file";
    }
  }
  absl::StatusOr<std::unique_ptr<DroverClient>> client = ctx_.connect(options);
  if (!client.ok()) {
    *exit_code = client.status().code() == absl::StatusCode::kInvalidArgument
                     ? Usage(client.status())
                     : Fail(kExitInternal, client.status().message());
    return nullptr;
  }
  client_ = client->get();
  return *std::move(client);
}

void Invocation::Pause(absl::Duration delay) {
  absl::Duration waited = client_ != nullptr ? client_->AwaitConnection(delay) : absl::ZeroDuration();
  if (waited < delay) ctx_.sleep(delay - waited);
}

void Invocation::Print(const std::function<std::string()>& to_json,
                       const std::function<std::string()>& table) {
  if (global_.json) {
    out() << to_json() << "\n";
  } else {
    out() << table();
  }
  out().flush();
}

std::optional<int> TakeJobId(Invocation& inv, absl::string_view command,
                             const std::vector<std::string>& positional, std::string* job_id) {
  if (positional.size() != 1) {
    return inv.Fail(kExitUsage,
                    absl::StrCat(positional.empty() ? "missing JOB" : "too many arguments",
                                 "; usage: drover ", command, " JOB (for example j-42)"));
  }
  absl::StatusOr<int64_t> sequence = ParseJobId(positional[0], "JOB");
  if (!sequence.ok()) return inv.Usage(sequence.status());
  *job_id = FormatJobId(*sequence);
  return std::nullopt;
}

std::optional<int> TakeName(Invocation& inv, absl::string_view command, absl::string_view what,
                            const std::vector<std::string>& positional, std::string* name) {
  if (positional.size() != 1 || positional[0].empty()) {
    return inv.Fail(kExitUsage, absl::StrCat(positional.size() > 1 ? "too many arguments"
                                                                   : absl::StrCat("missing ", what),
                                             "; usage: drover ", command, " ", what));
  }
  *name = positional[0];
  return std::nullopt;
}

std::optional<int> NoPositionals(Invocation& inv, absl::string_view command,
                                 const std::vector<std::string>& positional) {
  if (positional.empty()) return std::nullopt;
  return inv.Fail(kExitUsage, absl::StrCat("drover ", command, " takes no arguments, got '",
                                           positional[0], "'; see drover ", command, " --help"));
}

int RunActions(Invocation& inv, absl::string_view command, absl::string_view summary,
               const std::vector<Action>& actions, absl::string_view examples,
               const std::vector<std::string>& args) {
  std::vector<std::string> names;
  std::string text = absl::StrCat(summary, "\n\nActions:\n");
  for (const Action& action : actions) {
    names.push_back(std::string(action.name));
    // Names of 10 characters or more get one space (revoke-cert).
    absl::StrAppend(&text, "  ", action.name,
                    std::string(action.name.size() < 10 ? 10 - action.name.size() : 1, ' '),
                    action.summary, "\n");
  }
  absl::StrAppend(&text, "\nRun 'drover ", command, " ACTION --help' for the flags of an action.");
  FlagSet flags(absl::StrCat("drover ", command, " ACTION [flags] [ARGS...]"), text);
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/false, examples)) {
    return *done;
  }
  if (positional.empty()) {
    inv.err() << flags.Help() << "\n";
    return inv.Fail(kExitUsage, absl::StrCat("missing ACTION after 'drover ", command,
                                             "'; see the list above"));
  }
  for (const Action& action : actions) {
    if (action.name == positional[0]) {
      return action.handler(inv, std::vector<std::string>(positional.begin() + 1, positional.end()));
    }
  }
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&list, i == 0 ? "" : (i + 1 == names.size() ? " or " : ", "), names[i]);
  }
  return inv.Fail(kExitUsage, absl::StrCat("unknown action '", positional[0], "' for drover ",
                                           command, "; use ", list));
}

int ExitCodeForEnd(v1::JobStatus::State state) {
  switch (state) {
    case v1::JobStatus::FAILED:
      return kExitJobFailed;
    case v1::JobStatus::CANCELED:
      return kExitJobCanceled;
    default:
      return kExitOk;
  }
}

}  // namespace drover::cli
