// JobServiceImpl: the gRPC JobService (callback API). Handlers never block on the core:
// writes go to the Store and are acknowledged from its commit callback, changes to the core
// are posted to the CoreLoop, reads go straight to the Store's read connections.
// Constructed and destroyed by Droverd; the handlers run on gRPC's threads.
#ifndef DROVER_SERVER_JOB_SERVICE_H_
#define DROVER_SERVER_JOB_SERVICE_H_

#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "server/auth.h"
#include "server/core.h"
#include "server/core_loop.h"
#include "server/job_events.h"
#include "storage/blob_store.h"
#include "storage/store.h"

namespace drover::server {

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

class JobServiceImpl final : public v1::JobService::CallbackService {
 public:
  // All references must outlive the service.
  // Every call is checked with `auth` first (authz.h has the rules).
  // A submit with a code snapshot marks it used in `blobs` (retention keeps it).
  JobServiceImpl(storage::Store& store, storage::LogStore& logs, const storage::BlobStore& blobs,
                 Core& core, CoreLoop& loop, JobEventHub& events, const Clock& clock,
                 Authenticator& auth);

  // From now on, SubmitJob and CancelJob answer UNAVAILABLE (droverd is stopping); calls
  // already accepted complete normally.
  void StopAccepting() { accepting_.store(false); }

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* context,
                                      const v1::SubmitJobRequest* request,
                                      v1::SubmitJobResponse* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request, v1::Job* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* context,
                                      const v1::CancelJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerWriteReactor<v1::WatchJobResponse>* WatchJob(
      grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) override;
  grpc::ServerWriteReactor<v1::StreamLogsResponse>* StreamLogs(
      grpc::CallbackServerContext* context, const v1::StreamLogsRequest* request) override;
  grpc::ServerUnaryReactor* GetMetrics(grpc::CallbackServerContext* context,
                                       const v1::GetMetricsRequest* request,
                                       v1::GetMetricsResponse* response) override;
  grpc::ServerWriteReactor<v1::GetMetricsResponse>* WatchMetrics(
      grpc::CallbackServerContext* context, const v1::GetMetricsRequest* request) override;

 private:
  storage::Store& store_;
  storage::LogStore& logs_;
  const storage::BlobStore& blobs_;
  Core& core_;
  CoreLoop& loop_;
  JobEventHub& events_;
  const Clock& clock_;
  Authenticator& auth_;
  std::atomic<bool> accepting_{true};
};

}  // namespace drover::server

#endif  // DROVER_SERVER_JOB_SERVICE_H_
