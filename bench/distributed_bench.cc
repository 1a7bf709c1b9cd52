#include "bench/distributed_bench.h"

#include <grpcpp/client_context.h>
#include <grpcpp/security/credentials.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>

#include "bench/channel.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "bench/container_baseline.h"
#include "bench/job_report.h"
#include "bench/job_timeline.h"
#include "common/safe_open.h"
#include "common/status_macros.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"

namespace drover::bench {
namespace {

namespace fs = std::filesystem;
using SteadyClock = JobTimeline::Clock;
using v1::JobStatus;

// A job's life as the client saw it, with the times droverd recorded (wall clock; unset:
// absl::InfinitePast()).
struct Timeline : JobTimeline {
  absl::Time start_time = absl::InfinitePast();
  absl::Time last_rank_end = absl::InfinitePast();
  absl::Time end_time = absl::InfinitePast();
};

std::string UniquePrefix() {
  std::random_device random;
  return absl::StrFormat("bench-dist-%08x%08x", random(), random());
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

v1::JobSpec::DistributedBackend Backend(const std::string& name) {
  return name == "pytorch" ? v1::JobSpec::PYTORCH : v1::JobSpec::MPI;
}

Timeline RunJob(v1::JobService::Stub& jobs, const DistributedLatencyOptions& options,
                const std::string& key) {
  v1::SubmitJobRequest request;
  v1::JobSpec* spec = request.mutable_spec();
  spec->set_name("bench-distributed");
  // No snapshot: the entry script is a path in the image (here the host's OS), without the
  // leading slash.
  spec->set_entry_script(options.program[0].substr(1));
  for (size_t i = 1; i < options.program.size(); ++i) {
    spec->add_arguments()->set_value(options.program[i]);
  }
  spec->mutable_environment()->set_image("host");
  spec->set_node_count(static_cast<int32_t>(options.nodes));
  spec->set_process_count_per_node(static_cast<int32_t>(options.processes_per_node));
  spec->set_distributed_backend(Backend(options.backend));
  spec->mutable_resources()->set_cpus(options.cpus);
  spec->mutable_resources()->set_memory_mib(options.memory_mib);
  spec->set_idempotency_key(key);
  Timeline t;
  static_cast<JobTimeline&>(t) = SubmitAndWatch(jobs, request, options.job_timeout);
  t.start_time = FromTimestamp(t.last.start_time());
  t.end_time = FromTimestamp(t.last.end_time());
  for (const v1::RankExit& e : t.last.exits()) {
    t.last_rank_end = std::max(t.last_rank_end, FromTimestamp(e.end_time()));
  }
  return t;
}

// Runs the launcher with the program once, output to `log_path` (truncated), and times it.
// This process is a child subreaper (RuncRuntime::Open): whatever the launcher leaves
// behind is reaped here, when no baseline container is alive.
absl::StatusOr<absl::Duration> RunLauncher(const std::vector<std::string>& argv,
                                           const std::string& log_path) {
  SteadyClock::time_point start = SteadyClock::now();
  DROVER_ASSIGN_OR_RETURN(int status, Spawn(argv, log_path, /*truncate=*/true));
  absl::Duration took = absl::FromChrono(SteadyClock::now() - start);
  int orphan = 0;
  while (waitpid(-1, &orphan, WNOHANG) > 0) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string out(absl::StripAsciiWhitespace(ReadSmallFile(log_path, 1 << 20).value_or("")));
    if (out.size() > 1500) out = out.substr(out.size() - 1500);
    return absl::UnavailableError(absl::StrCat("the launcher baseline failed (wait status ",
                                               status, "): ", out));
  }
  return took;
}

std::string Shorten(std::string text, size_t max) {
  for (char& c : text) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  if (text.size() > max) text = text.substr(0, max - 3) + "...";
  return text;
}

}  // namespace

absl::StatusOr<DistributedLatencyResult> RunDistributedLatencyBench(
    const DistributedLatencyOptions& options) {
  if (options.server.empty()) {
    return absl::InvalidArgumentError("--server: required; pass droverd's HOST:PORT");
  }
  if (options.jobs < 1 || options.jobs > 10000 || options.warmup_jobs < 0) {
    return absl::InvalidArgumentError("--jobs must be 1 to 10000 and --warmup 0 or more");
  }
  if (options.nodes < 1 || options.nodes > 1024 || options.processes_per_node < 1 ||
      options.processes_per_node > 256) {
    return absl::InvalidArgumentError(
        "--nodes must be 1 to 1024 and --processes-per-node 1 to 256");
  }
  if (options.backend != "mpi" && options.backend != "pytorch") {
    return absl::InvalidArgumentError(
        absl::StrCat("--backend: '", options.backend, "' is not mpi or pytorch"));
  }
  if (options.program.empty() || options.program[0].size() < 2 || options.program[0][0] != '/') {
    return absl::InvalidArgumentError(
        "the program must be an absolute path on the nodes, after `--` (e.g. -- /bin/true)");
  }
  std::vector<std::string> launcher =
      absl::StrSplit(options.baseline_launcher, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
  launcher.insert(launcher.end(), options.program.begin(), options.program.end());
  const bool has_launcher = !options.baseline_launcher.empty();

  const std::string scratch =
      absl::StrCat(options.baseline_root, "/drover-bench-dist-", getpid());
  std::unique_ptr<ContainerBaseline> baseline;
  if (options.container_baselines) {
    std::string init = options.init_binary.empty() ? DefaultInitPath() : options.init_binary;
    absl::StatusOr<std::unique_ptr<ContainerBaseline>> opened =
        ContainerBaseline::Open({.work_dir = scratch + "/runc",
                                 .runc_path = options.runc_path,
                                 .init_binary = init,
                                 .busybox = options.busybox,
                                 .command = {"/bin/true"},
                                 .cpus = options.cpus,
                                 .memory_mib = options.memory_mib});
    if (!opened.ok()) return opened.status();
    baseline = *std::move(opened);
  }
  std::error_code fs_error;
  fs::create_directories(scratch, fs_error);
  const std::string launcher_log = scratch + "/launcher.log";

  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      ConnectDroverd(options.server, options.ca_file, options.connect_timeout);
  if (!channel.ok()) return channel.status();
  std::unique_ptr<v1::JobService::Stub> jobs = v1::JobService::NewStub(*channel);
  std::unique_ptr<v1::AdminService::Stub> admin = v1::AdminService::NewStub(*channel);
  if (absl::Status s = AwaitReadyNodes(*admin, options.nodes, options.connect_timeout, options.server);
      !s.ok()) {
    return s;
  }

  DistributedLatencyResult result;
  result.nodes = options.nodes;
  result.processes_per_node = options.processes_per_node;
  result.backend = options.backend;
  result.program = Shorten(absl::StrJoin(options.program, " "), 60);
  result.launcher = has_launcher ? Shorten(absl::StrJoin(launcher, " "), 400) : "";
  result.load_before = LoadAverage();
  const std::string prefix = UniquePrefix();
  std::vector<Timeline> timelines;
  std::vector<absl::Duration> launcher_runs, same_runs, minimal_runs;
  std::vector<RuntimeRun> runtime_runs;

  for (int64_t round = 0; round < options.warmup_jobs + options.jobs; ++round) {
    bool measured = round >= options.warmup_jobs;
    Timeline t = RunJob(*jobs, options, absl::StrCat(prefix, "-", round));
    if (measured) timelines.push_back(std::move(t));
    if (has_launcher) {
      absl::StatusOr<absl::Duration> took = RunLauncher(launcher, launcher_log);
      if (!took.ok()) return took.status();
      if (measured) launcher_runs.push_back(*took);
    }
    if (baseline != nullptr) {
      absl::StatusOr<RuntimeRun> runtime = baseline->RunRuntime();
      if (!runtime.ok()) return runtime.status();
      absl::StatusOr<absl::Duration> same = baseline->RunRuncSameConfig();
      if (!same.ok()) return same.status();
      if (measured) {
        runtime_runs.push_back(*runtime);
        same_runs.push_back(*same);
      }
      if (baseline->has_minimal()) {
        absl::StatusOr<absl::Duration> minimal = baseline->RunRuncMinimal();
        if (!minimal.ok()) return minimal.status();
        if (measured) minimal_runs.push_back(*minimal);
      }
    }
  }
  result.load_after = LoadAverage();
  baseline.reset();
  fs::remove(launcher_log, fs_error);
  fs::remove(scratch, fs_error);

  std::vector<const JobTimeline*> measured;
  std::vector<absl::Duration> tail;
  for (const Timeline& t : timelines) {
    measured.push_back(&t);
    result.traces.push_back(TraceOf(t, {{"start_time", t.start_time},
                                        {"last_rank_end", t.last_rank_end},
                                        {"end_time", t.end_time}}));
    if (t.completed && t.last_rank_end != absl::InfinitePast()) {
      absl::Duration to_completed =
          absl::FromChrono(t.first_seen.at(JobStatus::COMPLETED) - t.sent);
      tail.push_back(t.wall_sent + to_completed - t.last_rank_end);
    }
  }
  result.drover = SummarizeJobs(measured);
  result.last_rank_end_to_completed = Summarize(std::move(tail));
  result.launcher_run = Summarize(std::move(launcher_runs));
  result.runtime = SummarizeRuntimeRuns(runtime_runs);
  result.runc_same_config = Summarize(std::move(same_runs));
  result.runc_minimal = Summarize(std::move(minimal_runs));
  return result;
}

std::string DistributedLatencyResultText(const DistributedLatencyResult& r,
                                         const std::string& server) {
  std::string out = absl::StrFormat(
      "distributed-latency: %d completed jobs of `%s`, %d nodes x %d processes, backend %s, "
      "droverd %s\n",
      r.drover.jobs, r.program, r.nodes, r.processes_per_node, r.backend, server);
  absl::StrAppend(&out, "  load average   before ", r.load_before, ", after ", r.load_after,
                  "\n");
  absl::StrAppend(&out, JobLatenciesText(
                            r.drover, absl::StrCat("    last rank end->COMPLETED ",
                                                   LatencyText(r.last_rank_end_to_completed),
                                                   "\n")));
  if (r.launcher_run.count > 0) {
    absl::StrAppend(&out, "  baseline, bare launcher: ", r.launcher, "\n");
    absl::StrAppend(&out, "    launcher run       ", LatencyText(r.launcher_run), "\n");
  }
  if (r.runtime.total.count > 0) {
    absl::StrAppend(&out, "  baseline, one /bin/true container:\n");
    absl::StrAppend(&out, RuntimeLatenciesText(r.runtime));
    absl::StrAppend(&out, "    runc run, same config  ", LatencyText(r.runc_same_config), "\n");
    if (r.runc_minimal.count > 0) {
      absl::StrAppend(&out, "    runc run, minimal      ", LatencyText(r.runc_minimal), "\n");
    }
  }
  if (r.launcher_run.count > 0 && r.drover.to_completed.count > 0) {
    absl::Duration over = r.drover.to_completed.p50 - r.launcher_run.p50;
    absl::StrAppendFormat(&out,
                          "  overhead       median submit->COMPLETED - median launcher run = %s ms "
                          "(%s x the launcher run)\n",
                          Millis(over), Ratio(over, r.launcher_run.p50));
    if (r.runc_same_config.count > 0) {
      absl::Duration start = r.runc_same_config.p50;
      absl::StrAppendFormat(
          &out,
          "                 minus one `runc run` (%s ms) = %s ms; goal (issue 4) < 100 ms plus "
          "container start: %s\n",
          Millis(start), Millis(over - start),
          over - start < absl::Milliseconds(100) ? "met" : "NOT met");
    }
  }
  return out;
}

std::string DistributedLatencyResultJson(const DistributedLatencyResult& r,
                                         const std::string& server) {
  return absl::StrCat(
      "{\"benchmark\":\"distributed-latency\",\"server\":", JsonString(server),
      ",\"program\":", JsonString(r.program), ",\"nodes\":", r.nodes,
      ",\"processes_per_node\":", r.processes_per_node, ",\"backend\":", JsonString(r.backend),
      ",", JobLatenciesJsonFields(r.drover), ",\"load_before\":", JsonString(r.load_before),
      ",\"load_after\":", JsonString(r.load_after),
      ",\"last_rank_end_to_completed\":", LatencyJson(r.last_rank_end_to_completed),
      ",\"baseline\":{\"launcher\":", JsonString(r.launcher),
      ",\"launcher_run\":", LatencyJson(r.launcher_run), ",",
      RuntimeLatenciesJsonFields(r.runtime),
      ",\"runc_run_same_config\":", LatencyJson(r.runc_same_config),
      ",\"runc_run_minimal\":", LatencyJson(r.runc_minimal), "}}");
}

}  // namespace drover::bench
