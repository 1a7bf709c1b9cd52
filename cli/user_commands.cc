// Users and logging in: `drover user create|list|revoke|token` (admins, on droverd's
// AdminService), `drover login` (writes the client config file) and `drover whoami`.
#include <algorithm>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cli/format.h"
#include "common/archive/snapshot.h"
#include "common/flags.h"
#include "cli/invocation.h"

namespace drover::cli {
namespace {

absl::StatusOr<v1::User::Role> ParseRole(absl::string_view text) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "admin") return v1::User::ADMIN;
  if (lower == "user") return v1::User::USER;
  if (lower == "viewer") return v1::User::VIEWER;
  return absl::InvalidArgumentError(
      absl::StrCat("--role: '", text, "' is not a role; use admin, user or viewer"));
}

std::string RoleText(v1::User::Role role) {
  switch (role) {
    case v1::User::ADMIN:
      return "admin";
    case v1::User::USER:
      return "user";
    case v1::User::VIEWER:
      return "viewer";
    default:
      return "-";
  }
}

// Prints a new token once, with how to use it.
void PrintToken(Invocation& inv, const v1::UserToken& token) {
  inv.Print([&] { return MessageToJson(token, /*pretty=*/true); },
            [&] { return absl::StrCat(token.token(), "\n"); });
  if (!inv.global().json) {
    inv.err() << "drover: the token of " << token.user().name() << " (" << RoleText(token.user().role())
              << ") above is shown only now; give it to them for 'drover login SERVER --token "
                 "TOKEN' or DROVER_TOKEN\n";
  }
}

int UserCreateAction(Invocation& inv, const std::vector<std::string>& args) {
  std::string role_text;
  FlagSet flags("drover user create [flags] NAME",
                "Creates a user and prints their token (drv_...) once: droverd keeps only its\n"
                "hash. NAME: 1-63 characters of a-z, 0-9, '_', '.', '-'. Roles: admin (everything),\n"
                "user (submits; reads, follows, downloads and cancels their own jobs), viewer\n"
                "(reads every job and the cluster's lists). For admins; root on droverd's host\n"
                "can use the local socket: drover --server unix:/var/lib/drover/admin.sock ...");
  flags.String("role", &role_text, "admin, user or viewer (required)", "ROLE");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover user create alice --role user\n"
                            "  sudo drover --server unix:/var/lib/drover/admin.sock user create ops --role admin\n")) {
    return *done;
  }
  v1::CreateUserRequest request;
  if (auto done = TakeName(inv, "user create", "NAME", positional, request.mutable_name())) {
    return *done;
  }
  if (role_text.empty()) {
    return inv.Fail(kExitUsage, "missing --role; use --role admin, user or viewer");
  }
  absl::StatusOr<v1::User::Role> role = ParseRole(role_text);
  if (!role.ok()) return inv.Usage(role.status());
  request.set_role(*role);
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  // Not retried: a second create after a lost answer would fail ALREADY_EXISTS and the
  // token would be lost; 'drover user token NAME' gives a new one.
  absl::StatusOr<v1::UserToken> token = client->CreateUser(request);
  if (!token.ok()) return inv.ServerError(token.status());
  PrintToken(inv, *token);
  return kExitOk;
}

// A user's own quota as `drover user list` and `quota` show it.
std::string QuotaText(int64_t bytes) {
  if (bytes == 0) return "default";
  if (bytes < 0) return "none";
  return archive::FormatBytes(static_cast<uint64_t>(bytes));
}

int UserListAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover user list [flags]",
                "Lists the users: NAME, ROLE, STATE (active or revoked), CREATED and their own\n"
                "blob QUOTA (default: droverd's --blob-quota). No tokens.");
  return inv.RunRead(
      flags, args, "user list", "  drover user list\n",
      [](DroverClient& client) { return client.ListUsers(v1::ListUsersRequest()); },
      [&](const v1::ListUsersResponse& list) {
        inv.PrintList(list.users(), [&] {
          std::vector<std::vector<std::string>> rows = {
              {"NAME", "ROLE", "STATE", "CREATED", "QUOTA"}};
          for (const v1::User& user : list.users()) {
            absl::Time created = absl::FromUnixSeconds(user.create_time().seconds());
            rows.push_back({user.name(), RoleText(user.role()),
                            user.revoked() ? "revoked" : "active",
                            absl::FormatTime("%Y-%m-%d %H:%M", created, inv.ctx().zone),
                            QuotaText(user.blob_quota_bytes())});
          }
          return FormatTable(rows);
        });
      });
}

int UserRevokeAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover user revoke [flags] NAME",
                "Revokes a user's token: their calls fail from the next one on. Their jobs go\n"
                "on. 'drover user token NAME' gives them a new token.");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover user revoke alice\n")) {
    return *done;
  }
  v1::RevokeUserRequest request;
  if (auto done = TakeName(inv, "user revoke", "NAME", positional, request.mutable_name())) {
    return *done;
  }
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::User> user = inv.WithRetry([&] { return client->RevokeUser(request); });
  if (!user.ok()) return inv.ServerError(user.status());
  inv.Print([&] { return MessageToJson(*user, /*pretty=*/true); },
            [&] { return absl::StrCat(user->name(), " revoked\n"); });
  return kExitOk;
}

int UserTokenAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover user token [flags] NAME",
                "Gives a user a new token and prints it once; the old token stops working.\n"
                "Also re-enables a revoked user.");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover user token alice\n")) {
    return *done;
  }
  v1::IssueUserTokenRequest request;
  if (auto done = TakeName(inv, "user token", "NAME", positional, request.mutable_name())) {
    return *done;
  }
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::UserToken> token = client->IssueUserToken(request);
  if (!token.ok()) return inv.ServerError(token.status());
  PrintToken(inv, *token);
  return kExitOk;
}

int UserQuotaAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover user quota [flags] NAME SIZE",
                "Sets how much a user may hold in droverd's blob store (code snapshots, images\n"
                "and their jobs' outputs): SIZE as 512Mi, 50Gi, 1Ti (a plain number is MiB),\n"
                "'default' for droverd's --blob-quota, or 'none' for no quota. Takes effect\n"
                "for the user's next upload; what they hold already stays.");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover user quota alice 500Gi\n"
                            "  drover user quota ci-bot none\n"
                            "  drover user quota alice default\n")) {
    return *done;
  }
  if (positional.size() != 2) {
    return inv.Fail(kExitUsage, "user quota: give NAME and SIZE (500Gi, default or none)");
  }
  v1::SetUserBlobQuotaRequest request;
  request.set_name(positional[0]);
  const std::string size = absl::AsciiStrToLower(positional[1]);
  if (size == "default") {
    request.set_blob_quota_bytes(0);
  } else if (size == "none") {
    request.set_blob_quota_bytes(-1);
  } else {
    int64_t mib = 0;
    if (absl::Status parsed = ParseMib(positional[1], &mib); !parsed.ok() || mib == 0) {
      return inv.Fail(kExitUsage,
                      absl::StrCat("user quota: SIZE '", positional[1],
                                   "' is not a size; write 500Gi, 1Ti, default or none"));
    }
    request.set_blob_quota_bytes(mib * 1024 * 1024);
  }
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::User> user =
      inv.WithRetry([&] { return client->SetUserBlobQuota(request); });
  if (!user.ok()) return inv.ServerError(user.status());
  inv.Print([&] { return MessageToJson(*user, /*pretty=*/true); },
            [&] {
              return absl::StrCat(user->name(), ": blob quota ",
                                  QuotaText(user->blob_quota_bytes()), "\n");
            });
  return kExitOk;
}

}  // namespace

