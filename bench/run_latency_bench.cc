#include "bench/run_latency_bench.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <thread>

#include "bench/channel.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "bench/container_baseline.h"
#include "bench/job_timeline.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"

namespace drover::bench {
namespace {

namespace fs = std::filesystem;
using SteadyClock = JobTimeline::Clock;
using v1::JobStatus;

// The states a successful job passes through, in order; the phases are the gaps between them.
constexpr JobStatus::State kPath[] = {JobStatus::QUEUED,  JobStatus::PREPARING,
                                      JobStatus::STARTING, JobStatus::RUNNING,
                                      JobStatus::FINALIZING, JobStatus::COMPLETED};

// drover-init as built next to drover-bench in the same build tree, or installed.
std::string DefaultInitPath() {
  std::error_code error;
  fs::path self = fs::read_symlink("/proc/self/exe", error);
  for (const char* candidate :
       {"../agent/launcher/drover-init", "drover-init", "../lib/drover/drover-init"}) {
    fs::path path = self.parent_path() / candidate;
    if (fs::exists(path, error)) return fs::weakly_canonical(path, error).string();
  }
  return "/usr/local/lib/drover/drover-init";
}

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

std::string PhaseName(JobStatus::State from, JobStatus::State to) {
  if (from == JobStatus::QUEUED) return absl::StrCat("ack->", JobStatus::State_Name(to));
  return absl::StrCat(JobStatus::State_Name(from), "->", JobStatus::State_Name(to));
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

  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(options.server, DroverdCredentials(options.server, options.ca_file));
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 absl::ToChronoMilliseconds(options.connect_timeout))) {
    return absl::UnavailableError(absl::StrCat(
        "cannot reach droverd at '", options.server, "' within ",
        absl::FormatDuration(options.connect_timeout),
        "; is it running, and is --server its --listen address?"));
  }
  std::unique_ptr<v1::JobService::Stub> jobs = v1::JobService::NewStub(channel);
  std::unique_ptr<v1::AdminService::Stub> admin = v1::AdminService::NewStub(channel);
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

  std::vector<absl::Duration> ack, running, completed;
  std::map<std::pair<int, int>, std::vector<absl::Duration>> phases;
  for (const JobTimeline& t : timelines) {
    JobTrace trace{t.job_id, t.wall_sent, {}};
    std::vector<std::pair<SteadyClock::time_point, std::string>> order;
    for (const auto& [state, at] : t.first_seen) {
      order.emplace_back(at, state == JobStatus::QUEUED ? "ACK" : JobStatus::State_Name(state));
    }
    std::sort(order.begin(), order.end());
    for (const auto& [at, name] : order) {
      trace.seen.emplace_back(name, t.wall_sent + absl::FromChrono(at - t.sent));
    }
    result.traces.push_back(std::move(trace));
    if (!t.completed) {
      if (result.failed++ == 0) result.first_failure = t.failure;
      continue;
    }
    ++result.jobs;
    ack.push_back(absl::FromChrono(t.acked - t.sent));
    if (auto it = t.first_seen.find(JobStatus::RUNNING); it != t.first_seen.end()) {
      running.push_back(absl::FromChrono(it->second - t.sent));
    }
    completed.push_back(absl::FromChrono(t.first_seen.at(JobStatus::COMPLETED) - t.sent));
    for (size_t i = 0; i + 1 < std::size(kPath); ++i) {
      auto from = t.first_seen.find(kPath[i]);
      auto to = t.first_seen.find(kPath[i + 1]);
      if (from == t.first_seen.end() || to == t.first_seen.end()) continue;
      phases[{kPath[i], kPath[i + 1]}].push_back(absl::FromChrono(to->second - from->second));
    }
  }
  result.submit_ack = Summarize(std::move(ack));
  result.to_running = Summarize(std::move(running));
  result.to_completed = Summarize(std::move(completed));
  for (size_t i = 0; i + 1 < std::size(kPath); ++i) {
    auto it = phases.find({kPath[i], kPath[i + 1]});
    if (it == phases.end()) continue;
    result.phases.push_back(
        {PhaseName(kPath[i], kPath[i + 1]), Summarize(std::move(it->second))});
  }
  std::vector<absl::Duration> total, create, start, wait, remove;
  for (const RuntimeRun& r : runtime_runs) {
    total.push_back(r.total);
    create.push_back(r.create);
    start.push_back(r.start);
    wait.push_back(r.wait);
    remove.push_back(r.remove);
  }
  result.runtime_total = Summarize(std::move(total));
  result.runtime_create = Summarize(std::move(create));
  result.runtime_start = Summarize(std::move(start));
  result.runtime_wait = Summarize(std::move(wait));
  result.runtime_delete = Summarize(std::move(remove));
  result.runc_same_config = Summarize(std::move(same_config_runs));
  result.runc_same_config_unhardened = Summarize(std::move(unhardened_runs));
  result.runc_minimal = Summarize(std::move(minimal_runs));
  return result;
}

absl::Duration MedianOverhead(const RunLatencyResult& r) {
  if (r.runtime_total.count == 0 || r.to_completed.count == 0) return absl::ZeroDuration();
  return r.to_completed.p50 - r.runtime_total.p50;
}

