// PlaceQueuedJobs against the rules written the plain way (every node looked at for every
// job, candidates fully sorted, no shortcuts), over random clusters and queues: the round
// must come out the same, placement by placement, reason by reason.
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "scheduler/job_queue.h"
#include "scheduler/node_registry.h"
#include "scheduler/placement.h"
#include "tests/scheduler/placement_test_util.h"

namespace drover::scheduler {
namespace {

using placement_testing::kT0;
using placement_testing::NodeWith;
using placement_testing::QueuedJob;
using placement_testing::StartRunning;
using placement_testing::WithLimit;

bool RefFits(const v1::NodeResources& free, const v1::NodeResources& need) {
  return free.cpus() + 1e-9 >= need.cpus() && free.memory_mib() >= need.memory_mib() &&
         free.gpus() >= need.gpus();
}

void RefSubtract(v1::NodeResources& from, const v1::NodeResources& what) {
  from.set_cpus(from.cpus() - what.cpus());
  from.set_memory_mib(from.memory_mib() - what.memory_mib());
  from.set_gpus(from.gpus() - what.gpus());
}

struct RefRelease {
  absl::Time at;
  v1::NodeResources what;
};

absl::Time RefEnd(absl::Time since, absl::Duration limit, absl::Time now) {
  if (limit <= absl::ZeroDuration()) return absl::InfiniteFuture();
  return (since == absl::InfiniteFuture() ? now : since) + limit;
}

absl::Time RefRoomAt(v1::NodeResources free, std::vector<RefRelease> releases,
                     const v1::NodeResources& demand, absl::Time now) {
  if (RefFits(free, demand)) return now;
  std::stable_sort(releases.begin(), releases.end(),
                   [](const RefRelease& a, const RefRelease& b) { return a.at < b.at; });
  for (const RefRelease& r : releases) {
    if (r.at == absl::InfiniteFuture()) break;
    free.set_cpus(free.cpus() + r.what.cpus());
    free.set_memory_mib(free.memory_mib() + r.what.memory_mib());
    free.set_gpus(free.gpus() + r.what.gpus());
    if (RefFits(free, demand)) return std::max(r.at, now);
  }
  return absl::InfiniteFuture();
}

PlacementRound ReferencePlacement(const JobQueue& queue, const NodeRegistry& nodes,
                                  const std::map<std::string, RunningAttempt>& running,
                                  absl::Time now, int max_jobs) {
  PlacementRound round;
  const std::vector<v1::Node> all = nodes.List();
  std::map<std::string, v1::NodeResources> free;
  for (const v1::Node& node : all) {
    if (nodes.TakesWork(node.name())) free[node.name()] = nodes.Free(node.name());
  }
  if (free.empty() && !all.empty()) return round;
  std::map<std::string, std::vector<RefRelease>> releases;
  for (const v1::Node& node : all) {
    if (!free.contains(node.name())) continue;
    for (const std::string& id : node.running_jobs()) {
      auto it = running.find(id);
      releases[node.name()].push_back(
          it == running.end() ? RefRelease{absl::InfiniteFuture(), v1::NodeResources()}
                              : RefRelease{RefEnd(it->second.running_since,
                                                  it->second.max_run_duration, now),
                                           it->second.per_node});
    }
  }
  std::set<std::string> reserved;
  int examined = 0;
  for (const std::string& job_id : queue.QueuedInOrder()) {
    if (examined == max_jobs) break;
    ++examined;
    const v1::JobSpec& spec = queue.Find(job_id)->spec();
    const v1::ComputeTarget* target = nodes.FindTarget(spec.compute_target());
    if (target == nullptr) {
      round.waiting[job_id] = "UNKNOWN_COMPUTE_TARGET target=" + spec.compute_target();
      continue;
    }
    const int need = spec.node_count();
    if (target->max_nodes() > 0 && need > target->max_nodes()) {
      round.waiting[job_id] =
          absl::StrCat("TARGET_TOO_SMALL need=", need, " max_nodes=", target->max_nodes());
      continue;
    }
    const v1::NodeResources demand = PerNodeDemand(spec);
    const absl::Duration limit = MaxRunDuration(spec);
    const bool may_use_reserved =
        round.reservation.has_value() && round.reservation->start != absl::InfiniteFuture() &&
        limit > absl::ZeroDuration() && now + limit <= round.reservation->start;
    std::vector<std::string> candidates, eligible;
    int room_now = 0, large_enough = 0, in_target = 0;
    for (const v1::Node& node : all) {
      if (!nodes.InTarget(*target, node.name())) continue;
      ++in_target;
      const bool large = RefFits(node.capacity(), demand);
      if (large) ++large_enough;
      auto it = free.find(node.name());
      if (it == free.end()) continue;
      if (large) eligible.push_back(node.name());
      if (!RefFits(it->second, demand)) continue;
      ++room_now;
      if (may_use_reserved || !reserved.contains(node.name())) candidates.push_back(node.name());
    }
    if (static_cast<int>(candidates.size()) < need) {
      if (large_enough < need && in_target >= need) {
        round.waiting[job_id] = absl::StrCat("NO_NODE_LARGE_ENOUGH need=", need,
                                             " large_enough=", large_enough,
                                             " per_node=", FormatResources(demand));
        continue;
      }
      std::string reason = absl::StrCat("WAITING_FOR_NODES need=", need, " free=", room_now);
      if (room_now >= need) {
        absl::StrAppend(&reason, " reserved_for=", round.reservation->job_id);
      } else if (!round.reservation.has_value() && static_cast<int>(eligible.size()) >= need) {
        std::vector<std::tuple<absl::Time, double, int64_t, int64_t, std::string>> order;
        for (const std::string& name : eligible) {
          v1::NodeResources held = nodes.Find(name)->capacity();
          RefSubtract(held, free[name]);
          order.emplace_back(RefRoomAt(free[name], releases[name], demand, now), held.cpus(),
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
      continue;
    }
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](const std::string& a, const std::string& b) {
                       return std::make_pair(reserved.contains(a), free[a].cpus()) <
                              std::make_pair(reserved.contains(b), free[b].cpus());
                     });
    candidates.resize(need);
    for (const std::string& name : candidates) {
      RefSubtract(free[name], demand);
      releases[name].push_back(RefRelease{RefEnd(now, limit, now), demand});
    }
    round.placed.push_back(Placement{job_id, std::move(candidates), demand});
  }
  return round;
}

TEST(PlacementTest, RandomClustersAndQueuesPlaceAsThePlainReferenceDoes) {
  std::mt19937_64 random(20261207);
  auto pick = [&random](int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(random);
  };
  int placed = 0, reserved = 0, waiting = 0;
  for (int round_no = 0; round_no < 400; ++round_no) {
    NodeRegistry nodes;
    v1::ComputeTarget gpu;
    gpu.set_name("gpu");
    (*gpu.mutable_selector())["pool"] = "gpu";
    if (pick(0, 1) == 1) gpu.set_max_nodes(pick(1, 4));
    ASSERT_TRUE(nodes.PutTarget(gpu).ok());
    std::map<std::string, RunningAttempt> running;
    const int node_count = pick(1, 40);
    for (int n = 0; n < node_count; ++n) {
      const std::string name = absl::StrCat("n", pick(0, 999), "-", n);
      const double cpus = pick(1, 4) * 4;
      std::map<std::string, std::string> labels;
      if (pick(0, 2) == 0) labels["pool"] = "gpu";
      ASSERT_TRUE(
          nodes.Register(NodeWith(name, cpus, pick(1, 4) * 8192, pick(0, 2), labels), kT0).ok());
      if (pick(0, 9) == 0) {
        ASSERT_TRUE(nodes.Cordon(name, "test").ok());
      }
      for (int r = pick(0, 2); r > 0; --r) {
        const double held = pick(1, static_cast<int>(cpus) / 2);
        const absl::Duration limit = pick(0, 3) == 0 ? absl::ZeroDuration()
                                                     : absl::Minutes(pick(1, 120));
        StartRunning(nodes, running, absl::StrCat("r-", n, "-", r), {name}, held,
                     kT0 - absl::Minutes(pick(0, 60)), limit);
      }
    }
    JobQueue queue;
    const int job_count = pick(1, 60);
    for (int j = 1; j <= job_count; ++j) {
      v1::Job job = QueuedJob(absl::StrCat("j-", j), pick(1, 16) / 2.0, pick(1, 20) * 1024,
                              pick(0, 5) == 0 ? pick(2, 6) : 1, pick(0, 3) == 0 ? pick(-2, 2) : 0,
                              pick(0, 4) == 0 ? (pick(0, 5) == 0 ? "nope" : "gpu") : "default");
      job.mutable_spec()->mutable_resources()->set_gpus(pick(0, 3) == 0 ? pick(1, 2) : 0);
      if (pick(0, 1) == 1) job = WithLimit(job, absl::Minutes(pick(1, 180)));
      queue.Update(job);
    }
    const int depth = pick(0, 3) == 0 ? pick(1, 10) : 1000;
    PlacementRound got = PlaceQueuedJobs(queue, nodes, running, kT0, depth);
    PlacementRound want = ReferencePlacement(queue, nodes, running, kT0, depth);
    ASSERT_EQ(got.placed.size(), want.placed.size()) << "round " << round_no;
    for (size_t k = 0; k < want.placed.size(); ++k) {
      EXPECT_EQ(got.placed[k].job_id, want.placed[k].job_id) << "round " << round_no;
      EXPECT_EQ(got.placed[k].nodes, want.placed[k].nodes) << "round " << round_no;
    }
    EXPECT_EQ(got.waiting, want.waiting) << "round " << round_no;
    ASSERT_EQ(got.reservation.has_value(), want.reservation.has_value()) << "round " << round_no;
    if (want.reservation.has_value()) {
      EXPECT_EQ(got.reservation->job_id, want.reservation->job_id);
      EXPECT_EQ(got.reservation->nodes, want.reservation->nodes);
      EXPECT_EQ(got.reservation->start, want.reservation->start);
      ++reserved;
    }
    placed += static_cast<int>(want.placed.size());
    waiting += static_cast<int>(want.waiting.size());
  }
  // The tables exercised every branch, not only the easy one.
  EXPECT_GT(placed, 1000);
  EXPECT_GT(reserved, 50);
  EXPECT_GT(waiting, 1000);
}

}  // namespace
}  // namespace drover::scheduler
