// A job's data on one node (arguments written `ds://NAME/path` and `spec.outputs`, see
// docs/datastores.md): which datastore folders are bound into the container, what is copied
// into the job folder before the start (DOWNLOAD), which folders are copied to their
// datastore at the end (UPLOAD, and `outputs/` to each output target), and the arguments as
// the processes receive them. HOSTPATH datastores are folders on the node; RCLONE ones are
// mounted with `rclone mount` and copied with `rclone copyto` (agent/rclone.h). Used on the
// attempt's thread.
#ifndef DROVER_AGENT_JOB_DATA_H_
#define DROVER_AGENT_JOB_DATA_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/rclone.h"
#include "agent/runtime/container_runtime.h"
#include "common/datastore_policy.h"
#include "drover/v1/agent.pb.h"

namespace drover::agent {

// Where a MOUNT datastore's root is in the container: /datastores/<name>.
std::string ContainerDatastorePath(const std::string& name);
// DROVER_DATASTORE_<NAME>: upper case, '-' as '_'.
std::string DatastoreVariable(const std::string& name);
// The variable that holds the path of spec.inputs[i] is this prefix and its name as written.
inline constexpr char kInputVariablePrefix[] = "DROVER_INPUT_";
// Where the rclone mount points of `attempt` go on an agent with `work_dir`:
// <work_dir>/mounts/<job>-<epoch>.
std::string AttemptMountDir(const std::string& work_dir, const v1::AttemptRef& attempt);

// Where and how one attempt's data is handled on this node.
struct JobDataContext {
  std::string job_dir;     // the job folder, bound at /job
  std::string rclone_dir;  // the attempt's rclone config, logs and caches (created if needed)
  // rclone mount points go under it (created if needed): never under a folder that is
  // removed recursively, which would delete through a mount that is still there.
  std::string mount_dir;
  // The attempt's record folder (mode 0700, out of every job's reach): each rclone mount's
  // process is recorded there (`rclone-<name>`), so that the next agent process can take
  // it over. Empty: not recorded, and not taken over.
  std::string record_dir;
  std::string node_name;
  // The host uid of the job container's root when it has a user namespace (FUSE mounts are
  // given to it); -1: the container's root is the node's.
  int64_t container_root = -1;
  // Where HOSTPATH datastores may be (--datastore-root) and what they may never touch (the
  // agent's work folder): a datastore's real path (symlinks resolved, as are the roots and
  // refused folders) is checked against them, as is every RCLONE datastore's options
  // (CheckRcloneRemote), before anything is bound, copied or written.
  DatastoreRoots datastore_roots;
  RcloneTools rclone;
  // Asked during mounts and copies; true ends them (CANCELLED).
  std::function<bool()> stop;
  // Progress for the job's state reason ("MOUNTING datastore=NAME").
  std::function<void(const std::string& reason)> report;
  // The attempt is taken over after an agent restart: its folder and data are already
  // there. Only what the rest of its life needs is worked out (arguments, mounts, uploads):
  // nothing is copied or mounted; rclone mounts are taken over from their records
  // (RcloneMount::Adopt), and one that cannot be is refused (FAILED_PRECONDITION naming the
  // datastore; what was left of it is removed).
  bool recovering = false;
};

struct JobData {
  // Every argument of the spec, in order, as the processes get it: values as given, data
  // references as container paths.
  std::vector<std::string> arguments;
  // The mounted datastores' roots (read-only unless a reference asked for read-write).
  std::vector<BindMount> mounts;
  // DROVER_INPUT_<name>=<container path> for each of spec.inputs, then
  // DROVER_DATASTORE_<NAME>=<container path> for each mounted datastore.
  std::vector<std::string> env;
  struct Upload {
    std::string datastore;
    std::string job_dir;  // the job folder
    std::string local;    // the folder to upload, relative to `job_dir`
    // HOSTPATH: the datastore's real folder on the node, and the folder in it (relative,
    // "" for its root); RCLONE: `target` is "NAME:PATH".
    std::string target_root;
    std::string target;
    bool rclone = false;
  };
  // UPLOAD references, then `outputs/` to each output target.
  std::vector<Upload> uploads;
  // The attempt's rclone config file and mounts, when it uses an RCLONE datastore.
  // Destroying them (without ReleaseJobData) unmounts without waiting for uploads and
  // removes the config.
  struct Rclone {
    RcloneTools tools;
    std::string config;     // mode 0600, in the attempt's rclone folder
    std::string mount_dir;  // removed when empty
    std::vector<std::unique_ptr<RcloneMount>> mounts;
    bool left = false;  // LeaveJobData: the config stays for the mounts' rclone
    ~Rclone();
  };
  std::unique_ptr<Rclone> rclone;
};

// Resolves the job's arguments, inputs and outputs against `assignment.datastores()`; writes the
// rclone config, mounts rclone datastores (MOUNTING datastore=NAME), copies DOWNLOAD data
// into `<job_dir>/data/<name>/<path>` and creates the UPLOAD folders
// `<job_dir>/upload/<name>/<path>` (`job_dir` is bound at /job). What an earlier agent
// process left of the attempt's mounts is removed first (RcloneMount::RemoveLeftover). On
// failure nothing is left mounted. Errors name the datastore: FAILED_PRECONDITION for one that is no longer
// registered or a write it does not allow; UNAVAILABLE when its folder is missing on this
// node, a copy or a mount fails (with rclone's error); CANCELLED when `context.stop` said so.
// FAILED_PRECONDITION also for a datastore the node refuses (a HOSTPATH folder whose real
// path is not below an allowed root or touches a refused folder, RCLONE options that
// CheckRcloneRemote refuses) and for a symlink on the way to a downloaded or upload path:
// no copy follows a symlink out of the datastore or the job folder (agent/datastore_copy.h).
absl::StatusOr<JobData> PrepareJobData(const v1::AssignAttempt& assignment,
                                       const JobDataContext& context);

// Copies each UPLOAD folder's contents, and `outputs/`, into its datastore (files of the
// same name are replaced; an empty folder copies nothing; symlinks, FIFOs and devices are
// skipped and logged). An error naming the datastore when one fails (UNAVAILABLE, or
// FAILED_PRECONDITION for a symlink on the way into the datastore or out of the job
// folder); the others are still copied.
absl::Status UploadJobData(const JobData& data);

// Ends the rclone part: waits until files written through read-write mounts are uploaded
// (at most `upload_wait`), unmounts every mount, ends its rclone and removes the config.
// UNAVAILABLE naming the datastore when written files were not uploaded or a mount could
// not be removed; everything is released anyway.
absl::Status ReleaseJobData(JobData& data, absl::Duration upload_wait = absl::Minutes(30));

// The agent stops and leaves the attempt's processes running for the next agent process:
// its rclone mounts stay mounted, their rclone processes running and recorded, the config
// in place; nothing is released now or when `data` is destroyed.
void LeaveJobData(JobData& data);

}  // namespace drover::agent

#endif  // DROVER_AGENT_JOB_DATA_H_
