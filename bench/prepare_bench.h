// The environment-preparation benchmark (issue 5): how long a job with `pip_packages` spends
// PREPARING when its node builds the environment, and when a later job reuses it, as the
// client sees it (PREPARING first seen -> STARTING first seen: every node READY).
//
// Round r submits one job whose packages are `pip_packages` with "{}" replaced by r (so that
// every round needs an environment of its own: the build), then `cached_jobs` identical jobs
// one after another (the reuse), then as many jobs without packages (the same job with
// nothing to prepare, for reference). Each job is `/bin/sh -c COMMAND` in `image`. Whether a
// job built or reused its environment is read from its PREPARE log; a first job that did
// not build (the agent had that environment already) is counted apart, not as a build.
// RunPrepareBench blocks the calling thread for the run.
#ifndef DROVER_BENCH_PREPARE_BENCH_H_
#define DROVER_BENCH_PREPARE_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/latency.h"

namespace drover::bench {

struct PrepareBenchOptions {
  // droverd's address, HOST:PORT.
  std::string server;
  // droverd's CA certificate (PEM); empty: $DROVER_CA.
  std::string ca_file;
  int64_t rounds = 3;
  int64_t cached_jobs = 3;
  // pip requirement strings; "{}" becomes the round number (0, 1, ...).
  std::vector<std::string> pip_packages;
  std::string image = "host";
  std::string command = "true";
  absl::Duration job_timeout = absl::Minutes(30);
  absl::Duration connect_timeout = absl::Seconds(30);
};

struct PrepareBenchResult {
  // PREPARING -> STARTING of the jobs that built their environment, reused one, had none.
  LatencySummary built;
  LatencySummary cached;
  LatencySummary none;
  // Submit sent -> RUNNING first seen, the same three groups.
  LatencySummary built_to_running;
  LatencySummary cached_to_running;
  LatencySummary none_to_running;
  // A round's first job that did not build, or a later one that did.
  int64_t unexpected = 0;
  int64_t failed = 0;
  std::string first_failure;
  std::string load_before;
  std::string load_after;
};

// INVALID_ARGUMENT for bad options (no packages, no "{}" with more than one round);
// UNAVAILABLE when droverd has no READY node within `connect_timeout`. Jobs that fail are
// counted, not an error.
absl::StatusOr<PrepareBenchResult> RunPrepareBench(const PrepareBenchOptions& options);

// Median build time over median reuse time (0 when either is missing).
double BuildToCachedRatio(const PrepareBenchResult& result);

std::string PrepareResultText(const PrepareBenchResult& result, const PrepareBenchOptions& options);
std::string PrepareResultJson(const PrepareBenchResult& result, const PrepareBenchOptions& options);

}  // namespace drover::bench

#endif  // DROVER_BENCH_PREPARE_BENCH_H_
