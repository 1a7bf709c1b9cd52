// Placement: which queued jobs start now, and on which nodes. A pure function of the queue
// and the node registry, run by droverd's core loop after anything that could change the
// answer (a submit, a node joining, an attempt ending).
#ifndef DROVER_SCHEDULER_PLACEMENT_H_
#define DROVER_SCHEDULER_PLACEMENT_H_

#include <map>
#include <string>
#include <vector>

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

struct PlacementRound {
  std::vector<Placement> placed;
  // Why each job left queued waits, for example "WAITING_FOR_NODES need=2 free=1".
  std::map<std::string, std::string> waiting;
};

// What a job needs on each of its nodes.
v1::NodeResources PerNodeDemand(const v1::JobSpec& spec);

// Goes through the queued jobs in queue order (priority, then submission) and places each
// one whose `node_count` nodes of its compute target, taking work, have enough free cpus,
// memory and GPUs: all of them at once or none (gang). Among fitting nodes the fullest go
// first (best fit), which keeps large nodes free for large jobs. Jobs that do not fit wait,
// and later, smaller jobs may still start on what is free. Only the first `max_jobs` queued
// jobs are examined per round (as Slurm's backfill depth), so a deep queue costs a bounded
// amount per round. With nodes registered but none taking work, nothing is examined.
PlacementRound PlaceQueuedJobs(const JobQueue& queue, const NodeRegistry& nodes,
                               int max_jobs = 1000);

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_PLACEMENT_H_
