#include "bench/distributed_bench.h"

#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <sstream>

#include "bench/channel.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "bench/container_baseline.h"
#include "bench/job_timeline.h"
#include "common/flags.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"

extern "C" char** environ;

namespace drover::bench {
namespace {

namespace fs = std::filesystem;
using SteadyClock = JobTimeline::Clock;
using v1::JobStatus;

constexpr JobStatus::State kPath[] = {JobStatus::QUEUED,  JobStatus::PREPARING,
                                      JobStatus::STARTING, JobStatus::RUNNING,
                                      JobStatus::FINALIZING, JobStatus::COMPLETED};

// A job's life as the client saw it, with the times droverd recorded (wall clock; unset:
// absl::InfinitePast()).
struct Timeline : JobTimeline {
  absl::Time start_time = absl::InfinitePast();
  absl::Time last_rank_end = absl::InfinitePast();
  absl::Time end_time = absl::InfinitePast();
};

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

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Runs the launcher with the program once, output to `log_path` (truncated), and times it.
// This process is a child subreaper (RuncRuntime::Open): whatever the launcher leaves
// behind is reaped here, when no baseline container is alive.
absl::StatusOr<absl::Duration> RunLauncher(const std::vector<std::string>& argv,
                                           const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  SteadyClock::time_point start = SteadyClock::now();
  int error = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot run the launcher ", argv[0], ": ", strerror(error)));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return absl::InternalError(absl::StrCat("waitpid ", argv[0], ": ", strerror(errno)));
    }
  }
  absl::Duration took = absl::FromChrono(SteadyClock::now() - start);
  int orphan = 0;
  while (waitpid(-1, &orphan, WNOHANG) > 0) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string out(absl::StripAsciiWhitespace(ReadText(log_path)));
    if (out.size() > 1500) out = out.substr(out.size() - 1500);
    return absl::UnavailableError(absl::StrCat("the launcher baseline failed (wait status ",
                                               status, "): ", out));
  }
  return took;
}

std::string PhaseName(JobStatus::State from, JobStatus::State to) {
  if (from == JobStatus::QUEUED) return absl::StrCat("ack->", JobStatus::State_Name(to));
  return absl::StrCat(JobStatus::State_Name(from), "->", JobStatus::State_Name(to));
}

std::string Shorten(std::string text, size_t max) {
  for (char& c : text) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  if (text.size() > max) text = text.substr(0, max - 3) + "...";
  return text;
}

