// LogStore: every rank's stdout and stderr, and every node's preparation log, as droverd
// received them from the agents. One file per (job, attempt, rank, stream) under
// `<root>/<job>/<epoch>/` (`rank-R.stdout`, `rank-R.stderr`, `node-N.prepare`, where the
// PREPARE stream's `rank` is the node rank), appended by offset so
// that a chunk sent twice (after a reconnect) is stored once and a chunk that would leave a
// gap is refused.
//
// Several droverds may share `root` (one leads at a time; docs/operations.md#shared-data):
// a chunk is written at its own offset in the stream (pwrite), never appended blindly, so
// the same chunk written by a deposed leader and by the new one lands on the same bytes,
// and every file is opened beneath `root` without following a link.
//
// Durability: appends are written at once and made durable by a syncer thread that fsyncs
// every file written since its last round, then runs the appends' callbacks; the agent
// counts a chunk as delivered only after that callback acknowledged it. When the disk is
// full or an fsync fails, the appends concerned fail (the agent sends them again later) and
// a file whose fsync failed is cut back to what was durable, so that what droverd stores
// and what it acknowledged never part ways. Thread-safe.
//
// Limits (docs/operations.md#limits): a job decides how many streams it has and how much it
// writes, so the store holds at most `max_open_files` descriptors (the least recently
// written are closed, after an fsync when needed, and opened again on the next append),
// opens nothing when the process' next descriptor would be among the last
// `fd_reserve` below RLIMIT_NOFILE (RESOURCE_EXHAUSTED instead, so that gRPC's accept and the
// database keep theirs), and closes an attempt's files when it ends (EndAttempt). Past a
// stream's cap (`LogLimits`) it stores a note saying so and acknowledges, without storing,
// whatever the sender goes on sending, so the attempt is not held up; a sidecar file
// `rank-R.STREAM.capped` remembers the cap across restarts.
#ifndef DROVER_STORAGE_LOG_STORE_H_
#define DROVER_STORAGE_LOG_STORE_H_

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "drover/v1/agent.pb.h"
#include "storage/write_health.h"

namespace drover::storage {

struct LogStreamKey {
  std::string job_id;
  int64_t epoch = 0;
  int32_t rank = 0;
  v1::LogStream stream = v1::STDOUT;
  template <typename H>
  friend H AbslHashValue(H h, const LogStreamKey& k) {
    return H::combine(std::move(h), k.job_id, k.epoch, k.rank, static_cast<int>(k.stream));
  }
  bool operator==(const LogStreamKey& o) const {
    return job_id == o.job_id && epoch == o.epoch && rank == o.rank && stream == o.stream;
  }
};

struct LogStreamInfo {
  int32_t rank;
  v1::LogStream stream;
  int64_t size;      // bytes stored (readable)
  int64_t received;  // the sender's offset: `size` plus what was dropped past a cap
};

// Per-stream caps; 0: none.
struct LogLimits {
  // Bytes stored of one rank's STDOUT or STDERR, or one node's PREPARE log.
  int64_t max_log_bytes = 0;
  // Records (lines) stored of one rank's METRICS or one node's SYSTEM_METRICS.
  int64_t max_metric_records = 0;
};

// What was dropped past a cap, for counters.
using DroppedObserver = std::function<void(v1::LogStream stream, int64_t bytes)>;

struct LogStoreOptions {
  // Told of every append the disk refused (see WriteHealth).
  WriteErrorObserver on_write_error;
  // Makes a file's data durable (fdatasync); 0 or -1 with errno. Tests make it fail.
  std::function<int(int fd)> sync;
  // Most stream files held open at once; also at most a quarter of RLIMIT_NOFILE.
  int max_open_files = 1024;
  // Descriptors below RLIMIT_NOFILE the store leaves to everything else: it opens no file
  // numbered in [limit - fd_reserve, limit). Default: an eighth of the limit, at least 32.
  int fd_reserve = 0;
  LogLimits limits;
  // Told of bytes dropped past a cap.
  DroppedObserver on_dropped;
};

// The line a stream gets when it reaches its cap, and the one its attempt's end adds.
std::string LogCapNote(v1::LogStream stream, int64_t cap);
std::string LogDroppedNote(v1::LogStream stream, int64_t dropped_bytes, int64_t dropped_records);

class LogStore {
 public:
  // Stored size of the stream after the append, once durable; or an error.
  using AppendCallback = absl::AnyInvocable<void(absl::StatusOr<int64_t>) &&>;
  // Called after any append became durable (for followers); must not block.
  using Listener = std::function<void(const LogStreamKey&, int64_t size)>;

