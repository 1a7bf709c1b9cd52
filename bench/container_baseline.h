// The cost of running one trivial container without Drover: the baselines that
// `drover-bench run-latency` compares droverd + drover-agent with, measured in the same run.
// Three ways, from the most like the agent to the least:
//
//  - runtime: RuncRuntime, the agent's own runtime, Create + Start + Wait + Delete of the
//    ContainerSpec the agent builds for a host-image job (drover-init as PID 1 running the
//    command, the job folder at /job, cpu and memory limits). This is exactly what the
//    agent does for an attempt, minus Drover (no droverd, no agent stream, no job folder
//    preparation, no reports).
//  - runc run, same config: one `runc run` of a bundle with the same OCI config (host
//    skeleton rootfs, drover-init as PID 1), prepared once: runc alone, without the
//    runtime's separate create/start/delete processes and bundle work.
//  - runc run, same config, as before issue 16: the same without the user namespace and the
//    seccomp filter (the job's root the node's root), so that one run shows what that
//    hardening costs.
//  - runc run, minimal: `runc spec`'s default config with a rootfs holding only a static
//    busybox running `true` (the "about 75 ms" of TESTING.md).
//
// Needs root and runc; owns its own `runc --root` under `work_dir`, so it never touches the
// agent's containers. Opening it makes this process a child subreaper (RuncRuntime::Open).
// Not thread-safe: one caller thread.
#ifndef DROVER_BENCH_CONTAINER_BASELINE_H_
#define DROVER_BENCH_CONTAINER_BASELINE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/runtime/runc_runtime.h"

namespace drover::bench {

struct ContainerBaselineOptions {
  // Scratch folder (created when missing; bundles, job folder and runc root go below it).
  // Removed by the destructor.
  std::string work_dir;
  std::string runc_path = "runc";
  // drover-init on this machine. Required.
  std::string init_binary;
  // A statically linked busybox for the minimal bundle; empty: no minimal baseline.
  std::string busybox = "/bin/busybox";
  // What PID 1 (drover-init) runs, as the agent would run the job's entry script.
  std::vector<std::string> command = {"/bin/sh", "-c", "true"};
  // The job's resources, as in the benchmark's job spec.
  double cpus = 1;
  int64_t memory_mib = 512;
  // The user namespace of the runtime and same-config containers: drover-agent's default
  // --userns-range.
  agent::IdRange userns = {.host_id = 100000, .size = 65536};
};

// One container through the runtime, phase by phase.
struct RuntimeRun {
  absl::Duration create;  // bundle + `runc create`
  absl::Duration start;   // `runc start`
  absl::Duration wait;    // until PID 1 exited
  absl::Duration remove;  // `runc delete` + bundle clean-up
  absl::Duration total;
};

// drover-init as built next to drover-bench in the same build tree, or installed.
std::string DefaultInitPath();

// Runs `argv` (argv[0] looked up in PATH) with stdin from /dev/null and stdout and stderr
// appended to `log_path` (truncated first with `truncate`), and waits for exactly that pid
// (this process is a subreaper: other children are not ours to reap). Returns the wait
// status; FAILED_PRECONDITION when argv[0] cannot be run.
absl::StatusOr<int> Spawn(const std::vector<std::string>& argv, const std::string& log_path,
                          bool truncate = false);

class ContainerBaseline {
 public:
  // INVALID_ARGUMENT for bad options; FAILED_PRECONDITION when runc, drover-init or busybox
  // is missing or the bundles cannot be prepared (the message says which).
  static absl::StatusOr<std::unique_ptr<ContainerBaseline>> Open(ContainerBaselineOptions options);
  ~ContainerBaseline();

  // One container each. UNAVAILABLE when runc fails or PID 1 does not exit 0 (the message
  // has runc's or drover-init's complaint).
  absl::StatusOr<RuntimeRun> RunRuntime();
  absl::StatusOr<absl::Duration> RunRuncSameConfig();
  // The same config without user namespace and seccomp.
  absl::StatusOr<absl::Duration> RunRuncSameConfigUnhardened();
  // FAILED_PRECONDITION when the options had no busybox.
  absl::StatusOr<absl::Duration> RunRuncMinimal();

  bool has_minimal() const { return !options_.busybox.empty(); }

 private:
  explicit ContainerBaseline(ContainerBaselineOptions options) : options_(std::move(options)) {}
  agent::ContainerSpec Spec(const std::string& id) const;
  // `hardened`: the agent's user namespace and seccomp filter; else neither.
  absl::Status PrepareSameConfigBundle(const std::string& name, bool hardened);
  absl::Status PrepareMinimalBundle();
  // `runc --root R run --bundle B ID` with stdio on /dev/null and a log file; its duration.
  absl::StatusOr<absl::Duration> RuncRun(const std::string& bundle, const std::string& id);

  const ContainerBaselineOptions options_;
  std::unique_ptr<agent::RuncRuntime> runtime_;
  int64_t next_id_ = 0;
};

}  // namespace drover::bench

#endif  // DROVER_BENCH_CONTAINER_BASELINE_H_
