// DroverClient: the CLI's view of droverd's services (JobService, AdminService,
// BlobService). The commands talk to this interface so that tests can run them against a
// fake; GrpcDroverClient (grpc_drover_client.h) is the real one. One client per command
// invocation, used from the main thread only.
#ifndef DROVER_CLI_DROVER_CLIENT_H_
#define DROVER_CLI_DROVER_CLIENT_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "drover/v1/admin_service.pb.h"
#include "drover/v1/blob.pb.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/job_service.pb.h"
#include "drover/v1/node.pb.h"
#include "drover/v1/node_identity.pb.h"
#include "drover/v1/sweep_service.pb.h"

namespace drover::cli {

// Where and how to reach droverd.
struct ConnectOptions {
  // "HOST:PORT" or a gRPC target such as "unix:/run/drover.sock".
  std::string address;
  // droverd's CA certificate (PEM file) its TLS certificate is checked against, and where
  // the path came from ("--ca", "DROVER_CA" or "default"), for the error when it is
  // missing.
  std::string ca_file;
  std::string ca_source = "--ca";
  // The user token every call carries (`authorization: Bearer TOKEN`); empty: none. Over
  // the local admin socket ("unix:PATH") no token and no CA are needed.
  std::string token;
  // Deadline of each unary call. Streams (WatchJob, StreamLogs, uploads and downloads)
  // have none.
  absl::Duration timeout = absl::Seconds(30);
  // Unary calls go through the connection keeper (cli/keeper.h), started on first use,
  // unless DROVER_KEEPER=off; any trouble with it and the call goes direct.
  bool use_keeper = false;
  // $XDG_RUNTIME_DIR (empty: unset): where the keeper's socket folder is.
  std::string runtime_dir;
  // How long a keeper started now waits for calls before it exits ($DROVER_KEEPER_IDLE).
  absl::Duration keeper_idle = absl::Minutes(5);
  // Says why the keeper is not used when that needs the user's attention (an unsafe
  // folder); may be empty.
  std::function<void(const std::string&)> warn;
};

// Every method returns the server's status with its code unchanged and a message fit to
// print on one line: UNAVAILABLE or DEADLINE_EXCEEDED when droverd cannot be reached (the
// message names the address and the fix), otherwise the code and message droverd sent.
class DroverClient {
 public:
  virtual ~DroverClient() = default;

  // Waits up to `limit` for the connection to droverd to be up (again) and returns how long
  // it waited. The CLI spends its pauses between retries here: gRPC moves a connection
  // attempt (TCP, then a TLS handshake of several round trips) forward only while a call or
  // a wait drives the channel, so a plain sleep leaves a reconnection stalled. Fakes return
  // at once.
  virtual absl::Duration AwaitConnection(absl::Duration limit) {
    (void)limit;
    return absl::ZeroDuration();
  }

  // ---- JobService
  virtual absl::StatusOr<v1::SubmitJobResponse> SubmitJob(const v1::SubmitJobRequest& request) = 0;
  virtual absl::StatusOr<v1::Job> GetJob(const v1::GetJobRequest& request) = 0;
  virtual absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request) = 0;
  virtual absl::StatusOr<v1::Job> CancelJob(const v1::CancelJobRequest& request) = 0;
  virtual absl::StatusOr<v1::Job> UpdateJobTags(const v1::UpdateJobTagsRequest& request) = 0;
  // Calls `on_event` for every message of the stream, in order, until the stream ends, and
  // returns the stream's final status (OK when droverd ended it normally).
  virtual absl::Status WatchJob(const v1::WatchJobRequest& request,
                                const std::function<void(const v1::WatchJobResponse&)>& on_event) = 0;
  // Calls `on_message` for every message of the log stream, in order, and returns the
  // stream's final status (OK when droverd ended it normally).
  virtual absl::Status StreamLogs(
      const v1::StreamLogsRequest& request,
      const std::function<void(const v1::StreamLogsResponse&)>& on_message) = 0;

  // Calls `on_message` for every message of the metrics stream (WatchMetrics), in order,
  // and returns the stream's final status.
  virtual absl::Status WatchMetrics(
      const v1::GetMetricsRequest& request,
      const std::function<void(const v1::GetMetricsResponse&)>& on_message) = 0;

  // ---- SweepService (not pure: fakes of tests that run no sweep need not have them)
  virtual absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(
      const v1::SubmitSweepRequest& request) {
    (void)request;
    return absl::UnimplementedError("SubmitSweep");
  }
  virtual absl::StatusOr<v1::Sweep> GetSweep(const v1::GetSweepRequest& request) {
    (void)request;
    return absl::UnimplementedError("GetSweep");
  }
  virtual absl::StatusOr<v1::ListSweepsResponse> ListSweeps(
      const v1::ListSweepsRequest& request) {
    (void)request;
    return absl::UnimplementedError("ListSweeps");
  }
  virtual absl::StatusOr<v1::Sweep> CancelSweep(const v1::CancelSweepRequest& request) {
    (void)request;
    return absl::UnimplementedError("CancelSweep");
  }