  // Creates `root` if needed and starts the syncer.
  static absl::StatusOr<std::unique_ptr<LogStore>> Open(std::string root,
                                                        LogStoreOptions options = {});
  ~LogStore();

  // Appends `data`, which starts at byte `offset` of the stream. Bytes before the stored
  // size are skipped (already stored). `done` gets the stored size once durable.
  // FAILED_PRECONDITION (with the stored size in the message) when `offset` is beyond the
  // stored size: the sender must resend from there. RESOURCE_EXHAUSTED when the disk is
  // full or droverd is short of file descriptors, UNAVAILABLE when a write or fsync failed:
  // nothing of `data` counts as stored then. Past the stream's cap `done` gets the end of
  // `data` (the sender's offset), though nothing of it is stored.
  void Append(const LogStreamKey& key, int64_t offset, absl::string_view data,
              AppendCallback done);

  // The sender's offset of a stream: what is stored (durable or not yet) plus what was
  // dropped past its cap; 0 when it does not exist.
  int64_t Received(const LogStreamKey& key);
  // Whether the stream reached its cap (what comes is acknowledged, not stored).
  bool Capped(const LogStreamKey& key);
  // Every stream of an attempt with its size.
  std::vector<LogStreamInfo> Streams(absl::string_view job_id, int64_t epoch);
  // Up to `max_bytes` from `offset`; empty at the end. RESOURCE_EXHAUSTED when droverd is
  // short of file descriptors.
  absl::StatusOr<std::string> Read(const LogStreamKey& key, int64_t offset, int64_t max_bytes);

  // The attempt ended: no more appends are expected. Streams past their cap get a last line
  // with what was dropped; every file of the attempt is closed once durable. Never blocks
  // on the disk beyond those small writes.
  void EndAttempt(absl::string_view job_id, int64_t epoch);

  // Retention: removes every stored stream of job `job_id` (all attempts) whose kind is in
  // `streams`, with its cap record, and returns the bytes freed. For a job that ended:
  // its streams are closed first if still open. Other streams are kept (the retention
  // keeps metrics when it removes logs). With `dry_run`, removes nothing and returns the
  // bytes it would free.
  absl::StatusOr<int64_t> RemoveStreams(absl::string_view job_id,
                                        const std::vector<v1::LogStream>& streams,
                                        bool dry_run = false);

  // Stream files open now (tests, metrics).
  int OpenFiles();

  // Registers a listener for durable appends; returns an id for RemoveListener.
  int AddListener(Listener listener);
  void RemoveListener(int id);

  // Makes everything appended durable and stops the syncer. Idempotent.
  void Close();

