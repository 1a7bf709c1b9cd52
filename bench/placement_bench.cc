#include "bench/placement_bench.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <queue>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/job_id.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/node.pb.h"
#include "scheduler/job_array.h"
#include "scheduler/job_queue.h"
#include "scheduler/node_registry.h"
#include "scheduler/placement.h"

namespace drover::bench {
namespace {

const absl::Time kStart = absl::FromUnixSeconds(1800000000);

absl::Status Check(const PlacementBenchOptions& o) {
  auto out_of = [](const char* flag, int64_t value, int64_t lo, int64_t hi) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": ", value, " is out of range; use ", lo, " to ", hi));
  };
  if (o.nodes < 1 || o.nodes > 100000) return out_of("nodes", o.nodes, 1, 100000);
  if (o.cpus_per_node < 1 || o.cpus_per_node > 1024) {
    return out_of("cpus-per-node", o.cpus_per_node, 1, 1024);
  }
  if (o.jobs < 0 || o.jobs > 10000000) return out_of("jobs", o.jobs, 0, 10000000);
  if (o.gang_percent < 0 || o.gang_percent > 10) {
    return out_of("gang-percent", o.gang_percent, 0, 10);
  }
  if (o.held_array < 0 || o.held_array > scheduler::kMaxArrayTasks) {
    return out_of("held-array", o.held_array, 0, scheduler::kMaxArrayTasks);
  }
  if (o.depth < 1 || o.depth > 1000000) return out_of("depth", o.depth, 1, 1000000);
  if (o.tick <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--tick: must be positive, like 10s");
  }
  if (o.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--duration: must be positive, like 10s");
  }
  return absl::OkStatus();
}

v1::Job QueuedJob(int64_t seq, int nodes, double cpus, int64_t memory_mib) {
  v1::Job job;
  job.set_id(FormatJobId(seq));
  v1::JobSpec& spec = *job.mutable_spec();
  spec.set_compute_target("default");  // as ValidateJobSpec leaves it
  spec.set_node_count(nodes);
  spec.mutable_resources()->set_cpus(cpus);
  spec.mutable_resources()->set_memory_mib(memory_mib);
  job.mutable_status()->set_state(v1::JobStatus::QUEUED);
  job.mutable_status()->set_version(1);
  return job;
}

size_t HeapInUse() { return mallinfo2().uordblks; }

double FirstRoundRate(const PlacementBenchResult& r) {
  const double seconds = absl::ToDoubleSeconds(r.first_round);
  return seconds > 0 ? static_cast<double>(r.first_round_placed) / seconds : 0;
}

}  // namespace

