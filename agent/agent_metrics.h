// AgentMetrics: drover-agent's own metrics (Prometheus, served at --metrics-listen
// /metrics): containers running, attempts by how they ended, preparation durations, the
// connection to droverd, the GPUs' use. Owned by main(); the families are thread-safe, so
// attempts update them from their own threads.
#ifndef DROVER_AGENT_AGENT_METRICS_H_
#define DROVER_AGENT_AGENT_METRICS_H_

#include "common/metrics.h"

namespace drover::agent {

struct AgentMetrics {
  explicit AgentMetrics(MetricsRegistry& registry)
      : containers_running(registry.AddGauge("drover_agent_containers_running",
                                             "Job containers whose processes run on this node.")),
        attempts_ended(registry.AddCounter(
            "drover_agent_attempts_ended_total",
            "Attempts this node ran to their end, by cause (none: every process exited 0).",
            {"cause"})),
        preparation_seconds(registry.AddHistogram(
            "drover_agent_preparation_seconds",
            "How long preparing an attempt took (job folder, snapshot, image, data), by result.",
            LatencyBuckets(), {"result"})),
        connected(registry.AddGauge("drover_agent_connected",
                                    "1 while the stream to droverd is up, else 0.")),
        log_bytes_unacknowledged(registry.AddGauge(
            "drover_agent_log_bytes_unacknowledged",
            "Bytes of jobs' output sent to droverd that it has not acknowledged yet.")),
        gpu_utilization(registry.AddGauge(
            "drover_agent_gpu_utilization_ratio",
            "Share of the last sample period a kernel ran on the GPU (nvidia-smi utilization.gpu).",
            {"gpu", "uuid"})),
        gpu_memory_used_bytes(registry.AddGauge("drover_agent_gpu_memory_used_bytes",
                                                "GPU memory in use (nvidia-smi memory.used).",
                                                {"gpu", "uuid"})) {}

  GaugeFamily& containers_running;
  CounterFamily& attempts_ended;
  HistogramFamily& preparation_seconds;
  GaugeFamily& connected;
  GaugeFamily& log_bytes_unacknowledged;
  // Sampled every --metrics-interval while the node has GPUs and nvidia-smi (GpuSampler).
  GaugeFamily& gpu_utilization;
  GaugeFamily& gpu_memory_used_bytes;
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_AGENT_METRICS_H_
