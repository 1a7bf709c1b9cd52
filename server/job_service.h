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
#include "server/job_streams.h"
#include "storage/blob_store.h"
#include "storage/store.h"

namespace drover::server {

// What a submit checks of `spec` against the cluster as it is now: its compute target
// exists, its image is built in or imported, its datastores are usable, and its code
// snapshot is the caller's (an admin's any) and on droverd (it then counts as used, so
// that retention keeps it until the job is stored). INVALID_ARGUMENT or
// FAILED_PRECONDITION saying what to do, naming the field under `field`: "spec" for a
// job, "sweep.trial_template" for a sweep's trials.
absl::Status CheckSpecAgainstCluster(Core& core, storage::Store& store,
                                     const storage::BlobStore& blobs, const Caller& caller,
                                     const v1::JobSpec& spec, absl::string_view field);

class JobServiceImpl final : public v1::JobService::CallbackService {
 public:
  // All references must outlive the service.
  // Every call is checked with `auth` first (authz.h has the rules).
  // A submit with a code snapshot marks it used in `blobs` (retention keeps it).
  JobServiceImpl(storage::Store& store, storage::LogStore& logs, const storage::BlobStore& blobs,
                 Core& core, CoreLoop& loop, JobEventHub& events, const Clock& clock,
                 Authenticator& auth);

  // From now on, SubmitJob, CancelJob and UpdateJobTags answer UNAVAILABLE (droverd is stopping); calls
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
  grpc::ServerUnaryReactor* UpdateJobTags(grpc::CallbackServerContext* context,
                                          const v1::UpdateJobTagsRequest* request,
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
  // The caller of a call that changes job `job_id` (CancelJob, UpdateJobTags), once it may:
  // authenticated for `method`, droverd still accepting calls, a well-formed id, and the
  // job the caller's own or the caller an admin (the same answer whoever else's it is).
  absl::StatusOr<Caller> CallerChangingJob(const grpc::CallbackServerContext& context,
                                           absl::string_view method, const std::string& job_id);

  storage::Store& store_;
  storage::LogStore& logs_;
  const storage::BlobStore& blobs_;
  Core& core_;
  CoreLoop& loop_;
  JobEventHub& events_;
  const Clock& clock_;
  Authenticator& auth_;
  // SubmitJob of a job array (`array` validated, its status set): its tasks stored in one
  // write, the answer the first task once all are durable and known to the core.
  // CancelJob of a job array's id: every unfinished task canceled.
  void CancelArray(const grpc::CallbackServerContext& context, const v1::CancelJobRequest& request,
                   grpc::ServerUnaryReactor* reactor, v1::Job* response);
  void SubmitArray(v1::Job array, const Caller& caller, grpc::ServerUnaryReactor* reactor,
                   v1::SubmitJobResponse* response);
  std::atomic<bool> accepting_{true};
};

}  // namespace drover::server

#endif  // DROVER_SERVER_JOB_SERVICE_H_
