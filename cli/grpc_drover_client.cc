#include "cli/grpc_drover_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include <grpcpp/create_channel_posix.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "cli/commands.h"
#include "cli/keeper_socket.h"
#include "common/leader_redirect.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/node_identity.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "drover/v1/sweep_service.grpc.pb.h"

namespace drover::cli {
namespace {

constexpr absl::string_view kUnknownReason = "unavailable";

// Why a transport failure happened, in the words of `cannot reach droverd at X (...)`.
std::string TransportReason(const grpc::Status& status, absl::Duration timeout) {
  std::string text = absl::AsciiStrToLower(status.error_message());
  struct Known {
    const char* needle;
    const char* reason;
  };
  static constexpr Known kKnown[] = {
      {"connection refused", "connection refused"},
      {"dns resolution failed", "host name not found"},
      {"name or service not known", "host name not found"},
      {"could not resolve", "host name not found"},
      {"no route to host", "no route to host"},
      {"network is unreachable", "network unreachable"},
      {"connection reset", "connection lost"},
      {"socket closed", "connection lost"},
      {"broken pipe", "connection lost"},
      {"goaway", "connection lost"},
      {"permission denied", "permission denied"},
      {"no such file", "no such socket"},
  };
  for (const Known& known : kKnown) {
    if (absl::StrContains(text, known.needle)) return known.reason;
  }
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::StrCat("no answer within ", absl::FormatDuration(timeout));
  }
  return std::string(kUnknownReason);
}

// gRPC and droverd messages may span lines; the CLI prints one.
std::string OneLine(absl::string_view text) {
  std::string line = absl::StrReplaceAll(text, {{"\r\n", " "}, {"\n", " "}, {"\r", " "}});
  return std::string(absl::StripAsciiWhitespace(line));
}

// The stub class a generated method belongs to (`v1::JobService::Stub` for
// `&v1::JobService::Stub::SubmitJob`).
template <typename Method>
struct StubOf;
template <typename Stub, typename Function>
struct StubOf<Function Stub::*> {
  using type = Stub;
};

class GrpcDroverClient final : public DroverClient {
 public:
  // `keeper`: a channel over the keeper's socket, or null to go direct. The direct TLS
  // channel is made on first need only: making it initialises OpenSSL, which is most of
  // what a call through the keeper saves.
  GrpcDroverClient(ConnectOptions options, std::string ca_pem,
                   std::shared_ptr<grpc::Channel> keeper, std::shared_ptr<grpc::Channel> direct)
      : options_(std::move(options)),
        ca_pem_(std::move(ca_pem)),
        keeper_(std::move(keeper)),
        direct_(std::move(direct)) {
    // Several droverds ("HOST:PORT,HOST:PORT", one leads): calls go to one of them and
    // follow the leader among them (FollowLeader).
    absl::StatusOr<std::vector<std::string>> addresses =
        ParseDroverdAddresses("server", options_.address);
    addresses_ = addresses.ok() ? *std::move(addresses)
                                : std::vector<std::string>{options_.address};
  }

  absl::Duration AwaitConnection(absl::Duration limit) override {
    // The keeper reconnects to droverd on its own; there is nothing to drive here.
    if (keeper_ != nullptr) return absl::ZeroDuration();
    absl::Time start = absl::Now();
    Direct()->WaitForConnected(absl::ToChronoTime(start + limit));
    return absl::Now() - start;
  }

  absl::StatusOr<v1::SubmitJobResponse> SubmitJob(const v1::SubmitJobRequest& request) override {
    return Unary<v1::SubmitJobResponse>(request, &v1::JobService::Stub::SubmitJob);
  }
  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(
      const v1::SubmitSweepRequest& request) override {
    return Unary<v1::SubmitSweepResponse>(request, &v1::SweepService::Stub::SubmitSweep);
  }
  absl::StatusOr<v1::Sweep> GetSweep(const v1::GetSweepRequest& request) override {
    return Unary<v1::Sweep>(request, &v1::SweepService::Stub::GetSweep);
  }
  absl::StatusOr<v1::ListSweepsResponse> ListSweeps(
      const v1::ListSweepsRequest& request) override {
    return Unary<v1::ListSweepsResponse>(request, &v1::SweepService::Stub::ListSweeps);
  }
  absl::StatusOr<v1::Sweep> CancelSweep(const v1::CancelSweepRequest& request) override {
    return Unary<v1::Sweep>(request, &v1::SweepService::Stub::CancelSweep);
  }
  absl::StatusOr<v1::Job> GetJob(const v1::GetJobRequest& request) override {
    return Unary<v1::Job>(request, &v1::JobService::Stub::GetJob);
  }
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request) override {
    return Unary<v1::ListJobsResponse>(request, &v1::JobService::Stub::ListJobs);
  }
  absl::StatusOr<v1::Job> CancelJob(const v1::CancelJobRequest& request) override {
    return Unary<v1::Job>(request, &v1::JobService::Stub::CancelJob);
  }
  absl::StatusOr<v1::Job> UpdateJobTags(const v1::UpdateJobTagsRequest& request) override {
    return Unary<v1::Job>(request, &v1::JobService::Stub::UpdateJobTags);
  }