absl::StatusOr<PlacementBenchResult> RunPlacementBench(const PlacementBenchOptions& options) {
  if (absl::Status s = Check(options); !s.ok()) return s;
  std::mt19937_64 random(options.seed);
  scheduler::NodeRegistry nodes;
  const int64_t memory_per_cpu = 4096;
  for (int64_t n = 0; n < options.nodes; ++n) {
    v1::NodeInfo info;
    info.set_name(absl::StrFormat("n%05d", n));
    info.add_addresses(absl::StrCat("10.", n / 65536, ".", (n / 256) % 256, ".", n % 256));
    info.mutable_capacity()->set_cpus(static_cast<double>(options.cpus_per_node));
    info.mutable_capacity()->set_memory_mib(options.cpus_per_node * memory_per_cpu);
    if (absl::StatusOr<v1::Node> node = nodes.Register(info, kStart); !node.ok()) {
      return node.status();
    }
  }

  scheduler::JobQueue queue;
  const size_t heap_before = HeapInUse();
  int64_t seq = 1;
  if (options.held_array > 0) {
    v1::Job array = QueuedJob(0, 1, 1, memory_per_cpu);
    array.mutable_spec()->mutable_array()->set_indices(
        absl::StrCat("0-", options.held_array - 1));
    array.mutable_spec()->mutable_array()->set_max_running(50);
    std::vector<int64_t> indices(options.held_array);
    for (int64_t i = 0; i < options.held_array; ++i) indices[i] = i;
    for (v1::Job& task : scheduler::MakeArrayTasks(array, "a-00000000000000be", indices)) {
      task.set_id(FormatJobId(seq++));
      queue.Update(task);
    }
  }
  std::uniform_int_distribution<int> percent(0, 99);
  std::uniform_int_distribution<int> gang_nodes(2, 16);
  for (int64_t j = 0; j < options.jobs; ++j) {
    const int p = percent(random);
    const double c = static_cast<double>(options.cpus_per_node);
    v1::Job job = p < 70                           ? QueuedJob(seq, 1, 1, memory_per_cpu)
                  : p < 90                         ? QueuedJob(seq, 1, std::min(8.0, c),
                                                               8 * memory_per_cpu)
                  : p < 90 + options.gang_percent ? QueuedJob(seq, gang_nodes(random), c,
                                                               options.cpus_per_node *
                                                                   memory_per_cpu)
                                                   : QueuedJob(seq, 1, 1, memory_per_cpu);
    ++seq;
    queue.Update(job);
  }
  const int64_t queued = options.jobs + options.held_array;
  PlacementBenchResult result;
  result.queue_bytes_per_job =
      queued == 0 ? 0
                  : static_cast<double>(HeapInUse() - heap_before) / static_cast<double>(queued);

  // Running jobs by simulated end time.
  using End = std::tuple<absl::Time, std::string>;
  std::priority_queue<End, std::vector<End>, std::greater<End>> ends;
  std::map<std::string, scheduler::RunningAttempt> running;
  std::uniform_int_distribution<int> minutes(1, 60);
  std::vector<absl::Duration> rounds;
  absl::Time now = kStart;
  while (result.placing < options.duration && queue.queued_count() > 0) {
    const auto t0 = std::chrono::steady_clock::now();
    scheduler::PlacementRound round = scheduler::PlaceQueuedJobs(
        queue, nodes, running, now, static_cast<int>(options.depth));
    const absl::Duration took = absl::FromChrono(std::chrono::steady_clock::now() - t0);
    result.placing += took;
    rounds.push_back(took);
    if (result.rounds == 0) {
      result.first_round = took;
      result.first_round_placed = static_cast<int64_t>(round.placed.size());
    }
    ++result.rounds;
    result.placed += static_cast<int64_t>(round.placed.size());
    result.waiting += static_cast<int64_t>(round.waiting.size());
    for (const scheduler::Placement& placement : round.placed) {
      v1::Job job = *queue.Find(placement.job_id);
      for (const std::string& node : placement.nodes) {
        nodes.Allocate(node, job.id(), placement.per_node);
      }
      job.mutable_status()->set_state(v1::JobStatus::RUNNING);
      job.mutable_status()->set_version(job.status().version() + 1);
      for (const std::string& node : placement.nodes) job.mutable_status()->add_nodes(node);
      queue.Update(job);
      running[job.id()] = scheduler::RunningAttempt{now, absl::ZeroDuration(), placement.per_node};
      ends.emplace(now + absl::Minutes(minutes(random)), job.id());
    }
    now += options.tick;
    while (!ends.empty() && std::get<absl::Time>(ends.top()) <= now) {
      const std::string id = std::get<std::string>(ends.top());
      ends.pop();
      v1::Job job = *queue.Find(id);
      for (const std::string& node : job.status().nodes()) nodes.Release(node, id);
      job.mutable_status()->set_state(v1::JobStatus::COMPLETED);
      job.mutable_status()->set_version(job.status().version() + 1);
      queue.Update(job);
      running.erase(id);
    }
  }
  result.round = Summarize(std::move(rounds));
  const double seconds = absl::ToDoubleSeconds(result.placing);
  if (seconds > 0) {
    result.placed_per_second = static_cast<double>(result.placed) / seconds;
    result.decisions_per_second = static_cast<double>(result.placed + result.waiting) / seconds;
  }
  result.queued_left = static_cast<int64_t>(queue.queued_count());
  return result;
}

std::string PlacementResultText(const PlacementBenchOptions& o, const PlacementBenchResult& r) {
  return absl::StrFormat(
      "placement: %d nodes x %d CPUs, %d queued jobs (%d%% gangs)%s, depth %d\n"
      "  %d rounds in %s of placement: %d placed, %d held back with a reason:\n"
      "  %.0f decisions/s, %.0f placements/s (one core)\n"
      "  the first round, into the empty cluster: %d placed in %s (%.0f placements/s)\n"
      "  one round   %s\n"
      "  still queued %d; queue memory %.0f bytes per queued job\n",
      o.nodes, o.cpus_per_node, o.jobs, o.gang_percent,
      o.held_array > 0 ? absl::StrCat(" behind an array of ", o.held_array, " held at 50") : "",
      o.depth, r.rounds, absl::FormatDuration(r.placing), r.placed, r.waiting,
      r.decisions_per_second, r.placed_per_second, r.first_round_placed,
      absl::FormatDuration(r.first_round), FirstRoundRate(r), LatencyText(r.round),
      r.queued_left, r.queue_bytes_per_job);
}

std::string PlacementResultJson(const PlacementBenchOptions& o, const PlacementBenchResult& r) {
  return absl::StrFormat(
      "{\"benchmark\":\"placement\",\"nodes\":%d,\"cpus_per_node\":%d,\"jobs\":%d,"
      "\"gang_percent\":%d,\"held_array\":%d,\"depth\":%d,\"rounds\":%d,\"placed\":%d,"
      "\"placing_s\":%.6f,\"placed_per_s\":%.1f,\"decisions_per_s\":%.1f,"
      "\"first_round_placed\":%d,\"first_round_s\":%.6f,\"first_round_placed_per_s\":%.1f,"
      "\"round\":%s,\"waiting\":%d,"
      "\"queued_left\":%d,\"queue_bytes_per_job\":%.1f}",
      o.nodes, o.cpus_per_node, o.jobs, o.gang_percent, o.held_array, o.depth, r.rounds,
      r.placed, absl::ToDoubleSeconds(r.placing), r.placed_per_second, r.decisions_per_second,
      r.first_round_placed, absl::ToDoubleSeconds(r.first_round), FirstRoundRate(r),
      LatencyJson(r.round),
      r.waiting, r.queued_left, r.queue_bytes_per_job);
}

}  // namespace drover::bench
