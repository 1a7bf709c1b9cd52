// JobQueue: the scheduling core's view of every unfinished job, and the order in which
// queued jobs will be placed: higher priority first, then earlier submission. droverd keeps
// one, owned by its core loop (single-threaded, no locking), rebuilt from the store at start.
#ifndef DROVER_SCHEDULER_JOB_QUEUE_H_
#define DROVER_SCHEDULER_JOB_QUEUE_H_

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "drover/v1/job.pb.h"

namespace drover::scheduler {

class JobQueue {
 public:
  // Records `job` as it now stands (a new job or a status change). A job in a terminal
  // state is forgotten. Ignores a status older than the one held (by version).
  void Update(const v1::Job& job);

  // Records `job` as it now stands even if it is older than the one held (after a failed
  // write, to go back to what the store holds).
  void Reset(const v1::Job& job);

  // The job as last recorded, or nullptr when it is finished or unknown.
  const v1::Job* Find(absl::string_view job_id) const;

  // Ids of QUEUED jobs in placement order, at most `limit` of them.
  std::vector<std::string> QueuedInOrder(size_t limit = SIZE_MAX) const;

  // (-priority, sequence): std::map orders it as placement wants.
  using OrderKey = std::tuple<int32_t, int64_t>;
  // Every QUEUED job's id by its place in the order (for a walk that passes over some).
  const std::map<OrderKey, std::string>& queued_order() const { return order_; }

  // How many tasks of job array `array_id` count against its `max_running` now
  // (scheduler::CountsAgainstArrayLimit: placed and not ended).
  int ArrayActive(absl::string_view array_id) const;
  // Ids of the unfinished tasks of job array `array_id`, by index. Walks every unfinished
  // job.
  std::vector<std::string> TasksOfArray(absl::string_view array_id) const;

  size_t unfinished_count() const { return jobs_.size(); }
  // How many unfinished jobs are in each state.
  std::map<v1::JobStatus::State, int> CountByState() const;
  size_t queued_count() const { return order_.size(); }

  // The reason a queued job shows while no placement is possible: what it needs against what
  // is free ("WAITING_FOR_NODES need=2 free=0").
  static std::string WaitingReason(const v1::JobSpec& spec, int free_nodes);

 private:
  static OrderKey KeyOf(const v1::Job& job);
  // Adds `delta` to the count of `job`'s array when it is a task counting against it.
  void CountArrayTask(const v1::Job& job, int delta);

  absl::flat_hash_map<std::string, v1::Job> jobs_;
  std::map<OrderKey, std::string> order_;
  // By array id: its tasks counting against max_running (none: no entry).
  absl::flat_hash_map<std::string, int> array_active_;
};

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_JOB_QUEUE_H_
