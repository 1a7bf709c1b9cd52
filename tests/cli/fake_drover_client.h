// FakeDroverClient: an in-memory droverd for the CLI's unit tests. Records every request,
// hands out scripted errors before answering, numbers jobs j-1, j-2, ... and honours
// idempotency keys, lists newest first with page tokens, cancels like droverd (QUEUED ->
// CANCELED), streams scripted watch events and log streams, keeps nodes, compute targets,
// images (registered only for uploaded blobs) and datastores (ALREADY_EXISTS unless
// replace, `secret_keys` values shown as "***") like AdminService, and blobs by digest
// (uploads checked against their header, downloads from an offset, optionally broken once).
// Single-threaded.
#ifndef DROVER_TESTS_CLI_FAKE_DROVER_CLIENT_H_
#define DROVER_TESTS_CLI_FAKE_DROVER_CLIENT_H_

#include <algorithm>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/drover_client.h"

namespace drover::cli {

// What the fake knows; outlives the clients the CLI makes from it.
struct FakeServer {
  std::vector<v1::Job> jobs;  // oldest first
  // Sweeps by id; the submits and cancels received.
  std::map<std::string, v1::Sweep> sweeps;
  std::vector<v1::SubmitSweepRequest> sweep_submits;
  std::vector<v1::CancelSweepRequest> sweep_cancels;
  std::map<std::string, std::string> keys;  // idempotency key -> job id
  // Errors returned, one per call, before calls are answered normally.
  std::deque<absl::Status> errors;
  // How long AwaitConnection says it waited for the connection (at most its limit), and the
  // limits it was called with.
  absl::Duration connection_wait;
  std::vector<absl::Duration> connection_limits;
  // Streams WatchJob serves, one per call: events, then the final status.
  struct Stream {
    std::vector<v1::Job> events;
    absl::Status end;
  };
  std::deque<Stream> streams;

  // Log streams StreamLogs serves, one per call: messages, then the final status.
  struct LogStream {
    std::vector<v1::StreamLogsResponse> messages;
    absl::Status end;
  };
  std::deque<LogStream> log_streams;
  // Metrics streams WatchMetrics serves, one per call, like log_streams.
  struct MetricsStream {
    std::vector<v1::GetMetricsResponse> messages;
    absl::Status end;
  };
  std::deque<MetricsStream> metrics_streams;
  std::vector<v1::Node> nodes;
  v1::NodeLossStatus node_loss;  // ListNodes' node_loss
  std::vector<v1::ComputeTarget> targets;
  std::vector<v1::Image> images;
  std::vector<v1::Datastore> datastores;  // as registered, credentials included
  // Join tokens made (newest last), with the token itself; revoked node certificates.
  std::vector<std::pair<std::string, v1::JoinTokenInfo>> join_tokens;
  std::vector<std::string> revoked_nodes;
  std::map<std::string, std::string> blobs;  // digest -> bytes
  // When >= 0, the next download ends UNAVAILABLE once it sent this many bytes.
  int64_t break_download_after = -1;

  std::vector<v1::SubmitJobRequest> submits;
  std::vector<v1::GetJobRequest> gets;
  std::vector<v1::ListJobsRequest> lists;
  std::vector<v1::CancelJobRequest> cancels;
  std::vector<v1::UpdateJobTagsRequest> tag_updates;
  std::vector<v1::WatchJobRequest> watches;
  std::vector<ConnectOptions> connects;
  std::vector<v1::StreamLogsRequest> log_requests;
  std::vector<v1::GetMetricsRequest> metrics_requests;
  std::vector<std::pair<std::string, v1::NodeRequest>> node_requests;  // action, request
  std::vector<v1::PutComputeTargetRequest> puts;
  std::vector<v1::PutImageRequest> image_puts;
  std::vector<v1::PutDatastoreRequest> datastore_puts;
  std::vector<v1::StatBlobRequest> stats;
  std::vector<v1::User> users;
  std::vector<v1::CreateUserRequest> user_creates;
  std::vector<std::string> user_revokes;
  std::vector<std::string> token_issues;
  v1::User caller;  // what WhoAmI answers
  std::vector<v1::AuditRecord> audit;                     // what ListAuditRecords pages over
  std::vector<v1::ListAuditRecordsRequest> audit_requests;  // as received
  v1::CollectGarbageResponse gc_response;                   // what CollectGarbage answers
  std::vector<v1::CollectGarbageRequest> gc_requests;       // as received
  struct Upload {
    v1::UploadBlobRequest::Header header;
    size_t chunks = 0;
    size_t largest_chunk = 0;
  };
  std::vector<Upload> uploads;
  std::vector<v1::DownloadBlobRequest> downloads;