int UserCommand(Invocation& inv, const std::vector<std::string>& args) {
  return RunActions(inv, "user",
                    "Manages who may call droverd (for administrators): users with a role and\n"
                    "a token each.",
                    {{"create", "Create a user; prints their token once", UserCreateAction},
                     {"list", "List the users and their roles", UserListAction},
                     {"revoke", "Revoke a user's token", UserRevokeAction},
                     {"token", "Give a user a new token; prints it once", UserTokenAction},
                     {"quota", "Set how much a user may hold in the blob store", UserQuotaAction}},
                    "  drover user create alice --role user\n"
                    "  drover user list\n"
                    "  drover user revoke alice\n"
                    "  drover user token alice\n"
                    "  drover user quota alice 500Gi\n",
                    args);
}

int LoginCommand(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags(
      "drover login [flags] SERVER",
      "Checks a token against droverd at SERVER (HOST:PORT) and saves server, CA and token\n"
      "in the client config file ($DROVER_CONFIG, else $XDG_CONFIG_HOME/drover/config, else\n"
      "~/.config/drover/config; mode 0600). Later commands use what it holds when neither a\n"
      "flag (--server, --ca, --token) nor its variable (DROVER_SERVER, DROVER_CA,\n"
      "DROVER_TOKEN) is given: flag, then variable, then config file, then the default.");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover login head:7070 --token drv_... --ca /etc/drover/ca.crt\n"
                            "  DROVER_TOKEN=drv_... drover login head:7070\n")) {
    return *done;
  }
  std::string server;
  if (auto done = TakeName(inv, "login", "SERVER", positional, &server)) return *done;
  inv.global().server = server;
  std::string path = ClientConfigPath(inv.ctx());
  if (path.empty()) {
    return inv.Fail(kExitUsage, "no place for the config file: set DROVER_CONFIG or HOME");
  }
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::User> user =
      inv.WithRetry([&] { return client->WhoAmI(v1::WhoAmIRequest()); });
  if (!user.ok()) return inv.ServerError(user.status());
  // What Connect used: the flags and variables, as the config file would give them again.
  ClientConfig config = ReadClientConfig(path);
  config.server = server;
  std::string ca = inv.global().ca;
  if (ca.empty()) {
    std::optional<std::string> from_env = inv.ctx().getenv("DROVER_CA");
    if (from_env.has_value() && !from_env->empty()) ca = *from_env;
  }
  if (!ca.empty()) {
    std::error_code error;
    std::filesystem::path absolute = std::filesystem::absolute(ca, error);
    config.ca = error ? ca : absolute.string();
  }
  std::string token = inv.global().token;
  if (token.empty()) {
    std::optional<std::string> from_env = inv.ctx().getenv("DROVER_TOKEN");
    if (from_env.has_value()) token = *from_env;
  }
  if (!token.empty()) config.token = token;
  if (absl::Status written = WriteClientConfig(path, config); !written.ok()) {
    return inv.Fail(kExitInternal, written.message());
  }
  inv.out() << "logged in to " << server << " as " << user->name() << " ("
            << RoleText(user->role()) << "); saved in " << path << "\n";
  return kExitOk;
}

int WhoAmICommand(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover whoami [flags]",
                "Prints who droverd takes you for (NAME ROLE) and what you hold in its blob\n"
                "store against your quota.");
  return inv.RunRead(
      flags, args, "whoami", "  drover whoami\n",
      [](DroverClient& client) { return client.WhoAmI(v1::WhoAmIRequest()); },
      [&](const v1::User& user) {
        inv.Print([&] { return MessageToJson(user, /*pretty=*/true); },
                  [&] {
                    const uint64_t held = static_cast<uint64_t>(std::max<int64_t>(0, user.blob_held_bytes()));
                    return absl::StrCat(
                        user.name(), " ", RoleText(user.role()), "\nblob store: ",
                        archive::FormatBytes(held), " held",
                        user.blob_quota_effective_bytes() > 0
                            ? absl::StrCat(" of ", archive::FormatBytes(static_cast<uint64_t>(
                                                       user.blob_quota_effective_bytes())),
                                           " (quota)")
                            : std::string(", no quota"),
                        "\n");
                  });
      });
}

}  // namespace drover::cli
