// drover-bench: load generators that measure droverd from the outside. Subcommands are a
// table; flags are parsed here and only here.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "bench/distributed_bench.h"
#include "bench/fsync_bench.h"
#include "bench/latency.h"
#include "bench/log_ingest_bench.h"
#include "bench/metrics_read_bench.h"
#include "bench/placement_bench.h"
#include "bench/prepare_bench.h"
#include "bench/run_latency_bench.h"
#include "bench/sim_cluster_bench.h"
#include "bench/submit_bench.h"
#include "bench/token_check_bench.h"
#include "common/flags.h"

namespace {

using drover::FlagSet;
using drover::bench::FsyncBenchOptions;
using drover::bench::LogIngestOptions;
using drover::bench::RunLatencyOptions;
using drover::bench::SubmitBenchOptions;

// Exit codes: 0 done, 1 the run failed (droverd unreachable, disk error, a benchmark job
// that did not complete), 2 bad usage.
constexpr int kRunFailed = 1;
constexpr int kUsage = 2;

int UsageError(const std::string& command, absl::string_view message) {
  std::fprintf(stderr, "drover-bench %s: %s\n", command.c_str(), std::string(message).c_str());
  return kUsage;
}

void DurationFlag(FlagSet& flags, absl::string_view name, absl::Duration* target,
                  std::string help) {
  std::string flag(name);
  flags.Custom(
      name,
      [target, flag](absl::string_view text) {
        if (!absl::ParseDuration(text, target)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "--", flag, ": '", text, "' is not a duration; write it like 10s or 500ms"));
        }
        return absl::OkStatus();
      },
      std::move(help), "DURATION", absl::FormatDuration(*target));
}

// Parses `args` into `flags`; returns -1 to go on, or the exit code to return now. With
// `positional`, the arguments after the flags (flags end at the first one) go there;
// without, there must be none.
int ParseFlags(const std::string& command, FlagSet& flags, const std::vector<std::string>& args,
               std::vector<std::string>* program = nullptr) {
  std::vector<std::string> positional;
  if (absl::Status s = flags.Parse(args, &positional, /*interspersed=*/program == nullptr);
      !s.ok()) {
    return UsageError(command, s.message());
  }
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  if (program != nullptr) {
    *program = std::move(positional);
  } else if (!positional.empty()) {
    return UsageError(command, absl::StrCat("unexpected argument '", positional[0],
                                            "'; see drover-bench ", command, " --help"));
  }
  return -1;
}

// Adds --output (text or json) to `flags`, then parses `args` as ParseFlags does and checks
// the format; returns -1 to go on, or the exit code to return now.
int ParseCommand(const std::string& command, FlagSet& flags, const std::vector<std::string>& args,
                 std::string* output, std::vector<std::string>* program = nullptr) {
  flags.String("output,o", output, "text or json", "FORMAT");
  if (int code = ParseFlags(command, flags, args, program); code >= 0) return code;
  if (*output == "text" || *output == "json") return -1;
  return UsageError(command,
                    absl::StrCat("--output: '", *output, "' is not a format; use text or json"));
}

// --server and --ca, for the subcommands that call droverd.
void ServerFlags(FlagSet& flags, std::string* server, std::string* ca_file) {
  flags.String("server", server, "droverd's address", "HOST:PORT");
  flags.String("ca", ca_file, "droverd's CA certificate (default: $DROVER_CA)", "FILE");
}

// The flags of the container baselines that run-latency and distributed-latency time.
void BaselineFlags(FlagSet& flags, std::string* root, std::string* runc, std::string* init,
                   std::string* busybox) {
  flags.String("baseline-root", root, "Where the baselines' scratch folder goes (a real disk)",
               "DIR");
  flags.String("runc", runc, "The runc binary", "PATH");
  flags.String("init", init, "drover-init (default: the one built next to drover-bench)", "PATH");
  flags.String("busybox", busybox,
               "Static busybox for the minimal bundle ('' skips that baseline)", "PATH");
}

