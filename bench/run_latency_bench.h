// The run-latency benchmark: how long a trivial job takes through Drover, from the client's
// SubmitJob to the job RUNNING and COMPLETED, next to the same container run without
// Drover (bench/container_baseline.h), measured in the same run.
//
// Each job is `/bin/sh -c COMMAND` in the host image (1 cpu, 512 MiB), submitted to a droverd
// that has at least one agent. After the submit is acknowledged the client watches the job
// (WatchJob) and notes, on its own steady clock, when it first sees each state; the phases
// between them show where the time goes. With concurrency 1, job i and baseline container i
// run one after the other (interleaved), so both see the same machine; with more, the
// baselines run after the jobs. The first `warmup_jobs` rounds are not counted.
// RunRunLatencyBench blocks the calling thread for the run.
#ifndef DROVER_BENCH_RUN_LATENCY_BENCH_H_
#define DROVER_BENCH_RUN_LATENCY_BENCH_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/job_report.h"
#include "bench/latency.h"

namespace drover::bench {

struct RunLatencyOptions {
  // droverd's address, HOST:PORT.
  std::string server;
  // droverd's CA certificate (PEM); empty: $DROVER_CA.
  std::string ca_file;
  // Jobs measured, and jobs (rounds) run first and not counted.
  int64_t jobs = 20;
  int64_t warmup_jobs = 1;
  // Jobs in flight at once (each client submits its next job when its last one ended).
  int64_t concurrency = 1;
  // What `/bin/sh -c` runs in each job and baseline container.
  std::string command = "true";
  // Deadline of one job, submit to end.
  absl::Duration job_timeout = absl::Seconds(60);
  // How long to wait for droverd and for a READY node before giving up.
  absl::Duration connect_timeout = absl::Seconds(30);

  // Baseline containers measured: -1 as many as jobs, 0 none.
  int64_t baseline_runs = -1;
  // Parent of the baselines' scratch folder (their own runc root and bundles); a real disk.
  std::string baseline_root = "/var/tmp";
  std::string runc_path = "runc";
  // drover-init; empty: the one built next to drover-bench (../agent/launcher/drover-init).
  std::string init_binary;
  // Static busybox for the minimal `runc run` bundle; empty: skip that baseline.
  std::string busybox = "/bin/busybox";
};

struct RunLatencyResult {
  int64_t concurrency = 0;
  std::string command;
  // The measured jobs.
  JobLatencies drover;
  // Baselines (count 0 when not measured).
  RuntimeLatencies runtime;
  LatencySummary runc_same_config;
  // The same config without user namespace and seccomp (before issue 16).
  LatencySummary runc_same_config_unhardened;
  LatencySummary runc_minimal;

  // Every measured job, completed or not, in submission order per client.
  std::vector<JobTrace> traces;

  // 1, 5 and 15 minute load averages (/proc/loadavg) before and after the run.
  std::string load_before;
  std::string load_after;
};

// INVALID_ARGUMENT for bad options; UNAVAILABLE when droverd cannot be reached or has no
// READY node within `connect_timeout`; FAILED_PRECONDITION when a baseline cannot be set up
// (no root, no runc, no drover-init); UNAVAILABLE when a baseline container fails. Jobs that
// fail are counted in the result, not an error.
absl::StatusOr<RunLatencyResult> RunRunLatencyBench(const RunLatencyOptions& options);

// Overhead of Drover over the runtime baseline: median submit->COMPLETED minus median
// runtime run (zero when there is no baseline).
absl::Duration MedianOverhead(const RunLatencyResult& result);

std::string RunLatencyResultText(const RunLatencyResult& result, const std::string& server);
std::string RunLatencyResultJson(const RunLatencyResult& result, const std::string& server);

}  // namespace drover::bench

#endif  // DROVER_BENCH_RUN_LATENCY_BENCH_H_
