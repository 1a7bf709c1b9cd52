// JobEventHub: fans committed job changes out to WatchJob streams. Publish is called after a
// change is durable (from the store's writer thread or the core loop); subscribers are
// called under the hub's lock and must not block or call back into the hub. Thread-safe.
#ifndef DROVER_SERVER_JOB_EVENTS_H_
#define DROVER_SERVER_JOB_EVENTS_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "drover/v1/job.pb.h"

namespace drover::server {

class JobSubscriber {
 public:
  virtual ~JobSubscriber() = default;
  // The job after a committed change.
  virtual void OnJobChanged(const v1::Job& job) = 0;
  // The hub is closing (droverd stops); the subscriber should end its stream with `status`.
  virtual void OnHubClosed(const absl::Status& status) = 0;
};

class JobEventHub {
 public:
  // Registers `subscriber` for changes of `job_id`. Returns false when the hub is closed
  // (OnHubClosed is not called then).
  bool Subscribe(const std::string& job_id, JobSubscriber* subscriber);
  // Removes the subscriber; after it returns no call reaches `subscriber`.
  void Unsubscribe(const std::string& job_id, JobSubscriber* subscriber);
  void Publish(const v1::Job& job);
  // Ends every subscription with `status` and refuses new ones.
  void Close(const absl::Status& status);

 private:
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_map<std::string, absl::flat_hash_map<JobSubscriber*, bool>> subscribers_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace drover::server

#endif  // DROVER_SERVER_JOB_EVENTS_H_