  // ---- AdminService
  virtual absl::StatusOr<v1::ListNodesResponse> ListNodes(const v1::ListNodesRequest& request) = 0;
  virtual absl::StatusOr<v1::Node> CordonNode(const v1::NodeRequest& request) = 0;
  virtual absl::StatusOr<v1::Node> UncordonNode(const v1::NodeRequest& request) = 0;
  virtual absl::StatusOr<v1::Node> DrainNode(const v1::NodeRequest& request) = 0;
  virtual absl::StatusOr<v1::Node> DeclareNodeLost(const v1::NodeRequest& request) = 0;
  virtual absl::StatusOr<v1::ComputeTarget> PutComputeTarget(
      const v1::PutComputeTargetRequest& request) = 0;
  virtual absl::StatusOr<v1::ListComputeTargetsResponse> ListComputeTargets(
      const v1::ListComputeTargetsRequest& request) = 0;
  virtual absl::StatusOr<v1::DeleteComputeTargetResponse> DeleteComputeTarget(
      const v1::DeleteComputeTargetRequest& request) = 0;
  virtual absl::StatusOr<v1::Image> PutImage(const v1::PutImageRequest& request) = 0;
  virtual absl::StatusOr<v1::ListImagesResponse> ListImages(
      const v1::ListImagesRequest& request) = 0;
  virtual absl::StatusOr<v1::DeleteImageResponse> DeleteImage(
      const v1::DeleteImageRequest& request) = 0;
  virtual absl::StatusOr<v1::Datastore> PutDatastore(const v1::PutDatastoreRequest& request) = 0;
  virtual absl::StatusOr<v1::ListDatastoresResponse> ListDatastores(
      const v1::ListDatastoresRequest& request) = 0;
  virtual absl::StatusOr<v1::DeleteDatastoreResponse> DeleteDatastore(
      const v1::DeleteDatastoreRequest& request) = 0;
  virtual absl::StatusOr<v1::UserToken> CreateUser(const v1::CreateUserRequest& request) = 0;
  virtual absl::StatusOr<v1::ListUsersResponse> ListUsers(const v1::ListUsersRequest& request) = 0;
  virtual absl::StatusOr<v1::User> RevokeUser(const v1::RevokeUserRequest& request) = 0;
  virtual absl::StatusOr<v1::UserToken> IssueUserToken(
      const v1::IssueUserTokenRequest& request) = 0;
  virtual absl::StatusOr<v1::User> SetUserBlobQuota(const v1::SetUserBlobQuotaRequest& request) = 0;
  virtual absl::StatusOr<v1::User> WhoAmI(const v1::WhoAmIRequest& request) = 0;
  virtual absl::StatusOr<v1::ListAuditRecordsResponse> ListAuditRecords(
      const v1::ListAuditRecordsRequest& request) = 0;
  virtual absl::StatusOr<v1::CollectGarbageResponse> CollectGarbage(
      const v1::CollectGarbageRequest& request) = 0;

  // ---- NodeIdentityService (administrators' part)
  virtual absl::StatusOr<v1::CreateJoinTokenResponse> CreateJoinToken(
      const v1::CreateJoinTokenRequest& request) = 0;
  virtual absl::StatusOr<v1::ListJoinTokensResponse> ListJoinTokens(
      const v1::ListJoinTokensRequest& request) = 0;
  virtual absl::StatusOr<v1::RevokeJoinTokenResponse> RevokeJoinToken(
      const v1::RevokeJoinTokenRequest& request) = 0;
  virtual absl::StatusOr<v1::RevokeNodeCertificatesResponse> RevokeNodeCertificates(
      const v1::RevokeNodeCertificatesRequest& request) = 0;

  // ---- BlobService
  virtual absl::StatusOr<v1::StatBlobResponse> StatBlob(const v1::StatBlobRequest& request) = 0;
  // Returns the next bytes of an upload (at most 1 MiB), an empty string at the end, or an
  // error that abandons the upload.
  using ChunkSource = std::function<absl::StatusOr<std::string>()>;
  // Uploads one blob: `header`, then every chunk `next_chunk` returns until it returns an
  // empty string. An error from `next_chunk` cancels the call, so that droverd keeps
  // nothing, and is returned unchanged.
  virtual absl::StatusOr<v1::UploadBlobResponse> UploadBlob(
      const v1::UploadBlobRequest::Header& header, const ChunkSource& next_chunk) = 0;
  // Calls `on_chunk` for every message of the download, in order. An error from `on_chunk`
  // cancels the call and is returned unchanged; otherwise returns the stream's final status.
  virtual absl::Status DownloadBlob(
      const v1::DownloadBlobRequest& request,
      const std::function<absl::Status(const v1::DownloadBlobResponse&)>& on_chunk) = 0;
};

}  // namespace drover::cli

#endif  // DROVER_CLI_DROVER_CLIENT_H_
