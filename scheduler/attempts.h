// Attempts: the rules of the attempts in flight, apart from the machinery that runs them
// (server/core*.cc). It holds, for every job with a placed attempt, which nodes the attempt
// is on, the launch barrier (which nodes reported READY; START goes out once all did),
// which nodes ended their part, what their reports add up to (AttemptTally), the stop
// asked for (a cancel, a lost node, a timeout) and when the attempt was assigned and began
// running. It takes events (a placement committed, an agent's report, an agent back with the
// attempts it holds, a lost node, a stop, a tick) with the time they happen at, and returns
// effects, in the order the caller runs them: job status changes to commit, messages to
// send to nodes, attempts to assign again, finish or fence anew.
//
// Pure logic: no store, no gRPC, no threads, no clock (time comes in as `now`). The caller
// owns it and calls it from one thread (droverd's core loop); the jobs it reads come from
// the caller's JobQueue, which the caller updates as it commits the status changes
// returned (a change is computed from the job's status as changed by the ones before it).
// It logs its decisions (one line each) like the rest of the core.
#ifndef DROVER_SCHEDULER_ATTEMPTS_H_
#define DROVER_SCHEDULER_ATTEMPTS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "drover/v1/agent.pb.h"
#include "drover/v1/job.pb.h"
#include "scheduler/attempt_outcome.h"
#include "scheduler/job_queue.h"
#include "scheduler/placement.h"

namespace drover::scheduler {

// One placed attempt of a job, as droverd knows it.
struct AttemptState {
  int64_t epoch = 0;
  std::vector<std::string> nodes;  // by node rank
  std::set<std::string> ready;     // nodes that reported READY
  std::set<std::string> ended;     // nodes whose part ended (reported ENDED, or lost)
  // What the nodes' reports add up to: exits, cause, outputs (attempt_outcome.h).
  AttemptTally tally;
  bool started = false;   // the launch barrier was passed
  bool stopping = false;  // its nodes were told to stop (tally.cause says why)
  std::string exec_token;   // AssignAttempt.exec_token
  int32_t master_port = 0;  // AssignAttempt.master_port
  // AssignAttempt.image_digest: the archive of the job's imported image when the attempt
  // was placed (or droverd restored it); "" for a built-in or docker:// image.
  std::string image_digest;
  // When its time limit counts from: RUNNING reported (after a restart: the restart).
  absl::Time running_since = absl::InfinitePast();
  // When placement assigned it; InfinitePast() for one restored at start (its launch
  // timeout then counts from the first tick).
  absl::Time assigned_at = absl::InfinitePast();
  // The last PREPARING reason each node reported ("FETCHING_SNAPSHOT"), by node.
  std::map<std::string, std::string> last_preparing;
  // The GPUs each node gave the attempt, as its reports say, by node.
  std::map<std::string, v1::NodeGpus> gpus;

  bool Has(const std::string& node) const;
  // Whether its nodes start as soon as they are prepared (AssignAttempt.start_when_ready)
  // instead of waiting for StartAttempt: one node has no launch barrier to wait for.
  bool StartsWhenReady() const { return nodes.size() == 1; }
};

// What the caller does after an event, in order.
struct AttemptEffect {
  enum Kind {
    // CommitStatus(the job as it is now, `status`): a fact, written after the ones before.
    kCommit,
    // Send `message` to `node` (START, STOP) when it is connected.
    kSend,
    // Send the attempt's AssignAttempt to `node` again.
    kReassign,
    // What AcceptsLogs says of the job changed: its nodes' parts ended.
    kFence,
    // Every node of the attempt ended: run Finish(job_id) now...
    kFinish,
    // ...or after what is already queued on the caller's loop.
    kFinishLater,
    // Run a placement round (nodes came free).
    kSchedule,
  };
  Kind kind;
  std::string job_id;
  std::string node;               // kSend, kReassign
  v1::JobStatus status;           // kCommit
  // kCommit: a fact the agents report again after droverd restarts (their phases): it need
  // not be on disk before droverd goes on (StatusWriter::CommitReported).
  bool reported_again = false;
  v1::SchedulerMessage message;   // kSend
};
using AttemptEffects = std::vector<AttemptEffect>;

struct AttemptsOptions {
  // SIGTERM to SIGKILL when an attempt is stopped (StopAttempt.grace).
  absl::Duration stop_grace = absl::Seconds(10);
  // An attempt whose nodes are not all READY this long after its assignment is stopped and
  // fails with cause LAUNCH_FAILED. Zero: no limit.
  absl::Duration launch_timeout = absl::Minutes(15);
};

// An attempt that Finish() took out: what the caller releases.
struct FinishedAttempt {
  int64_t epoch = 0;
  std::vector<std::string> nodes;
  AttemptEffects effects;  // the job's end (and a placement round), to run after the release
};

class Attempts {
 public:
  explicit Attempts(AttemptsOptions options) : options_(options) {}

