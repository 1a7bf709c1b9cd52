#include "scheduler/placement.h"

#include <algorithm>
#include <set>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/job_array.h"

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

void Add(v1::NodeResources& to, const v1::NodeResources& what) {
  to.set_cpus(to.cpus() + what.cpus());
  to.set_memory_mib(to.memory_mib() + what.memory_mib());
  to.set_gpus(to.gpus() + what.gpus());
}

// What an attempt gives back on a node, and by when.
struct Release {
  absl::Time at;  // absl::InfiniteFuture(): unknown
  v1::NodeResources what;
};

// The latest time an attempt ends if droverd enforces its `max_run_duration`; one still
// preparing counts as starting now.
absl::Time EndOf(absl::Time running_since, absl::Duration max_run_duration, absl::Time now) {
  if (max_run_duration <= absl::ZeroDuration()) return absl::InfiniteFuture();
  return (running_since == absl::InfiniteFuture() ? now : running_since) + max_run_duration;
}

// When a node with `free` now has room for `demand`, as its attempts give back what they
// hold; absl::InfiniteFuture() when that waits on an attempt whose end is unknown.
absl::Time RoomAt(v1::NodeResources free, std::vector<Release> releases,
                  const v1::NodeResources& demand, absl::Time now) {
  if (Fits(free, demand)) return now;
  std::stable_sort(releases.begin(), releases.end(),
                   [](const Release& a, const Release& b) { return a.at < b.at; });
  for (const Release& release : releases) {
    if (release.at == absl::InfiniteFuture()) break;
    Add(free, release.what);
    if (Fits(free, demand)) return std::max(release.at, now);  // overdue: stopping now
  }
  return absl::InfiniteFuture();
}

}  // namespace

v1::NodeResources PerNodeDemand(const v1::JobSpec& spec) {
  v1::NodeResources need;
  need.set_cpus(spec.resources().cpus());
  need.set_memory_mib(spec.resources().memory_mib());
  need.set_gpus(spec.resources().gpus());
  return need;
}

absl::Duration MaxRunDuration(const v1::JobSpec& spec) {
  const auto& limit = spec.max_run_duration();
  return absl::Seconds(limit.seconds()) + absl::Nanoseconds(limit.nanos());
}

