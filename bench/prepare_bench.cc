#include "bench/prepare_bench.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <random>

#include "bench/channel.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "bench/job_timeline.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"

namespace drover::bench {
namespace {

using v1::JobStatus;

enum class Kind { kBuilt, kCached, kNone };

// The job's nodes' preparation logs.
std::string PrepareLog(v1::JobService::Stub& jobs, const std::string& id) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::StreamLogsRequest request;
  request.set_job_id(id);
  request.add_streams(v1::PREPARE);
  auto reader = jobs.StreamLogs(&context, request);
  std::string out;
  for (v1::StreamLogsResponse chunk; reader->Read(&chunk);) out += chunk.data();
  (void)reader->Finish();
  return out;
}

}  // namespace

absl::StatusOr<PrepareBenchResult> RunPrepareBench(const PrepareBenchOptions& options) {
  if (options.server.empty()) return absl::InvalidArgumentError("--server is required");
  if (options.pip_packages.empty()) {
    return absl::InvalidArgumentError("--pip: give at least one package, like 'drovertestpkg==1.{}'");
  }
  bool templated = false;
  for (const std::string& p : options.pip_packages) templated = templated || absl::StrContains(p, "{}");
  if (options.rounds < 1 || options.cached_jobs < 1 || (options.rounds > 1 && !templated)) {
    return absl::InvalidArgumentError(
        "--rounds and --cached-jobs must be at least 1, and more than one round needs '{}' in a "
        "--pip package (each round builds an environment of its own)");
  }
  auto channel = grpc::CreateChannel(options.server, DroverdCredentials(options.server, options.ca_file));
  auto jobs = v1::JobService::NewStub(channel);
  auto admin = v1::AdminService::NewStub(channel);
  if (absl::Status s = AwaitReadyNodes(*admin, 1, options.connect_timeout, options.server); !s.ok()) {
    return s;
  }

  std::random_device random;
  const std::string prefix = absl::StrFormat("bench-prepare-%08x%08x", random(), random());
  PrepareBenchResult result;
  result.load_before = LoadAverage();
  std::vector<absl::Duration> prepare[3], to_running[3];
  int64_t n = 0;
  auto run = [&](const std::vector<std::string>& packages, Kind expected) {
    v1::SubmitJobRequest request;
    v1::JobSpec* spec = request.mutable_spec();
    spec->set_name("bench-prepare");
    spec->set_entry_script("bin/sh");
    spec->add_arguments()->set_value("-c");
    spec->add_arguments()->set_value(options.command);
    spec->mutable_environment()->set_image(options.image);
    for (const std::string& p : packages) spec->mutable_environment()->add_pip_packages(p);
    spec->mutable_resources()->set_cpus(1);
    spec->mutable_resources()->set_memory_mib(512);
    spec->set_idempotency_key(absl::StrCat(prefix, "-", n++));
    JobTimeline t = SubmitAndWatch(*jobs, request, options.job_timeout);
    if (!t.completed) {
      if (result.failed++ == 0) result.first_failure = t.failure;
      return;
    }
    Kind kind = Kind::kNone;
    if (!packages.empty()) {
      std::string log = PrepareLog(*jobs, t.job_id);
      kind = absl::StrContains(log, "drover: building environment") ? Kind::kBuilt : Kind::kCached;
    }
    if (kind != expected) ++result.unexpected;
    std::optional<absl::Duration> prepared = t.Between(JobStatus::PREPARING, JobStatus::STARTING);
    if (prepared) prepare[static_cast<int>(kind)].push_back(*prepared);
    if (auto running = t.first_seen.find(JobStatus::RUNNING); running != t.first_seen.end()) {
      to_running[static_cast<int>(kind)].push_back(absl::FromChrono(running->second - t.sent));
    }
  };
  for (int64_t round = 0; round < options.rounds; ++round) {
    std::vector<std::string> packages;
    for (const std::string& p : options.pip_packages) {
      packages.push_back(absl::StrReplaceAll(p, {{"{}", absl::StrCat(round)}}));
    }
    run(packages, Kind::kBuilt);
    for (int64_t i = 0; i < options.cached_jobs; ++i) run(packages, Kind::kCached);
    for (int64_t i = 0; i < options.cached_jobs; ++i) run({}, Kind::kNone);
  }
  result.load_after = LoadAverage();
  result.built = Summarize(prepare[0]);
  result.cached = Summarize(prepare[1]);
  result.none = Summarize(prepare[2]);
  result.built_to_running = Summarize(to_running[0]);
  result.cached_to_running = Summarize(to_running[1]);
  result.none_to_running = Summarize(to_running[2]);
  return result;
}

double BuildToCachedRatio(const PrepareBenchResult& r) {
  if (r.built.count == 0 || r.cached.count == 0 || r.cached.p50 <= absl::ZeroDuration()) return 0;
  return absl::FDivDuration(r.built.p50, r.cached.p50);
}

std::string PrepareResultText(const PrepareBenchResult& r, const PrepareBenchOptions& options) {
  std::string out = absl::StrCat(
      "prepare: ", options.rounds, " round(s) of 1 build + ", options.cached_jobs,
      " reuse(s) + ", options.cached_jobs, " job(s) without packages; image ", options.image,
      "; load ", r.load_before, " -> ", r.load_after, "\n",
      "  PREPARING -> STARTING (ms)\n",
      "    built   ", LatencyText(r.built), "\n",
      "    cached  ", LatencyText(r.cached), "\n",
      "    none    ", LatencyText(r.none), "\n",
      "  submit -> RUNNING (ms)\n",
      "    built   ", LatencyText(r.built_to_running), "\n",
      "    cached  ", LatencyText(r.cached_to_running), "\n",
      "    none    ", LatencyText(r.none_to_running), "\n",
      absl::StrFormat("  build / cached preparation (medians): %.1f x\n", BuildToCachedRatio(r)));
  if (r.unexpected > 0) {
    absl::StrAppend(&out, "  ", r.unexpected,
                    " job(s) built when a reuse was expected or the reverse (not counted as "
                    "expected); was the agent's cache warm?\n");
  }
  if (r.failed > 0) absl::StrAppend(&out, "  failed: ", r.failed, " (first: ", r.first_failure, ")\n");
  return out;
}

std::string PrepareResultJson(const PrepareBenchResult& r, const PrepareBenchOptions& options) {
  return absl::StrCat(
      "{\"benchmark\":\"prepare\",\"server\":", JsonString(options.server),
      ",\"image\":", JsonString(options.image), ",\"rounds\":", options.rounds,
      ",\"cached_jobs\":", options.cached_jobs, ",\"built\":", LatencyJson(r.built),
      ",\"cached\":", LatencyJson(r.cached), ",\"none\":", LatencyJson(r.none),
      ",\"built_to_running\":", LatencyJson(r.built_to_running),
      ",\"cached_to_running\":", LatencyJson(r.cached_to_running),
      ",\"none_to_running\":", LatencyJson(r.none_to_running),
      ",\"ratio\":", absl::StrFormat("%.3f", BuildToCachedRatio(r)),
      ",\"unexpected\":", r.unexpected, ",\"failed\":", r.failed,
      ",\"first_failure\":", JsonString(r.first_failure),
      ",\"load_before\":", JsonString(r.load_before), ",\"load_after\":", JsonString(r.load_after),
      "}");
}

}  // namespace drover::bench
