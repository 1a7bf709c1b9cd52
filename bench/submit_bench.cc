#include "bench/submit_bench.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <sys/resource.h>

#include <chrono>
#include <memory>
#include <random>
#include <vector>

#include "bench/channel.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "drover/v1/job_service.grpc.pb.h"

namespace drover::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return absl::StrCat("CODE_", static_cast<int>(code));
  }
}

// The measured window, fixed before the first submit.
struct Window {
  SteadyClock::time_point begin;  // end of the warm-up
  SteadyClock::time_point end;
};

struct Sample {
  SteadyClock::time_point sent;
  SteadyClock::time_point answered;
  grpc::StatusCode code;
  bool created;
};

// One client: a chain of SubmitJob calls, the next sent from the callback of the previous
// one until the window has ended. Its fields are touched only by that chain, one callback
// after another, so they need no lock; the owner reads them after `done` reached zero.
class Client {
 public:
  Client(v1::JobService::Stub* stub, std::string key_prefix, const Window& window,
         absl::Duration rpc_timeout, absl::BlockingCounter* done, int64_t array_size)
      : stub_(stub),
        key_prefix_(std::move(key_prefix)),
        window_(window),
        rpc_timeout_(rpc_timeout),
        done_(done) {
    // The smallest valid spec: everything else takes its default.
    request_.mutable_spec()->set_entry_script("train.py");
    if (array_size > 0) {
      request_.mutable_spec()->mutable_array()->set_indices(absl::StrCat("0-", array_size - 1));
    }
  }

  void Start() { Send(); }

  const std::vector<Sample>& samples() const { return samples_; }
  const std::map<grpc::StatusCode, std::string>& first_errors() const { return first_errors_; }

 private:
  void Send() {
    request_.mutable_spec()->set_idempotency_key(absl::StrCat(key_prefix_, "-", next_++));
    response_.Clear();
    context_ = std::make_unique<grpc::ClientContext>();
    context_->set_deadline(std::chrono::system_clock::now() +
                           absl::ToChronoMilliseconds(rpc_timeout_));
    sent_ = SteadyClock::now();
    stub_->async()->SubmitJob(context_.get(), &request_, &response_,
                              [this](grpc::Status status) { OnAnswer(status); });
  }

  void OnAnswer(const grpc::Status& status) {
    SteadyClock::time_point now = SteadyClock::now();
    samples_.push_back({sent_, now, status.error_code(), status.ok() && response_.created()});
    if (!status.ok()) first_errors_.try_emplace(status.error_code(), status.error_message());
    if (now < window_.end) {
      Send();
    } else {
      done_->DecrementCount();  // last touch of this client by the chain
    }
  }

  v1::JobService::Stub* stub_;
  const std::string key_prefix_;
  const Window& window_;
  const absl::Duration rpc_timeout_;
  absl::BlockingCounter* done_;

  int64_t next_ = 0;
  std::unique_ptr<grpc::ClientContext> context_;
  v1::SubmitJobRequest request_;
  v1::SubmitJobResponse response_;
  SteadyClock::time_point sent_;
  std::vector<Sample> samples_;
  std::map<grpc::StatusCode, std::string> first_errors_;
};

absl::Duration CpuTimeOfThisProcess() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return absl::DurationFromTimeval(usage.ru_utime) + absl::DurationFromTimeval(usage.ru_stime);
}

// A key prefix no earlier run against the same droverd used, so runs can repeat on one
// state dir without deduplicating into each other.
std::string UniqueRunPrefix() {
  std::random_device random;
  return absl::StrFormat("bench-%08x%08x", random(), random());
}

void SleepUntil(SteadyClock::time_point t) {
  SteadyClock::time_point now = SteadyClock::now();
  if (t > now) absl::SleepFor(absl::FromChrono(t - now));
}

}  // namespace

