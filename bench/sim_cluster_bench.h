// The simulated-cluster benchmark (issue 21, "Scale"): many fake nodes on droverd's real
// agent protocol over gRPC, a deep queue of mixed jobs, and what droverd does with them.
//
// Each fake node joins the way a new drover-agent does (a one-time join token made with the
// caller's admin token, a key and CSR of its own, JoinNode: bench_node.h), then keeps one
// AgentService.Connect stream open with its node certificate: hello (its capacity and the
// run's labels), a heartbeat every interval droverd's welcome gives, and for every
// assignment what an agent whose node prepares at once says: PREPARING, READY, (after
// StartAttempt for a multi-node attempt) RUNNING, then after the job's simulated run time
// ENDED with every rank exited 0. A StopAttempt ends the attempt at once with its cause. All
// nodes of a run share one process: their streams are gRPC callback reactors, their timers
// one thread; nothing runs a container.
//
// The run, in order:
//   1. droverd's memory (VmRSS of --droverd-pid) idle;
//   2. `nodes` nodes join and say hello (labelled so that no target selects them yet):
//      droverd's memory again, per node;
//   3. `jobs` jobs queued to the run's compute target, which selects no node yet (job arrays
//      of `array_chunk` tasks, shapes interleaved: 70 % one process of one CPU, 20 % four
//      processes of four CPUs, `gang_percent` % whole-node gangs over 2, 4 or 8 nodes):
//      droverd's memory again, per queued job;
//   4. the target is changed to select the nodes: droverd places from then on. The run
//      counts attempts as the nodes receive them (placements), and submits a probe job every
//      `probe_interval` to `probe_nodes` idle nodes of a target of their own at priority
//      1000, timing submit -> AssignAttempt at its node (droverd's path under load, not the
//      queue's wait); droverd's CPU time (/proc/PID/stat) is read at the start and end;
//   5. it stops after `duration`, or when every job completed (duration zero). With
//      `verify`, every job must have been assigned exactly once (one attempt, each node rank
//      once) and read COMPLETED from droverd.
// RunSimCluster blocks the calling thread.
#ifndef DROVER_BENCH_SIM_CLUSTER_BENCH_H_
#define DROVER_BENCH_SIM_CLUSTER_BENCH_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/latency.h"

namespace drover::bench {

struct SimClusterOptions {
  // droverd's address (HOST:PORT, its --listen; agents need TLS).
  std::string server;
  // droverd's CA certificate (PEM file); empty: $DROVER_CA.
  std::string ca_file;
  // droverd's process, for its CPU and memory (0: not measured).
  pid_t droverd_pid = 0;
  // Fake nodes that take the queued jobs: 1-20000.
  int64_t nodes = 1000;
  int64_t cpus_per_node = 16;
  int64_t memory_mib_per_node = 65536;
  int64_t gpus_per_node = 0;
  // More labels of every node (the run's own label is added).
  std::map<std::string, std::string> labels;
  // Jobs queued before placement starts: 0-1000000.
  int64_t jobs = 100000;
  // Share of whole-node gangs, 0-100 (the single- and multi-process jobs share the rest 7:2).
  int64_t gang_percent = 10;
  // Tasks per submitted job array (1-100000).
  int64_t array_chunk = 1000;
  // How long each attempt stays RUNNING: uniform between these.
  absl::Duration min_run = absl::Seconds(1);
  absl::Duration max_run = absl::Seconds(3);
  // Idle nodes of the probe target, and how often a probe job is submitted (0: no probes).
  int64_t probe_nodes = 2;
  absl::Duration probe_interval = absl::Milliseconds(500);
  // How long placement is measured; zero: until every job completed (then `timeout`).
  absl::Duration duration = absl::Seconds(60);
  absl::Duration timeout = absl::Minutes(30);
  // Nodes joined at once (each join is two durable writes in droverd).
  int64_t join_concurrency = 16;
  // After the run, check every job: assigned exactly once and COMPLETED in droverd (needs
  // a run until all completed: `duration` zero).
  bool verify = false;
  // The nodes' names are PREFIX-0, PREFIX-1, ... ([a-z0-9-]).
  std::string node_prefix = "sim";
  uint64_t seed = 1;
};

struct SimClusterResult {
  std::string load_before;
  std::string load_after;
  int64_t nodes = 0;
  int64_t jobs = 0;  // queued in step 3
  absl::Duration join;     // step 2: every node joined and welcomed
  absl::Duration enqueue;  // step 3
  // Step 4: from the target's change to the end of the measurement.
  absl::Duration measured;
  int64_t placements = 0;  // attempts of queued jobs that reached their nodes
  int64_t gang_placements = 0;
  int64_t assignments = 0;  // AssignAttempt messages (one per node of an attempt)
  int64_t completed = 0;    // attempts the nodes ended
  double placements_per_second = 0;
  double peak_placements_per_second = 0;  // the best whole second
  int64_t queued_left = 0;  // jobs not yet placed at the end
  LatencySummary probe;     // submit -> AssignAttempt at the probe node
  // Probes not assigned by the end, or whose submit droverd did not answer within 30 s.
  int64_t probes_unassigned = 0;
  // droverd, when --droverd-pid was given (0 otherwise).
  int64_t rss_idle_kib = 0;
  int64_t rss_nodes_kib = 0;
  int64_t rss_queued_kib = 0;
  int64_t rss_end_kib = 0;
  double droverd_cpu_seconds = 0;  // during `measured`
  // This process (the fake nodes and the submits), during `measured`.
  double bench_cpu_seconds = 0;
  // With verify: problems found (none when the run is right).
  int64_t duplicate_assignments = 0;  // a node rank of an attempt assigned twice
  int64_t reassigned_jobs = 0;        // a job given a second attempt
  int64_t stopped_attempts = 0;       // StopAttempt received
  int64_t not_completed = 0;          // jobs droverd does not read COMPLETED
  int64_t streams_broken = 0;         // node streams droverd ended during the run
};

// INVALID_ARGUMENT for bad options or an unreadable CA file; droverd's error when it refuses
// a join, the compute targets or a submit (PERMISSION_DENIED without an admin's token);
// UNAVAILABLE when droverd cannot be reached, a node is not welcomed within a minute of
// joining, or (duration zero) the jobs do not all complete within `timeout`.
absl::StatusOr<SimClusterResult> RunSimCluster(const SimClusterOptions& options);

std::string SimClusterResultText(const SimClusterOptions& options, const SimClusterResult& r);
std::string SimClusterResultJson(const SimClusterOptions& options, const SimClusterResult& r);

}  // namespace drover::bench

#endif  // DROVER_BENCH_SIM_CLUSTER_BENCH_H_
