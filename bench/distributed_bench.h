// The distributed-latency benchmark (issue 4): how long a small multi-node job takes through
// Drover, from the client's SubmitJob to COMPLETED, next to the same program launched across
// the same hosts without Drover (a bare `mpirun`, given as --baseline-launcher) and to one
// trivial container run (`runc run` of the agent's config, bench/container_baseline.h), all
// measured in the same run.
//
// Each round is one Drover job (node_count × process_count_per_node processes of PROGRAM
// ARGS in the host image, no snapshot), submitted and watched to its end (WatchJob) as
// run-latency does, then one launcher run of the same program (the launcher's words, then
// PROGRAM ARGS, run directly without a shell, which must exit 0), then the container
// baselines. Rounds run one after another so that all see the same machine; the first
// `warmup_jobs` rounds are not counted. Run it on the host the user would run `mpirun` on
// (for test hosts, inside that host's namespaces), as root for the container baselines.
// RunDistributedLatencyBench blocks the calling thread for the run.
#ifndef DROVER_BENCH_DISTRIBUTED_BENCH_H_
#define DROVER_BENCH_DISTRIBUTED_BENCH_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/job_report.h"
#include "bench/latency.h"

namespace drover::bench {

struct DistributedLatencyOptions {
  // droverd's address, HOST:PORT.
  std::string server;
  // droverd's CA certificate (PEM); empty: $DROVER_CA.
  std::string ca_file;
  int64_t jobs = 10;
  int64_t warmup_jobs = 1;
  int64_t nodes = 2;
  int64_t processes_per_node = 2;
  // "mpi" or "pytorch".
  std::string backend = "mpi";
  // The program every process runs (an absolute path on the nodes) and its arguments.
  std::vector<std::string> program = {"/bin/true"};
  // Per node.
  double cpus = 1;
  int64_t memory_mib = 1024;
  absl::Duration job_timeout = absl::Seconds(120);
  absl::Duration connect_timeout = absl::Seconds(60);

  // Words of the bare launcher command (split on whitespace, no quoting), to which PROGRAM
  // ARGS are appended; empty: no launcher baseline.
  std::string baseline_launcher;
  // Container baselines each round (RuncRuntime and `runc run` of a `/bin/true` container
  // with the agent's config, and of a minimal busybox bundle); false: none.
  bool container_baselines = true;
  std::string baseline_root = "/var/tmp";
  std::string runc_path = "runc";
  // drover-init; empty: the one built next to drover-bench.
  std::string init_binary;
  // Static busybox for the minimal bundle; empty: skip that baseline.
  std::string busybox = "/bin/busybox";
};

struct DistributedLatencyResult {
  int64_t nodes = 0;
  int64_t processes_per_node = 0;
  std::string backend;
  std::string program;  // for reports, the words joined by spaces (shortened)

  // The measured jobs. Their traces add, from the final job status, "start_time"
  // (droverd's RUNNING), "last_rank_end" (the latest rank's end_time, by its node's clock:
  // the same clock on test hosts) and "end_time".
  JobLatencies drover;
  // The latest rank's end (from the job's exits) -> the client sees COMPLETED.
  LatencySummary last_rank_end_to_completed;

  // Baselines (count 0 when not measured).
  std::string launcher;
  LatencySummary launcher_run;
  RuntimeLatencies runtime;
  LatencySummary runc_same_config;
  LatencySummary runc_minimal;

  std::vector<JobTrace> traces;
  std::string load_before;
  std::string load_after;
};

// INVALID_ARGUMENT for bad options; UNAVAILABLE when droverd cannot be reached or has fewer
// than `nodes` READY nodes within `connect_timeout`, or when a baseline run fails (the
// message has its output); FAILED_PRECONDITION when the container baselines cannot be set
// up. Jobs that fail are counted in the result, not an error.
absl::StatusOr<DistributedLatencyResult> RunDistributedLatencyBench(
    const DistributedLatencyOptions& options);

std::string DistributedLatencyResultText(const DistributedLatencyResult& result,
                                         const std::string& server);
std::string DistributedLatencyResultJson(const DistributedLatencyResult& result,
                                         const std::string& server);


}  // namespace drover::bench

#endif  // DROVER_BENCH_DISTRIBUTED_BENCH_H_
