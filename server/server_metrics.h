// ServerMetrics: droverd's own metrics (Prometheus, served at --metrics-listen /metrics):
// jobs and nodes by state, submits, placements, finished jobs, RPCs with their latency, log
// and metric bytes ingested, writes the state disk refused, RPCs in flight, the pause of
// node-loss handling. Owned by Droverd; the families are thread-safe, so every component
// updates them from its own thread.
#ifndef DROVER_SERVER_SERVER_METRICS_H_
#define DROVER_SERVER_SERVER_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <map>
#include <memory>

#include "common/metrics.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/node.pb.h"

namespace drover::server {

class ServerMetrics {
 public:
  explicit ServerMetrics(MetricsRegistry& registry);

  // Jobs not yet ended, by state, and nodes by state: set by the core from its own view.
  void SetJobStates(const std::map<v1::JobStatus::State, int>& counts);
  void SetNodeStates(const std::map<v1::Node::State, int>& counts);

  CounterFamily& jobs_submitted;   // drover_jobs_submitted_total
  CounterFamily& jobs_finished;    // drover_jobs_finished_total{state}
  CounterFamily& attempts_placed;  // drover_attempts_placed_total
  CounterFamily& ingested_bytes;   // drover_ingested_bytes_total{stream}
  CounterFamily& dropped_bytes;    // drover_log_bytes_dropped_total{stream}: past a cap
  CounterFamily& rpcs;             // drover_rpcs_total{method,code}
  HistogramFamily& rpc_seconds;    // drover_rpc_duration_seconds{method}
  CounterFamily& state_write_errors;     // drover_state_write_errors_total{store,kind}
  Gauge& rpcs_in_flight;                 // drover_rpcs_in_flight: calls not yet done
  GaugeFamily& node_loss_paused;         // drover_node_loss_paused: 1 while paused (mass loss)
  GaugeFamily& nodes_waiting_for_loss;  // drover_nodes_waiting_for_loss
  CounterFamily& retention_removed_bytes;  // drover_retention_removed_bytes_total{kind}
  GaugeFamily& blob_bytes;                 // drover_blob_bytes: kept at the last pass
  CounterFamily& blob_quota_refusals;      // drover_blob_quota_refusals_total

 private:
  GaugeFamily& jobs_;   // drover_jobs{state}
  GaugeFamily& nodes_;  // drover_nodes{state}
};

// Counts every RPC droverd serves, by method and status code, and its duration (for
// streams: how long the stream lasted). Give it to the ServerBuilder.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetricsInterceptors(
    ServerMetrics* metrics);

}  // namespace drover::server

#endif  // DROVER_SERVER_SERVER_METRICS_H_
