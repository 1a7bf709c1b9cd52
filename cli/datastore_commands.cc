#include "cli/datastore_commands.h"


#include <algorithm>
#include <istream>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/format.h"
#include "cli/invocation.h"

namespace drover::cli {
namespace {

constexpr size_t kMaxNameChars = 63;
constexpr size_t kOptionsWidth = 60;

bool IsNameChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '-';
}

absl::Status CheckDatastoreName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameChars ||
      !std::all_of(name.begin(), name.end(), IsNameChar) || !absl::ascii_isalnum(name[0])) {
    return absl::InvalidArgumentError(
        absl::StrCat("NAME: '", name, "' is not a datastore name; use 1-", kMaxNameChars,
                     " characters of [a-z0-9_-] starting with a letter or digit, such as "
                     "'imagenet'"));
  }
  return absl::OkStatus();
}

std::string TypeName(v1::Datastore::Type type) {
  switch (type) {
    case v1::Datastore::HOSTPATH:
      return "hostpath";
    case v1::Datastore::RCLONE:
      return "rclone";
    default:
      return "-";
  }
}

// "type=s3,endpoint=...,secret_access_key=***": type first, then by key.
std::string FormatOptions(const v1::Datastore& datastore) {
  std::map<std::string, std::string> sorted(datastore.rclone_options().begin(),
                                            datastore.rclone_options().end());
  std::vector<std::string> parts;
  if (auto type = sorted.find("type"); type != sorted.end()) {
    parts.push_back(absl::StrCat("type=", type->second));
    sorted.erase(type);
  }
  for (const auto& [key, value] : sorted) parts.push_back(absl::StrCat(key, "=", value));
  return absl::StrJoin(parts, ",");
}

int CreateAction(Invocation& inv, const std::vector<std::string>& args) {
  DatastoreFlags values;
  bool replace = false;
  FlagSet flags(
      "drover datastore create [flags] NAME",
      "Registers a datastore, where jobs' data lives; jobs name it in arguments as\n"
      "ds://NAME/PATH. --type hostpath: a folder at the same --path on every node.\n"
      "--type rclone: any rclone remote, mounted or copied by the nodes with rclone (they\n"
      "need rclone and fuse3), set up with --option KEY=VALUE as in an rclone config\n"
      "section (--option type=s3 or another backend is required) and --secret KEY=VALUE\n"
      "for credentials, passwords in plain text (droverd hands them only to the nodes of\n"
      "jobs that use the datastore and shows them back as ***). Jobs may only read unless\n"
      "--allow-write is given. A datastore that exists is refused (exit code 5) unless\n"
      "--replace is given. Prints NAME CREATED (or REPLACED).");
  flags.String("type", &values.type, "hostpath or rclone", "TYPE");
  flags.String("path", &values.path,
               "hostpath: the folder on every node, absolute; rclone: the path inside the\n"
               "remote, such as bucket/prefix (default: its root)",
               "PATH");
  flags.Repeated("option", &values.options, "rclone: a setting of the remote; repeatable",
                 "KEY=VALUE");
  flags.Repeated("secret", &values.secrets,
                 "rclone: a credential setting, never shown back; repeatable. KEY alone\n"
                 "reads the value from the first line of stdin (keeps it out of the\n"
                 "process list and shell history)",
                 "KEY=VALUE");
  flags.Bool("allow-write", &values.allow_write,
             "Let jobs write: ds://...?mode=mount&rw=true, ?mode=upload and --outputs-to");
  flags.Bool("replace", &replace, "Replace the datastore of this name if it exists");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(
          flags, args, &positional, /*interspersed=*/true,
          "  drover datastore create imagenet --type hostpath --path /data/imagenet\n"
          "  drover datastore create scratch --type hostpath --path /mnt/nfs/scratch \\\n"
          "      --allow-write\n"
          "  pass show minio | drover datastore create results --type rclone \\\n"
          "      --option type=s3 --option provider=Minio \\\n"
          "      --option endpoint=http://minio:9000 --option access_key_id=drover \\\n"
          "      --secret secret_access_key --path results --allow-write\n")) {
    return *done;
  }
  if (auto done = TakeName(inv, "datastore create", "NAME", positional, &values.name)) {
    return *done;
  }
  absl::StatusOr<v1::Datastore> datastore =
      BuildDatastore(values, [&]() -> absl::StatusOr<std::string> {
        std::string line;
        if (!std::getline(*inv.ctx().in, line) || line.empty()) {
          return absl::InvalidArgumentError("stdin is empty");
        }
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      });
  if (!datastore.ok()) return inv.Usage(datastore.status());

  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  // Look first, to say CREATED or REPLACED and to name what a refused create would
  // replace; droverd refuses a taken name by itself too (ALREADY_EXISTS).
  absl::StatusOr<v1::ListDatastoresResponse> list =
      inv.WithRetry([&] { return client->ListDatastores(v1::ListDatastoresRequest()); });
  if (!list.ok()) return inv.ServerError(list.status());
  bool exists = false;
  for (const v1::Datastore& existing : list->datastores()) {
    if (existing.name() != datastore->name()) continue;
    exists = true;
    if (!replace) {
      return inv.Fail(kExitConflict,
                      absl::StrCat("datastore '", existing.name(), "' already exists (",
                                   DescribeDatastore(existing), "); pass --replace to change it"));
    }
  }
  v1::PutDatastoreRequest request;
  *request.mutable_datastore() = *std::move(datastore);
  request.set_replace(replace);
  // With --replace a repeat after UNAVAILABLE changes nothing more; without it, a create
  // that went through answers ALREADY_EXISTS on the repeat, so it is not retried.
  absl::StatusOr<v1::Datastore> stored =
      replace ? inv.WithRetry([&] { return client->PutDatastore(request); })
              : client->PutDatastore(request);
  if (!stored.ok()) return inv.ServerError(stored.status());
  inv.Print([&] { return MessageToJson(*stored, /*pretty=*/true); },
            [&] { return absl::StrCat(stored->name(), exists ? " REPLACED\n" : " CREATED\n"); });
  return kExitOk;
}

int ListAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover datastore list [flags]",
                "Lists the datastores: NAME (what jobs write in ds://NAME/...), TYPE, PATH,\n"
                "ACCESS (read-only or read-write), OPTIONS (rclone settings, credentials\n"
                "shown as ***) and CREATED (age). With --output json: a JSON array of\n"
                "datastores.");
  return inv.RunRead(
      flags, args, "datastore list",
      "  drover datastore list\n"
      "  drover datastore list --output json | jq -r '.[].name'\n",
      [](DroverClient& client) { return client.ListDatastores(v1::ListDatastoresRequest()); },
      [&](const v1::ListDatastoresResponse& list) {
        std::vector<v1::Datastore> datastores(list.datastores().begin(),
                                              list.datastores().end());
        inv.PrintList(datastores,
                      [&] { return FormatDatastoreTable(datastores, inv.ctx().now()); });
      });
}

int DeleteAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover datastore delete [flags] NAME",
                "Removes a datastore from droverd; its data is not touched. Running jobs keep\n"
                "what they mounted; queued jobs that use it fail to launch once placed. An\n"
                "unknown name gives exit code 4.");
  return inv.RunDeleteByName(flags, args, "datastore delete",
                             "  drover datastore delete imagenet\n", /*retry=*/false,
                             [](DroverClient& client, const std::string& name) {
                               v1::DeleteDatastoreRequest request;
                               request.set_name(name);
                               return client.DeleteDatastore(request).status();
                             });
}

}  // namespace

