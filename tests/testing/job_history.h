// JobHistory: what droverd told clients about jobs, recorded while a fault-injection test
// runs and checked afterwards. One WatchJob stream per job (watched again after the stream
// broke, for example across a droverd restart) plus whatever the test polled itself. Used
// from the test thread; the watchers run on threads of their own.
#ifndef DROVER_TESTS_TESTING_JOB_HISTORY_H_
#define DROVER_TESTS_TESTING_JOB_HISTORY_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "drover/v1/job.pb.h"

namespace drover::testing {

class JobHistory {
 public:
  explicit JobHistory(std::shared_ptr<grpc::Channel> channel) : channel_(std::move(channel)) {}
  // Cancels the watches and joins their threads.
  ~JobHistory();
  JobHistory(const JobHistory&) = delete;
  JobHistory& operator=(const JobHistory&) = delete;

  // Watches `job_id` until it ended (or the history is destroyed).
  void Watch(const std::string& job_id);
  // Records a job the test read itself (GetJob).
  void Record(const v1::Job& job);

  // Every status seen of `job_id`, each source (the watch, the test's own reads) in the
  // order it saw them.
  std::map<std::string, std::vector<v1::JobStatus>> Seen(const std::string& job_id) const;

  // Checks that what clients saw of `job_id` is a valid history: each source saw versions
  // in increasing order; one version is one status everywhere; in version order attempt
  // numbers never decrease, no state goes back within an attempt, nothing follows a
  // terminal state, and at most one COMPLETED was seen. Empty when valid, else what is
  // wrong with the statuses listed.
  std::string Check(const std::string& job_id) const;

  // The attempt numbers that reached RUNNING, in order (after Check passed).
  std::vector<int> RunningAttempts(const std::string& job_id) const;

 private:
  void Add(const std::string& source, const v1::Job& job);

  std::shared_ptr<grpc::Channel> channel_;
  std::atomic<bool> stopping_{false};
  mutable absl::Mutex mu_;
  // By job id, then by source ("watch", "poll").
  std::map<std::string, std::map<std::string, std::vector<v1::JobStatus>>> seen_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> watchers_;
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_JOB_HISTORY_H_
