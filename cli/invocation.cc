#include "cli/invocation.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/archive/snapshot.h"
#include "common/job_id.h"
#include "common/leader_redirect.h"
#include "common/safe_open.h"
#include "google/protobuf/struct.pb.h"

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
    "  7   not allowed: no or a wrong token (drover login), or a role or job that is\n"
    "      not yours (ask an admin)\n"
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
      "droverd to talk to; unix:PATH for its local admin socket (root on droverd's host: "
      "admin without a token); HOST:PORT,HOST:PORT for droverds of which one leads and the "
      "others stand by (calls follow the leader among them)",
      "HOST:PORT[,...]", "$DROVER_SERVER, else the config file, else localhost:7070");
  flags->Custom(
      "ca",
      [global](absl::string_view v) -> absl::Status {
        if (v.empty()) return absl::InvalidArgumentError("needs a file: droverd's CA certificate");
        global->ca = std::string(v);
        return absl::OkStatus();
      },
      "droverd's CA certificate (droverd writes it to <state-dir>/tls/ca.crt)", "FILE",
      "$DROVER_CA, else the config file, else /etc/drover/ca.crt");
  flags->Custom(
      "token",
      [global](absl::string_view v) -> absl::Status {
        if (v.empty()) return absl::InvalidArgumentError("needs the token drover user create printed");
        global->token = std::string(v);
        return absl::OkStatus();
      },
      "Your user token (drv_...). Prefer DROVER_TOKEN or drover login: a flag shows in the "
      "process list",
      "TOKEN", "$DROVER_TOKEN, else the config file (drover login)");
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

std::string ClientConfigPath(CliContext& ctx) {
  auto env = [&](absl::string_view name) {
    std::optional<std::string> value = ctx.getenv(name);
    return value.has_value() ? *value : std::string();
  };
  if (std::string path = env("DROVER_CONFIG"); !path.empty()) return path;
  if (std::string base = env("XDG_CONFIG_HOME"); !base.empty()) return base + "/drover/config";
  if (std::string home = env("HOME"); !home.empty()) return home + "/.config/drover/config";
  return "";
}

ClientConfig ReadClientConfig(const std::string& path) {
  ClientConfig config;
  if (path.empty()) return config;
  std::ifstream in(path);
  std::string line;
  while (in && std::getline(in, line)) {
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text[0] == '#') continue;
    size_t eq = text.find('=');
    if (eq == absl::string_view::npos) continue;
    absl::string_view key = absl::StripAsciiWhitespace(text.substr(0, eq));
    std::string value(absl::StripAsciiWhitespace(text.substr(eq + 1)));
    if (key == "server") config.server = value;
    if (key == "ca") config.ca = value;
    if (key == "token") config.token = value;
  }
  return config;
}

absl::Status WriteClientConfig(const std::string& path, const ClientConfig& config) {
  std::error_code error;
  std::filesystem::path folder = std::filesystem::path(path).parent_path();
  if (!folder.empty() && !std::filesystem::exists(folder, error)) {
    std::filesystem::create_directories(folder, error);
    if (!error) ::chmod(folder.c_str(), 0700);
  }
  std::string text = absl::StrCat("# written by drover login; holds a secret token\n",
                                  "server = ", config.server, "\n", "ca = ", config.ca, "\n",
                                  "token = ", config.token, "\n");
  if (absl::Status written = ReplaceFile(path, text, 0600); !written.ok()) {
    return absl::UnavailableError(
        absl::StrCat(written.message(), "; set DROVER_CONFIG to a writable path"));
  }
  return absl::OkStatus();
}

