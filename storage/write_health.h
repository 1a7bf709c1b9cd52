// WriteHealth: how each of droverd's state stores (the database, the log store, the blob
// store) reports writes that the disk under --state-dir refused, so that clients, the log
// and the metrics all say the same thing: one error message that names the state folder and
// what to do, one log line when a store starts failing and one when it works again (not one
// per write), and a count per failed write for the operator's alerts. A store keeps one
// WriteHealth for its life. Thread-safe.
#ifndef DROVER_STORAGE_WRITE_HEALTH_H_
#define DROVER_STORAGE_WRITE_HEALTH_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace drover::storage {

// What a refused write ran into.
enum class WriteError {
  kDiskFull,  // no space left (ENOSPC, EDQUOT, SQLITE_FULL): RESOURCE_EXHAUSTED
  kIoError,   // the disk failed a write or an fsync (EIO, SQLITE_IOERR): UNAVAILABLE
};

// "disk_full" or "io_error": the `kind` label of droverd's write error metric.
absl::string_view WriteErrorName(WriteError kind);

// Told of every write the disk refused: the store ("database", "logs", "blobs") and why.
// Called on the store's own threads; must not block.
using WriteErrorObserver = std::function<void(absl::string_view store, WriteError kind)>;

class WriteHealth {
 public:
  // `store` names the store in logs and metrics; `dir` is the folder it writes under.
  WriteHealth(std::string store, std::string dir, WriteErrorObserver observer = nullptr);

  // `writes` writes failed with `error`, as ErrnoStatus or SqliteError give it. A
  // RESOURCE_EXHAUSTED or UNAVAILABLE error is counted, logged (if the store was healthy
  // until now) and returned with a message that names the state folder and the fix:
  //   RESOURCE_EXHAUSTED "state disk is full: ...; free space on the file system of DIR ..."
  //   UNAVAILABLE        "state disk error: ...; check the disk holding DIR ..."
  // Any other error (a refused spec, a version conflict) is the caller's, not the disk's:
  // returned unchanged and not counted.
  absl::Status Failed(const absl::Status& error, int64_t writes = 1);
  // A write went through: logs the recovery when the store was failing.
  void Succeeded();

  // Whether the last write failed (for tests and status displays).
  bool failing() const;

 private:
  const std::string store_;
  const std::string dir_;
  const WriteErrorObserver observer_;
  // Read without the lock on every successful write: the common case costs one load.
  std::atomic<bool> failing_{false};
  absl::Mutex mu_;
  int64_t failed_since_ok_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace drover::storage

#endif  // DROVER_STORAGE_WRITE_HEALTH_H_
