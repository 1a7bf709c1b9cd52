// The scheduling core's placement rate, measured without gRPC, agents or a store: the
// scheduler's own JobQueue, NodeRegistry and PlaceQueuedJobs (what droverd's core loop runs
// on every round) over a simulated cluster of `nodes` nodes and `jobs` queued jobs of mixed
// sizes, gangs included. Jobs placed are marked running and end after their simulated run
// time as the clock advances, so rounds keep finding room. Runs on the calling thread: the
// figures are one core's.
#ifndef DROVER_BENCH_PLACEMENT_BENCH_H_
#define DROVER_BENCH_PLACEMENT_BENCH_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/latency.h"

namespace drover::bench {

struct PlacementBenchOptions {
  int64_t nodes = 1000;
  // CPUs per node (memory: 4 GiB per CPU).
  int64_t cpus_per_node = 16;
  // Queued jobs at the start: 70 % one CPU on one node, 20 % 8 CPUs on one node, and
  // `gang_percent` % whole nodes on 2-16 nodes (the rest of the 10 % one-node).
  int64_t jobs = 100000;
  int64_t gang_percent = 10;
  // A job array of this many tasks held at 50 running, queued ahead of the jobs (0: none).
  int64_t held_array = 0;
  // Jobs examined per round at most (droverd's default).
  int64_t depth = 1000;
  // The simulated time between rounds; a job runs 1-60 simulated minutes.
  absl::Duration tick = absl::Minutes(1);
  // Stop after this much time inside placement (or when the queue is empty).
  absl::Duration duration = absl::Seconds(10);
  uint64_t seed = 1;
};

struct PlacementBenchResult {
  int64_t rounds = 0;
  int64_t placed = 0;
  // Queued jobs given a reason to wait, all rounds (a job examined and not placed, or a
  // task held by its array's limit).
  int64_t waiting = 0;
  absl::Duration placing;  // inside PlaceQueuedJobs, all rounds
  double placed_per_second = 0;
  // Placements and reasons together, per second of placement time.
  double decisions_per_second = 0;
  LatencySummary round;  // one PlaceQueuedJobs call
  // The first round, placing into the empty cluster (up to `depth` jobs).
  int64_t first_round_placed = 0;
  absl::Duration first_round;
  // Heap growth while the queue was filled, per queued job (glibc's mallinfo2).
  double queue_bytes_per_job = 0;
  int64_t queued_left = 0;
};

// INVALID_ARGUMENT for bad options.
absl::StatusOr<PlacementBenchResult> RunPlacementBench(const PlacementBenchOptions& options);

std::string PlacementResultText(const PlacementBenchOptions& options,
                                const PlacementBenchResult& result);
std::string PlacementResultJson(const PlacementBenchOptions& options,
                                const PlacementBenchResult& result);

}  // namespace drover::bench

#endif  // DROVER_BENCH_PLACEMENT_BENCH_H_