namespace {

std::string Ratio(absl::Duration part, absl::Duration whole) {
  if (whole <= absl::ZeroDuration()) return "-";
  return absl::StrFormat("%.2f", absl::FDivDuration(part, whole));
}

}  // namespace

std::string RunLatencyTracesJsonLines(const RunLatencyResult& r) {
  std::string out;
  for (const JobTrace& trace : r.traces) {
    absl::StrAppend(&out, "{\"job\":", JsonString(trace.job_id), ",\"sent\":",
                    JsonString(absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", trace.sent,
                                                absl::UTCTimeZone())));
    for (const auto& [name, at] : trace.seen) {
      absl::StrAppend(&out, ",", JsonString(absl::StrCat(name, "_ms")), ":",
                      Millis(at - trace.sent));
    }
    absl::StrAppend(&out, "}\n");
  }
  return out;
}

std::string RunLatencyResultText(const RunLatencyResult& r, const std::string& server) {
  std::string out = absl::StrFormat(
      "run-latency: %d completed jobs of `/bin/sh -c %s` (host image, 1 cpu, 512 MiB), "
      "concurrency %d, droverd %s\n",
      r.jobs, r.command, r.concurrency, server);
  absl::StrAppend(&out, "  load average   before ", r.load_before, ", after ", r.load_after,
                  "\n");
  if (r.failed > 0) {
    absl::StrAppendFormat(&out, "  FAILED jobs    %d (first: %s)\n", r.failed, r.first_failure);
  }
  absl::StrAppend(&out, "  drover (client-seen, from sending SubmitJob):\n");
  absl::StrAppend(&out, "    submit->ack        ", LatencyText(r.submit_ack), "\n");
  absl::StrAppend(&out, "    submit->RUNNING    ", LatencyText(r.to_running), "\n");
  absl::StrAppend(&out, "    submit->COMPLETED  ", LatencyText(r.to_completed), "\n");
  absl::StrAppend(&out, "  phases (first sight of each state on WatchJob):\n");
  for (const PhaseSummary& p : r.phases) {
    absl::StrAppendFormat(&out, "    %-22s %s\n", p.name, LatencyText(p.latency));
  }
  if (r.runtime_total.count == 0) {
    absl::StrAppend(&out, "  baseline       not measured (--baseline-runs 0)\n");
    return out;
  }
  absl::StrAppend(&out, "  baseline, same run, no Drover:\n");
  absl::StrAppend(&out, "    RuncRuntime total  ", LatencyText(r.runtime_total), "\n");
  absl::StrAppend(&out, "      create           ", LatencyText(r.runtime_create), "\n");
  absl::StrAppend(&out, "      start            ", LatencyText(r.runtime_start), "\n");
  absl::StrAppend(&out, "      wait             ", LatencyText(r.runtime_wait), "\n");
  absl::StrAppend(&out, "      delete           ", LatencyText(r.runtime_delete), "\n");
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
      Millis(overhead), Ratio(overhead, r.runtime_total.p50),
      Ratio(r.to_completed.p50, r.runtime_total.p50));
  absl::Duration over_run = r.to_completed.p50 - r.runc_same_config.p50;
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
  std::vector<std::string> phases;
  for (const PhaseSummary& p : r.phases) {
    phases.push_back(absl::StrCat(JsonString(p.name), ":", LatencyJson(p.latency)));
  }
  return absl::StrCat(
      "{\"benchmark\":\"run-latency\",\"server\":", JsonString(server),
      ",\"command\":", JsonString(r.command), ",\"concurrency\":", r.concurrency,
      ",\"jobs\":", r.jobs, ",\"failed\":", r.failed,
      ",\"first_failure\":", JsonString(r.first_failure),
      ",\"load_before\":", JsonString(r.load_before), ",\"load_after\":", JsonString(r.load_after),
      ",\"submit_ack\":", LatencyJson(r.submit_ack), ",\"to_running\":", LatencyJson(r.to_running),
      ",\"to_completed\":", LatencyJson(r.to_completed), ",\"phases\":{",
      absl::StrJoin(phases, ","), "}", ",\"baseline\":{\"runtime\":", LatencyJson(r.runtime_total),
      ",\"runtime_create\":", LatencyJson(r.runtime_create),
      ",\"runtime_start\":", LatencyJson(r.runtime_start),
      ",\"runtime_wait\":", LatencyJson(r.runtime_wait),
      ",\"runtime_delete\":", LatencyJson(r.runtime_delete),
      ",\"runc_run_same_config\":", LatencyJson(r.runc_same_config),
      ",\"runc_run_same_config_unhardened\":", LatencyJson(r.runc_same_config_unhardened),
      ",\"runc_run_minimal\":", LatencyJson(r.runc_minimal), "}",
      ",\"overhead_p50_ms\":", Millis(MedianOverhead(r)),
      ",\"overhead_over_runc_run_p50_ms\":",
      Millis(r.runc_same_config.count > 0 ? r.to_completed.p50 - r.runc_same_config.p50
                                          : absl::ZeroDuration()),
      "}");
}

}  // namespace drover::bench
