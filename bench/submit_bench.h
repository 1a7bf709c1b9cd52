// The submit benchmark: N clients that each submit jobs back-to-back to a running droverd,
// every job with its own idempotency key, and the acknowledged rate and latency they see.
// Each client keeps exactly one SubmitJob in flight (the next starts when the previous one
// is answered), so N is the number of submits droverd has in hand at once. Clients use
// gRPC's callback API, so the load generator needs few threads and little CPU next to a
// droverd on the same machine. RunSubmitBench blocks the calling thread for the run.
#ifndef DROVER_BENCH_SUBMIT_BENCH_H_
#define DROVER_BENCH_SUBMIT_BENCH_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/latency.h"

namespace drover::bench {

struct SubmitBenchOptions {
  // droverd's address, HOST:PORT.
  std::string server;
  // droverd's CA certificate (PEM); empty: $DROVER_CA.
  std::string ca_file;
  // Concurrent clients, each with one submit in flight.
  int64_t clients = 1;
  // gRPC channels (TCP connections) the clients are spread over, round robin. 0:
  // min(clients, 8).
  int64_t channels = 0;
  // Submits started before `warmup` has passed, or answered after `warmup + duration`, are
  // not counted.
  absl::Duration warmup = absl::Seconds(1);
  absl::Duration duration = absl::Seconds(10);
  // Deadline of each SubmitJob.
  absl::Duration rpc_timeout = absl::Seconds(30);
  // How long to wait for every channel to connect before giving up.
  absl::Duration connect_timeout = absl::Seconds(10);
  // Each submit is a job array of this many tasks (indices 0 to N-1), acknowledged once
  // every task is durable; 0: single jobs.
  int64_t array_size = 0;
};

struct SubmitBenchResult {
  int64_t clients = 0;
  int64_t channels = 0;
  absl::Duration warmup;
  absl::Duration duration;
  // Submits acknowledged (OK) within the measured window, and their rate.
  int64_t acknowledged = 0;
  double jobs_per_second = 0;
  // With array_size: tasks per submit, and the tasks acknowledged per second (jobs_per_second
  // counts arrays).
  int64_t array_size = 0;
  double tasks_per_second = 0;
  // Submits acknowledged over the whole run, warm-up and the answers after the window
  // included (for per-job costs measured around the run).
  int64_t acknowledged_total = 0;
  // Acknowledgements with `created=false`: with unique keys there should be none.
  int64_t not_created = 0;
  // Latency from sending a SubmitJob to receiving its OK, over the measured window.
  LatencySummary latency;
  // Failed submits over the whole run (warm-up included), by gRPC code name, with the first
  // message seen for each code.
  std::map<std::string, int64_t> errors;
  std::map<std::string, std::string> error_examples;
  // CPU time this process (the load generator) used during the measured window.
  absl::Duration client_cpu;
};

// Runs the benchmark against `options.server`. INVALID_ARGUMENT for bad options;
// UNAVAILABLE when droverd cannot be reached within `connect_timeout`. Failed submits do not
// fail the run; they are counted in the result.
absl::StatusOr<SubmitBenchResult> RunSubmitBench(const SubmitBenchOptions& options);

// The result as a few aligned lines for people, or as one JSON object.
std::string SubmitResultText(const SubmitBenchResult& result, const std::string& server);
std::string SubmitResultJson(const SubmitBenchResult& result, const std::string& server);

}  // namespace drover::bench

#endif  // DROVER_BENCH_SUBMIT_BENCH_H_