  absl::Status WatchJob(const v1::WatchJobRequest& request,
                        const std::function<void(const v1::WatchJobResponse&)>& on_event) override {
    return ServerStream<v1::WatchJobResponse>(
        request, &v1::JobService::Stub::WatchJob,
        [&](const v1::WatchJobResponse& event) {
          on_event(event);
          return absl::OkStatus();
        });
  }

  absl::Status StreamLogs(
      const v1::StreamLogsRequest& request,
      const std::function<void(const v1::StreamLogsResponse&)>& on_message) override {
    return ServerStream<v1::StreamLogsResponse>(
        request, &v1::JobService::Stub::StreamLogs,
        [&](const v1::StreamLogsResponse& message) {
          on_message(message);
          return absl::OkStatus();
        });
  }

  absl::Status WatchMetrics(
      const v1::GetMetricsRequest& request,
      const std::function<void(const v1::GetMetricsResponse&)>& on_message) override {
    return ServerStream<v1::GetMetricsResponse>(
        request, &v1::JobService::Stub::WatchMetrics,
        [&](const v1::GetMetricsResponse& message) {
          on_message(message);
          return absl::OkStatus();
        });
  }

  absl::StatusOr<v1::ListNodesResponse> ListNodes(const v1::ListNodesRequest& request) override {
    return Unary<v1::ListNodesResponse>(request, &v1::AdminService::Stub::ListNodes);
  }
  absl::StatusOr<v1::Node> CordonNode(const v1::NodeRequest& request) override {
    return Unary<v1::Node>(request, &v1::AdminService::Stub::CordonNode);
  }
  absl::StatusOr<v1::Node> UncordonNode(const v1::NodeRequest& request) override {
    return Unary<v1::Node>(request, &v1::AdminService::Stub::UncordonNode);
  }
  absl::StatusOr<v1::Node> DrainNode(const v1::NodeRequest& request) override {
    return Unary<v1::Node>(request, &v1::AdminService::Stub::DrainNode);
  }
  absl::StatusOr<v1::Node> DeclareNodeLost(const v1::NodeRequest& request) override {
    return Unary<v1::Node>(request, &v1::AdminService::Stub::DeclareNodeLost);
  }
  absl::StatusOr<v1::ComputeTarget> PutComputeTarget(
      const v1::PutComputeTargetRequest& request) override {
    return Unary<v1::ComputeTarget>(request, &v1::AdminService::Stub::PutComputeTarget);
  }
  absl::StatusOr<v1::ListComputeTargetsResponse> ListComputeTargets(
      const v1::ListComputeTargetsRequest& request) override {
    return Unary<v1::ListComputeTargetsResponse>(
        request, &v1::AdminService::Stub::ListComputeTargets);
  }
  absl::StatusOr<v1::DeleteComputeTargetResponse> DeleteComputeTarget(
      const v1::DeleteComputeTargetRequest& request) override {
    return Unary<v1::DeleteComputeTargetResponse>(
        request, &v1::AdminService::Stub::DeleteComputeTarget);
  }
  absl::StatusOr<v1::Image> PutImage(const v1::PutImageRequest& request) override {
    return Unary<v1::Image>(request, &v1::AdminService::Stub::PutImage);
  }
  absl::StatusOr<v1::ListImagesResponse> ListImages(const v1::ListImagesRequest& request) override {
    return Unary<v1::ListImagesResponse>(request, &v1::AdminService::Stub::ListImages);
  }
  absl::StatusOr<v1::DeleteImageResponse> DeleteImage(
      const v1::DeleteImageRequest& request) override {
    return Unary<v1::DeleteImageResponse>(request, &v1::AdminService::Stub::DeleteImage);
  }
  absl::StatusOr<v1::Datastore> PutDatastore(const v1::PutDatastoreRequest& request) override {
    return Unary<v1::Datastore>(request, &v1::AdminService::Stub::PutDatastore);
  }
  absl::StatusOr<v1::ListDatastoresResponse> ListDatastores(
      const v1::ListDatastoresRequest& request) override {
    return Unary<v1::ListDatastoresResponse>(request, &v1::AdminService::Stub::ListDatastores);
  }
  absl::StatusOr<v1::DeleteDatastoreResponse> DeleteDatastore(
      const v1::DeleteDatastoreRequest& request) override {
    return Unary<v1::DeleteDatastoreResponse>(request, &v1::AdminService::Stub::DeleteDatastore);
  }