// --traces FILE of the job-latency subcommands.
void TracesFlag(FlagSet& flags, std::string* path) {
  flags.String("traces", path,
               "Also write each job's client-seen timeline (UTC) to FILE, one JSON line per job",
               "FILE");
}

// A run that failed: its error on stderr; exit code 2 for bad options, 1 otherwise.
int RunError(const std::string& command, const absl::Status& status) {
  std::fprintf(stderr, "drover-bench %s: %s\n", command.c_str(), std::string(status.message()).c_str());
  return absl::IsInvalidArgument(status) ? kUsage : kRunFailed;
}

// How run-latency and distributed-latency end: `traces` written to `traces_path` (when
// given), `report` printed, and an error when `failed` jobs did not complete.
int FinishJobBench(const std::string& command, const std::vector<drover::bench::JobTrace>& traces,
                   const std::string& traces_path, const std::string& report, int64_t failed) {
  if (!traces_path.empty()) {
    std::FILE* file = std::fopen(traces_path.c_str(), "w");
    std::string lines = drover::bench::TracesJsonLines(traces);
    if (file == nullptr || std::fputs(lines.c_str(), file) < 0 || std::fclose(file) != 0) {
      std::fprintf(stderr, "drover-bench %s: cannot write --traces '%s'\n", command.c_str(),
                   traces_path.c_str());
      return kRunFailed;
    }
  }
  std::fputs(report.c_str(), stdout);
  if (failed > 0) {
    std::fprintf(stderr,
                 "drover-bench %s: %lld job(s) did not complete; the figures above leave them "
                 "out\n",
                 command.c_str(), static_cast<long long>(failed));
    return kRunFailed;
  }
  return 0;
}

int RunSubmit(const std::vector<std::string>& args) {
  SubmitBenchOptions options;
  std::string output = "text";
  FlagSet flags(
      "drover-bench submit --server HOST:PORT [flags]",
      "Submits jobs to a running droverd from --clients concurrent clients, each with one\n"
      "SubmitJob in flight and every job under its own idempotency key, and prints the\n"
      "acknowledged jobs/s, the acknowledgement latency percentiles and errors by code.\n"
      "\n"
      "Example:\n"
      "  drover-bench submit --server 127.0.0.1:7070 --clients 64 --duration 10s\n"
      "  drover-bench submit --server 127.0.0.1:7070 --clients 4 --array-size 10000");
  ServerFlags(flags, &options.server, &options.ca_file);
  flags.Int("clients,c", &options.clients, "Concurrent clients");
  flags.Int("channels", &options.channels,
            "gRPC connections the clients share (0: min(clients, 8))", "K");
  DurationFlag(flags, "duration,d", &options.duration, "How long to measure");
  DurationFlag(flags, "warmup", &options.warmup, "How long to submit before measuring");
  DurationFlag(flags, "rpc-timeout", &options.rpc_timeout, "Deadline of each submit");
  flags.Int("array-size", &options.array_size,
            "Submit job arrays of N tasks (--array 0-N-1) instead of single jobs; the report\n"
            "adds the tasks acknowledged per second", "N");
  if (int code = ParseCommand("submit", flags, args, &output); code >= 0) return code;

  absl::StatusOr<drover::bench::SubmitBenchResult> result = drover::bench::RunSubmitBench(options);
  if (!result.ok()) return RunError("submit", result.status());
  std::string report = output == "json" ? SubmitResultJson(*result, options.server) + "\n"
                                        : SubmitResultText(*result, options.server);
  std::fputs(report.c_str(), stdout);
  return 0;
}

