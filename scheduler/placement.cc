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

// Resources as placement counts them (plain numbers: a round does arithmetic on every node
// for every job it examines).
struct Room {
  double cpus = 0;
  int64_t memory_mib = 0;
  int64_t gpus = 0;
};

Room RoomOf(const v1::NodeResources& r) { return Room{r.cpus(), r.memory_mib(), r.gpus()}; }

bool Fits(const Room& free, const Room& need) {
  // A small tolerance keeps fractional cpus from failing on rounding.
  return free.cpus + 1e-9 >= need.cpus && free.memory_mib >= need.memory_mib &&
         free.gpus >= need.gpus;
}

void Subtract(Room& from, const Room& what) {
  from.cpus -= what.cpus;
  from.memory_mib -= what.memory_mib;
  from.gpus -= what.gpus;
}

void Add(Room& to, const Room& what) {
  to.cpus += what.cpus;
  to.memory_mib += what.memory_mib;
  to.gpus += what.gpus;
}

// What an attempt gives back on a node, and by when.
struct Release {
  absl::Time at;  // absl::InfiniteFuture(): unknown
  Room what;
};

// The latest time an attempt ends if droverd enforces its `max_run_duration`; one still
// preparing counts as starting now.
absl::Time EndOf(absl::Time running_since, absl::Duration max_run_duration, absl::Time now) {
  if (max_run_duration <= absl::ZeroDuration()) return absl::InfiniteFuture();
  return (running_since == absl::InfiniteFuture() ? now : running_since) + max_run_duration;
}