  absl::StatusOr<v1::UserToken> CreateUser(const v1::CreateUserRequest& request) override {
    return Unary<v1::UserToken>(request, &v1::AdminService::Stub::CreateUser);
  }
  absl::StatusOr<v1::ListUsersResponse> ListUsers(const v1::ListUsersRequest& request) override {
    return Unary<v1::ListUsersResponse>(request, &v1::AdminService::Stub::ListUsers);
  }
  absl::StatusOr<v1::User> RevokeUser(const v1::RevokeUserRequest& request) override {
    return Unary<v1::User>(request, &v1::AdminService::Stub::RevokeUser);
  }
  absl::StatusOr<v1::User> SetUserBlobQuota(const v1::SetUserBlobQuotaRequest& request) override {
    return Unary<v1::User>(request, &v1::AdminService::Stub::SetUserBlobQuota);
  }
  absl::StatusOr<v1::UserToken> IssueUserToken(const v1::IssueUserTokenRequest& request) override {
    return Unary<v1::UserToken>(request, &v1::AdminService::Stub::IssueUserToken);
  }
  absl::StatusOr<v1::User> WhoAmI(const v1::WhoAmIRequest& request) override {
    return Unary<v1::User>(request, &v1::AdminService::Stub::WhoAmI);
  }
  absl::StatusOr<v1::ListAuditRecordsResponse> ListAuditRecords(
      const v1::ListAuditRecordsRequest& request) override {
    return Unary<v1::ListAuditRecordsResponse>(request, &v1::AdminService::Stub::ListAuditRecords);
  }
  absl::StatusOr<v1::CollectGarbageResponse> CollectGarbage(
      const v1::CollectGarbageRequest& request) override {
    return Unary<v1::CollectGarbageResponse>(request, &v1::AdminService::Stub::CollectGarbage);
  }
  absl::StatusOr<v1::CreateJoinTokenResponse> CreateJoinToken(
      const v1::CreateJoinTokenRequest& request) override {
    return Unary<v1::CreateJoinTokenResponse>(
        request, &v1::NodeIdentityService::Stub::CreateJoinToken);
  }
  absl::StatusOr<v1::ListJoinTokensResponse> ListJoinTokens(
      const v1::ListJoinTokensRequest& request) override {
    return Unary<v1::ListJoinTokensResponse>(
        request, &v1::NodeIdentityService::Stub::ListJoinTokens);
  }
  absl::StatusOr<v1::RevokeJoinTokenResponse> RevokeJoinToken(
      const v1::RevokeJoinTokenRequest& request) override {
    return Unary<v1::RevokeJoinTokenResponse>(
        request, &v1::NodeIdentityService::Stub::RevokeJoinToken);
  }
  absl::StatusOr<v1::RevokeNodeCertificatesResponse> RevokeNodeCertificates(
      const v1::RevokeNodeCertificatesRequest& request) override {
    return Unary<v1::RevokeNodeCertificatesResponse>(
        request, &v1::NodeIdentityService::Stub::RevokeNodeCertificates);
  }

  absl::StatusOr<v1::StatBlobResponse> StatBlob(const v1::StatBlobRequest& request) override {
    return Unary<v1::StatBlobResponse>(request, &v1::BlobService::Stub::StatBlob);
  }