absl::StatusOr<SubmitBenchResult> RunSubmitBench(const SubmitBenchOptions& options) {
  if (options.server.empty()) {
    return absl::InvalidArgumentError("--server: required; pass droverd's HOST:PORT");
  }
  if (options.clients < 1 || options.clients > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--clients: ", options.clients, " is out of range; use 1 to 100000"));
  }
  int64_t channel_count = options.channels > 0 ? options.channels
                                                : std::min<int64_t>(options.clients, 8);
  if (options.channels < 0 || channel_count > options.clients) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--channels: ", options.channels, " is out of range; use 1 to --clients (",
        options.clients, "), or 0 for min(clients, 8)"));
  }
  if (options.array_size < 0 || options.array_size > 100000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--array-size: ", options.array_size, " is out of range; use 1 to 100000, or 0 for "
        "single jobs"));
  }
  if (options.duration <= absl::ZeroDuration() || options.warmup < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--duration must be positive and --warmup not negative; write them like 10s or 500ms");
  }

  // Distinct channel arguments keep gRPC from sharing one connection between channels.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::JobService::Stub>> stubs;
  auto connect_deadline = std::chrono::system_clock::now() +
                          absl::ToChronoMilliseconds(options.connect_timeout);
  for (int64_t i = 0; i < channel_count; ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("drover.bench.channel", static_cast<int>(i));
    channels.push_back(grpc::CreateCustomChannel(options.server,
                                                 DroverdCredentials(options.server, options.ca_file), args));
    if (!channels.back()->WaitForConnected(connect_deadline)) {
      return absl::UnavailableError(absl::StrCat(
          "cannot reach droverd at '", options.server, "' within ",
          absl::FormatDuration(options.connect_timeout),
          "; is it running, and is --server its --listen address?"));
    }
    stubs.push_back(v1::JobService::NewStub(channels.back()));
  }

  std::string prefix = UniqueRunPrefix();
  Window window;
  SteadyClock::time_point start = SteadyClock::now();
  window.begin = start + absl::ToChronoNanoseconds(options.warmup);
  window.end = window.begin + absl::ToChronoNanoseconds(options.duration);

  absl::BlockingCounter done(static_cast<int>(options.clients));
  std::vector<std::unique_ptr<Client>> clients;
  for (int64_t i = 0; i < options.clients; ++i) {
    clients.push_back(std::make_unique<Client>(stubs[i % channel_count].get(),
                                               absl::StrCat(prefix, "-", i), window,
                                               options.rpc_timeout, &done,
                                               options.array_size));
  }
  for (auto& client : clients) client->Start();

  SleepUntil(window.begin);
  absl::Duration cpu_at_begin = CpuTimeOfThisProcess();
  SleepUntil(window.end);
  absl::Duration cpu_at_end = CpuTimeOfThisProcess();
  done.Wait();

  SubmitBenchResult result;
  result.clients = options.clients;
  result.channels = channel_count;
  result.warmup = options.warmup;
  result.duration = options.duration;
  result.client_cpu = cpu_at_end - cpu_at_begin;
  std::vector<absl::Duration> latencies;
  for (const auto& client : clients) {
    for (const Sample& s : client->samples()) {
      if (s.code != grpc::StatusCode::OK) {
        ++result.errors[CodeName(s.code)];
        continue;
      }
      ++result.acknowledged_total;
      if (s.sent < window.begin || s.answered > window.end) continue;
      ++result.acknowledged;
      if (!s.created) ++result.not_created;
      latencies.push_back(absl::FromChrono(s.answered - s.sent));
    }
    for (const auto& [code, message] : client->first_errors()) {
      result.error_examples.try_emplace(CodeName(code), message);
    }
  }
  result.jobs_per_second =
      static_cast<double>(result.acknowledged) / absl::ToDoubleSeconds(options.duration);
  result.array_size = options.array_size;
  result.tasks_per_second = result.jobs_per_second * static_cast<double>(options.array_size);
  result.latency = Summarize(std::move(latencies));
  return result;
}

std::string SubmitResultText(const SubmitBenchResult& r, const std::string& server) {
  std::string out = absl::StrFormat(
      "submit: %d clients over %d channels to %s, %s measured after %s warm-up\n", r.clients,
      r.channels, server, absl::FormatDuration(r.duration), absl::FormatDuration(r.warmup));
  absl::StrAppendFormat(&out, "  acknowledged  %d jobs, %.1f jobs/s\n", r.acknowledged,
                        r.jobs_per_second);
  if (r.array_size > 0) {
    absl::StrAppendFormat(&out, "  arrays        of %d tasks each: %.1f tasks/s acknowledged\n",
                          r.array_size, r.tasks_per_second);
  }
  absl::StrAppend(&out, "  latency       ", LatencyText(r.latency), "\n");
  if (r.errors.empty()) {
    absl::StrAppend(&out, "  errors        none\n");
  } else {
    for (const auto& [code, count] : r.errors) {
      absl::StrAppendFormat(&out, "  errors        %s %d (first: %s)\n", code, count,
                            r.error_examples.at(code));
    }
  }
  if (r.not_created > 0) {
    absl::StrAppendFormat(&out,
                          "  WARNING       %d acknowledgements had created=false although "
                          "every key was new\n",
                          r.not_created);
  }
  absl::StrAppendFormat(&out, "  client cpu    %.2f s in the measured window\n",
                        absl::ToDoubleSeconds(r.client_cpu));
  return out;
}

std::string SubmitResultJson(const SubmitBenchResult& r, const std::string& server) {
  std::vector<std::string> errors;
  for (const auto& [code, count] : r.errors) {
    errors.push_back(absl::StrCat(JsonString(code), ":", count));
  }
  return absl::StrCat(
      "{\"benchmark\":\"submit\",\"server\":", JsonString(server), ",\"clients\":", r.clients,
      ",\"channels\":", r.channels,
      ",\"warmup_s\":", absl::StrFormat("%.3f", absl::ToDoubleSeconds(r.warmup)),
      ",\"duration_s\":", absl::StrFormat("%.3f", absl::ToDoubleSeconds(r.duration)),
      ",\"acknowledged\":", r.acknowledged, ",\"acknowledged_total\":", r.acknowledged_total,
      ",\"jobs_per_s\":", absl::StrFormat("%.1f", r.jobs_per_second),
      ",\"array_size\":", r.array_size,
      ",\"tasks_per_s\":", absl::StrFormat("%.1f", r.tasks_per_second),
      ",\"not_created\":", r.not_created, ",\"latency\":", LatencyJson(r.latency),
      ",\"errors\":{", absl::StrJoin(errors, ","), "}",
      ",\"client_cpu_s\":", absl::StrFormat("%.3f", absl::ToDoubleSeconds(r.client_cpu)), "}");
}

}  // namespace drover::bench
