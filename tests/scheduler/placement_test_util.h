// Helpers of the placement tests: nodes, queued jobs and running work as droverd's core
// would pass them to PlaceQueuedJobs.
#ifndef DROVER_TESTS_SCHEDULER_PLACEMENT_TEST_UTIL_H_
#define DROVER_TESTS_SCHEDULER_PLACEMENT_TEST_UTIL_H_

#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/node.pb.h"
#include "scheduler/node_registry.h"
#include "scheduler/placement.h"

namespace drover::scheduler::placement_testing {

inline const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

inline v1::NodeInfo NodeWith(const std::string& name, double cpus, int64_t memory_mib, int gpus = 0,
                      std::map<std::string, std::string> labels = {}) {
  v1::NodeInfo info;
  info.set_name(name);
  info.add_addresses("10.0.0.1");
  info.mutable_capacity()->set_cpus(cpus);
  info.mutable_capacity()->set_memory_mib(memory_mib);
  info.mutable_capacity()->set_gpus(gpus);
  for (auto& [k, v] : labels) (*info.mutable_labels())[k] = v;
  return info;
}

inline v1::Job QueuedJob(const std::string& id, double cpus, int64_t memory_mib, int nodes = 1,
                  int priority = 0, const std::string& target = "default") {
  v1::Job job;
  job.set_id(id);
  job.mutable_spec()->set_node_count(nodes);
  job.mutable_spec()->set_priority(priority);
  job.mutable_spec()->set_compute_target(target);
  job.mutable_spec()->mutable_resources()->set_cpus(cpus);
  job.mutable_spec()->mutable_resources()->set_memory_mib(memory_mib);
  job.mutable_status()->set_state(v1::JobStatus::QUEUED);
  job.mutable_status()->set_version(1);
  return job;
}

inline v1::Job WithLimit(v1::Job job, absl::Duration max_run_duration) {
  job.mutable_spec()->mutable_max_run_duration()->set_seconds(
      absl::ToInt64Seconds(max_run_duration));
  return job;
}

// Work already running, as droverd's core would pass it: `job_id` holds `cpus` on each of
// `on`, running since `since`, with `max_run_duration` (zero: none).
inline void StartRunning(NodeRegistry& nodes, std::map<std::string, RunningAttempt>& running,
                  const std::string& job_id, std::vector<std::string> on, double cpus,
                  absl::Time since, absl::Duration max_run_duration) {
  RunningAttempt& attempt = running[job_id];
  attempt.running_since = since;
  attempt.max_run_duration = max_run_duration;
  attempt.per_node = PerNodeDemand(QueuedJob(job_id, cpus, 1024).spec());
  for (const std::string& node : on) nodes.Allocate(node, job_id, attempt.per_node);
}

}  // namespace drover::scheduler::placement_testing

#endif  // DROVER_TESTS_SCHEDULER_PLACEMENT_TEST_UTIL_H_
