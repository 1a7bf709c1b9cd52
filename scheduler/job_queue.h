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
#include "absl/functional/function_ref.h"
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

  // What a visitor of the queue asks next.
  enum class Visit {
    kNext,       // the next queued job
    kPassArray,  // the first queued job after the rest of this job's array
    kStop,
  };
  // Visits the QUEUED jobs in placement order: higher priority first, then earlier
  // submission. A job array's queued tasks come one after another, in submission order, at
  // the place of the first of them (an array is one submission: its tasks share a priority
  // and were stored together, so that is where they stand anyway). After kPassArray the rest
  // of that job's array is passed over in one step, so that a large array held at its limit
  // costs a walk one step, not one per task.
  void VisitQueued(absl::FunctionRef<Visit(const std::string& job_id, const v1::Job& job)>
                       visit) const;

  // How many tasks of job array `array_id` count against its `max_running` now
  // (scheduler::CountsAgainstArrayLimit: placed and not ended).
  int ArrayActive(absl::string_view array_id) const;
  // Ids of the unfinished tasks of job array `array_id`, by index. Walks every unfinished
  // job.
  std::vector<std::string> TasksOfArray(absl::string_view array_id) const;

  size_t unfinished_count() const { return jobs_.size(); }
  // How many unfinished jobs are in each state.
  const std::map<v1::JobStatus::State, int>& CountByState() const { return by_state_; }
  size_t queued_count() const { return queued_count_; }

  // The reason a queued job shows while no placement is possible: what it needs against what
  // is free ("WAITING_FOR_NODES need=2 free=0").
  static std::string WaitingReason(const v1::JobSpec& spec, int free_nodes);

 private:
  // (-priority, sequence): std::map orders it as placement wants.
  using OrderKey = std::tuple<int32_t, int64_t>;
  // An entry of the order's top level: a queued job outside any array, or an array with
  // queued tasks (at its first queued task's key).
  struct Entry {
    std::string id;  // a job id, or an array id
    bool array = false;
  };
  // A job array with unfinished tasks.
  struct ArrayState {
    int active = 0;                          // tasks counting against max_running
    std::map<OrderKey, std::string> queued;  // its QUEUED tasks' ids in order
  };

  static OrderKey KeyOf(const v1::Job& job);
  // Adds `job` to, or removes it from, what the queue holds about it as it stands.
  void Enter(const v1::Job& job);
  void Leave(const v1::Job& job);

  absl::flat_hash_map<std::string, v1::Job> jobs_;
  std::map<OrderKey, Entry> order_;
  size_t queued_count_ = 0;
  // Unfinished jobs by state (none: no entry).
  std::map<v1::JobStatus::State, int> by_state_;
  // By array id (none: no unfinished task).
  absl::flat_hash_map<std::string, ArrayState> arrays_;
};

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_JOB_QUEUE_H_
