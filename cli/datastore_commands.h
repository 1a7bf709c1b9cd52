// `drover datastore create|list|delete`: the datastores jobs read and write through `ds://`
// arguments (AdminService's datastore registry; see docs/datastores.md). The command is one
// row of the table in commands.cc; building the Datastore from the flags and the table it
// prints are here as pure functions for tests. Main thread only.
#ifndef DROVER_CLI_DATASTORE_COMMANDS_H_
#define DROVER_CLI_DATASTORE_COMMANDS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "drover/v1/datastore.pb.h"

namespace drover::cli {

class Invocation;

// `drover datastore ACTION ...`.
int DatastoreCommand(Invocation& inv, const std::vector<std::string>& args);

// What `drover datastore create` was given, before it is checked.
struct DatastoreFlags {
  std::string name;                  // NAME
  std::string type;                  // --type: "hostpath" or "rclone", any case
  std::string path;                  // --path
  std::vector<std::string> options;  // --option KEY=VALUE, in order
  std::vector<std::string> secrets;  // --secret KEY=VALUE, or KEY alone (value from stdin)
  bool allow_write = false;          // --allow-write
};

// Turns the flags into the Datastore to register. `read_stdin` gives the value of the one
// `--secret KEY` written without a value (the first line of stdin, without its line
// break); it is called at most once. Checks what the client can: the name (1-63
// characters of [a-z0-9_-] starting with a letter or digit), the type, KEY=VALUE forms, a
// key given twice, --path with hostpath and --option type=... with rclone, no --option or
// --secret with hostpath. INVALID_ARGUMENT naming the flag otherwise (droverd checks the
// rest: a clean absolute path, option key characters).
absl::StatusOr<v1::Datastore> BuildDatastore(
    const DatastoreFlags& flags, const std::function<absl::StatusOr<std::string>()>& read_stdin);

// "hostpath /data/imagenet, read-only", "rclone s3:bucket/prefix, writable": one phrase
// for messages.
std::string DescribeDatastore(const v1::Datastore& datastore);

// The `drover datastore list` table: NAME, TYPE, PATH ("-" when empty), ACCESS (read-only
// or read-write), OPTIONS (rclone options as droverd shows them, credentials "***": type
// first, then sorted, cut to 60 characters; "-" for none) and CREATED (age). Rows in the
// order given.
std::string FormatDatastoreTable(const std::vector<v1::Datastore>& datastores, absl::Time now);

}  // namespace drover::cli

#endif  // DROVER_CLI_DATASTORE_COMMANDS_H_