// When a node with `free` now has room for `demand`, as its attempts give back what they
// hold; absl::InfiniteFuture() when that waits on an attempt whose end is unknown.
absl::Time RoomAt(Room free, std::vector<Release> releases, const Room& demand, absl::Time now) {
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

// A node as one round sees it.
struct Slot {
  const v1::Node* node;
  Room capacity;
  bool takes_work = false;
  // Only for nodes taking work:
  Room free;  // as this round allocates it
  bool reserved = false;  // one of round.reservation's nodes
  // What it gives back, and when: the attempts on it, then the jobs this round places there.
  std::vector<Release> releases;
};

// The order in which placement prefers nodes with room: outside the reservation first, so
// that what it holds stays clear; then the fullest (best fit); then by name (the index).
using PreferenceKey = std::tuple<bool, double, int>;

PreferenceKey PreferenceOf(const std::vector<Slot>& slots, int i) {
  return {slots[i].reserved, slots[i].free.cpus, i};
}

// What a job needs that decides where it may go: jobs of one shape get the same answer
// while nothing is placed or reserved in between.
using Shape = std::tuple<std::string, int, double, int64_t, int64_t, bool>;

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
  std::vector<Slot> slots;
  bool any_takes_work = false;
  nodes.ForEach([&](const v1::Node& node) {
    Slot& slot = slots.emplace_back(Slot{&node, RoomOf(node.capacity())});
    slot.takes_work = NodeRegistry::TakesWork(node);
    if (!slot.takes_work) return;
    any_takes_work = true;
    slot.free = RoomOf(NodeRegistry::Free(node));
    for (const std::string& job_id : node.running_jobs()) {
      auto it = running.find(job_id);
      slot.releases.push_back(
          it == running.end()
              ? Release{absl::InfiniteFuture(), Room()}
              : Release{EndOf(it->second.running_since, it->second.max_run_duration, now),
                        RoomOf(it->second.per_node)});
    }
  });
  // Nothing can start: leave the queue as it is (its reasons already say why).
  if (!any_takes_work && !slots.empty()) return round;
  // Each compute target's nodes as jobs ask for them: all of them (indices into `slots`),
  // and those taking work in the order placement prefers them (outside the reservation
  // first, then the fullest, then by name), kept as the round allocates and reserves.
  struct TargetNodes {
    std::vector<int> all;
    std::set<PreferenceKey> taking_work;
  };
  absl::flat_hash_map<std::string, TargetNodes> targets;
  auto nodes_of = [&](const v1::ComputeTarget& target) -> TargetNodes& {
    auto [it, inserted] = targets.try_emplace(target.name());
    if (inserted) {
      for (int i = 0; i < static_cast<int>(slots.size()); ++i) {
        if (!nodes.InTarget(target, slots[i].node->name())) continue;
        it->second.all.push_back(i);
        if (slots[i].takes_work) it->second.taking_work.insert(PreferenceOf(slots, i));
      }
    }
    return it->second;
  };
  // Changes slot `i` by `change` and keeps the targets' orders right.
  auto update = [&](int i, auto change) {
    const PreferenceKey before = PreferenceOf(slots, i);
    change(slots[i]);
    for (auto& [name, target] : targets) {
      if (target.taking_work.erase(before) > 0) target.taking_work.insert(PreferenceOf(slots, i));
    }
  };
  // The reasons of shapes that did not fit since the last placement or reservation.
  absl::flat_hash_map<Shape, std::string> unfit;

  int examined = 0;
  int held_recorded = 0;
  absl::flat_hash_map<std::string, int> placed_of_array;  // this round, by array id
  std::vector<int> candidates;  // the nodes a job would take, in the order of preference
  std::vector<int> eligible;    // taking work and large enough: room once work ends
  using Visit = JobQueue::Visit;
  queue.VisitQueued([&](const std::string& job_id, const QueuedJob& job) {
    // A task whose array has max_running tasks placed is passed over without counting
    // against `max_jobs`, so that a large array held at its limit blocks no job behind it.
    // Its reason is recorded for the first `max_jobs` of them only; the rest of the array is
    // then passed over in one step and keeps the ARRAY_LIMIT reason it was submitted with.
    if (job.array_id != nullptr && job.array_max_running > 0) {
      auto placed = placed_of_array.find(*job.array_id);
      const int active = queue.ArrayActive(*job.array_id) +
                         (placed == placed_of_array.end() ? 0 : placed->second);
      if (active >= job.array_max_running) {
        if (held_recorded == max_jobs) return Visit::kPassArray;
        ++held_recorded;
        round.waiting[job_id] = ArrayLimitReason(*job.array_id, job.array_max_running);
        return Visit::kNext;
      }
    }
    if (examined == max_jobs) return Visit::kStop;
    ++examined;
    const v1::ComputeTarget* target = nodes.FindTarget(job.compute_target);
    if (target == nullptr) {
      round.waiting[job_id] = absl::StrCat("UNKNOWN_COMPUTE_TARGET target=", job.compute_target);
      return Visit::kNext;
    }
    int need = job.node_count;
    if (target->max_nodes() > 0 && need > target->max_nodes()) {
      round.waiting[job_id] = absl::StrCat("TARGET_TOO_SMALL need=", need,
                                           " max_nodes=", target->max_nodes());
      return Visit::kNext;
    }
    const v1::NodeResources per_node = job.PerNode();
    const Room demand = RoomOf(per_node);
    const absl::Duration limit = job.max_run_duration;
    // Reserved nodes are open to a job sure to end before the reserved job can start.
    const bool may_use_reserved =
        round.reservation.has_value() && round.reservation->start != absl::InfiniteFuture() &&
        limit > absl::ZeroDuration() && now + limit <= round.reservation->start;
    Shape shape{target->name(), need, demand.cpus, demand.memory_mib, demand.gpus,
                may_use_reserved};
    if (auto known = unfit.find(shape); known != unfit.end()) {
      round.waiting[job_id] = known->second;
      return Visit::kNext;
    }
    // The common case first: `need` nodes with room, in the order of preference, found
    // without looking at every node of the target.
    TargetNodes& in = nodes_of(*target);
    candidates.clear();
    for (bool reserved : {false, true}) {
      if (reserved && !may_use_reserved) break;
      for (auto it = in.taking_work.lower_bound({reserved, demand.cpus - 1e-6, -1});
           it != in.taking_work.end() && std::get<bool>(*it) == reserved &&
           static_cast<int>(candidates.size()) < need;
           ++it) {
        if (Fits(slots[std::get<int>(*it)].free, demand)) candidates.push_back(std::get<int>(*it));
      }
    }
    if (static_cast<int>(candidates.size()) == need) {
      const absl::Time ends = EndOf(now, limit, now);
      Placement placement{job_id, {}, per_node};
      for (int i : candidates) {
        update(i, [&](Slot& slot) {
          Subtract(slot.free, demand);
          slot.releases.push_back(Release{ends, demand});
        });
        placement.nodes.push_back(slots[i].node->name());
      }
      if (job.array_id != nullptr) ++placed_of_array[*job.array_id];
      round.placed.push_back(std::move(placement));
      // Less room from here on: what did not fit still does not, but its reason may change.
      unfit.clear();
      return Visit::kNext;
    }
    // It waits: why, from every node of the target.
    eligible.clear();
    int room_now = 0;
    int large_enough = 0;
    const int in_target = static_cast<int>(in.all.size());
    for (int i : in.all) {
      const Slot& slot = slots[i];
      bool large = Fits(slot.capacity, demand);
      if (large) ++large_enough;
      if (!slot.takes_work) continue;
      if (large) eligible.push_back(i);
      if (Fits(slot.free, demand)) ++room_now;
    }
    if (large_enough < need && in_target >= need) {
      round.waiting[job_id] = unfit[shape] =
          absl::StrCat("NO_NODE_LARGE_ENOUGH need=", need, " large_enough=", large_enough,
                       " per_node=", FormatResources(per_node));
      return Visit::kNext;
    }
    std::string reason = absl::StrCat("WAITING_FOR_NODES need=", need, " free=", room_now);
    if (room_now >= need) {
      // It would start now but for the reservation.
      absl::StrAppend(&reason, " reserved_for=", round.reservation->job_id);
    } else if (!round.reservation.has_value() && static_cast<int>(eligible.size()) >= need) {
      // The nodes with room for it soonest, then those holding the least.
      std::vector<std::tuple<absl::Time, double, int64_t, int64_t, std::string, int>> order;
      for (int i : eligible) {
        const Slot& slot = slots[i];
        Room held = slot.capacity;
        Subtract(held, slot.free);
        order.emplace_back(RoomAt(slot.free, slot.releases, demand, now), held.cpus,
                           held.gpus, held.memory_mib, slot.node->name(), i);
      }
      std::sort(order.begin(), order.end());
      Reservation reservation{job_id, {}, now};
      for (int k = 0; k < need; ++k) {
        reservation.nodes.push_back(std::get<std::string>(order[k]));
        reservation.start = std::max(reservation.start, std::get<absl::Time>(order[k]));
        update(std::get<int>(order[k]), [](Slot& slot) { slot.reserved = true; });
      }
      std::sort(reservation.nodes.begin(), reservation.nodes.end());
      absl::StrAppend(&reason, " reserved=", absl::StrJoin(reservation.nodes, ","));
      round.reservation = std::move(reservation);
      // Later jobs see other nodes open to them, and another reason.
      unfit.clear();
      round.waiting[job_id] = std::move(reason);
      return Visit::kNext;
    }
    round.waiting[job_id] = unfit[shape] = std::move(reason);
    return Visit::kNext;
  });
  return round;
}

}  // namespace drover::scheduler
