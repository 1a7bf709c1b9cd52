// The streaming answers of JobService, apart from its unary handlers (job_service.cc):
// WatchJob (a job's committed changes), StreamLogs and WatchMetrics (an attempt's stored
// streams, followed live into the next attempts), and the metrics reading GetMetrics
// shares with WatchMetrics. JobServiceImpl checks the caller first; each Start function
// reads what is stored and then runs on gRPC's and the JobEventHub's threads until the
// stream ends.
#ifndef DROVER_SERVER_JOB_STREAMS_H_
#define DROVER_SERVER_JOB_STREAMS_H_

#include <grpcpp/support/server_callback.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "drover/v1/job_service.pb.h"
#include "server/authz.h"
#include "server/job_events.h"
#include "storage/log_store.h"
#include "storage/store.h"

namespace drover::server {

// UNAVAILABLE: what a call droverd no longer takes (it is stopping) is answered.
const absl::Status& ShuttingDown();

// Streams job `job_id`: its current state, then every committed change, until it is
// terminal.
grpc::ServerWriteReactor<v1::WatchJobResponse>* StartWatchJob(storage::Store& store,
                                                              JobEventHub& events,
                                                              std::string job_id,
                                                              Caller caller);
// Streams the stored output `request` selects, following it live with `follow`.
grpc::ServerWriteReactor<v1::StreamLogsResponse>* StartStreamLogs(
    storage::Store& store, storage::LogStore& logs, JobEventHub& events,
    const v1::StreamLogsRequest& request, Caller caller);
// Streams the metrics `request` selects, in pieces of about 1 MiB, live with `follow`.
grpc::ServerWriteReactor<v1::GetMetricsResponse>* StartWatchMetrics(
    storage::Store& store, storage::LogStore& logs, JobEventHub& events,
    const v1::GetMetricsRequest& request, Caller caller);

class MetricsCollector;

// Where a page of GetMetrics ended: the streams of attempt `epoch` before (`rank`,
// `stream`) in (rank, stream) order are read, that one up to `offset`. Its token is opaque
// to clients.
struct MetricsCursor {
  int64_t epoch = 0;
  int32_t rank = 0;
  int stream = 0;
  int64_t offset = 0;
};
std::string EncodeMetricsCursor(const MetricsCursor& cursor);
// INVALID_ARGUMENT naming `page_token` when `token` is not one EncodeMetricsCursor made.
absl::StatusOr<MetricsCursor> DecodeMetricsCursor(absl::string_view token);

// Reads the metrics streams of attempt `epoch` of a job from `logs` into `collector`, each
// from its offset in `read` (updated; whole lines only, unless the job `ended`), about
// `max_bytes` in all (-1: everything stored), starting at `from` when given (streams before
// it are skipped). Returns where it stopped when `max_bytes` ran out before the end;
// RESOURCE_EXHAUSTED when droverd is short of file descriptors (LogStore::Read).
absl::StatusOr<std::optional<MetricsCursor>> ReadMetrics(
    storage::LogStore& logs, const std::string& job_id, int64_t epoch, bool ended,
    int64_t max_bytes, MetricsCollector* collector,
    std::map<std::pair<int32_t, int>, int64_t>* read, const MetricsCursor* from = nullptr);

}  // namespace drover::server

#endif  // DROVER_SERVER_JOB_STREAMS_H_