  absl::StatusOr<v1::UploadBlobResponse> UploadBlob(const v1::UploadBlobRequest::Header& header,
                                                    const ChunkSource& next_chunk) override {
    grpc::ClientContext context;
    Authorize(&context);
    v1::UploadBlobResponse response;
    v1::BlobService::Stub blobs(Direct());
    std::unique_ptr<grpc::ClientWriter<v1::UploadBlobRequest>> writer =
        blobs.UploadBlob(&context, &response);
    v1::UploadBlobRequest message;
    *message.mutable_header() = header;
    // A failed Write means the call is over (droverd refused, or the connection broke);
    // Finish() then says why.
    bool open = writer->Write(message);
    while (open) {
      absl::StatusOr<std::string> chunk = next_chunk();
      if (!chunk.ok()) {
        context.TryCancel();
        (void)writer->Finish();
        return chunk.status();
      }
      if (chunk->empty()) {
        open = writer->WritesDone();
        break;
      }
      message.set_chunk(*std::move(chunk));
      open = writer->Write(message);
    }
    grpc::Status status = writer->Finish();
    if (status.ok()) return response;
    return Readable(status, /*received=*/false);
  }

  absl::Status DownloadBlob(
      const v1::DownloadBlobRequest& request,
      const std::function<absl::Status(const v1::DownloadBlobResponse&)>& on_chunk) override {
    return ServerStream<v1::DownloadBlobResponse>(request, &v1::BlobService::Stub::DownloadBlob, on_chunk);
  }

 private:
  // Every call carries the token, when there is one (ConnectGrpc checked its characters).
  void Authorize(grpc::ClientContext* context) const {
    if (!options_.token.empty()) context->AddMetadata("authorization", "Bearer " + options_.token);
  }

  // Through the keeper when there is one; UNAVAILABLE from it (the keeper gone, or droverd
  // not reached from it) and the call is made again directly, as are all calls after it:
  // a call never fails because of the keeper. Only calls that droverd may see twice come
  // here: submits carry an idempotency key, the others read or set a state.
  template <typename Response, typename Request, typename Method>
  absl::StatusOr<Response> Unary(const Request& request, Method method) {
    using Stub = typename StubOf<Method>::type;
    if (keeper_ != nullptr) {
      Response response;
      grpc::Status status = CallOnce(Stub(keeper_), request, method, &response);
      if (status.ok()) return response;
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) {
        return ReadableStatus(status, options_.address, options_.timeout, /*connected=*/true,
                              &last_reason_);
      }
      keeper_ = nullptr;
    }
    Response response;
    std::optional<size_t> leader;
    grpc::Status status = CallOnce(Stub(Direct()), request, method, &response, &leader);
    // Each other droverd at most once: the leader a standby named, else the next one.
    for (size_t tries = 1; !status.ok() && tries < addresses_.size() && FollowLeader(status, leader);
         ++tries) {
      status = CallOnce(Stub(Direct()), request, method, &response, &leader);
    }
    if (status.ok()) return response;
    return Readable(status, /*received=*/false);
  }

  template <typename Stub, typename Request, typename Method, typename Response>
  grpc::Status CallOnce(Stub stub, const Request& request, Method method, Response* response,
                        std::optional<size_t>* leader = nullptr) {
    grpc::ClientContext context;
    Authorize(&context);
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
    grpc::Status status = (stub.*method)(&context, request, response);
    if (leader != nullptr) {
      *leader = status.error_code() == grpc::StatusCode::UNAVAILABLE
                    ? KnownLeader(context.GetServerTrailingMetadata(), addresses_)
                    : std::nullopt;
    }
    return status;
  }

  // After a call to one of several droverds failed with `status`: switches to the leader a
  // standby named (`leader`, already checked to be one of ours: a standby cannot send the
  // CLI anywhere else), or, when droverd could not be reached, to the next droverd. False
  // (nothing switched) for one droverd, and for an answer that is not about reaching the
  // leader.
  bool FollowLeader(const grpc::Status& status, std::optional<size_t> leader) {
    if (addresses_.size() < 2 || status.error_code() != grpc::StatusCode::UNAVAILABLE) {
      return false;
    }
    size_t next = leader.has_value() ? *leader : (current_ + 1) % addresses_.size();
    if (next == current_) next = (current_ + 1) % addresses_.size();
    current_ = next;
    direct_ = nullptr;
    return true;
  }

  // Reads a server stream (no deadline) into `on_message`; an error from it cancels the call.
  // Streams go direct.
  template <typename Response, typename Request, typename Method>
  absl::Status ServerStream(const Request& request, Method method,
                            const std::function<absl::Status(const Response&)>& on_message) {
    // A stream that got nothing yet follows the leader as a unary call does (Unary).
    for (size_t tries = 1;; ++tries) {
      typename StubOf<Method>::type stub(Direct());
      grpc::ClientContext context;
      Authorize(&context);
      std::unique_ptr<grpc::ClientReader<Response>> reader = (stub.*method)(&context, request);
      Response response;
      bool received = false;
      while (reader->Read(&response)) {
        received = true;
        if (absl::Status s = on_message(response); !s.ok()) {
          context.TryCancel();
          while (reader->Read(&response)) {
          }
          (void)reader->Finish();
          return s;
        }
      }
      grpc::Status status = reader->Finish();
      if (status.ok()) return absl::OkStatus();
      std::optional<size_t> leader =
          status.error_code() == grpc::StatusCode::UNAVAILABLE
              ? KnownLeader(context.GetServerTrailingMetadata(), addresses_)
              : std::nullopt;
      if (!received && tries < addresses_.size() && FollowLeader(status, leader)) continue;
      return Readable(status, received);
    }
  }

  absl::Status Readable(const grpc::Status& status, bool received) {
    bool connected = received || Direct()->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
    return ReadableStatus(status, options_.address, options_.timeout, connected, &last_reason_);
  }

  // The TLS channel to droverd, made on first use.
  const std::shared_ptr<grpc::Channel>& Direct() {
    if (direct_ == nullptr) direct_ = DroverTlsChannel(addresses_[current_], ca_pem_);
    return direct_;
  }

  ConnectOptions options_;
  std::string ca_pem_;
  std::shared_ptr<grpc::Channel> keeper_;
  std::shared_ptr<grpc::Channel> direct_;
  std::vector<std::string> addresses_;  // options_.address split at commas
  size_t current_ = 0;                  // the one direct_ reaches
  // Why the last connection attempt failed; see ReadableStatus.
  std::string last_reason_;
};

}  // namespace