  // The attempt of `job_id`, or null.
  const AttemptState* Find(const std::string& job_id) const;
  // Every attempt, by job id.
  const absl::flat_hash_map<std::string, AttemptState>& all() const { return attempts_; }
  // What placement needs to know of the attempts holding nodes (jobs unknown to `jobs` are
  // left out: placement takes their nodes' end as unknown).
  std::map<std::string, RunningAttempt> Running(const JobQueue& jobs) const;

  // Placement assigned attempt `epoch` of `job_id` to `nodes` at `now` (replacing any
  // attempt the job had); the launch timeout counts from `now`.
  AttemptState& Place(const std::string& job_id, int64_t epoch, std::vector<std::string> nodes,
                      std::string exec_token, int32_t master_port, std::string image_digest,
                      absl::Time now);
  // At start: the placed attempt of `job` as the store has it (its status names its nodes).
  // A CANCEL_REQUESTED job's attempt is stopping (its nodes are told when they say hello);
  // a RUNNING one's time limit counts from `now`.
  void Restore(const v1::Job& job, std::string exec_token, std::string image_digest,
               absl::Time now);
  // Forgets the attempt of `job_id` without an end (its placement was not stored).
  void Forget(const std::string& job_id) { attempts_.erase(job_id); }

  // An agent's report on `node`. A report on anything but the current attempt of a live job
  // with `node` in it (or, from a node whose part ended, anything but ENDED) is answered
  // with a stop unless it is ENDED. PREPARING updates the job's reason; READY from the last
  // node passes the launch barrier (START to a multi-node attempt's nodes, STARTING);
  // RUNNING moves it to RUNNING (passing the barrier first if droverd missed it);
  // FINALIZING to FINALIZING; ENDED adds the node's part: the attempt finishes when every
  // node ended, the gang is stopped on a failure, and under MPI when node rank 0 ended.
  AttemptEffects Report(const std::string& node, const v1::AttemptReport& report,
                        const JobQueue& jobs, absl::Time now);
  // `node`'s agent said hello holding `held` (job id -> epoch), after its reports were
  // handled by Report(): a stop it missed is sent again; an attempt it does not hold is
  // assigned again while not started, else its part ended (NODE_LOST) and the gang stops.
  AttemptEffects Reconnected(const std::string& node, const std::map<std::string, int64_t>& held,
                             const JobQueue& jobs);
  // `node` is lost: its part of every attempt ends with cause NODE_LOST and `message`, and
  // the rest of each gang is stopped; the lost node is told when it comes back.
  AttemptEffects NodeLost(const std::string& node, const std::string& message);
  // Stops the attempt of `job_id`: every node not ended is sent a stop with `cause` and
  // `message`, and the attempt ends with them unless a cause is known already.
  AttemptEffects Stop(const std::string& job_id, v1::JobStatus::Cause cause,
                      const std::string& message);
  // The clock moved: attempts not all READY `launch_timeout` after their assignment stop
  // with LAUNCH_FAILED (naming the late nodes); attempts running longer than their job's
  // max_run_duration stop with TIMEOUT.
  AttemptEffects Tick(const JobQueue& jobs, absl::Time now);
  // Takes out the attempt of `job_id` once every node ended (nullopt when there is none)
  // and decides the job's end (DecideEnd): COMPLETED through the states it skipped, FAILED
  // (or QUEUED again for a retry) or CANCELED, with every rank's exit and the outputs.
  std::optional<FinishedAttempt> Finish(const std::string& job_id, const JobQueue& jobs,
                                        absl::Time now);

  // "node n2 not ready within 30s (last: FETCHING_SNAPSHOT)".
  static std::string NotReadyMessage(const AttemptState& attempt, absl::Duration waited);

 private:
  // Every node is READY (or one already runs its processes): marks it started, sends START
  // to every node of a multi-node attempt and moves `status` to STARTING.
  void PassLaunchBarrier(const std::string& job_id, AttemptState& attempt,
                         v1::JobStatus& status, absl::Time now, AttemptEffects& out) const;
  void StopAttempt(const std::string& job_id, AttemptState& attempt, v1::JobStatus::Cause cause,
                   const std::string& message, AttemptEffects& out) const;
  v1::SchedulerMessage StopMessage(const v1::AttemptRef& attempt, v1::JobStatus::Cause cause,
                                   const std::string& message) const;
  static void Send(const std::string& node, v1::SchedulerMessage message, AttemptEffects& out);
  static void Commit(const std::string& job_id, v1::JobStatus status, AttemptEffects& out);
  // Commit of a status the agents report again after droverd restarts (a phase).
  static void CommitReported(const std::string& job_id, v1::JobStatus status,
                             AttemptEffects& out);

  const AttemptsOptions options_;
  absl::flat_hash_map<std::string, AttemptState> attempts_;  // by job id
};

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_ATTEMPTS_H_
