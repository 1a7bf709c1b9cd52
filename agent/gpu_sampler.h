// GpuSampler: how busy the node's GPUs are, for the system metrics of GPU jobs and the
// agent's Prometheus page. One thread runs `nvidia-smi --query-gpu=<kGpuSampleQuery>` every
// interval (one process for all GPUs, however many attempts hold them) and keeps the last
// reading of each GPU; attempts read it when they sample their container, never waiting for
// nvidia-smi, which can take a second on a busy node. docs/metrics.md lists the series.
#ifndef DROVER_AGENT_GPU_SAMPLER_H_
#define DROVER_AGENT_GPU_SAMPLER_H_

#include <map>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent_metrics.h"
#include "agent/gpus.h"
#include "agent/waiter.h"
#include "common/clock.h"

namespace drover::agent {

// One GPU's reading. A value nvidia-smi does not know ("[N/A]", "[Not Supported]") is -1.
struct GpuSample {
  double utilization_percent = -1;  // utilization.gpu: share of the last period a kernel ran
  double memory_used_bytes = -1;    // memory.used
  double memory_total_bytes = -1;   // memory.total
  absl::Time at = absl::InfinitePast();
};

// The fields asked for, in this order (`--format=csv,noheader,nounits`).
inline constexpr char kGpuSampleQuery[] = "uuid,utilization.gpu,memory.used,memory.total";

// Parses that output, "GPU-8f6c..., 87, 30120, 81559" per line (a " %" or " MiB" unit is
// accepted), into readings by UUID, each `at` the given time. INVALID_ARGUMENT naming the
// line otherwise.
absl::StatusOr<std::map<std::string, GpuSample>> ParseGpuSampleCsv(absl::string_view output,
                                                                   absl::Time at);

class GpuSampler {
 public:
  // Samples the GPUs of `inventory` with its nvidia_smi every `interval`; `metrics` (may be
  // null) gets the readings as gauges; each reading is timed by `clock` (not owned), which
  // Latest's `not_before` is compared with and the interval is measured on. Nothing runs
  // before Start().
  GpuSampler(const GpuInventory& inventory, absl::Duration interval, AgentMetrics* metrics,
             const Clock& clock = RealClock::Get());
  // Stops the thread (waiting for a running nvidia-smi, at most its timeout).
  ~GpuSampler();
  GpuSampler(const GpuSampler&) = delete;
  GpuSampler& operator=(const GpuSampler&) = delete;

  void Start();
  // The last reading of the GPU with `uuid` taken at or after `not_before`; none when there
  // is no such reading yet (or nvidia-smi fails).
  std::optional<GpuSample> Latest(const std::string& uuid, absl::Time not_before) const;
  // Runs nvidia-smi once now and keeps what it says (the thread's step; tests call it).
  absl::Status SampleOnce();

 private:
  void Loop();

  const std::string nvidia_smi_;
  const std::map<std::string, int> index_by_uuid_;
  const absl::Duration interval_;
  AgentMetrics* const metrics_;
  const Clock& clock_;
  Waiter waiter_{clock_};  // the pause between runs; the destructor wakes it
  std::thread thread_;
  mutable absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool failing_ ABSL_GUARDED_BY(mu_) = false;  // the last run failed (logged once per streak)
  std::map<std::string, GpuSample> latest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_GPU_SAMPLER_H_