absl::Status ReadableStatus(const grpc::Status& status, const std::string& address,
                            absl::Duration timeout, bool connected, std::string* last_reason) {
  auto code = static_cast<absl::StatusCode>(status.error_code());
  bool transport = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                   status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
  if (transport && !connected) {
    std::string reason = TransportReason(status, timeout);
    if (last_reason != nullptr) {
      if (reason == kUnknownReason && !last_reason->empty()) {
        reason = *last_reason;
      } else {
        *last_reason = reason;
      }
    }
    return absl::Status(code, absl::StrCat("cannot reach droverd at ", address, " (", reason,
                                           "); is it running? set --server or DROVER_SERVER"));
  }
  if (status.error_code() == grpc::StatusCode::CANCELLED) {
    // The CLI never cancels its own calls, so droverd (or the connection) ended this one,
    // typically while droverd stops. Worth a retry, hence UNAVAILABLE.
    return absl::UnavailableError(absl::StrCat(
        "droverd at ", address, " closed the call (is it restarting?); retry in a moment"));
  }
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::Status(code, absl::StrCat("droverd at ", address, " did not answer within ",
                                           absl::FormatDuration(timeout),
                                           "; retry, or allow longer with --timeout"));
  }
  std::string message = OneLine(status.error_message());
  if (message.empty()) {
    message = absl::StrCat("droverd answered ", absl::StatusCodeToString(code),
                           " without a message");
  }
  return absl::Status(code, message);
}

