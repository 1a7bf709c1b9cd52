// JobQueue: the scheduling core's view of every unfinished job, and the order in which
// queued jobs will be placed: higher priority first, then earlier submission. droverd keeps
// one, owned by its core loop (single-threaded, no locking), rebuilt from the store at start.
//
// Memory form (issue 21): a queued job is held as a QueuedJob (what placement reads) and
// the whole job in its wire form; it becomes a v1::Job again only when asked for (Find).
// A job that left the queue (placed, being canceled) is held as a v1::Job. A million queued
// jobs so take a few hundred bytes each, not the ~2.7 KB of a v1::Job apiece.
#ifndef DROVER_SCHEDULER_JOB_QUEUE_H_
#define DROVER_SCHEDULER_JOB_QUEUE_H_

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include <memory>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/node.pb.h"

namespace drover::scheduler {

// What placement reads of a queued job (its spec's fields of the same names).
struct QueuedJob {
  std::string compute_target;
  int32_t node_count = 0;
  int32_t priority = 0;
  // resources: per node.
  double cpus = 0;
  int64_t memory_mib = 0;
  int32_t gpus = 0;
  // Zero: no limit.
  absl::Duration max_run_duration;
  // Job arrays' tasks: the array id (nullptr for a job outside any array; held by the queue
  // as long as the task is), the task's index and the array's max_running.
  const std::string* array_id = nullptr;
  int32_t array_max_running = 0;
  int64_t array_index = 0;

  // What the job needs on each of its nodes (PerNodeDemand of its spec).
  v1::NodeResources PerNode() const;
};

class JobQueue {
  struct Held;

 public:
  JobQueue();
  ~JobQueue();
  JobQueue(JobQueue&&) noexcept;
  JobQueue& operator=(JobQueue&&) noexcept;

  // A job made ready for the queue off the core's thread (droverd's start reads a million of
  // them from the store): Pack it there, Restore it here.
  class Packed {
   public:
    Packed(Packed&&) noexcept;
    Packed& operator=(Packed&&) noexcept;
    ~Packed();
    const std::string& id() const { return id_; }
    v1::JobStatus::State state() const;

   private:
    friend class JobQueue;
    Packed(std::string id, std::unique_ptr<Held> held);
    std::string id_;
    std::unique_ptr<Held> held_;
  };
  // A job read from the store: `wire` is the whole v1::Job in wire form, `spec` and `status`
  // its spec and status as parsed from it (the caller's, only read here). DATA_LOSS when a
  // job not queued has an unreadable `wire`.
  static absl::StatusOr<Packed> Pack(std::string id, const v1::JobSpec& spec,
                                     const v1::JobStatus& status, std::string wire);
  static Packed Pack(const v1::Job& job);

  // Records a job packed with Pack, as Update does.
  void Restore(Packed packed);

  // Records `job` as it now stands (a new job or a status change). A job in a terminal
  // state is forgotten. Ignores a status older than the one held (by version).
  void Update(const v1::Job& job);

  // Records `job` as it now stands even if it is older than the one held (after a failed
  // write, to go back to what the store holds).
  void Reset(const v1::Job& job);

  // The job as last recorded, or nullptr when it is finished or unknown. The pointer is
  // valid until the next call that is not const, or ReleaseCopies (a queued job is unpacked
  // from its wire form for the caller, and the copy kept until then).
  const v1::Job* Find(absl::string_view job_id) const;

  // Forgets the copies Find unpacked of queued jobs. droverd's core calls it at the start
  // of each placement round, so that what a round looked at does not stay unpacked.
  void ReleaseCopies();
  // How many queued jobs are unpacked now (tests).
  size_t unpacked_count() const { return unpacked_.size(); }

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
  void VisitQueued(absl::FunctionRef<Visit(const std::string& job_id, const QueuedJob& job)>
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

  // A job as the queue holds it: a queued one packed (summary and wire form), any other as
  // a v1::Job.
  struct Held {
    int64_t version = 0;
    v1::JobStatus::State state = v1::JobStatus::STATE_UNSPECIFIED;
    int64_t sequence = 0;  // of its id (0 when it is not one of droverd's)
    QueuedJob summary;
    // The array id the summary's array_id points to until the job is entered (then it
    // points to the queue's own copy).
    std::string array_id;
    std::string wire;             // queued: the whole job in wire form
    std::unique_ptr<v1::Job> job;  // not queued: the job
  };

  static std::unique_ptr<Held> MakeHeld(absl::string_view id, const v1::JobSpec& spec,
                                        const v1::JobStatus& status);
  static OrderKey KeyOf(const Held& held) { return {-held.summary.priority, held.sequence}; }
  // Update (even_if_older: Reset).
  void Record(const v1::Job& job, bool even_if_older);
  // Points a held job's summary.array_id into its v1::Job.
  static void PointIntoJob(Held& held);
  // Holds `held` as job `id`, in place of what was held.
  void Put(std::string id, std::unique_ptr<Held> held);
  // Adds `held` (job `id`) to, or removes it from, the order, counts and arrays.
  void Enter(const std::string& id, Held& held);
  void Leave(const Held& held);

  absl::flat_hash_map<std::string, std::unique_ptr<Held>> jobs_;
  // Queued jobs Find unpacked, until ReleaseCopies or their next change.
  mutable absl::flat_hash_map<std::string, std::unique_ptr<v1::Job>> unpacked_;
  std::map<OrderKey, Entry> order_;
  size_t queued_count_ = 0;
  // Unfinished jobs by state (none: no entry).
  std::map<v1::JobStatus::State, int> by_state_;
  // By array id (none: no unfinished task). Nodes: queued tasks point to their keys.
  absl::node_hash_map<std::string, ArrayState> arrays_;
};

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_JOB_QUEUE_H_
