#include "scheduler/placement.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace drover::scheduler {
namespace {

bool Fits(const v1::NodeResources& free, const v1::NodeResources& need) {
  // A small tolerance keeps fractional cpus from failing on rounding.
  return free.cpus() + 1e-9 >= need.cpus() && free.memory_mib() >= need.memory_mib() &&
         free.gpus() >= need.gpus();
}

void Subtract(v1::NodeResources& from, const v1::NodeResources& what) {
  from.set_cpus(from.cpus() - what.cpus());
  from.set_memory_mib(from.memory_mib() - what.memory_mib());
  from.set_gpus(from.gpus() - what.gpus());
}

}  // namespace

v1::NodeResources PerNodeDemand(const v1::JobSpec& spec) {
  v1::NodeResources need;
  need.set_cpus(spec.resources().cpus());
  need.set_memory_mib(spec.resources().memory_mib());
  need.set_gpus(spec.resources().gpus());
  return need;
}

PlacementRound PlaceQueuedJobs(const JobQueue& queue, const NodeRegistry& nodes,
                               int max_jobs) {
  PlacementRound round;
  const std::vector<v1::Node> all = nodes.List();
  // Free resources as this round allocates them.
  std::map<std::string, v1::NodeResources> free;
  for (const v1::Node& node : all) {
    if (nodes.TakesWork(node.name())) free[node.name()] = nodes.Free(node.name());
  }
  // Nothing can start: leave the queue as it is (its reasons already say why).
  if (free.empty() && !all.empty()) return round;
  for (const std::string& job_id : queue.QueuedInOrder(static_cast<size_t>(max_jobs))) {
    const v1::Job* job = queue.Find(job_id);
    const v1::JobSpec& spec = job->spec();
    const v1::ComputeTarget* target = nodes.FindTarget(spec.compute_target());
    if (target == nullptr) {
      round.waiting[job_id] = absl::StrCat("UNKNOWN_COMPUTE_TARGET target=", spec.compute_target());
      continue;
    }
    int need = spec.node_count();
    if (target->max_nodes() > 0 && need > target->max_nodes()) {
      round.waiting[job_id] = absl::StrCat("TARGET_TOO_SMALL need=", need,
                                           " max_nodes=", target->max_nodes());
      continue;
    }
    v1::NodeResources demand = PerNodeDemand(spec);
    std::vector<std::string> candidates;
    int large_enough = 0;
    int in_target = 0;
    for (const v1::Node& node : all) {
      if (!nodes.InTarget(*target, node.name())) continue;
      ++in_target;
      if (Fits(node.capacity(), demand)) ++large_enough;
      auto it = free.find(node.name());
      if (it != free.end() && Fits(it->second, demand)) candidates.push_back(node.name());
    }
    if (static_cast<int>(candidates.size()) < need) {
      round.waiting[job_id] =
          large_enough < need && in_target >= need
              ? absl::StrCat("NO_NODE_LARGE_ENOUGH need=", need, " large_enough=", large_enough,
                             " per_node=", FormatResources(demand))
              : absl::StrCat("WAITING_FOR_NODES need=", need, " free=", candidates.size());
      continue;
    }
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&free](const std::string& a, const std::string& b) {
                       return free[a].cpus() < free[b].cpus();
                     });
    candidates.resize(need);
    for (const std::string& name : candidates) Subtract(free[name], demand);
    round.placed.push_back(Placement{job_id, std::move(candidates), demand});
  }
  return round;
}

}  // namespace drover::scheduler