int RunFsync(const std::vector<std::string>& args) {
  FsyncBenchOptions options;
  std::string output = "text";
  FlagSet flags(
      "drover-bench fsync --dir DIR [flags]",
      "Times a small write followed by fdatasync (or fsync) in a scratch file under DIR: the\n"
      "cost of one durable commit on that disk, the baseline for `submit` figures. Measures\n"
      "writes that extend the file and writes inside it.\n"
      "\n"
      "Example:\n"
      "  drover-bench fsync --dir /var/lib/drover --count 500");
  flags.String("dir", &options.dir, "Folder on the disk to measure", "DIR");
  flags.Int("count,n", &options.count, "Writes timed per mode");
  flags.Int("size", &options.size, "Bytes per write", "BYTES");
  flags.Bool("fsync", &options.use_fsync, "Use fsync(2) instead of fdatasync(2)");
  if (int code = ParseCommand("fsync", flags, args, &output); code >= 0) return code;

  absl::StatusOr<drover::bench::FsyncBenchResult> result = drover::bench::RunFsyncBench(options);
  if (!result.ok()) return RunError("fsync", result.status());
  const char* sync = options.use_fsync ? "fsync" : "fdatasync";
  if (output == "json") {
    std::printf("{\"benchmark\":\"fsync\",\"dir\":%s,\"sync\":\"%s\",\"size\":%lld,"
                "\"append\":%s,\"overwrite\":%s}\n",
                drover::bench::JsonString(options.dir).c_str(), sync,
                static_cast<long long>(options.size),
                drover::bench::LatencyJson(result->append).c_str(),
                drover::bench::LatencyJson(result->overwrite).c_str());
  } else {
    std::printf("fsync: %lld x (%lld-byte write + %s) in %s\n",
                static_cast<long long>(options.count), static_cast<long long>(options.size),
                sync, options.dir.c_str());
    std::printf("  append     %s\n", drover::bench::LatencyText(result->append).c_str());
    std::printf("  overwrite  %s\n", drover::bench::LatencyText(result->overwrite).c_str());
  }
  return 0;
}

int RunMetricsRead(const std::vector<std::string>& args) {
  drover::bench::MetricsReadOptions options;
  std::string output = "text";
  FlagSet flags(
      "drover-bench metrics-read --dir DIR [flags]",
      "Where the time of a chart's metric read goes: writes --points records per rank into a\n"
      "log store under DIR (directly, as the `drover` module writes them), then times reading\n"
      "the bytes, parsing them (general JSON reader, fast path), the old answer (every point in\n"
      "GetMetrics pages, to wire and back) and the thinned read GetMetrics does with\n"
      "max_points, and its JSON.\n"
      "\n"
      "Example:\n"
      "  drover-bench metrics-read --dir /tmp --points 1000000 --ranks 1");
  flags.String("dir", &options.dir, "Scratch folder", "DIR");
  flags.Int("points", &options.points, "Points per rank");
  flags.Int("ranks", &options.ranks, "Ranks (one series each)");
  flags.Int("max-points", &options.max_points, "max_points of the thinned read");
  flags.Int("repeats", &options.repeats, "Runs of each step (the median is reported)");
  if (int code = ParseCommand("metrics-read", flags, args, &output); code >= 0) return code;
  absl::StatusOr<drover::bench::MetricsReadResult> result =
      drover::bench::RunMetricsReadBench(options);
  if (!result.ok()) return RunError("metrics-read", result.status());
  std::string report = output == "json"
                           ? drover::bench::MetricsReadResultJson(options, *result) + "\n"
                           : drover::bench::MetricsReadResultText(options, *result);
  std::fputs(report.c_str(), stdout);
  return 0;
}

