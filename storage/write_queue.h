// The queue in front of a SQL store's writer thread (SqliteStore, PostgresStore): writes are
// queued from any thread and taken by the writer in batches, each batch one transaction
// (group commit); it counts what was committed. `Op` is the store's queued write: its
// `Finish(status) &&` answers the caller.
//
// Threads: every method may be called from any thread; NextBatch by the writer thread only.
#ifndef DROVER_STORAGE_WRITE_QUEUE_H_
#define DROVER_STORAGE_WRITE_QUEUE_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace drover::storage {

// What a store's writer has committed.
struct WriteStats {
  int64_t commits = 0;          // transactions committed
  int64_t flushed_commits = 0;  // of which flushed to disk (Store::Durability::kFlushed)
  int64_t writes = 0;           // writes applied in them
};

template <typename Op>
class WriteQueue {
 public:
  // Queues `op`. Once closing has begun it is not queued: it finishes at once, UNAVAILABLE.
  void Push(std::unique_ptr<Op> op) {
    {
      absl::MutexLock lock(&mu_);
      if (!closing_) {
        queue_.push_back(std::move(op));
        return;
      }
    }
    std::move(*op).Finish(absl::UnavailableError("droverd is shutting down; retry the call"));
  }

  // Waits until a write is queued, then moves up to `max` of them, oldest first, into
  // `batch` (cleared first). False once closing has begun and every write queued before it
  // has been taken.
  bool NextBatch(int max, std::vector<std::unique_ptr<Op>>& batch) {
    batch.clear();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](WriteQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
          return !q->queue_.empty() || q->closing_;
        },
        this));
    if (queue_.empty()) return false;  // closing and drained
    while (!queue_.empty() && static_cast<int>(batch.size()) < max) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    return true;
  }

  // Begins closing: no write is queued any more, and NextBatch ends once the queue is
  // drained. False when the queue was closed already (EndClose).
  bool BeginClose() {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    closing_ = true;
    return true;
  }
  // Marks the queue closed, once its writer has stopped.
  void EndClose() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

  // Counts one committed transaction of `writes` writes, `flushed` or not.
  void Committed(int64_t writes, bool flushed) {
    absl::MutexLock lock(&mu_);
    stats_.commits += 1;
    if (flushed) stats_.flushed_commits += 1;
    stats_.writes += writes;
  }
  WriteStats stats() const {
    absl::MutexLock lock(&mu_);
    return stats_;
  }

 private:
  mutable absl::Mutex mu_;
  std::deque<std::unique_ptr<Op>> queue_ ABSL_GUARDED_BY(mu_);
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  WriteStats stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace drover::storage

#endif  // DROVER_STORAGE_WRITE_QUEUE_H_