namespace {

grpc::ChannelArguments DroverChannelArguments() {
  grpc::ChannelArguments args;
  // A restarting droverd should be found again within the CLI's own retries, not after
  // gRPC's default 1 s..120 s reconnect backoff. (GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is not
  // a backoff but how long one connection attempt may take: gRPC's 20 s stays, a TLS
  // handshake to a busy or distant droverd takes more than 100 ms.)
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // droverd publishes no service config; skip the DNS TXT lookup for one.
  args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  return args;
}

// A channel over the keeper's socket for `options`, or null (no keeper used). Starts a
// keeper when none answers; this call then goes direct, the next ones through it. Never
// fails: an unsafe folder is reported through `options.warn`, anything else is silent.
std::shared_ptr<grpc::Channel> KeeperChannel(const ConnectOptions& options,
                                             const std::string& ca_pem) {
  absl::StatusOr<std::string> folder = KeeperFolder(options.runtime_dir, getuid());
  if (!folder.ok()) {
    if (absl::IsFailedPrecondition(folder.status()) && options.warn) {
      options.warn(std::string(folder.status().message()));
    }
    return nullptr;
  }
  std::string path = absl::StrCat(
      *folder, "/",
      KeeperSocketName(options.address, options.ca_file, ca_pem, DroverVersion()));
  absl::StatusOr<int> fd = ConnectToKeeper(path, getuid());
  if (absl::IsPermissionDenied(fd.status()) || absl::IsInvalidArgument(fd.status())) {
    if (options.warn) options.warn(std::string(fd.status().message()));
    return nullptr;
  }
  if (!fd.ok()) {
    (void)SpawnDetached("/proc/self/exe",
                        {"drover", "__keeper", "--socket", path, "--server", options.address,
                         "--ca", options.ca_file, "--idle",
                         absl::StrCat(absl::ToInt64Seconds(options.keeper_idle))});
    return nullptr;
  }
  int flags = fcntl(*fd, F_GETFL);
  fcntl(*fd, F_SETFL, flags | O_NONBLOCK);
  // Plain gRPC over the socket: only this user reaches it (0700 folder, SO_PEERCRED on
  // both ends), and the keeper adds nothing to what the call carries.
  return grpc::CreateCustomInsecureChannelFromFd("drover-keeper", *fd,
                                                 DroverChannelArguments());
}

}  // namespace

absl::StatusOr<std::string> ReadCaFile(const ConnectOptions& options) {
  std::ifstream in(options.ca_file);
  std::stringstream ca;
  if (in) ca << in.rdbuf();
  if (ca.str().find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.ca_source, ": cannot read a certificate from '", options.ca_file,
        "'; give droverd's CA certificate (droverd writes it to <state-dir>/tls/ca.crt) "
        "with --ca FILE or DROVER_CA"));
  }
  return ca.str();
}

std::shared_ptr<grpc::Channel> DroverTlsChannel(const std::string& address,
                                                const std::string& ca_pem) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca_pem;
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(tls), DroverChannelArguments());
}

absl::StatusOr<std::unique_ptr<DroverClient>> ConnectGrpc(const ConnectOptions& options) {
  for (char c : options.token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          "the token has a space, line break or other character no drover token has; copy "
          "it again from drover user create (--token, DROVER_TOKEN or the config file)");
    }
  }
  if (options.token.size() > 256) {
    return absl::InvalidArgumentError(
        "the token is longer than any drover token; copy it again from drover user create");
  }
  // The local admin socket (root on droverd's host): no TLS, the socket's mode decides.
  if (absl::StartsWith(options.address, "unix:")) {
    std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
        options.address, grpc::experimental::LocalCredentials(UDS), DroverChannelArguments());
    return std::make_unique<GrpcDroverClient>(options, "", nullptr, std::move(channel));
  }
  // droverd is reached over TLS only, its certificate checked against the cluster's CA.
  absl::StatusOr<std::string> ca_pem = ReadCaFile(options);
  if (!ca_pem.ok()) return ca_pem.status();
  // The keeper holds one droverd's connection: not for a list of droverds.
  bool several = options.address.find(',') != std::string::npos;
  std::shared_ptr<grpc::Channel> keeper =
      options.use_keeper && !several ? KeeperChannel(options, *ca_pem) : nullptr;
  if (keeper != nullptr) {
    return std::make_unique<GrpcDroverClient>(options, *std::move(ca_pem), std::move(keeper),
                                              nullptr);
  }
  std::shared_ptr<grpc::Channel> channel =
      DroverTlsChannel(options.address.substr(0, options.address.find(',')), *ca_pem);
  if (channel == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server: '", options.address, "' is not an address; write HOST:PORT"));
  }
  return std::make_unique<GrpcDroverClient>(options, *std::move(ca_pem), nullptr,
                                            std::move(channel));
}

}  // namespace drover::cli