int RunTokenCheck(const std::vector<std::string>& args) {
  drover::bench::TokenCheckOptions options;
  std::string output = "text";
  FlagSet flags(
      "drover-bench token-check --dir DIR [flags]",
      "Times droverd's per-call token check without gRPC: SHA-256 of a user token, then the\n"
      "lookup of its user in a real SQLite store (a scratch database under DIR holding\n"
      "--users users), from --threads threads at once. The cost every authenticated call\n"
      "pays; compare it with `submit` over TLS and over the local admin socket.\n"
      "\n"
      "Example:\n"
      "  drover-bench token-check --dir /var/tmp --users 1000 --count 20000");
  flags.String("dir", &options.dir, "Folder for the scratch database", "DIR");
  flags.Int("users", &options.users, "Users in the store");
  flags.Int("count,n", &options.count, "Checks timed per thread");
  flags.Int("threads", &options.threads, "Threads checking at once");
  if (int code = ParseCommand("token-check", flags, args, &output); code >= 0) return code;
  absl::StatusOr<drover::bench::TokenCheckResult> result =
      drover::bench::RunTokenCheckBench(options);
  if (!result.ok()) return RunError("token-check", result.status());
  if (output == "json") {
    std::printf("{\"benchmark\":\"token-check\",\"users\":%lld,\"threads\":%lld,"
                "\"checks_per_s\":%.1f,\"hash\":%s,\"check\":%s}\n",
                static_cast<long long>(options.users), static_cast<long long>(options.threads),
                result->checks_per_second, drover::bench::LatencyJson(result->hash).c_str(),
                drover::bench::LatencyJson(result->check).c_str());
  } else {
    std::printf("token-check: %lld users, %lld threads x %lld checks: %.0f checks/s\n",
                static_cast<long long>(options.users), static_cast<long long>(options.threads),
                static_cast<long long>(options.count), result->checks_per_second);
    std::printf("  sha-256 alone   %s\n", drover::bench::LatencyText(result->hash).c_str());
    std::printf("  hash + lookup   %s\n", drover::bench::LatencyText(result->check).c_str());
  }
  return 0;
}

int RunPlacement(const std::vector<std::string>& args) {
  drover::bench::PlacementBenchOptions options;
  std::string output = "text";
  int64_t seed = 1;
  FlagSet flags(
      "drover-bench placement [flags]",
      "Times the scheduler's placement rounds on one core, without gRPC, agents or a store:\n"
      "droverd's own JobQueue, NodeRegistry and PlaceQueuedJobs over a simulated cluster of\n"
      "--nodes nodes and --jobs queued jobs (70% one CPU, 20% 8 CPUs, --gang-percent whole-node\n"
      "gangs of 2-16 nodes). Placed jobs run 1-60 simulated minutes; the clock moves --tick\n"
      "per round. Prints placements per second of placement time, one round's percentiles\n"
      "and the queue's heap per queued job.\n"
      "\n"
      "Example:\n"
      "  drover-bench placement --nodes 1000 --jobs 100000\n"
      "  drover-bench placement --nodes 1000 --jobs 100000 --held-array 100000");
  flags.Int("nodes", &options.nodes, "Simulated nodes");
  flags.Int("cpus-per-node", &options.cpus_per_node, "CPUs of each node (4 GiB per CPU)");
  flags.Int("jobs,n", &options.jobs, "Jobs queued at the start");
  flags.Int("gang-percent", &options.gang_percent, "Share of multi-node jobs, 0-10");
  flags.Int("held-array", &options.held_array,
            "A job array of N tasks held at 50 running, queued ahead of the jobs (0: none)", "N");
  flags.Int("depth", &options.depth, "Jobs examined per round at most (droverd's default)");
  DurationFlag(flags, "tick", &options.tick, "Simulated time between rounds");
  DurationFlag(flags, "duration,d", &options.duration, "Stop after this much placement time");
  flags.Int("seed", &seed, "Seed of the job mix and run times");
  if (int code = ParseCommand("placement", flags, args, &output); code >= 0) return code;
  options.seed = static_cast<uint64_t>(seed);
  absl::StatusOr<drover::bench::PlacementBenchResult> result =
      drover::bench::RunPlacementBench(options);
  if (!result.ok()) return RunError("placement", result.status());
  std::string report = output == "json"
                           ? drover::bench::PlacementResultJson(options, *result) + "\n"
                           : drover::bench::PlacementResultText(options, *result);
  std::fputs(report.c_str(), stdout);
  return 0;
}

