// LogStore: every rank's stdout and stderr, and every node's preparation log, as droverd
// received them from the agents. One file per (job, attempt, rank, stream) under
// `<root>/<job>/<epoch>/` (`rank-R.stdout`, `rank-R.stderr`, `node-N.prepare`, where the
// PREPARE stream's `rank` is the node rank), appended by offset so
// that a chunk sent twice (after a reconnect) is stored once and a chunk that would leave a
// gap is refused.
//
// Durability: appends are written at once and made durable by a syncer thread that fsyncs
// every file written since its last round, then runs the appends' callbacks; the agent
// counts a chunk as delivered only after that callback acknowledged it. When the disk is
// full or an fsync fails, the appends concerned fail (the agent sends them again later) and
// a file whose fsync failed is cut back to what was durable, so that what droverd stores
// and what it acknowledged never part ways. Thread-safe.
#ifndef DROVER_STORAGE_LOG_STORE_H_
#define DROVER_STORAGE_LOG_STORE_H_

#include <cstdint>
#include <functional>
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
  int64_t size;
};

struct LogStoreOptions {
  // Told of every append the disk refused (see WriteHealth).
  WriteErrorObserver on_write_error;
  // Makes a file's data durable (fdatasync); 0 or -1 with errno. Tests make it fail.
  std::function<int(int fd)> sync;
};

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
  // full, UNAVAILABLE when a write or fsync failed: nothing of `data` counts as stored then.
  void Append(const LogStreamKey& key, int64_t offset, absl::string_view data,
              AppendCallback done);

  // Stored (durable or not yet) size of a stream; 0 when it does not exist.
  int64_t Size(const LogStreamKey& key);
  // Every stream of an attempt with its size.
  std::vector<LogStreamInfo> Streams(absl::string_view job_id, int64_t epoch);
  // Up to `max_bytes` from `offset`; empty at the end.
  absl::StatusOr<std::string> Read(const LogStreamKey& key, int64_t offset, int64_t max_bytes);

  // Registers a listener for durable appends; returns an id for RemoveListener.
  int AddListener(Listener listener);
  void RemoveListener(int id);

  // Makes everything appended durable and stops the syncer. Idempotent.
  void Close();

 private:
  LogStore(std::string root, LogStoreOptions options);
  struct File {
    int fd = -1;
    int64_t size = 0;     // written
    int64_t durable = 0;  // synced: what a failed fsync cuts the file back to
    bool dirty = false;
    // Bumped when the file is cut back; an append written before that is lost.
    int64_t generation = 0;
    absl::Status cut_back;  // why it was cut back last
  };
  std::string PathOf(const LogStreamKey& key) const;
  absl::StatusOr<File*> OpenFile(const LogStreamKey& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SyncLoop();

  const std::string root_;
  const std::function<int(int fd)> sync_;
  WriteHealth health_;
  absl::Mutex mu_;
  absl::flat_hash_map<LogStreamKey, File> files_ ABSL_GUARDED_BY(mu_);
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
