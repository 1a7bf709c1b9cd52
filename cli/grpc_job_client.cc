#include "cli/grpc_job_client.h"

#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "drover/v1/job_service.grpc.pb.h"

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

class GrpcJobClient final : public JobClient {
 public:
  GrpcJobClient(ConnectOptions options, std::shared_ptr<grpc::Channel> channel)
      : options_(std::move(options)),
        channel_(std::move(channel)),
        stub_(v1::JobService::NewStub(channel_)) {}

  absl::StatusOr<v1::SubmitJobResponse> SubmitJob(const v1::SubmitJobRequest& request) override {
    return Unary<v1::SubmitJobResponse>(request, &v1::JobService::Stub::SubmitJob);
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

  absl::Status WatchJob(const v1::WatchJobRequest& request,
                        const std::function<void(const v1::WatchJobResponse&)>& on_event) override {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientReader<v1::WatchJobResponse>> reader =
        stub_->WatchJob(&context, request);
    v1::WatchJobResponse response;
    bool received = false;
    while (reader->Read(&response)) {
      received = true;
      on_event(response);
    }
    grpc::Status status = reader->Finish();
    if (status.ok()) return absl::OkStatus();
    return Readable(status, received);
  }

 private:
  template <typename Response, typename Request, typename Method>
  absl::StatusOr<Response> Unary(const Request& request, Method method) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
    Response response;
    grpc::Status status = (stub_.get()->*method)(&context, request, &response);
    if (status.ok()) return response;
    return Readable(status, /*received=*/false);
  }

  absl::Status Readable(const grpc::Status& status, bool received) {
    bool connected = received || channel_->GetState(/*try_to_connect=*/false) == GRPC_CHANNEL_READY;
    return ReadableStatus(status, options_.address, options_.timeout, connected, &last_reason_);
  }

  ConnectOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> stub_;
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

absl::StatusOr<std::unique_ptr<JobClient>> ConnectGrpc(const ConnectOptions& options) {
  grpc::ChannelArguments args;
  // A restarting droverd should be found again within the CLI's own retries, not after
  // gRPC's default 1 s..120 s reconnect backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // droverd publishes no service config; skip the DNS TXT lookup for one.
  args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(options.address, grpc::InsecureChannelCredentials(), args);
  if (channel == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server: '", options.address, "' is not an address; write HOST:PORT"));
  }
  return std::make_unique<GrpcJobClient>(options, std::move(channel));
}

}  // namespace drover::cli