PlacementRound PlaceQueuedJobs(const JobQueue& queue, const NodeRegistry& nodes,
                               const std::map<std::string, RunningAttempt>& running,
                               absl::Time now, int max_jobs) {
  PlacementRound round;
  const std::vector<v1::Node> all = nodes.List();
  // Free resources as this round allocates them.
  std::map<std::string, v1::NodeResources> free;
  for (const v1::Node& node : all) {
    if (nodes.TakesWork(node.name())) free[node.name()] = nodes.Free(node.name());
  }
  // Nothing can start: leave the queue as it is (its reasons already say why).
  if (free.empty() && !all.empty()) return round;
  // What each node taking work gives back, and when: the attempts on it, then the jobs this
  // round places there.
  std::map<std::string, std::vector<Release>> releases;
  for (const v1::Node& node : all) {
    if (!free.contains(node.name())) continue;
    for (const std::string& job_id : node.running_jobs()) {
      auto it = running.find(job_id);
      releases[node.name()].push_back(
          it == running.end()
              ? Release{absl::InfiniteFuture(), v1::NodeResources()}
              : Release{EndOf(it->second.running_since, it->second.max_run_duration, now),
                        it->second.per_node});
    }
  }
  std::set<std::string> reserved;  // round.reservation's nodes

  int examined = 0;
  int held_recorded = 0;
  absl::flat_hash_map<std::string, int> placed_of_array;  // this round, by array id
  using Visit = JobQueue::Visit;
  queue.VisitQueued([&](const std::string& job_id, const v1::Job& job) {
    const v1::JobSpec& spec = job.spec();
    // A task whose array has max_running tasks placed is passed over without counting
    // against `max_jobs`, so that a large array held at its limit blocks no job behind it.
    // Its reason is recorded for the first `max_jobs` of them only; the rest of the array is
    // then passed over in one step and keeps the ARRAY_LIMIT reason it was submitted with.
    if (spec.has_array_task() && spec.array_task().max_running() > 0) {
      const v1::ArrayTask& task = spec.array_task();
      auto placed = placed_of_array.find(task.array_id());
      const int active = queue.ArrayActive(task.array_id()) +
                         (placed == placed_of_array.end() ? 0 : placed->second);
      if (active >= task.max_running()) {
        if (held_recorded == max_jobs) return Visit::kPassArray;
        ++held_recorded;
        round.waiting[job_id] = ArrayLimitReason(task);
        return Visit::kNext;
      }
    }
    if (examined == max_jobs) return Visit::kStop;
    ++examined;
    const v1::ComputeTarget* target = nodes.FindTarget(spec.compute_target());
    if (target == nullptr) {
      round.waiting[job_id] = absl::StrCat("UNKNOWN_COMPUTE_TARGET target=", spec.compute_target());
      return Visit::kNext;
    }
    int need = spec.node_count();
    if (target->max_nodes() > 0 && need > target->max_nodes()) {
      round.waiting[job_id] = absl::StrCat("TARGET_TOO_SMALL need=", need,
                                           " max_nodes=", target->max_nodes());
      return Visit::kNext;
    }
    v1::NodeResources demand = PerNodeDemand(spec);
    const absl::Duration limit = MaxRunDuration(spec);
    // Reserved nodes are open to a job sure to end before the reserved job can start.
    const bool may_use_reserved =
        round.reservation.has_value() && round.reservation->start != absl::InfiniteFuture() &&
        limit > absl::ZeroDuration() && now + limit <= round.reservation->start;
    std::vector<std::string> candidates;  // room now, and allowed
    std::vector<std::string> eligible;    // taking work and large enough: room once work ends
    int room_now = 0;
    int large_enough = 0;
    int in_target = 0;
    for (const v1::Node& node : all) {
      if (!nodes.InTarget(*target, node.name())) continue;
      ++in_target;
      bool large = Fits(node.capacity(), demand);
      if (large) ++large_enough;
      auto it = free.find(node.name());
      if (it == free.end()) continue;
      if (large) eligible.push_back(node.name());
      if (!Fits(it->second, demand)) continue;
      ++room_now;
      if (may_use_reserved || !reserved.contains(node.name())) candidates.push_back(node.name());
    }
    if (static_cast<int>(candidates.size()) < need) {
      if (large_enough < need && in_target >= need) {
        round.waiting[job_id] =
            absl::StrCat("NO_NODE_LARGE_ENOUGH need=", need, " large_enough=", large_enough,
                         " per_node=", FormatResources(demand));
        return Visit::kNext;
      }
      std::string reason = absl::StrCat("WAITING_FOR_NODES need=", need, " free=", room_now);
      if (room_now >= need) {
        // It would start now but for the reservation.
        absl::StrAppend(&reason, " reserved_for=", round.reservation->job_id);
      } else if (!round.reservation.has_value() && static_cast<int>(eligible.size()) >= need) {
        // The nodes with room for it soonest, then those holding the least.
        std::vector<std::tuple<absl::Time, double, int64_t, int64_t, std::string>> order;
        for (const std::string& name : eligible) {
          v1::NodeResources held = nodes.Find(name)->capacity();
          Subtract(held, free[name]);
          order.emplace_back(RoomAt(free[name], releases[name], demand, now), held.cpus(),
                             held.gpus(), held.memory_mib(), name);
        }
        std::sort(order.begin(), order.end());
        Reservation reservation{job_id, {}, now};
        for (int k = 0; k < need; ++k) {
          reservation.nodes.push_back(std::get<std::string>(order[k]));
          reservation.start = std::max(reservation.start, std::get<absl::Time>(order[k]));
        }
        std::sort(reservation.nodes.begin(), reservation.nodes.end());
        reserved.insert(reservation.nodes.begin(), reservation.nodes.end());
        absl::StrAppend(&reason, " reserved=", absl::StrJoin(reservation.nodes, ","));
        round.reservation = std::move(reservation);
      }
      round.waiting[job_id] = std::move(reason);
      return Visit::kNext;
    }
    // Outside the reservation first, so that what it holds stays clear; then best fit.
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&free, &reserved](const std::string& a, const std::string& b) {
                       return std::make_pair(reserved.contains(a), free[a].cpus()) <
                              std::make_pair(reserved.contains(b), free[b].cpus());
                     });
    candidates.resize(need);
    const absl::Time ends = EndOf(now, limit, now);
    for (const std::string& name : candidates) {
      Subtract(free[name], demand);
      releases[name].push_back(Release{ends, demand});
    }
    if (spec.has_array_task()) ++placed_of_array[spec.array_task().array_id()];
    round.placed.push_back(Placement{job_id, std::move(candidates), demand});
    return Visit::kNext;
  });
  return round;
}

}  // namespace drover::scheduler
