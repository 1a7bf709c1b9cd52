#include "bench/run_latency_bench.h"

#include <grpcpp/client_context.h>
#include <grpcpp/security/credentials.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <thread>

#include "bench/channel.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/container_baseline.h"
#include "bench/job_report.h"
#include "bench/job_timeline.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"

namespace drover::bench {
namespace {


std::string UniquePrefix() {
  std::random_device random;
  return absl::StrFormat("bench-run-%08x%08x", random(), random());
}

// Submits one job and watches it to its end.
JobTimeline RunJob(v1::JobService::Stub& jobs, const RunLatencyOptions& options,
                const std::string& key) {
  v1::SubmitJobRequest request;
  v1::JobSpec* spec = request.mutable_spec();
  spec->set_name("bench-run-latency");
  spec->set_entry_script("bin/sh");
  spec->add_arguments()->set_value("-c");
  spec->add_arguments()->set_value(options.command);
  spec->mutable_resources()->set_cpus(1);
  spec->mutable_resources()->set_memory_mib(512);
  spec->set_idempotency_key(key);
  return SubmitAndWatch(jobs, request, options.job_timeout);
}

}  // namespace

absl::StatusOr<RunLatencyResult> RunRunLatencyBench(const RunLatencyOptions& options) {
  if (options.server.empty()) {
    return absl::InvalidArgumentError("--server: required; pass droverd's HOST:PORT");
  }
  if (options.jobs < 1 || options.jobs > 100000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--jobs: ", options.jobs, " is out of range; use 1 to 100000"));
  }
  if (options.warmup_jobs < 0 || options.concurrency < 1 || options.concurrency > 1000) {
    return absl::InvalidArgumentError(
        "--warmup must be 0 or more and --concurrency 1 to 1000");
  }
  if (options.baseline_runs < -1) {
    return absl::InvalidArgumentError(
        "--baseline-runs: use -1 (as many as --jobs), 0 (none) or a count");
  }
  const int64_t baseline_runs = options.baseline_runs < 0 ? options.jobs : options.baseline_runs;

  std::unique_ptr<ContainerBaseline> baseline;
  if (baseline_runs > 0) {
    std::string init = options.init_binary.empty() ? DefaultInitPath() : options.init_binary;
    std::string dir = absl::StrCat(options.baseline_root, "/drover-bench-runc-", getpid());
    absl::StatusOr<std::unique_ptr<ContainerBaseline>> opened = ContainerBaseline::Open(
        {.work_dir = dir,
         .runc_path = options.runc_path,
         .init_binary = init,
         .busybox = options.busybox,
         .command = {"/bin/sh", "-c", options.command},
         .cpus = 1,
         .memory_mib = 512});
    if (!opened.ok()) return opened.status();
    baseline = *std::move(opened);
  }

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      ConnectDroverd(options.server, options.ca_file, options.connect_timeout);
  if (!channel.ok()) return channel.status();
  std::unique_ptr<v1::JobService::Stub> jobs = v1::JobService::NewStub(*channel);
  std::unique_ptr<v1::AdminService::Stub> admin = v1::AdminService::NewStub(*channel);
  if (absl::Status s = AwaitReadyNodes(*admin, 1, options.connect_timeout, options.server, 1, 512); !s.ok()) {
    return s;
  }

  RunLatencyResult result;
  result.concurrency = options.concurrency;
  result.command = options.command;
  result.load_before = LoadAverage();
  const std::string prefix = UniquePrefix();
  std::vector<JobTimeline> timelines;  // measured jobs only
  std::vector<RuntimeRun> runtime_runs;
  std::vector<absl::Duration> same_config_runs;
  std::vector<absl::Duration> unhardened_runs;
  std::vector<absl::Duration> minimal_runs;

  auto run_baseline = [&](bool measured) -> absl::Status {
    absl::StatusOr<RuntimeRun> runtime = baseline->RunRuntime();
    if (!runtime.ok()) return runtime.status();
    absl::StatusOr<absl::Duration> same = baseline->RunRuncSameConfig();
    if (!same.ok()) return same.status();
    absl::StatusOr<absl::Duration> unhardened = baseline->RunRuncSameConfigUnhardened();
    if (!unhardened.ok()) return unhardened.status();
    if (measured) {
      runtime_runs.push_back(*runtime);
      same_config_runs.push_back(*same);
      unhardened_runs.push_back(*unhardened);
    }
    if (baseline->has_minimal()) {
      absl::StatusOr<absl::Duration> minimal = baseline->RunRuncMinimal();
      if (!minimal.ok()) return minimal.status();
      if (measured) minimal_runs.push_back(*minimal);
    }
    return absl::OkStatus();
  };

  const int64_t job_rounds = options.warmup_jobs + options.jobs;
  const int64_t baseline_rounds = baseline_runs > 0 ? options.warmup_jobs + baseline_runs : 0;
  if (options.concurrency == 1) {
    // Interleaved: job i, then baseline i, so that both see the same machine.
    for (int64_t round = 0; round < std::max(job_rounds, baseline_rounds); ++round) {
      bool measured = round >= options.warmup_jobs;
      if (round < job_rounds) {
        JobTimeline t = RunJob(*jobs, options, absl::StrCat(prefix, "-", round));
        if (measured) timelines.push_back(std::move(t));
      }
      if (round < baseline_rounds) {
        if (absl::Status s = run_baseline(measured); !s.ok()) return s;
      }
    }
  } else {
    std::atomic<int64_t> next{0};
    absl::Mutex mu;
    std::vector<std::thread> clients;
    for (int64_t c = 0; c < options.concurrency; ++c) {
      clients.emplace_back([&] {
        for (int64_t i = next++; i < job_rounds; i = next++) {
          JobTimeline t = RunJob(*jobs, options, absl::StrCat(prefix, "-", i));
          if (i < options.warmup_jobs) continue;
          absl::MutexLock lock(&mu);
          timelines.push_back(std::move(t));
        }
      });
    }
    for (std::thread& client : clients) client.join();
    for (int64_t round = 0; round < baseline_rounds; ++round) {
      if (absl::Status s = run_baseline(round >= options.warmup_jobs); !s.ok()) return s;
    }
  }
  result.load_after = LoadAverage();

  std::vector<const JobTimeline*> measured;
  for (const JobTimeline& t : timelines) {
    measured.push_back(&t);
    result.traces.push_back(TraceOf(t));
  }
  result.drover = SummarizeJobs(measured);
  result.runtime = SummarizeRuntimeRuns(runtime_runs);
  result.runc_same_config = Summarize(std::move(same_config_runs));
  result.runc_same_config_unhardened = Summarize(std::move(unhardened_runs));
  result.runc_minimal = Summarize(std::move(minimal_runs));
  return result;
}

absl::Duration MedianOverhead(const RunLatencyResult& r) {
  if (r.runtime.total.count == 0 || r.drover.to_completed.count == 0) {
    return absl::ZeroDuration();
  }
  return r.drover.to_completed.p50 - r.runtime.total.p50;
}

std::string RunLatencyResultText(const RunLatencyResult& r, const std::string& server) {
  std::string out = absl::StrFormat(
      "run-latency: %d completed jobs of `/bin/sh -c %s` (host image, 1 cpu, 512 MiB), "
      "concurrency %d, droverd %s\n",
      r.drover.jobs, r.command, r.concurrency, server);
  absl::StrAppend(&out, "  load average   before ", r.load_before, ", after ", r.load_after,
                  "\n");
  absl::StrAppend(&out, JobLatenciesText(r.drover));
  if (r.runtime.total.count == 0) {
    absl::StrAppend(&out, "  baseline       not measured (--baseline-runs 0)\n");
    return out;
  }
  absl::StrAppend(&out, "  baseline, same run, no Drover:\n");
  absl::StrAppend(&out, RuntimeLatenciesText(r.runtime));
  absl::StrAppend(&out, "    runc run, same config  ", LatencyText(r.runc_same_config), "\n");
  absl::StrAppend(&out, "    runc run, same config without userns and seccomp  ",
                  LatencyText(r.runc_same_config_unhardened), "\n");
  absl::Duration hardening = r.runc_same_config.p50 - r.runc_same_config_unhardened.p50;
  absl::StrAppendFormat(&out,
                        "    user namespace + seccomp cost: %s ms median (%s x the run without)\n",
                        Millis(hardening),
                        Ratio(r.runc_same_config.p50, r.runc_same_config_unhardened.p50));
  if (r.runc_minimal.count > 0) {
    absl::StrAppend(&out, "    runc run, minimal      ", LatencyText(r.runc_minimal), "\n");
  }
  absl::Duration overhead = MedianOverhead(r);
  absl::StrAppendFormat(
      &out,
      "  overhead       median submit->COMPLETED - median RuncRuntime run = %s ms "
      "(%s x the bare run; submit->COMPLETED is %s x it)\n",
      Millis(overhead), Ratio(overhead, r.runtime.total.p50),
      Ratio(r.drover.to_completed.p50, r.runtime.total.p50));
  absl::Duration over_run = r.drover.to_completed.p50 - r.runc_same_config.p50;
  absl::StrAppendFormat(&out,
                        "                 median submit->COMPLETED - median `runc run` of the "
                        "same config = %s ms (%s x that run)\n",
                        Millis(over_run), Ratio(over_run, r.runc_same_config.p50));
  absl::StrAppendFormat(&out,
                        "  goal (issue 3) overhead < 15 ms median: over RuncRuntime %s; over "
                        "`runc run` %s\n",
                        overhead < absl::Milliseconds(15) ? "met" : "NOT met",
                        over_run < absl::Milliseconds(15) ? "met" : "NOT met");
  return out;
}

std::string RunLatencyResultJson(const RunLatencyResult& r, const std::string& server) {
  return absl::StrCat(
      "{\"benchmark\":\"run-latency\",\"server\":", JsonString(server),
      ",\"command\":", JsonString(r.command), ",\"concurrency\":", r.concurrency, ",",
      JobLatenciesJsonFields(r.drover), ",\"load_before\":", JsonString(r.load_before),
      ",\"load_after\":", JsonString(r.load_after), ",\"baseline\":{",
      RuntimeLatenciesJsonFields(r.runtime),
      ",\"runc_run_same_config\":", LatencyJson(r.runc_same_config),
      ",\"runc_run_same_config_unhardened\":", LatencyJson(r.runc_same_config_unhardened),
      ",\"runc_run_minimal\":", LatencyJson(r.runc_minimal), "}",
      ",\"overhead_p50_ms\":", Millis(MedianOverhead(r)),
      ",\"overhead_over_runc_run_p50_ms\":",
      Millis(r.runc_same_config.count > 0 ? r.drover.to_completed.p50 - r.runc_same_config.p50
                                          : absl::ZeroDuration()),
      "}");
}

}  // namespace drover::bench