int RunRunLatency(const std::vector<std::string>& args) {
  RunLatencyOptions options;
  std::string output = "text";
  FlagSet flags(
      "drover-bench run-latency --server HOST:PORT [flags]",
      "Submits trivial jobs (`/bin/sh -c true` in the host image) one after another to a\n"
      "droverd that has an agent, watches each to its end, and prints submit->RUNNING and\n"
      "submit->COMPLETED percentiles with the phases in between. In the same run it times the\n"
      "same container without Drover: through RuncRuntime (what the agent does, minus\n"
      "Drover), as one `runc run` of the same config, and as `runc run` of a minimal busybox\n"
      "bundle; it reports Drover's median overhead over the RuncRuntime run. The baselines\n"
      "need root and runc (--baseline-runs 0 skips them).\n"
      "\n"
      "Example:\n"
      "  drover-bench run-latency --server 127.0.0.1:7070 --jobs 50");
  ServerFlags(flags, &options.server, &options.ca_file);
  flags.Int("jobs,n", &options.jobs, "Jobs measured");
  flags.Int("warmup", &options.warmup_jobs, "Rounds (job and baselines) run first, not counted");
  flags.Int("concurrency,c", &options.concurrency,
            "Jobs in flight at once (above 1, the baselines run after the jobs)");
  flags.String("command", &options.command, "What `/bin/sh -c` runs in each job", "SCRIPT");
  DurationFlag(flags, "job-timeout", &options.job_timeout, "Deadline of one job");
  DurationFlag(flags, "connect-timeout", &options.connect_timeout,
               "How long to wait for droverd and a READY node");
  flags.Int("baseline-runs", &options.baseline_runs,
            "Baseline containers of each kind (-1: as many as --jobs, 0: none)");
  BaselineFlags(flags, &options.baseline_root, &options.runc_path, &options.init_binary,
                &options.busybox);
  std::string traces_path;
  TracesFlag(flags, &traces_path);
  if (int code = ParseCommand("run-latency", flags, args, &output); code >= 0) return code;

  absl::StatusOr<drover::bench::RunLatencyResult> result =
      drover::bench::RunRunLatencyBench(options);
  if (!result.ok()) return RunError("run-latency", result.status());
  return FinishJobBench("run-latency", result->traces, traces_path,
                        output == "json"
                            ? drover::bench::RunLatencyResultJson(*result, options.server) + "\n"
                            : drover::bench::RunLatencyResultText(*result, options.server),
                        result->drover.failed);
}

int RunLogIngest(const std::vector<std::string>& args) {
  LogIngestOptions options;
  std::string output = "text";
  FlagSet flags(
      "drover-bench log-ingest --server HOST:PORT [flags]",
      "Acts as a node agent on droverd's agent stream and ships --megabytes of log data, and\n"
      "prints the rate droverd durably acknowledged it at. Like a new agent it joins as node\n"
      "--node-name (making its own join token: $DROVER_TOKEN must be an admin's); it submits\n"
      "a job to a compute target of that node alone, one process per stream, answers the\n"
      "assignment as an agent, ships the attempt's logs keeping at most --window-kib\n"
      "unacknowledged per stream, ends the attempt and reads the logs back to check that\n"
      "droverd stores what it acknowledged. droverd's caps are not raised: a stream past\n"
      "--max-log-bytes (256 MiB by default) or --max-metric-records (1,000,000) fails the run.\n"
      "With --baseline-dir (a folder on the disk of droverd's state folder) it first measures\n"
      "that disk: write + fdatasync per chunk, and the same writes with one fdatasync.\n"
      "\n"
      "Example:\n"
      "  drover-bench log-ingest --server 127.0.0.1:7070 --megabytes 256 \\\n"
      "      --baseline-dir /var/lib/drover");
  ServerFlags(flags, &options.server, &options.ca_file);
  flags.Int("megabytes,m", &options.megabytes, "MiB of log data to ship in all", "M");
  flags.Int("chunk-kib", &options.chunk_kib, "KiB per LogChunk", "KIB");
  flags.Int("streams", &options.streams, "Log streams (ranks, 1-256) shipped at once", "S");
  flags.Int("window-kib", &options.window_kib, "Unacknowledged KiB allowed per stream", "KIB");
  flags.String("node-name", &options.node_name, "The fake agent's node name", "NAME");
  flags.Bool("metrics", &options.metrics,
             "Ship metric records (run.log lines, 64 bytes each) on METRICS streams and report "
             "records/s");
  flags.String("baseline-dir", &options.baseline_dir,
               "Folder on the state folder's disk for the baseline (empty: none)", "DIR");
  flags.Int("baseline-megabytes", &options.baseline_megabytes,
            "MiB each baseline writes (0: as --megabytes, at most 256)", "M");
  DurationFlag(flags, "timeout", &options.timeout, "How long the whole ingest may take");
  if (int code = ParseCommand("log-ingest", flags, args, &output); code >= 0) return code;

  absl::StatusOr<drover::bench::LogIngestResult> result = drover::bench::RunLogIngestBench(options);
  if (!result.ok()) return RunError("log-ingest", result.status());
  std::string report = output == "json"
                           ? drover::bench::LogIngestResultJson(*result, options.server) + "\n"
                           : drover::bench::LogIngestResultText(*result, options.server);
  std::fputs(report.c_str(), stdout);
  return 0;
}

