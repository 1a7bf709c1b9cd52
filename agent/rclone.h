// rclone for RCLONE datastores (docs/datastores.md): the attempt's rclone config file,
// `rclone mount` as a child process the agent owns by pid, `rclone copy` for downloads,
// uploads and outputs, and the clean-up of mounts an agent killed earlier left behind.
// Everything runs on the calling thread (an attempt's, or the agent's at start-up); an
// RcloneMount belongs to one attempt.
#ifndef DROVER_AGENT_RCLONE_H_
#define DROVER_AGENT_RCLONE_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "drover/v1/datastore.pb.h"

namespace drover::agent {

// The programs, found in PATH unless a path is given.
struct RcloneTools {
  std::string rclone = "rclone";
  std::string fusermount = "fusermount3";
};

// The text of an rclone config file: a section `[NAME]` per datastore with its
// rclone_options, keys sorted; the value of each option in `obscured(type)` replaced by
// `obscure(value)` (rclone keeps passwords obscured in its config). Errors of the callbacks
// are returned with the datastore named, never a value.
absl::StatusOr<std::string> RcloneConfigText(
    const std::vector<v1::Datastore>& datastores,
    const std::function<absl::StatusOr<std::set<std::string>>(const std::string& type)>& obscured,
    const std::function<absl::StatusOr<std::string>(const std::string& value)>& obscure);

// Writes the config of `datastores` (RCLONE ones) to `path`, created with mode 0600 (never
// readable by others, not even while it is written; an existing file is replaced). Which
// options rclone keeps obscured (its password options, such as webdav's and sftp's `pass`)
// is asked of `rclone config providers` once per process; their values are given in plain
// text and obscured with `rclone obscure`, which reads them on stdin. FAILED_PRECONDITION
// naming the datastore when rclone cannot be run or has no such backend; UNAVAILABLE when
// the file cannot be written. No message carries an option's value.
absl::Status WriteRcloneConfig(const RcloneTools& tools, const std::vector<v1::Datastore>& datastores,
                               const std::string& path);

// "NAME:PATH": `path` (relative, "" for the root) inside the datastore, in rclone's syntax
// for the config section of the datastore.
std::string RcloneRemote(const v1::Datastore& store, const std::string& path);

// What rclone's log says went wrong: its last ERROR line (retries' summaries and the
// unmount notice skipped), else its last line, without the timestamp and level.
std::string RcloneError(absl::string_view log);

struct RcloneMountSpec {
  std::string datastore;   // for messages
  std::string node;        // for messages
  std::string config;      // the config file
  std::string remote;      // "NAME:PATH"
  std::string mountpoint;  // an absolute folder, created if missing
  std::string cache_dir;   // rclone's VFS cache (written files wait there to be uploaded)
  std::string log_path;    // rclone's stdout and stderr
  bool read_write = false;
};

// `rclone mount` with Drover's flags (docs/datastores.md#rclone-mounts): read-only with no
// disk cache (`--read-only --vfs-cache-mode off`, directory listings cached 1 h), or
// read-write with written files cached on disk and uploaded once closed
// (`--vfs-cache-mode writes --vfs-write-back 0s`).
std::vector<std::string> RcloneMountArgs(const RcloneTools& tools, const RcloneMountSpec& spec);

// One `rclone mount`, run as a child process of the agent (never --daemon) from Start until
// Unmount or destruction.
class RcloneMount {
 public:
  // Starts rclone, waits until the mount is in this process's /proc/self/mountinfo and its
  // root can be listed (which is where a wrong address or password shows), at most
  // `timeout`. On failure nothing is left: no mount, no rclone process. UNAVAILABLE naming
  // the datastore with rclone's error (or the timeout); FAILED_PRECONDITION when rclone
  // cannot be run; CANCELLED when `stop` returned true meanwhile (asked every 20 ms).
  static absl::StatusOr<std::unique_ptr<RcloneMount>> Start(const RcloneTools& tools,
                                                            RcloneMountSpec spec,
                                                            absl::Duration timeout,
                                                            const std::function<bool()>& stop);
  // Unmount(no wait for uploads) unless done.
  ~RcloneMount();
  RcloneMount(const RcloneMount&) = delete;
  RcloneMount& operator=(const RcloneMount&) = delete;

  // Read-write mounts first wait, up to `flush_timeout`, until rclone has uploaded every
  // file written through the mount. Then, in every case: `fusermount3 -u` (lazily, `-uz`,
  // when busy), the end of rclone (it exits once unmounted; SIGTERM, then SIGKILL, when it
  // does not), and the mountpoint folder and the cache are removed. UNAVAILABLE naming the
  // datastore when written files were not uploaded (rclone's error included) or the mount
  // could not be removed. Idempotent.
  absl::Status Unmount(absl::Duration flush_timeout);

  const RcloneMountSpec& spec() const { return spec_; }
  pid_t pid() const { return pid_; }

 private:
  RcloneMount(RcloneTools tools, RcloneMountSpec spec, pid_t pid)
      : tools_(std::move(tools)), spec_(std::move(spec)), pid_(pid) {}
  // Files written through the mount that rclone has not uploaded yet.
  int PendingUploads() const;
  // Ends rclone: waits up to `grace` for it to exit, then SIGTERM, then SIGKILL; reaps it.
  void EndProcess(absl::Duration grace);

  const RcloneTools tools_;
  const RcloneMountSpec spec_;
  pid_t pid_;  // 0 once reaped
  bool unmounted_ = false;
};

// Runs `rclone copyto FROM TO` (a file to a file, or a folder's contents into a folder;
// either side a local path or "NAME:PATH") with the config at `config`. `stop`, asked every
// 200 ms, ends it (CANCELLED). UNAVAILABLE with rclone's error when it fails.
absl::Status RcloneCopy(const RcloneTools& tools, const std::string& config,
                        const std::string& from, const std::string& to,
                        const std::function<bool()>& stop = nullptr);

// The mount points of rclone FUSE mounts (type fuse.rclone) at or under the folder `dir`
// in `mountinfo` (the text of /proc/self/mountinfo), escapes decoded, longest first (so a
// mount comes before the one it is mounted on).
std::vector<std::string> RcloneMountsUnder(absl::string_view mountinfo, const std::string& dir);

// Unmounts (lazily) every rclone mount under `dir` in this process's mount namespace: what
// an agent that was killed left. Their rclone processes exit once unmounted. Returns the
// mount points; those it could not unmount are logged.
std::vector<std::string> UnmountLeftoverRcloneMounts(const RcloneTools& tools,
                                                     const std::string& dir);

}  // namespace drover::agent

#endif  // DROVER_AGENT_RCLONE_H_