  v1::ComputeTarget& AddTarget(std::string name) {
    v1::ComputeTarget target;
    target.set_name(std::move(name));
    targets.push_back(target);
    return targets.back();
  }

  v1::Job& Add(v1::JobStatus::State state, std::string name = "") {
    v1::Job job;
    job.set_id(absl::StrCat("j-", jobs.size() + 1));
    job.mutable_spec()->set_name(std::move(name));
    job.mutable_spec()->set_entry_script("train.py");
    job.mutable_status()->set_state(state);
    job.mutable_status()->set_version(1);
    job.mutable_create_time()->set_seconds(1'000'000 + static_cast<int64_t>(jobs.size()));
    jobs.push_back(job);
    return jobs.back();
  }
};

class FakeDroverClient final : public DroverClient {
 public:
  explicit FakeDroverClient(FakeServer* server) : s_(server) {}

  absl::Duration AwaitConnection(absl::Duration limit) override {
    s_->connection_limits.push_back(limit);
    return std::min(limit, s_->connection_wait);
  }

  absl::StatusOr<v1::SubmitJobResponse> SubmitJob(const v1::SubmitJobRequest& request) override {
    s_->submits.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::SubmitJobResponse response;
    const std::string& key = request.spec().idempotency_key();
    if (auto it = s_->keys.find(key); !key.empty() && it != s_->keys.end()) {
      *response.mutable_job() = *Find(it->second);
      response.set_created(false);
      return response;
    }
    v1::Job& job = s_->Add(v1::JobStatus::QUEUED);
    *job.mutable_spec() = request.spec();
    if (!key.empty()) s_->keys[key] = job.id();
    *response.mutable_job() = job;
    response.set_created(true);
    return response;
  }

  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(
      const v1::SubmitSweepRequest& request) override {
    s_->sweep_submits.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::SubmitSweepResponse response;
    v1::Sweep& sweep = s_->sweeps[absl::StrCat("s-", 1000000000000000 + s_->sweeps.size())];
    sweep.set_id(absl::StrCat("s-", 1000000000000000 + s_->sweeps.size() - 1));
    *sweep.mutable_spec() = request.spec();
    sweep.mutable_status()->set_state(v1::SweepStatus::QUEUED);
    *response.mutable_sweep() = sweep;
    response.set_created(true);
    return response;
  }
  absl::StatusOr<v1::Sweep> GetSweep(const v1::GetSweepRequest& request) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    auto it = s_->sweeps.find(request.sweep_id());
    if (it == s_->sweeps.end()) {
      return absl::NotFoundError(absl::StrCat("sweep '", request.sweep_id(), "' does not exist"));
    }
    return it->second;
  }
  absl::StatusOr<v1::ListSweepsResponse> ListSweeps(const v1::ListSweepsRequest& request) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::ListSweepsResponse response;
    for (auto it = s_->sweeps.rbegin(); it != s_->sweeps.rend(); ++it) {
      v1::Sweep* listed = response.add_sweeps();
      *listed = it->second;
      listed->clear_trials();
    }
    return response;
  }
  absl::StatusOr<v1::Sweep> CancelSweep(const v1::CancelSweepRequest& request) override {
    s_->sweep_cancels.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    auto it = s_->sweeps.find(request.sweep_id());
    if (it == s_->sweeps.end()) {
      return absl::NotFoundError(absl::StrCat("sweep '", request.sweep_id(), "' does not exist"));
    }
    it->second.mutable_status()->set_state(v1::SweepStatus::CANCELED);
    return it->second;
  }

  absl::StatusOr<v1::Job> GetJob(const v1::GetJobRequest& request) override {
    s_->gets.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::Job* job = Find(request.job_id());
    if (job == nullptr) return absl::NotFoundError(absl::StrCat("job '", request.job_id(), "' not found"));
    return *job;
  }

  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request) override {
    s_->lists.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    int64_t skip = 0;
    if (!request.page_token().empty() && !absl::SimpleAtoi(request.page_token(), &skip)) {
      return absl::InvalidArgumentError("page_token: not a token");
    }
    v1::ListJobsResponse response;
    int64_t matched = 0;
    for (auto it = s_->jobs.rbegin(); it != s_->jobs.rend(); ++it) {
      bool state_ok = request.states().empty();
      for (int state : request.states()) state_ok |= state == it->status().state();
      if (!state_ok) continue;
      if (!request.experiment().empty() && it->spec().experiment() != request.experiment()) continue;
      if (matched++ < skip) continue;
      if (response.jobs_size() == request.page_size()) {
        response.set_next_page_token(absl::StrCat(skip + request.page_size()));
        break;
      }
      *response.add_jobs() = *it;
    }
    return response;
  }

  absl::StatusOr<v1::Job> UpdateJobTags(const v1::UpdateJobTagsRequest& request) override {
    s_->tag_updates.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::Job* job = Find(request.job_id());
    if (job == nullptr) return absl::NotFoundError(absl::StrCat("job '", request.job_id(), "' not found"));
    auto& tags = *job->mutable_spec()->mutable_tags();
    for (const std::string& key : request.remove()) tags.erase(key);
    for (const auto& [key, value] : request.set()) tags[key] = value;
    return *job;
  }

  absl::StatusOr<v1::Job> CancelJob(const v1::CancelJobRequest& request) override {
    s_->cancels.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::Job* job = Find(request.job_id());
    if (job == nullptr) return absl::NotFoundError(absl::StrCat("job '", request.job_id(), "' not found"));
    switch (job->status().state()) {
      case v1::JobStatus::QUEUED:
        job->mutable_status()->set_state(v1::JobStatus::CANCELED);
        break;
      case v1::JobStatus::RUNNING:
        job->mutable_status()->set_state(v1::JobStatus::CANCEL_REQUESTED);
        break;
      case v1::JobStatus::COMPLETED:
      case v1::JobStatus::FAILED:
        return absl::FailedPreconditionError(absl::StrCat("job '", job->id(), "' already ended"));
      default:
        break;
    }
    return *job;
  }

  absl::Status WatchJob(const v1::WatchJobRequest& request,
                        const std::function<void(const v1::WatchJobResponse&)>& on_event) override {
    s_->watches.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    if (s_->streams.empty()) return absl::NotFoundError(absl::StrCat("job '", request.job_id(), "' not found"));
    FakeServer::Stream stream = s_->streams.front();
    s_->streams.pop_front();
    for (const v1::Job& job : stream.events) {
      v1::WatchJobResponse response;
      *response.mutable_job() = job;
      on_event(response);
    }
    return stream.end;
  }

  absl::Status StreamLogs(
      const v1::StreamLogsRequest& request,
      const std::function<void(const v1::StreamLogsResponse&)>& on_message) override {
    s_->log_requests.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    if (s_->log_streams.empty()) return absl::OkStatus();
    FakeServer::LogStream stream = s_->log_streams.front();
    s_->log_streams.pop_front();
    for (const v1::StreamLogsResponse& message : stream.messages) on_message(message);
    return stream.end;
  }

  absl::Status WatchMetrics(
      const v1::GetMetricsRequest& request,
      const std::function<void(const v1::GetMetricsResponse&)>& on_message) override {
    s_->metrics_requests.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    if (s_->metrics_streams.empty()) return absl::OkStatus();
    FakeServer::MetricsStream stream = s_->metrics_streams.front();
    s_->metrics_streams.pop_front();
    for (const v1::GetMetricsResponse& message : stream.messages) on_message(message);
    return stream.end;
  }

  absl::StatusOr<v1::ListNodesResponse> ListNodes(const v1::ListNodesRequest&) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::ListNodesResponse response;
    for (const v1::Node& node : s_->nodes) *response.add_nodes() = node;
    *response.mutable_node_loss() = s_->node_loss;
    return response;
  }
  absl::StatusOr<v1::Node> CordonNode(const v1::NodeRequest& request) override {
    return ChangeNode("cordon", request, v1::Node::CORDONED);
  }
  absl::StatusOr<v1::Node> UncordonNode(const v1::NodeRequest& request) override {
    return ChangeNode("uncordon", request, v1::Node::READY);
  }
  absl::StatusOr<v1::Node> DrainNode(const v1::NodeRequest& request) override {
    return ChangeNode("drain", request, v1::Node::DRAINING);
  }
  absl::StatusOr<v1::Node> DeclareNodeLost(const v1::NodeRequest& request) override {
    return ChangeNode("lost", request, v1::Node::DOWN);
  }

  absl::StatusOr<v1::ComputeTarget> PutComputeTarget(
      const v1::PutComputeTargetRequest& request) override {
    s_->puts.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    for (v1::ComputeTarget& target : s_->targets) {
      if (target.name() == request.target().name()) {
        target = request.target();
        return target;
      }
    }
    s_->targets.push_back(request.target());
    return request.target();
  }
  absl::StatusOr<v1::ListComputeTargetsResponse> ListComputeTargets(
      const v1::ListComputeTargetsRequest&) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::ListComputeTargetsResponse response;
    for (const v1::ComputeTarget& target : s_->targets) *response.add_targets() = target;
    return response;
  }
  absl::StatusOr<v1::DeleteComputeTargetResponse> DeleteComputeTarget(
      const v1::DeleteComputeTargetRequest& request) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    if (request.name() == "default") {
      return absl::FailedPreconditionError("the default target cannot be deleted");
    }
    for (auto it = s_->targets.begin(); it != s_->targets.end(); ++it) {
      if (it->name() == request.name()) {
        s_->targets.erase(it);
        return v1::DeleteComputeTargetResponse();
      }
    }
    return absl::NotFoundError(absl::StrCat("compute target '", request.name(), "' does not exist"));
  }

  absl::StatusOr<v1::Image> PutImage(const v1::PutImageRequest& request) override {
    s_->image_puts.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    auto blob = s_->blobs.find(request.image().digest());
    if (blob == s_->blobs.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "image.digest: blob ", request.image().digest(), " is not in droverd's blob store"));
    }
    v1::Image image = request.image();
    image.set_size(static_cast<int64_t>(blob->second.size()));
    image.mutable_create_time()->set_seconds(1'000'000);
    for (v1::Image& existing : s_->images) {
      if (existing.name() == image.name()) return existing = image;
    }
    s_->images.push_back(image);
    return image;
  }
  absl::StatusOr<v1::ListImagesResponse> ListImages(const v1::ListImagesRequest&) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::ListImagesResponse response;
    for (const v1::Image& image : s_->images) *response.add_images() = image;
    return response;
  }
  absl::StatusOr<v1::DeleteImageResponse> DeleteImage(
      const v1::DeleteImageRequest& request) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    for (auto it = s_->images.begin(); it != s_->images.end(); ++it) {
      if (it->name() == request.name()) {
        s_->images.erase(it);
        return v1::DeleteImageResponse();
      }
    }
    return absl::NotFoundError(absl::StrCat("image '", request.name(), "' is not registered"));
  }

  absl::StatusOr<v1::Datastore> PutDatastore(const v1::PutDatastoreRequest& request) override {
    s_->datastore_puts.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::Datastore datastore = request.datastore();
    datastore.mutable_create_time()->set_seconds(1'000'000);
    bool replaced = false;
    for (v1::Datastore& existing : s_->datastores) {
      if (existing.name() != datastore.name()) continue;
      if (!request.replace()) {
        return absl::AlreadyExistsError(
            absl::StrCat("datastore '", datastore.name(), "' already exists"));
      }
      existing = datastore;
      replaced = true;
    }
    if (!replaced) s_->datastores.push_back(datastore);
    return Masked(datastore);
  }
  absl::StatusOr<v1::ListDatastoresResponse> ListDatastores(
      const v1::ListDatastoresRequest&) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::ListDatastoresResponse response;
    for (const v1::Datastore& datastore : s_->datastores) {
      *response.add_datastores() = Masked(datastore);
    }
    return response;
  }
  absl::StatusOr<v1::CreateJoinTokenResponse> CreateJoinToken(
      const v1::CreateJoinTokenRequest& request) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::CreateJoinTokenResponse response;
    const int n = static_cast<int>(s_->join_tokens.size()) + 1;
    response.set_token(absl::StrCat(std::string(63, 'a'), n % 10));
    response.mutable_info()->set_id(absl::StrCat("00000000000", n % 10));
    response.mutable_info()->set_node_name(request.node_name());
    response.mutable_info()->mutable_expire_time()->set_seconds(
        1700000000 + (request.has_ttl() ? request.ttl().seconds() : 3600));
    s_->join_tokens.push_back({response.token(), response.info()});
    return response;
  }
  absl::StatusOr<v1::ListJoinTokensResponse> ListJoinTokens(
      const v1::ListJoinTokensRequest&) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::ListJoinTokensResponse response;
    for (auto it = s_->join_tokens.rbegin(); it != s_->join_tokens.rend(); ++it) {
      *response.add_tokens() = it->second;
    }
    return response;
  }
  absl::StatusOr<v1::RevokeJoinTokenResponse> RevokeJoinToken(
      const v1::RevokeJoinTokenRequest& request) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    for (auto& [token, info] : s_->join_tokens) {
      if (!request.id().empty() && info.id().rfind(request.id(), 0) == 0) {
        info.set_revoked(true);
        return v1::RevokeJoinTokenResponse();
      }
    }
    return absl::NotFoundError(absl::StrCat("no unused join token starts with '", request.id(), "'"));
  }
  absl::StatusOr<v1::RevokeNodeCertificatesResponse> RevokeNodeCertificates(
      const v1::RevokeNodeCertificatesRequest& request) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    s_->revoked_nodes.push_back(request.node_name());
    return v1::RevokeNodeCertificatesResponse();
  }

  absl::StatusOr<v1::DeleteDatastoreResponse> DeleteDatastore(
      const v1::DeleteDatastoreRequest& request) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    for (auto it = s_->datastores.begin(); it != s_->datastores.end(); ++it) {
      if (it->name() == request.name()) {
        s_->datastores.erase(it);
        return v1::DeleteDatastoreResponse();
      }
    }
    return absl::NotFoundError(absl::StrCat("datastore '", request.name(),
                                            "' is not registered; see drover datastore list"));
  }

  absl::StatusOr<v1::UserToken> CreateUser(const v1::CreateUserRequest& request) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    s_->user_creates.push_back(request);
    v1::UserToken token;
    token.mutable_user()->set_name(request.name());
    token.mutable_user()->set_role(request.role());
    token.set_token("drv_fake-" + request.name());
    s_->users.push_back(token.user());
    return token;
  }
  absl::StatusOr<v1::ListUsersResponse> ListUsers(const v1::ListUsersRequest&) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::ListUsersResponse response;
    for (const v1::User& user : s_->users) *response.add_users() = user;
    return response;
  }
  absl::StatusOr<v1::User> RevokeUser(const v1::RevokeUserRequest& request) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    s_->user_revokes.push_back(request.name());
    for (v1::User& user : s_->users) {
      if (user.name() == request.name()) {
        user.set_revoked(true);
        return user;
      }
    }
    return absl::NotFoundError(absl::StrCat("user '", request.name(), "' does not exist"));
  }
  absl::StatusOr<v1::UserToken> IssueUserToken(const v1::IssueUserTokenRequest& request) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    s_->token_issues.push_back(request.name());
    for (v1::User& user : s_->users) {
      if (user.name() == request.name()) {
        user.set_revoked(false);
        v1::UserToken token;
        *token.mutable_user() = user;
        token.set_token("drv_fake-new-" + request.name());
        return token;
      }
    }
    return absl::NotFoundError(absl::StrCat("user '", request.name(), "' does not exist"));
  }
  absl::StatusOr<v1::User> SetUserBlobQuota(const v1::SetUserBlobQuotaRequest& request) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    for (v1::User& user : s_->users) {
      if (user.name() == request.name()) {
        user.set_blob_quota_bytes(request.blob_quota_bytes());
        return user;
      }
    }
    return absl::NotFoundError(absl::StrCat("user '", request.name(), "' does not exist"));
  }
  absl::StatusOr<v1::User> WhoAmI(const v1::WhoAmIRequest&) override {
    if (absl::Status e = NextError(); !e.ok()) return e;
    return s_->caller;
  }
  // Pages of `page_size` over `audit` (newest first), the token being the next index.
  absl::StatusOr<v1::ListAuditRecordsResponse> ListAuditRecords(
      const v1::ListAuditRecordsRequest& request) override {
    s_->audit_requests.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    size_t start = request.page_token().empty() ? 0 : std::stoul(request.page_token());
    size_t size = request.page_size() <= 0 ? 100 : static_cast<size_t>(request.page_size());
    v1::ListAuditRecordsResponse response;
    for (size_t i = start; i < s_->audit.size() && i < start + size; ++i) {
      *response.add_records() = s_->audit[i];
    }
    if (start + size < s_->audit.size()) response.set_next_page_token(std::to_string(start + size));
    return response;
  }

  absl::StatusOr<v1::CollectGarbageResponse> CollectGarbage(
      const v1::CollectGarbageRequest& request) override {
    s_->gc_requests.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::CollectGarbageResponse response = s_->gc_response;
    response.set_dry_run(request.dry_run());
    return response;
  }

  absl::StatusOr<v1::StatBlobResponse> StatBlob(const v1::StatBlobRequest& request) override {
    s_->stats.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::StatBlobResponse response;
    auto it = s_->blobs.find(request.digest());
    response.set_present(it != s_->blobs.end());
    if (it != s_->blobs.end()) response.set_size(static_cast<int64_t>(it->second.size()));
    return response;
  }

  absl::StatusOr<v1::UploadBlobResponse> UploadBlob(const v1::UploadBlobRequest::Header& header,
                                                    const ChunkSource& next_chunk) override {
    s_->uploads.push_back({header});
    FakeServer::Upload& upload = s_->uploads.back();
    if (absl::Status e = NextError(); !e.ok()) return e;
    std::string data;
    while (true) {
      absl::StatusOr<std::string> chunk = next_chunk();
      if (!chunk.ok()) return chunk.status();
      if (chunk->empty()) break;
      ++upload.chunks;
      upload.largest_chunk = std::max(upload.largest_chunk, chunk->size());
      data += *chunk;
    }
    if (static_cast<int64_t>(data.size()) != header.size()) {
      return absl::InvalidArgumentError(absl::StrCat("got ", data.size(), " bytes, header said ",
                                                     header.size()));
    }
    v1::UploadBlobResponse response;
    response.set_digest(header.digest());
    response.set_size(header.size());
    response.set_created(s_->blobs.emplace(header.digest(), std::move(data)).second);
    return response;
  }

  absl::Status DownloadBlob(
      const v1::DownloadBlobRequest& request,
      const std::function<absl::Status(const v1::DownloadBlobResponse&)>& on_chunk) override {
    s_->downloads.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    auto it = s_->blobs.find(request.digest());
    if (it == s_->blobs.end()) return absl::NotFoundError(absl::StrCat("blob ", request.digest()));
    const std::string& blob = it->second;
    constexpr size_t kChunk = 1000;
    for (size_t offset = static_cast<size_t>(request.offset()); offset < blob.size(); offset += kChunk) {
      if (s_->break_download_after >= 0 && static_cast<int64_t>(offset) >= s_->break_download_after) {
        s_->break_download_after = -1;
        return absl::UnavailableError("connection lost");
      }
      v1::DownloadBlobResponse response;
      response.set_offset(static_cast<int64_t>(offset));
      response.set_size(static_cast<int64_t>(blob.size()));
      response.set_chunk(blob.substr(offset, kChunk));
      if (absl::Status s = on_chunk(response); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<v1::Node> ChangeNode(const std::string& action, const v1::NodeRequest& request,
                                      v1::Node::State state) {
    s_->node_requests.emplace_back(action, request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    for (v1::Node& node : s_->nodes) {
      if (node.name() == request.name()) {
        node.set_state(state);
        node.set_reason(request.reason());
        return node;
      }
    }
    return absl::NotFoundError(absl::StrCat("node '", request.name(), "' is not known; see drover nodes"));
  }

  static v1::Datastore Masked(v1::Datastore datastore) {
    for (const std::string& key : datastore.secret_keys()) {
      auto it = datastore.mutable_rclone_options()->find(key);
      if (it != datastore.mutable_rclone_options()->end()) it->second = "***";
    }
    return datastore;
  }

  absl::Status NextError() {
    if (s_->errors.empty()) return absl::OkStatus();
    absl::Status e = s_->errors.front();
    s_->errors.pop_front();
    return e;
  }
  v1::Job* Find(const std::string& id) {
    for (v1::Job& job : s_->jobs) {
      if (job.id() == id) return &job;
    }
    return nullptr;
  }

  FakeServer* s_;
};

}  // namespace drover::cli

#endif  // DROVER_TESTS_CLI_FAKE_DROVER_CLIENT_H_
