// rclone for RCLONE datastores (docs/datastores.md): the attempt's rclone config file,
// `rclone mount` as a process the agent owns by pid (recorded, so that the next agent
// process takes it over when the agent restarts), `rclone copy` for downloads, uploads and
// outputs, and the clean-up of mounts an agent killed earlier left behind. Everything runs
// on the calling thread (an attempt's, or the agent's at start-up); an RcloneMount belongs
// to one attempt.
//
// Implemented in rclone_config.cc (config file, remotes, mount flags, rclone's errors),
// rclone_mount.cc (RcloneMount and left-over mounts), rclone_record.cc (the record of a
// mount's rclone process) and rclone_copy.cc (RcloneCopy).
#ifndef DROVER_AGENT_RCLONE_H_
#define DROVER_AGENT_RCLONE_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "drover/v1/datastore.pb.h"

namespace drover::agent {

// The programs, found in PATH unless a path is given.
struct RcloneTools {
  std::string rclone = "rclone";
  std::string fusermount = "fusermount3";
  std::string nsenter = "nsenter";  // to unmount in another mount namespace
  // What a mount's deadlines are read from (its start, the wait for its uploads); not
  // owned. The kernel's waits for rclone to exit stay in real time.
  const Clock* clock = &RealClock::Get();
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
  // The host uid (and gid) that files in the mount belong to, with FUSE's allow_other so
  // that a job container's root in its user namespace (an unprivileged host uid) may use
  // them; -1: only root may (rclone's default).
  int64_t owner_id = -1;
  // Where rclone's pid and start time are kept (RcloneProcessRecord), so that the next
  // agent process can take the mount over: a file in the attempt's record folder, which no
  // job can reach (a pid read from a job-writable place is never trusted). Empty: none
  // (such a mount cannot be taken over).
  std::string record_path;
};

// What a mount's record file says: which process serves it, and how far its release got.
struct RcloneProcessRecord {
  enum class State {
    kMounted,    // in use: the job may read and write through it
    kReleasing,  // the job's processes ended; written files were waited for
    kReleased,   // unmounted, rclone ended: nothing left to do
  };
  pid_t pid = 0;
  // The process's start time (/proc/PID/stat, clock ticks since boot): a pid that was
  // reused by another process has another one.
  uint64_t start_time = 0;
  State state = State::kMounted;
};
// One line: "pid=123 start=456 state=mounted".
std::string RcloneRecordText(const RcloneProcessRecord& record);
// INVALID_ARGUMENT when `text` is not what RcloneRecordText writes.
absl::StatusOr<RcloneProcessRecord> ParseRcloneRecord(absl::string_view text);
// The start time in the text of a /proc/PID/stat (whose process name may hold spaces and
// parentheses); nullopt when the text is not one.
std::optional<uint64_t> StartTimeFromStat(absl::string_view stat);

// `rclone mount` with Drover's flags (docs/datastores.md#rclone-mounts): read-only with no
// disk cache (`--read-only --vfs-cache-mode off`, directory listings cached 1 h), or
// read-write with written files cached on disk and uploaded once closed
// (`--vfs-cache-mode writes --vfs-write-back 0s`).
std::vector<std::string> RcloneMountArgs(const RcloneTools& tools, const RcloneMountSpec& spec);

// One `rclone mount` (never --daemon), from Start or Adopt until Unmount, destruction or
// Leave. rclone runs in a session of its own, so that it outlives the agent: an agent that
// restarts leaves it running (Leave, or a SIGKILL), and the next one takes it over (Adopt)
// from its record. The process is addressed through a pidfd, never by a bare pid that may
// have been reused.
class RcloneMount {
 public:
  // Starts rclone, records it (spec.record_path), waits until the mount is in this
  // process's /proc/self/mountinfo and its root can be listed (which is where a wrong
  // address or password shows), at most `timeout`. On failure nothing is left: no mount, no
  // rclone process (its record says released). UNAVAILABLE naming the datastore with
  // rclone's error (or the timeout), or when the mount point is not a plain folder or the
  // record cannot be written; FAILED_PRECONDITION when rclone cannot be run; CANCELLED when
  // `stop` returned true meanwhile (asked every 20 ms).
  static absl::StatusOr<std::unique_ptr<RcloneMount>> Start(const RcloneTools& tools,
                                                            RcloneMountSpec spec,
                                                            absl::Duration timeout,
                                                            const std::function<bool()>& stop);
  // Takes over the mount an earlier agent process started with the same `spec`, from its
  // record: the recorded process must be the same rclone (start time, command line) and
  // its mount must be there, in whichever mount namespace it lives (an agent confined to a
  // mount namespace of its own gets a new one when it restarts; the old one lives on with
  // rclone and the job's container). A mount whose release had begun is returned as it is,
  // for Unmount to finish. FAILED_PRECONDITION naming the datastore when it cannot be taken
  // over (no record; rclone ended while no agent ran; its mount is gone; the mount point is
  // no plain folder); then what was left of it is removed first (unmounted, rclone ended,
  // folders removed, the record says released).
  static absl::StatusOr<std::unique_ptr<RcloneMount>> Adopt(const RcloneTools& tools,
                                                            RcloneMountSpec spec);
  // Removes what an earlier agent process left of the mount of `spec` (its attempt is
  // prepared again from the start): the recorded rclone is ended (when it is still the same
  // process) and its mount removed, in its own mount namespace; a mount left at the mount
  // point in this one is unmounted lazily. Nothing is waited for: nothing was written.
  static void RemoveLeftover(const RcloneTools& tools, const RcloneMountSpec& spec);
  // Unmount(no wait for uploads) unless done or left.
  ~RcloneMount();
  RcloneMount(const RcloneMount&) = delete;
  RcloneMount& operator=(const RcloneMount&) = delete;

