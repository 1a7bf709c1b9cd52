// JobClient: the CLI's view of droverd's JobService. The commands talk to this interface so
// that tests can run them against a fake; GrpcJobClient (grpc_job_client.h) is the real one.
// One client per command invocation, used from the main thread only.
#ifndef DROVER_CLI_JOB_CLIENT_H_
#define DROVER_CLI_JOB_CLIENT_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/job_service.pb.h"

namespace drover::cli {

// Where and how to reach droverd.
struct ConnectOptions {
  // "HOST:PORT" or a gRPC target such as "unix:/run/drover.sock".
  std::string address;
  // Deadline of each unary call. Streams (WatchJob) have none.
  absl::Duration timeout = absl::Seconds(30);
};

// Every method returns the server's status with its code unchanged and a message fit to
// print on one line: UNAVAILABLE or DEADLINE_EXCEEDED when droverd cannot be reached (the
// message names the address and the fix), otherwise the code and message droverd sent.
class JobClient {
 public:
  virtual ~JobClient() = default;

  virtual absl::StatusOr<v1::SubmitJobResponse> SubmitJob(const v1::SubmitJobRequest& request) = 0;
  virtual absl::StatusOr<v1::Job> GetJob(const v1::GetJobRequest& request) = 0;
  virtual absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request) = 0;
  virtual absl::StatusOr<v1::Job> CancelJob(const v1::CancelJobRequest& request) = 0;
  // Calls `on_event` for every message of the stream, in order, until the stream ends, and
  // returns the stream's final status (OK when droverd ended it normally).
  virtual absl::Status WatchJob(const v1::WatchJobRequest& request,
                                const std::function<void(const v1::WatchJobResponse&)>& on_event) = 0;
};

}  // namespace drover::cli

#endif  // DROVER_CLI_JOB_CLIENT_H_