int RunPrepare(const std::vector<std::string>& args) {
  drover::bench::PrepareBenchOptions options;
  std::string output = "text";
  FlagSet flags(
      "drover-bench prepare --server HOST:PORT --pip PKG [flags]",
      "Times how long jobs with pip_packages spend PREPARING (until every node is READY) when\n"
      "the node builds their environment and when a later identical job reuses it, next to\n"
      "the same job without packages. Each round submits one job needing a new environment\n"
      "('{}' in a --pip package becomes the round number), then --cached-jobs identical ones,\n"
      "then as many without packages, one after another; droverd needs the pip settings\n"
      "(--pip-find-links ...) that make the packages installable. Prints the medians and\n"
      "the build/cached ratio. bench/run_environment_bench.sh runs it against daemons of its\n"
      "own with a wheel folder it builds.\n"
      "\n"
      "Example:\n"
      "  drover-bench prepare --server 127.0.0.1:7070 --pip 'drovertestpkg==1.{}' --rounds 3");
  ServerFlags(flags, &options.server, &options.ca_file);
  flags.Repeated("pip", &options.pip_packages,
                 "A pip requirement of the jobs; '{}' becomes the round number", "PKG");
  flags.Int("rounds,n", &options.rounds, "Environments built (one per round)");
  flags.Int("cached-jobs", &options.cached_jobs, "Jobs per round reusing the round's environment");
  flags.String("image", &options.image, "The jobs' image", "IMAGE");
  flags.String("command", &options.command, "What `/bin/sh -c` runs in each job", "SCRIPT");
  DurationFlag(flags, "job-timeout", &options.job_timeout, "Deadline of one job (build included)");
  DurationFlag(flags, "connect-timeout", &options.connect_timeout,
               "How long to wait for droverd and a READY node");
  if (int code = ParseCommand("prepare", flags, args, &output); code >= 0) return code;

  absl::StatusOr<drover::bench::PrepareBenchResult> result = drover::bench::RunPrepareBench(options);
  if (!result.ok()) return RunError("prepare", result.status());
  std::string report = output == "json" ? drover::bench::PrepareResultJson(*result, options) + "\n"
                                        : drover::bench::PrepareResultText(*result, options);
  std::fputs(report.c_str(), stdout);
  return result->failed > 0 ? kRunFailed : 0;
}