 private:
  LogStore(std::string root, LogStoreOptions options);
  // A stream written since droverd started; its descriptor may be closed (fd -1).
  struct File {
    int fd = -1;
    int64_t size = 0;     // written
    int64_t durable = 0;  // synced: what a failed fsync cuts the file back to
    bool dirty = false;
    bool in_sync = false;  // the syncer holds `fd` now: not closed under it
    bool ended = false;    // EndAttempt: closed and forgotten after its next sync
    // Bumped when the file is cut back; an append written before that is lost.
    int64_t generation = 0;
    absl::Status cut_back;  // why it was cut back last
    std::list<LogStreamKey>::iterator lru;  // in open_ when fd >= 0
    // Caps: the stream is `capped` once its note was written; `cap_at` is the sender's
    // offset where it was cut, `received` the sender's offset since, `records` the lines
    // stored (metric streams), `dropped_records` the lines dropped.
    bool capped = false;
    int64_t cap_at = 0;
    int64_t received = 0;
    int64_t records = 0;
    int64_t dropped_records = 0;
  };
  // The stream's file: its path below `root_`, and the whole path (for messages).
  static std::string RelativePathOf(const LogStreamKey& key);
  std::string PathOf(const LogStreamKey& key) const;
  // The stream's entry with an open descriptor.
  absl::StatusOr<File*> OpenFile(const LogStreamKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Opens `path` (below `root_`, nothing followed, a regular file only: common/safe_open.h)
  // unless that takes one of the last `fd_reserve_` descriptors: then, or on EMFILE/ENFILE,
  // closes a stream file and tries again once, else RESOURCE_EXHAUSTED. NOT_FOUND when
  // missing; UNAVAILABLE naming it for a link, a FIFO or a folder there.
  absl::StatusOr<int> OpenGuarded(const std::string& path, int flags)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closes the least recently used open file the syncer does not hold (after an fsync
  // when it is dirty); false when there is none.
  bool EvictOne() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CloseFd(File& file) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `data` at the end of `file`, or cuts it back; the stored size after. `lines`:
  // the records in `data` when the caller counted them already (metric streams), else -1.
  absl::Status WriteAt(const LogStreamKey& key, File& file, absl::string_view data,
                       int64_t lines = -1) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes `data` again at `offset`, below the stored size (see Append).
  absl::Status Rewrite(const LogStreamKey& key, File& file, int64_t offset, absl::string_view data)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes what fits under the cap, then the note. The sender's offset after.
  absl::StatusOr<int64_t> AppendCapped(const LogStreamKey& key, File& file, int64_t offset,
                                       absl::string_view rest)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SaveCap(const LogStreamKey& key, const File& file) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets the caps' fields of `file`, a stream at `path` first opened (as `fd`) since droverd
  // started: its records counted (a metric stream under a cap), its sidecar read, or, with
  // none, the cap inferred from its size. The caps live in log_store_caps.cc.
  void LoadCap(const LogStreamKey& key, int fd, const std::string& path, File& file) const;
  void SyncLoop();

  const std::string root_;
  // `root_`, opened once: every stream file is opened beneath it without following a link
  // (the folder may be on storage other hosts write: docs/operations.md#shared-data).
  int root_fd_ = -1;
  const std::function<int(int fd)> sync_;
  const LogLimits limits_;
  const DroppedObserver on_dropped_;
  int max_open_files_ = 1024;
  int fd_ceiling_ = 0;  // no stream file or read gets a descriptor numbered this or above
  WriteHealth health_;
  absl::Mutex mu_;
  absl::flat_hash_map<LogStreamKey, File> files_ ABSL_GUARDED_BY(mu_);
  std::list<LogStreamKey> open_ ABSL_GUARDED_BY(mu_);  // open files, most recent first
  bool short_of_fds_ ABSL_GUARDED_BY(mu_) = false;  // logged once per episode
  struct Pending {
    LogStreamKey key;
    absl::StatusOr<int64_t> result;
    AppendCallback done;
    int64_t generation;  // of the file when written
  };
  std::vector<Pending> pending_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Mutex listeners_mu_;
  std::vector<std::pair<int, Listener>> listeners_ ABSL_GUARDED_BY(listeners_mu_);
  int next_listener_ ABSL_GUARDED_BY(listeners_mu_) = 1;
  std::thread syncer_;
};

}  // namespace drover::storage

#endif  // DROVER_STORAGE_LOG_STORE_H_