  // Read-write mounts first wait, up to `flush_timeout`, until rclone has uploaded every
  // file written through the mount. Then, in every case: `fusermount3 -u` (lazily, `-uz`,
  // when busy), the end of rclone (it exits once unmounted; SIGTERM, then SIGKILL, when it
  // does not), and the mountpoint folder and the cache are removed. UNAVAILABLE naming the
  // datastore when written files were not uploaded (rclone's error included) or the mount
  // could not be removed. The record says releasing from the wait on, and released once
  // nothing is left. Unmounts in the mount namespace the mount lives in. Idempotent.
  absl::Status Unmount(absl::Duration flush_timeout);
  // Leaves the mount and rclone running for the next agent process (this one stops and
  // leaves its jobs running): nothing is unmounted or ended, now or at destruction, and
  // the record stays.
  void Leave();

  const RcloneMountSpec& spec() const { return spec_; }
  // 0 once rclone has exited.
  pid_t pid() const { return pid_; }
  // Whether the mount lives in a mount namespace other than this process's (taken over
  // from an agent that had one of its own).
  bool other_namespace() const { return ns_fd_ >= 0; }

 private:
  RcloneMount(RcloneTools tools, RcloneMountSpec spec, pid_t pid, bool child)
      : tools_(std::move(tools)), spec_(std::move(spec)), pid_(pid), child_(child) {}
  // What an earlier agent process left of the mount of `spec`: an object for the recorded
  // rclone when it is still the same process (pid_ 0 when not, or when there is no
  // record), and in `problem` why it cannot be taken over ("" when it can). `state` is the
  // record's.
  static std::unique_ptr<RcloneMount> Find(const RcloneTools& tools, const RcloneMountSpec& spec,
                                           std::string* problem,
                                           RcloneProcessRecord::State* state);
  // Files written through the mount that rclone has not uploaded yet.
  int PendingUploads() const;
  // Whether rclone has exited (a child of this process is reaped then); how, in `how`.
  bool Exited(std::string* how);
  void Signal(int signal);
  // Ends rclone: waits up to `grace` for it to exit, then SIGTERM, then SIGKILL; reaps it
  // when it is this process's child.
  void EndProcess(absl::Duration grace);
  // The mount table of the mount's namespace; nullopt when it cannot be read.
  std::optional<std::string> MountTable() const;
  // Whether the mount point is mounted (true when that cannot be told).
  bool Mounted() const;
  // `argv` run in the mount's namespace.
  std::vector<std::string> InNamespace(std::vector<std::string> argv) const;
  absl::Status WriteRecord(RcloneProcessRecord::State state);
  void CloseFds();

  const RcloneTools tools_;
  const RcloneMountSpec spec_;
  pid_t pid_;       // 0 once it exited (and was reaped, when a child)
  bool child_;      // started by this process, which reaps it
  int pidfd_ = -1;  // signals and waits go through it
  pid_t recorded_pid_ = 0;  // what the record says (0: there is none)
  uint64_t start_time_ = 0;
  int ns_fd_ = -1;  // the mount's namespace, when not this process's
  bool unmounted_ = false;
  bool left_ = false;
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

// Unmounts (lazily) every rclone mount under `dir` in this process's mount namespace, except
// those at or under a folder in `keep` (the mounts of attempts taken over): what an agent
// that was killed left. Their rclone processes exit once unmounted. Returns the mount
// points; those it could not unmount are logged.
std::vector<std::string> UnmountLeftoverRcloneMounts(const RcloneTools& tools,
                                                     const std::string& dir,
                                                     const std::set<std::string>& keep = {});

}  // namespace drover::agent

#endif  // DROVER_AGENT_RCLONE_H_