int RunDistributedLatency(const std::vector<std::string>& args) {
  drover::bench::DistributedLatencyOptions options;
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
  ServerFlags(flags, &options.server, &options.ca_file);
  flags.Int("jobs,n", &options.jobs, "Jobs (rounds) measured");
  flags.Int("warmup", &options.warmup_jobs, "Rounds run first, not counted");
  flags.Int("nodes", &options.nodes, "node_count of each job");
  flags.Int("processes-per-node", &options.processes_per_node,
            "process_count_per_node of each job");
  flags.String("backend", &options.backend, "mpi or pytorch", "NAME");
  flags.Double("cpus", &options.cpus, "Cpus each node gives the job");
  flags.Int("memory-mib", &options.memory_mib, "MiB each node gives the job", "MIB");
  DurationFlag(flags, "job-timeout", &options.job_timeout, "Deadline of one job");
  DurationFlag(flags, "connect-timeout", &options.connect_timeout,
               "How long to wait for droverd and its READY nodes");
  flags.String("baseline-launcher", &options.baseline_launcher,
               "Bare launcher command (split on whitespace) run with PROGRAM ARGS each round "
               "('' for none)",
               "COMMAND");
  flags.Bool("container-baselines", &options.container_baselines,
             "Time one trivial container each round");
  BaselineFlags(flags, &options.baseline_root, &options.runc_path, &options.init_binary,
                &options.busybox);
  TracesFlag(flags, &traces_path);
  std::vector<std::string> program;
  if (int code = ParseCommand("distributed-latency", flags, args, &output, &program); code >= 0) {
    return code;
  }
  if (!program.empty()) options.program = std::move(program);

  absl::StatusOr<drover::bench::DistributedLatencyResult> result =
      drover::bench::RunDistributedLatencyBench(options);
  if (!result.ok()) return RunError("distributed-latency", result.status());
  return FinishJobBench(
      "distributed-latency", result->traces, traces_path,
      output == "json" ? drover::bench::DistributedLatencyResultJson(*result, options.server) + "\n"
                       : drover::bench::DistributedLatencyResultText(*result, options.server),
      result->drover.failed);
}

int RunSimCluster(const std::vector<std::string>& args) {
  drover::bench::SimClusterOptions options;
  std::string output = "text";
  int64_t droverd_pid = 0;
  int64_t seed = 1;
  std::vector<std::string> labels;
  FlagSet flags(
      "drover-bench sim-cluster --server HOST:PORT [flags]",
      "A simulated cluster on droverd's real agent protocol over gRPC: --nodes fake nodes in\n"
      "this process, each joined as a new agent is (making its own join token: $DROVER_TOKEN\n"
      "must be an admin's) and holding its own TLS stream, answer their assignments as agents\n"
      "whose nodes prepare at once and run each attempt for --min-run to --max-run. --jobs\n"
      "jobs are queued first as job arrays (70:20 one process of one CPU and four processes of\n"
      "four CPUs, --gang-percent whole-node gangs over 2, 4 or 8 nodes), then the nodes are\n"
      "let in. Prints placements per second as they reach the nodes, submit->assigned latency\n"
      "of probe jobs (priority 1000, on --probe-nodes idle nodes of their own) under that load,\n"
      "and with --droverd-pid droverd's memory per node and per queued job and its CPU per\n"
      "placement. bench/run_sim_cluster_bench.sh starts a droverd for it.\n"
      "\n"
      "Example:\n"
      "  drover-bench sim-cluster --server 127.0.0.1:7070 --droverd-pid 4242 \\\n"
      "      --nodes 1000 --jobs 100000 --duration 60s");
  ServerFlags(flags, &options.server, &options.ca_file);
  flags.Int("droverd-pid", &droverd_pid, "droverd's process, for its CPU and memory (0: none)",
            "PID");
  flags.Int("nodes", &options.nodes, "Fake nodes that take the queued jobs (1-20000)");
  flags.Int("cpus-per-node", &options.cpus_per_node, "CPUs of each fake node");
  flags.Int("memory-mib-per-node", &options.memory_mib_per_node, "Memory of each fake node",
            "MIB");
  flags.Int("gpus-per-node", &options.gpus_per_node, "GPUs of each fake node (gangs take them)");
  flags.Repeated("label", &labels, "A label of every fake node (repeatable)", "KEY=VALUE");
  flags.Int("jobs,n", &options.jobs, "Jobs queued before the nodes are let in");
  flags.Int("gang-percent", &options.gang_percent, "Share of whole-node gangs, 0-100");
  flags.Int("array-chunk", &options.array_chunk, "Tasks per submitted job array");
  DurationFlag(flags, "min-run", &options.min_run, "Shortest simulated run of an attempt");
  DurationFlag(flags, "max-run", &options.max_run, "Longest simulated run of an attempt");
  flags.Int("probe-nodes", &options.probe_nodes, "Idle nodes of the probe jobs (0: no probes)");
  DurationFlag(flags, "probe-interval", &options.probe_interval, "Time between probe jobs");
  DurationFlag(flags, "duration,d", &options.duration,
               "How long placement is measured (0: until every job completed)");
  DurationFlag(flags, "timeout", &options.timeout, "With --duration 0: the most it may take");
  flags.Int("join-concurrency", &options.join_concurrency, "Nodes joined at once");
  flags.Bool("verify", &options.verify,
             "Check every job was assigned exactly once and is COMPLETED (needs --duration 0)");
  flags.String("node-prefix", &options.node_prefix, "Node names are PREFIX-0, PREFIX-1, ...",
               "PREFIX");
  flags.Int("seed", &seed, "Seed of the run times");
  if (int code = ParseCommand("sim-cluster", flags, args, &output); code >= 0) return code;
  options.droverd_pid = static_cast<pid_t>(droverd_pid);
  options.seed = static_cast<uint64_t>(seed);
  for (const std::string& label : labels) {
    const size_t eq = label.find('=');
    if (eq == std::string::npos || eq == 0) {
      return UsageError("sim-cluster",
                        absl::StrCat("--label: '", label, "' is not KEY=VALUE; write it like gpu=a100"));
    }
    options.labels[label.substr(0, eq)] = label.substr(eq + 1);
  }
  absl::StatusOr<drover::bench::SimClusterResult> result = drover::bench::RunSimCluster(options);
  if (!result.ok()) return RunError("sim-cluster", result.status());
  std::string report = output == "json"
                           ? drover::bench::SimClusterResultJson(options, *result) + "\n"
                           : drover::bench::SimClusterResultText(options, *result);
  std::fputs(report.c_str(), stdout);
  const bool wrong = result->duplicate_assignments > 0 || result->reassigned_jobs > 0 ||
                     result->not_completed > 0 || result->streams_broken > 0;
  if (options.verify && wrong) {
    std::fputs("drover-bench sim-cluster: the checks found problems (see above)\n", stderr);
    return kRunFailed;
  }
  return 0;
}

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
};