std::unique_ptr<DroverClient> Invocation::Connect(int* exit_code) {
  // Each setting: the flag, else its environment variable, else the config file, else the
  // default.
  ClientConfig config = ReadClientConfig(ClientConfigPath(ctx_));
  std::string address = global_.server;
  std::string source = "--server";
  if (address.empty()) {
    std::optional<std::string> from_env = ctx_.getenv("DROVER_SERVER");
    if (from_env.has_value() && !from_env->empty()) {
      address = *from_env;
      source = "DROVER_SERVER";
    } else if (!config.server.empty()) {
      address = config.server;
      source = "the config file";
    } else {
      address = std::string(kDefaultServer);
    }
  }
  bool several = address.find(',') != std::string::npos && !HasScheme(address);
  bool valid = LooksLikeAddress(address);
  if (several) {
    absl::StatusOr<std::vector<std::string>> list = ParseDroverdAddresses("server", address);
    valid = list.ok();
    for (size_t i = 0; valid && i < list->size(); ++i) valid = LooksLikeAddress((*list)[i]);
  }
  if (!valid) {
    *exit_code = Fail(kExitUsage,
                      absl::StrCat(source, ": '", address,
                                   "' is not HOST:PORT (or HOST:PORT,HOST:PORT for several "
                                   "droverds); for example localhost:7070"));
    return nullptr;
  }
  ConnectOptions options{.address = address, .ca_file = global_.ca, .timeout = global_.timeout};
  options.token = global_.token;
  if (options.token.empty()) {
    std::optional<std::string> from_env = ctx_.getenv("DROVER_TOKEN");
    options.token = from_env.has_value() && !from_env->empty() ? *from_env : config.token;
  }
  if (options.ca_file.empty()) {
    std::optional<std::string> from_env = ctx_.getenv("DROVER_CA");
    if (from_env.has_value() && !from_env->empty()) {
      options.ca_file = *from_env;
      options.ca_source = "DROVER_CA";
    } else if (!config.ca.empty()) {
      options.ca_file = config.ca;
      options.ca_source = "the config file";
    } else {
      options.ca_file = "/etc/drover/ca.crt";
      options.ca_source = "the default CA file";
    }
  }
  std::optional<std::string> keeper = ctx_.getenv("DROVER_KEEPER");
  options.use_keeper = !will_stream_ && !(keeper.has_value() && *keeper == "off");
  options.runtime_dir = ctx_.getenv("XDG_RUNTIME_DIR").value_or("");
  int64_t idle_seconds;
  if (std::optional<std::string> idle = ctx_.getenv("DROVER_KEEPER_IDLE");
      idle.has_value() && absl::SimpleAtoi(*idle, &idle_seconds) && idle_seconds > 0) {
    options.keeper_idle = absl::Seconds(idle_seconds);
  }
  options.warn = [this](const std::string& why) {
    err() << "drover: not using the connection keeper: " << why << "\n";
  };
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

std::unique_ptr<DroverClient> Invocation::ParseAndConnect(FlagSet& flags,
                                                          const std::vector<std::string>& args,
                                                          absl::string_view command,
                                                          absl::string_view examples,
                                                          int* exit_code) {
  AddGlobalFlags(&flags, &global());
  std::vector<std::string> positional;
  std::optional<int> done = Parse(flags, args, &positional, /*interspersed=*/true, examples);
  if (!done.has_value()) done = NoPositionals(*this, command, positional);
  if (done.has_value()) {
    *exit_code = *done;
    return nullptr;
  }
  return Connect(exit_code);
}

std::optional<int> Invocation::UploadBlobFile(DroverClient& client, absl::string_view what,
                                              const std::string& path, const std::string& digest,
                                              int64_t size) {
  v1::StatBlobRequest stat;
  stat.set_digest(digest);
  absl::StatusOr<v1::StatBlobResponse> present =
      WithRetry([&] { return client.StatBlob(stat); });
  if (!present.ok()) return ServerError(present.status());
  if (present->present()) {
    err() << what << " " << digest << " already on droverd; nothing to upload" << std::endl;
    return std::nullopt;
  }
  err() << "uploading " << what << " " << digest << " ("
        << archive::FormatBytes(static_cast<uint64_t>(size)) << ") to droverd" << std::endl;
  v1::UploadBlobRequest::Header header;
  header.set_digest(digest);
  header.set_size(size);
  constexpr size_t kChunkBytes = size_t{1} << 20;
  auto errno_text = [] { return absl::AsciiStrToLower(strerror(errno)); };
  absl::StatusOr<v1::UploadBlobResponse> uploaded =
      WithRetry([&]() -> absl::StatusOr<v1::UploadBlobResponse> {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
          return absl::InternalError(
              absl::StrCat("cannot open the ", what, " '", path, "': ", errno_text()));
        }
        std::string buffer;
        return client.UploadBlob(header, [&]() -> absl::StatusOr<std::string> {
          if (in.eof()) return std::string();
          buffer.resize(kChunkBytes);
          in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
          buffer.resize(static_cast<size_t>(in.gcount()));
          if (in.bad() || (in.fail() && !in.eof())) {
            return absl::InternalError(
                absl::StrCat("cannot read the ", what, " '", path, "': ", errno_text()));
          }
          return buffer;
        });
      });
  if (!uploaded.ok()) return ServerError(uploaded.status());
  return std::nullopt;
}

int Invocation::RunDeleteByName(
    FlagSet& flags, const std::vector<std::string>& args, absl::string_view command,
    absl::string_view examples, bool retry,
    const std::function<absl::Status(DroverClient&, const std::string&)>& call) {
  AddGlobalFlags(&flags, &global());
  std::vector<std::string> positional;
  if (auto done = Parse(flags, args, &positional, /*interspersed=*/true, examples)) {
    return *done;
  }
  std::string name;
  if (auto done = TakeName(*this, command, "NAME", positional, &name)) return *done;
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = Connect(&exit_code);
  if (client == nullptr) return exit_code;
  // WithRetry wants a StatusOr.
  auto once = [&]() -> absl::StatusOr<bool> {
    if (absl::Status s = call(*client, name); !s.ok()) return s;
    return true;
  };
  absl::StatusOr<bool> deleted = retry ? WithRetry(once) : once();
  if (!deleted.ok()) return ServerError(deleted.status());
  Print(
      [&] {
        google::protobuf::Struct result;
        (*result.mutable_fields())["name"].set_string_value(name);
        (*result.mutable_fields())["deleted"].set_bool_value(true);
        return MessageToJson(result, /*pretty=*/true);
      },
      [&] { return absl::StrCat(name, " DELETED\n"); });
  return kExitOk;
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
