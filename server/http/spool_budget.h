// SpoolBudget: the bytes the HTTP gateway may keep in its spool folder at once (copies of
// job output files on their way to a browser, http_outputs.cc), so that parallel downloads
// of large outputs cannot fill droverd's state disk. A download reserves its file's size
// (as the archive's header says) before copying a byte, and gives it back once the answer is
// sent or failed. Thread-safe: reserved on reading threads, given back on the loop thread.
#ifndef DROVER_SERVER_HTTP_SPOOL_BUDGET_H_
#define DROVER_SERVER_HTTP_SPOOL_BUDGET_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace drover::server::http {

class SpoolBudget {
 public:
  // `max_bytes` 0: no cap.
  explicit SpoolBudget(uint64_t max_bytes) : max_bytes_(max_bytes) {}

  uint64_t max_bytes() const { return max_bytes_; }
  // Whether a file of `bytes` could ever be spooled (it is not larger than the cap).
  bool Fits(uint64_t bytes) const { return max_bytes_ == 0 || bytes <= max_bytes_; }
  // Reserves `bytes`; false (nothing reserved) when that would pass the cap now.
  bool Reserve(uint64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  // Gives back `bytes` that Reserve took.
  void Release(uint64_t bytes) ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t used() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const uint64_t max_bytes_;
  mutable absl::Mutex mu_;
  uint64_t used_ ABSL_GUARDED_BY(mu_) = 0;
};

inline bool SpoolBudget::Reserve(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  if (max_bytes_ != 0 && (bytes > max_bytes_ || used_ > max_bytes_ - bytes)) return false;
  used_ += bytes;
  return true;
}

inline void SpoolBudget::Release(uint64_t bytes) {
  absl::MutexLock lock(&mu_);
  used_ -= bytes <= used_ ? bytes : used_;
}

inline uint64_t SpoolBudget::used() const {
  absl::MutexLock lock(&mu_);
  return used_;
}

}  // namespace drover::server::http

#endif  // DROVER_SERVER_HTTP_SPOOL_BUDGET_H_
