// Placement: which queued jobs start now, on which nodes, and which nodes are held back for
// the job that would otherwise starve. A pure function of the queue, the node registry, what
// the running attempts hold and the time, run by droverd's core loop after anything that
// could change the answer (a submit, a node joining, an attempt ending, a tick).
#ifndef DROVER_SCHEDULER_PLACEMENT_H_
#define DROVER_SCHEDULER_PLACEMENT_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "drover/v1/node.pb.h"
#include "scheduler/job_queue.h"
#include "scheduler/node_registry.h"

namespace drover::scheduler {

struct Placement {
  std::string job_id;
  // Nodes by node rank.
  std::vector<std::string> nodes;
  // What the job holds on each of them.
  v1::NodeResources per_node;
};

// What placement knows of an attempt that holds nodes, to tell when they come free. The
// caller (droverd's core) passes one per placed job; placement reads no clock itself.
struct RunningAttempt {
  // When its processes began running; absl::InfiniteFuture() while it still prepares (it
  // then counts as starting now, the soonest it could).
  absl::Time running_since = absl::InfiniteFuture();
  // Its spec's `max_run_duration`; zero when it has none, and then nobody knows when its
  // nodes come free.
  absl::Duration max_run_duration = absl::ZeroDuration();
  // What it holds on each of its nodes.
  v1::NodeResources per_node;
};

// Nodes held back for the first job in queue order that cannot start yet but will once
// running work ends (EASY backfill, as Slurm's): later jobs may use them only if they are
// sure to end before `start`.
struct Reservation {
  std::string job_id;
  // By name.
  std::vector<std::string> nodes;
  // When the last of them is expected to have room for the job: running attempts reach
  // their `max_run_duration`. absl::InfiniteFuture() when one of them has none (unknown).
  absl::Time start = absl::InfiniteFuture();
};

struct PlacementRound {
  std::vector<Placement> placed;
  // Why each job left queued waits, for example "WAITING_FOR_NODES need=2 free=1".
  std::map<std::string, std::string> waiting;
  // At most one per round; none when every waiting job can never fit or nothing is queued.
  std::optional<Reservation> reservation;
};

// What a job needs on each of its nodes.
v1::NodeResources PerNodeDemand(const v1::JobSpec& spec);
// The spec's `max_run_duration`; zero when unset (no limit).
absl::Duration MaxRunDuration(const v1::JobSpec& spec);

// Goes through the queued jobs in queue order (priority, then submission) and places each
// one whose `node_count` nodes of its compute target, taking work, have enough free cpus,
// memory and GPUs: all of them at once or none (gang). Among fitting nodes the fullest go
// first (best fit), which keeps large nodes free for large jobs.
//
// The first job that does not fit now, but would once running work ends (its target has
// `node_count` nodes taking work whose capacity fits it), gets a reservation: the nodes that
// will have room for it soonest (by `running`, by job id, with `now`), then those holding
// the least. Later jobs start on other nodes, or on reserved ones only when their own
// `max_run_duration` from `now` ends by the reservation's start; an attempt on a reserved
// node with no `max_run_duration`, or one missing from `running`, makes that start unknown
// and allows no such backfill. Jobs that can never fit (unknown target, more nodes than the
// target may hold, no node large enough, more nodes than exist) never hold a reservation
// and block nobody. Reasons of waiting jobs:
//   UNKNOWN_COMPUTE_TARGET target=T
//   TARGET_TOO_SMALL need=N max_nodes=M
//   NO_NODE_LARGE_ENOUGH need=N large_enough=K per_node=...
//   WAITING_FOR_NODES need=N free=F                 (F nodes have room now)
//   WAITING_FOR_NODES need=N free=F reserved=A,B    (the job holds the reservation)
//   WAITING_FOR_NODES need=N free=F reserved_for=J  (would start but for J's reservation)
// Only the first `max_jobs` queued jobs are examined per round (as Slurm's backfill depth),
// so a deep queue costs a bounded amount per round. With nodes registered but none taking
// work, nothing is examined.
PlacementRound PlaceQueuedJobs(const JobQueue& queue, const NodeRegistry& nodes,
                               const std::map<std::string, RunningAttempt>& running,
                               absl::Time now, int max_jobs = 1000);

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_PLACEMENT_H_
