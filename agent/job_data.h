// A job's data references on one node (arguments written `ds://NAME/path`, see
// docs/datastores.md): which datastore folders are bound into the container, what is copied
// into the job folder before the start (DOWNLOAD), which folders are copied back to their
// datastore at the end (UPLOAD), and the arguments as the processes receive them.
//
// Only HOSTPATH datastores are handled here (a folder at the same path on every node);
// RCLONE ones are refused with a clear error until the agent mounts them.
#ifndef DROVER_AGENT_JOB_DATA_H_
#define DROVER_AGENT_JOB_DATA_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/runtime/container_runtime.h"
#include "drover/v1/agent.pb.h"

namespace drover::agent {

// Where a MOUNT datastore's root is in the container: /datastores/<name>.
std::string ContainerDatastorePath(const std::string& name);
// DROVER_DATASTORE_<NAME>: upper case, '-' as '_'.
std::string DatastoreVariable(const std::string& name);

struct JobData {
  // Every argument of the spec, in order, as the processes get it: values as given, data
  // references as container paths.
  std::vector<std::string> arguments;
  // The mounted datastores' roots (read-only unless a reference asked for read-write).
  std::vector<BindMount> mounts;
  // DROVER_DATASTORE_<NAME>=<container path> for each mounted datastore.
  std::vector<std::string> env;
  struct Upload {
    std::string datastore;
    std::string local;   // on the node, in the job folder
    std::string target;  // on the node, in the datastore
  };
  std::vector<Upload> uploads;
};

// Resolves the job's arguments against `assignment.datastores()`; copies DOWNLOAD data into
// `<job_dir>/data/<name>/<path>` and creates the UPLOAD folders `<job_dir>/upload/<name>/<path>`
// (`job_dir` is bound at /job). Errors name the datastore: FAILED_PRECONDITION for one that
// is no longer registered, an rclone one, or a write it does not allow; UNAVAILABLE when
// its folder is missing on this node or a copy fails.
absl::StatusOr<JobData> PrepareJobData(const v1::AssignAttempt& assignment,
                                       const std::string& job_dir, const std::string& node_name);

// Copies each UPLOAD folder's contents into its datastore (files of the same name are
// replaced). UNAVAILABLE naming the datastore and the error when one fails; the others are
// still copied.
absl::Status UploadJobData(const JobData& data);

}  // namespace drover::agent

#endif  // DROVER_AGENT_JOB_DATA_H_