std::string Ratio(absl::Duration part, absl::Duration whole) {
  if (whole <= absl::ZeroDuration()) return "-";
  return absl::StrFormat("%.2f", absl::FDivDuration(part, whole));
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

  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(options.server, DroverdCredentials(options.server, options.ca_file));
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 absl::ToChronoMilliseconds(options.connect_timeout))) {
    return absl::UnavailableError(absl::StrCat("cannot reach droverd at '", options.server,
                                               "' within ",
                                               absl::FormatDuration(options.connect_timeout)));
  }
  std::unique_ptr<v1::JobService::Stub> jobs = v1::JobService::NewStub(channel);
  std::unique_ptr<v1::AdminService::Stub> admin = v1::AdminService::NewStub(channel);
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

  std::vector<absl::Duration> ack, running, completed, tail;
  std::map<std::pair<int, int>, std::vector<absl::Duration>> phases;
  for (const Timeline& t : timelines) {
    DistributedJobTrace trace{t.job_id, t.wall_sent, {}};
    std::vector<std::pair<absl::Time, std::string>> order;
    for (const auto& [state, at] : t.first_seen) {
      order.emplace_back(t.wall_sent + absl::FromChrono(at - t.sent),
                         state == JobStatus::QUEUED ? "ACK" : JobStatus::State_Name(state));
    }
    if (t.start_time != absl::InfinitePast()) order.emplace_back(t.start_time, "start_time");
    if (t.last_rank_end != absl::InfinitePast()) {
      order.emplace_back(t.last_rank_end, "last_rank_end");
    }
    if (t.end_time != absl::InfinitePast()) order.emplace_back(t.end_time, "end_time");
    std::sort(order.begin(), order.end());
    for (const auto& [at, name] : order) trace.seen.emplace_back(name, at);
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
    SteadyClock::time_point done = t.first_seen.at(JobStatus::COMPLETED);
    completed.push_back(absl::FromChrono(done - t.sent));
    if (t.last_rank_end != absl::InfinitePast()) {
      tail.push_back(t.wall_sent + absl::FromChrono(done - t.sent) - t.last_rank_end);
    }
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
  result.last_rank_end_to_completed = Summarize(std::move(tail));
  for (size_t i = 0; i + 1 < std::size(kPath); ++i) {
    auto it = phases.find({kPath[i], kPath[i + 1]});
    if (it == phases.end()) continue;
    result.phases.push_back({PhaseName(kPath[i], kPath[i + 1]), Summarize(std::move(it->second))});
  }
  std::vector<absl::Duration> total, create, start, remove;
  for (const RuntimeRun& r : runtime_runs) {
    total.push_back(r.total);
    create.push_back(r.create);
    start.push_back(r.start);
    remove.push_back(r.remove);
  }
  result.launcher_run = Summarize(std::move(launcher_runs));
  result.runtime_total = Summarize(std::move(total));
  result.runtime_create = Summarize(std::move(create));
  result.runtime_start = Summarize(std::move(start));
  result.runtime_delete = Summarize(std::move(remove));
  result.runc_same_config = Summarize(std::move(same_runs));
  result.runc_minimal = Summarize(std::move(minimal_runs));
  return result;
}