constexpr Command kCommands[] = {
    {"submit", "measure durable submits/s and acknowledgement latency of a droverd", RunSubmit},
    {"fsync", "measure the cost of one durable write on a disk (the baseline)", RunFsync},
    {"token-check", "measure droverd's per-call token check (hash + store lookup)",
     RunTokenCheck},
    {"run-latency", "measure submit->RUNNING/COMPLETED of trivial jobs against bare runc",
     RunRunLatency},
    {"log-ingest", "measure durable log ingest MB/s into droverd as a fake agent", RunLogIngest},
    {"metrics-read", "measure where the time of a chart's metric read goes (store, parse, thin)",
     RunMetricsRead},
    {"distributed-latency", "measure submit->COMPLETED of multi-node jobs against a bare mpirun",
     RunDistributedLatency},
    {"placement", "measure the scheduler's placement rounds on a simulated cluster (one core)",
     RunPlacement},
    {"prepare", "measure PREPARING of jobs with pip_packages: environment built vs reused",
     RunPrepare},
    {"sim-cluster", "measure placements/s and latency with thousands of fake nodes over gRPC",
     RunSimCluster},
};

void PrintUsage(std::FILE* out) {
  std::fputs("usage: drover-bench COMMAND [flags]   (COMMAND --help for its flags)\n\ncommands:\n",
             out);
  for (const Command& c : kCommands) std::fprintf(out, "  %-12s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(stderr);
    return kUsage;
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    PrintUsage(stdout);
    return 0;
  }
  for (const Command& c : kCommands) {
    if (name == c.name) return c.run(std::vector<std::string>(argv + 2, argv + argc));
  }
  std::fprintf(stderr, "drover-bench: unknown command '%s'; use one of: submit, fsync, token-check, run-latency, log-ingest, metrics-read, distributed-latency, placement, prepare, sim-cluster\n",
               name.c_str());
  return kUsage;
}
