// SystemSampler: one attempt's system metrics on this node (SYSTEM_METRICS): every interval
// a reading of the container's CPU and memory, and of the GPUs it holds, becomes JSON lines
// `{"n":<name>,"s":<sample>,"t":<unix seconds>,"v":<value>}` appended to the node's system
// metrics file in the job's logs folder (LogShipper::FileName), which the log shipper sends.
// CPU use is a rate: it comes from the second reading on. docs/metrics.md lists the series.
//
// The rules (when a reading is due, what it says) are pure and take the time from the
// caller, the agent's Clock (wall time: droverd gets real timestamps). Only on the
// attempt's thread.
#ifndef DROVER_AGENT_SYSTEM_SAMPLER_H_
#define DROVER_AGENT_SYSTEM_SAMPLER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/gpu_sampler.h"
#include "agent/runtime/container_runtime.h"
#include "drover/v1/agent.pb.h"

namespace drover::agent {

class SystemSampler {
 public:
  explicit SystemSampler(absl::Duration interval) : interval_(interval) {}

  // Whether a reading is due at `now`: the first at once, then one per interval from the
  // last one taken or missed (a clock going back waits until it has caught up).
  bool Due(absl::Time now) const { return now - last_ >= interval_; }
  // When the next reading is due (InfinitePast before the first).
  absl::Time NextDue() const { return last_ + interval_; }
  // A reading taken at `now`: `stats` of the container, and for each GPU the attempt holds
  // (numbered as CUDA numbers them in the container) its last reading, if any. Returns the
  // lines to append; counts the sample.
  std::string Take(absl::Time now, const ContainerStats& stats,
                   const std::vector<std::optional<GpuSample>>& gpus);
  // No reading could be taken at `now` (the container ended meanwhile, or has no cgroup to
  // read): the next is tried an interval later.
  void Missed(absl::Time now) { last_ = now; }
  // The last reading, of a container whose processes ended: `usage` (ContainerExit::usage,
  // read at `now`) as the attempt's ENDED report carries it, its CPU rate from the previous
  // reading. nullopt when `usage` knows neither CPU time nor memory peak.
  std::optional<v1::AttemptUsage> End(absl::Time now, const ContainerStats& usage) const;

  int64_t samples() const { return samples_; }

 private:
  const absl::Duration interval_;
  int64_t samples_ = 0;
  int64_t last_cpu_ns_ = -1;  // of the previous reading; -1: none yet
  absl::Time last_ = absl::InfinitePast();
};

// Appends `lines` to the file `path` below the job folder `job_dir` in one write (the
// shipper never sees half a sample), creating it; never through a link or fifo the job put
// in its place (that is logged, and the lines dropped).
void AppendToJobFile(const std::string& job_dir, const std::string& path,
                     const std::string& lines);

}  // namespace drover::agent

#endif  // DROVER_AGENT_SYSTEM_SAMPLER_H_