std::string DistributedLatencyTracesJsonLines(const DistributedLatencyResult& r) {
  std::string out;
  for (const DistributedJobTrace& trace : r.traces) {
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

std::string DistributedLatencyResultText(const DistributedLatencyResult& r,
                                         const std::string& server) {
  std::string out = absl::StrFormat(
      "distributed-latency: %d completed jobs of `%s`, %d nodes x %d processes, backend %s, "
      "droverd %s\n",
      r.jobs, r.program, r.nodes, r.processes_per_node, r.backend, server);
  absl::StrAppend(&out, "  load average   before ", r.load_before, ", after ", r.load_after,
                  "\n");
  if (r.failed > 0) {
    absl::StrAppendFormat(&out, "  FAILED jobs    %d (first: %s)\n", r.failed, r.first_failure);
  }
  absl::StrAppend(&out, "  drover (client-seen, from sending SubmitJob):\n");
  absl::StrAppend(&out, "    submit->ack        ", LatencyText(r.submit_ack), "\n");
  absl::StrAppend(&out, "    submit->RUNNING    ", LatencyText(r.to_running), "\n");
  absl::StrAppend(&out, "    submit->COMPLETED  ", LatencyText(r.to_completed), "\n");
  absl::StrAppend(&out, "    last rank end->COMPLETED ", LatencyText(r.last_rank_end_to_completed),
                  "\n");
  absl::StrAppend(&out, "  phases (first sight of each state on WatchJob):\n");
  for (const DistributedPhase& p : r.phases) {
    absl::StrAppendFormat(&out, "    %-22s %s\n", p.name, LatencyText(p.latency));
  }
  if (r.launcher_run.count > 0) {
    absl::StrAppend(&out, "  baseline, bare launcher: ", r.launcher, "\n");
    absl::StrAppend(&out, "    launcher run       ", LatencyText(r.launcher_run), "\n");
  }
  if (r.runtime_total.count > 0) {
    absl::StrAppend(&out, "  baseline, one /bin/true container:\n");
    absl::StrAppend(&out, "    RuncRuntime total  ", LatencyText(r.runtime_total), "\n");
    absl::StrAppend(&out, "      create           ", LatencyText(r.runtime_create), "\n");
    absl::StrAppend(&out, "      start            ", LatencyText(r.runtime_start), "\n");
    absl::StrAppend(&out, "      delete           ", LatencyText(r.runtime_delete), "\n");
    absl::StrAppend(&out, "    runc run, same config  ", LatencyText(r.runc_same_config), "\n");
    if (r.runc_minimal.count > 0) {
      absl::StrAppend(&out, "    runc run, minimal      ", LatencyText(r.runc_minimal), "\n");
    }
  }
  if (r.launcher_run.count > 0 && r.to_completed.count > 0) {
    absl::Duration over = r.to_completed.p50 - r.launcher_run.p50;
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
  std::vector<std::string> phases;
  for (const DistributedPhase& p : r.phases) {
    phases.push_back(absl::StrCat(JsonString(p.name), ":", LatencyJson(p.latency)));
  }
  return absl::StrCat(
      "{\"benchmark\":\"distributed-latency\",\"server\":", JsonString(server),
      ",\"program\":", JsonString(r.program), ",\"nodes\":", r.nodes,
      ",\"processes_per_node\":", r.processes_per_node, ",\"backend\":", JsonString(r.backend),
      ",\"jobs\":", r.jobs, ",\"failed\":", r.failed,
      ",\"first_failure\":", JsonString(r.first_failure),
      ",\"load_before\":", JsonString(r.load_before), ",\"load_after\":", JsonString(r.load_after),
      ",\"submit_ack\":", LatencyJson(r.submit_ack), ",\"to_running\":", LatencyJson(r.to_running),
      ",\"to_completed\":", LatencyJson(r.to_completed),
      ",\"last_rank_end_to_completed\":", LatencyJson(r.last_rank_end_to_completed),
      ",\"phases\":{", absl::StrJoin(phases, ","), "}",
      ",\"baseline\":{\"launcher\":", JsonString(r.launcher),
      ",\"launcher_run\":", LatencyJson(r.launcher_run),
      ",\"runtime\":", LatencyJson(r.runtime_total),
      ",\"runtime_create\":", LatencyJson(r.runtime_create),
      ",\"runtime_start\":", LatencyJson(r.runtime_start),
      ",\"runtime_delete\":", LatencyJson(r.runtime_delete),
      ",\"runc_run_same_config\":", LatencyJson(r.runc_same_config),
      ",\"runc_run_minimal\":", LatencyJson(r.runc_minimal), "}}");
}

int DistributedLatencyCommand(const std::vector<std::string>& args) {
  DistributedLatencyOptions options;
  std::string output = "text";
  std::string traces_path;
  FlagSet flags(
      "drover-bench distributed-latency --server HOST:PORT [flags] -- PROGRAM [ARGS...]",
      "Submits distributed jobs (--nodes x --processes-per-node processes of PROGRAM ARGS in\n"
      "the host image, --backend mpi or pytorch) one after another to a droverd that has\n"
      "enough agents, watches each to its end, and prints submit->COMPLETED percentiles with\n"
      "the phases in between. In the same run, after each job, it times the same program\n"
      "launched without Drover by --baseline-launcher (e.g. a bare `mpirun` across the same\n"
      "hosts) and one trivial container (RuncRuntime, `runc run` of the agent's config, and\n"
      "of a minimal busybox bundle), and reports Drover's median overhead over the bare\n"
      "launch, with and without one container start. The container baselines need root and\n"
      "runc (--container-baselines=false skips them). PROGRAM must be an absolute path on\n"
      "the nodes (default /bin/true).\n"
      "\n"
      "Example:\n"
      "  drover-bench distributed-latency --server 10.77.0.1:7070 --jobs 20 \\\n"
      "      --baseline-launcher 'mpirun --hostfile hosts -np 4 --map-by ppr:2:node' -- /bin/true");
  flags.String("server", &options.server, "droverd's address", "HOST:PORT");
  flags.Int("jobs,n", &options.jobs, "Jobs (rounds) measured");
  flags.Int("warmup", &options.warmup_jobs, "Rounds run first, not counted");
  flags.Int("nodes", &options.nodes, "node_count of each job");
  flags.Int("processes-per-node", &options.processes_per_node,
            "process_count_per_node of each job");
  flags.String("backend", &options.backend, "mpi or pytorch", "NAME");
  flags.Double("cpus", &options.cpus, "Cpus each node gives the job");
  flags.Int("memory-mib", &options.memory_mib, "MiB each node gives the job", "MIB");
  auto duration_flag = [&flags](const char* name, absl::Duration* target, const char* help) {
    std::string flag(name);
    flags.Custom(
        name,
        [target, flag](absl::string_view text) {
          if (!absl::ParseDuration(text, target)) {
            return absl::InvalidArgumentError(
                absl::StrCat("--", flag, ": '", text, "' is not a duration; write it like 60s"));
          }
          return absl::OkStatus();
        },
        help, "DURATION", absl::FormatDuration(*target));
  };
  duration_flag("job-timeout", &options.job_timeout, "Deadline of one job");
  duration_flag("connect-timeout", &options.connect_timeout,
                "How long to wait for droverd and its READY nodes");
  flags.String("baseline-launcher", &options.baseline_launcher,
               "Bare launcher command (split on whitespace) run with PROGRAM ARGS each round "
               "('' for none)",
               "COMMAND");
  flags.Bool("container-baselines", &options.container_baselines,
             "Time one trivial container each round");
  flags.String("baseline-root", &options.baseline_root,
               "Where the baselines' scratch folder goes (a real disk)", "DIR");
  flags.String("runc", &options.runc_path, "The runc binary", "PATH");
  flags.String("init", &options.init_binary,
               "drover-init (default: the one built next to drover-bench)", "PATH");
  flags.String("busybox", &options.busybox,
               "Static busybox for the minimal bundle ('' skips that baseline)", "PATH");
  flags.String("traces", &traces_path,
               "Also write each job's client-seen timeline (UTC) to FILE, one JSON line per job",
               "FILE");
  flags.String("output,o", &output, "text or json", "FORMAT");

  std::vector<std::string> positional;
  if (absl::Status s = flags.Parse(args, &positional, /*interspersed=*/false); !s.ok()) {
    std::fprintf(stderr, "drover-bench distributed-latency: %s\n",
                 std::string(s.message()).c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  if (output != "text" && output != "json") {
    std::fprintf(stderr, "drover-bench distributed-latency: --output: '%s' is not text or json\n",
                 output.c_str());
    return 2;
  }
  if (!positional.empty()) options.program = positional;

  absl::StatusOr<DistributedLatencyResult> result = RunDistributedLatencyBench(options);
  if (!result.ok()) {
    std::fprintf(stderr, "drover-bench distributed-latency: %s\n",
                 std::string(result.status().message()).c_str());
    return absl::IsInvalidArgument(result.status()) ? 2 : 1;
  }
  if (!traces_path.empty()) {
    std::FILE* traces = std::fopen(traces_path.c_str(), "w");
    std::string lines = DistributedLatencyTracesJsonLines(*result);
    if (traces == nullptr || std::fputs(lines.c_str(), traces) < 0 || std::fclose(traces) != 0) {
      std::fprintf(stderr, "drover-bench distributed-latency: cannot write --traces '%s'\n",
                   traces_path.c_str());
      return 1;
    }
  }
  std::string report = output == "json"
                           ? DistributedLatencyResultJson(*result, options.server) + "\n"
                           : DistributedLatencyResultText(*result, options.server);
  std::fputs(report.c_str(), stdout);
  if (result->failed > 0) {
    std::fprintf(stderr,
                 "drover-bench distributed-latency: %lld job(s) did not complete; the figures "
                 "above leave them out\n",
                 static_cast<long long>(result->failed));
    return 1;
  }
  return 0;
}

}  // namespace drover::bench