absl::StatusOr<v1::Datastore> BuildDatastore(
    const DatastoreFlags& flags, const std::function<absl::StatusOr<std::string>()>& read_stdin) {
  if (absl::Status s = CheckDatastoreName(flags.name); !s.ok()) return s;
  v1::Datastore datastore;
  datastore.set_name(flags.name);
  const std::string type = absl::AsciiStrToLower(flags.type);
  if (type == "hostpath") {
    datastore.set_type(v1::Datastore::HOSTPATH);
  } else if (type == "rclone") {
    datastore.set_type(v1::Datastore::RCLONE);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--type: ",
        flags.type.empty() ? "required" : absl::StrCat("'", flags.type, "' is not a type"),
        "; use --type hostpath (a folder on every node) or --type rclone (an rclone remote)"));
  }
  datastore.set_path(flags.path);
  datastore.set_allow_write(flags.allow_write);

  auto* options = datastore.mutable_rclone_options();
  auto add = [&](absl::string_view flag, const std::string& value,
                 bool secret) -> absl::Status {
    size_t eq = value.find('=');
    std::string key = value.substr(0, eq);
    if (key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", flag, ": '", value, "' has no key; write KEY=VALUE, for example --", flag,
          secret ? " secret_access_key=..." : " endpoint=http://minio:9000"));
    }
    std::string option_value;
    if (eq != std::string::npos) {
      option_value = value.substr(eq + 1);
    } else if (secret) {
      absl::StatusOr<std::string> read = read_stdin();
      if (!read.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--secret ", key, ": no value given and ", read.status().message(),
            "; write --secret ", key, "=VALUE, or pipe the value in"));
      }
      option_value = *std::move(read);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--option: '", value,
                                                     "' is not KEY=VALUE; for example --option "
                                                     "type=s3"));
    }
    if (!options->insert({key, option_value}).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--", flag, ": '", key, "' is given twice (with --option or --secret); give each "
          "setting once"));
    }
    if (secret) datastore.add_secret_keys(key);
    return absl::OkStatus();
  };
  bool read_stdin_once = false;
  for (const std::string& value : flags.secrets) {
    if (value.find('=') == std::string::npos) {
      if (read_stdin_once) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--secret ", value, ": only one --secret may read its value from stdin; write the "
            "others as KEY=VALUE"));
      }
      read_stdin_once = true;
    }
  }
  for (const std::string& value : flags.options) {
    if (absl::Status s = add("option", value, /*secret=*/false); !s.ok()) return s;
  }
  for (const std::string& value : flags.secrets) {
    if (absl::Status s = add("secret", value, /*secret=*/true); !s.ok()) return s;
  }

  if (datastore.type() == v1::Datastore::HOSTPATH) {
    if (!options->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flags.options.empty() ? "--secret" : "--option",
                       ": applies to --type rclone only; a hostpath datastore is just --path"));
    }
    if (flags.path.empty()) {
      return absl::InvalidArgumentError(
          "--path: required with --type hostpath; give the folder that exists on every node, "
          "such as --path /data/imagenet");
    }
  } else if (!options->contains("type")) {
    return absl::InvalidArgumentError(
        "--option type=...: required with --type rclone; name the rclone backend, such as "
        "--option type=s3");
  }
  return datastore;
}

std::string DescribeDatastore(const v1::Datastore& datastore) {
  std::string where = datastore.path();
  if (datastore.type() == v1::Datastore::RCLONE) {
    auto type = datastore.rclone_options().find("type");
    where = absl::StrCat(type != datastore.rclone_options().end() ? type->second : "remote",
                         ":", datastore.path());
  }
  return absl::StrCat(TypeName(datastore.type()), " ", where,
                      datastore.allow_write() ? ", read-write" : ", read-only");
}

std::string FormatDatastoreTable(const std::vector<v1::Datastore>& datastores, absl::Time now) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "TYPE", "PATH", "ACCESS", "OPTIONS", "CREATED"});
  for (const v1::Datastore& datastore : datastores) {
    std::string options = FormatOptions(datastore);
    absl::Time created = absl::FromUnixSeconds(datastore.create_time().seconds());
    rows.push_back({datastore.name(), TypeName(datastore.type()),
                    datastore.path().empty() ? "-" : datastore.path(),
                    datastore.allow_write() ? "read-write" : "read-only",
                    options.empty() ? "-" : Truncate(options, kOptionsWidth),
                    datastore.has_create_time() ? FormatAge(now - created) + " ago" : "-"});
  }
  return FormatTable(rows);
}

int DatastoreCommand(Invocation& inv, const std::vector<std::string>& args) {
  return RunActions(inv, "datastore",
                    "Manages datastores (for administrators): folders on every node or rclone\n"
                    "remotes that jobs read and write through ds://NAME/PATH arguments (see\n"
                    "'drover submit --help').",
                    {{"create", "Register a hostpath or rclone datastore", CreateAction},
                     {"list", "List the datastores, credentials masked", ListAction},
                     {"delete", "Remove a datastore", DeleteAction}},
                    "  drover datastore create imagenet --type hostpath --path /data/imagenet\n"
                    "  drover datastore list\n"
                    "  drover submit train.py --data ds://imagenet/train\n"
                    "  drover datastore delete imagenet\n",
                    args);
}

}  // namespace drover::cli
