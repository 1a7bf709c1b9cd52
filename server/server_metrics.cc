#include "server/server_metrics.h"

#include <chrono>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "scheduler/job_state.h"

namespace drover::server {
namespace {

class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(ServerMetrics* metrics, grpc::experimental::ServerRpcInfo* info)
      : metrics_(metrics), method_(ShortName(info->method())),
        start_(std::chrono::steady_clock::now()) {
    metrics_->rpcs_in_flight.Add(1);
  }
  // gRPC destroys the interceptor with the call, once it is done.
  ~RpcMetricsInterceptor() override { metrics_->rpcs_in_flight.Add(-1); }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      metrics_->rpcs.With({method_, CodeName(status.error_code())}).Increment();
      metrics_->rpc_seconds.With({method_}).Observe(seconds);
    }
    methods->Proceed();
  }

 private:
  // "/drover.v1.JobService/SubmitJob" -> "JobService/SubmitJob".
  static std::string ShortName(const char* method) {
    std::string name = method == nullptr ? "" : method;
    size_t dot = name.rfind('.', name.find('/', 1));
    return dot == std::string::npos ? name : name.substr(dot + 1);
  }
  static std::string CodeName(grpc::StatusCode code) {
    static const char* const kNames[] = {
        "OK",        "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED", "NOT_FOUND",  "ALREADY_EXISTS",    "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
        "UNIMPLEMENTED", "INTERNAL",       "UNAVAILABLE",       "DATA_LOSS",
        "UNAUTHENTICATED"};
    int i = static_cast<int>(code);
    return i >= 0 && i < 17 ? kNames[i] : absl::StrCat(i);
  }

  ServerMetrics* const metrics_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
};

class RpcMetricsFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsFactory(ServerMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(metrics_, info);
  }

 private:
  ServerMetrics* const metrics_;
};

}  // namespace

ServerMetrics::ServerMetrics(MetricsRegistry& registry)
    : jobs_submitted(registry.AddCounter("drover_jobs_submitted_total",
                                         "Jobs accepted by SubmitJob (idempotent repeats not counted).")),
      jobs_finished(registry.AddCounter("drover_jobs_finished_total",
                                        "Jobs that reached a terminal state, by that state.",
                                        {"state"})),
      attempts_placed(registry.AddCounter("drover_attempts_placed_total",
                                          "Attempts placed on nodes (first runs and retries).")),
      ingested_bytes(registry.AddCounter(
          "drover_ingested_bytes_total",
          "Bytes of process output and metric records received from agents, by stream.",
          {"stream"})),
      dropped_bytes(registry.AddCounter(
          "drover_log_bytes_dropped_total",
          "Bytes of process output and metric records received from agents and not stored "
          "because their stream had reached its cap (--max-log-bytes, --max-metric-records).",
          {"stream"})),
      rpcs(registry.AddCounter("drover_rpcs_total",
                               "RPCs served, by method and status code.", {"method", "code"})),
      rpc_seconds(registry.AddHistogram(
          "drover_rpc_duration_seconds",
          "How long RPCs took, by method (streams: how long they lasted).", LatencyBuckets(),
          {"method"})),
      state_write_errors(registry.AddCounter(
          "drover_state_write_errors_total",
          "Writes to the state folder that the disk refused, by store (database, logs, blobs) "
          "and kind (disk_full, io_error).",
          {"store", "kind"})),
      rpcs_in_flight(registry
                         .AddGauge("drover_rpcs_in_flight",
                                   "RPCs being served now (streams count while they are open).")
                         .With({})),
      node_loss_paused(registry.AddGauge(
          "drover_node_loss_paused",
          "1 while droverd pauses the handling of lost nodes because too many are silent at "
          "once (--node-loss-pause-fraction); their attempts are kept meanwhile.")),
      nodes_waiting_for_loss(registry.AddGauge(
          "drover_nodes_waiting_for_loss",
          "DOWN nodes whose attempts wait for the pause of node-loss handling to end.")),
      retention_removed_bytes(registry.AddCounter(
          "drover_retention_removed_bytes_total",
          "Bytes retention removed (docs/operations.md#retention), by kind: blobs (code "
          "snapshots, outputs, images nothing refers to) and logs.",
          {"kind"})),
      blob_bytes(registry.AddGauge(
          "drover_blob_bytes", "Bytes in droverd's blob store, as the last retention pass found.")),
      blob_quota_refusals(registry.AddCounter(
          "drover_blob_quota_refusals_total",
          "Uploads refused because they would pass their user's blob quota (--blob-quota).")),
      jobs_(registry.AddGauge("drover_jobs", "Jobs not yet ended, by state.", {"state"})),
      nodes_(registry.AddGauge("drover_nodes", "Registered nodes, by state.", {"state"})) {}

void ServerMetrics::SetJobStates(const std::map<v1::JobStatus::State, int>& counts) {
  for (int s = v1::JobStatus::State_MIN; s <= v1::JobStatus::State_MAX; ++s) {
    auto state = static_cast<v1::JobStatus::State>(s);
    if (!v1::JobStatus::State_IsValid(s) || state == v1::JobStatus::STATE_UNSPECIFIED ||
        scheduler::IsTerminal(state)) {
      continue;
    }
    auto it = counts.find(state);
    jobs_.With({v1::JobStatus::State_Name(state)}).Set(it == counts.end() ? 0 : it->second);
  }
}

void ServerMetrics::SetNodeStates(const std::map<v1::Node::State, int>& counts) {
  for (int s = v1::Node::State_MIN; s <= v1::Node::State_MAX; ++s) {
    auto state = static_cast<v1::Node::State>(s);
    if (!v1::Node::State_IsValid(s) || state == v1::Node::STATE_UNSPECIFIED) continue;
    auto it = counts.find(state);
    nodes_.With({v1::Node::State_Name(state)}).Set(it == counts.end() ? 0 : it->second);
  }
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcMetricsInterceptors(
    ServerMetrics* metrics) {
  return std::make_unique<RpcMetricsFactory>(metrics);
}

}  // namespace drover::server
