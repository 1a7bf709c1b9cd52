// drover-bench: load generators that measure droverd from the outside. Subcommands are a
// table; flags are parsed here and only here.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "bench/fsync_bench.h"
#include "bench/latency.h"
#include "bench/submit_bench.h"
#include "common/flags.h"

namespace {

using drover::FlagSet;
using drover::bench::FsyncBenchOptions;
using drover::bench::SubmitBenchOptions;

// Exit codes: 0 done, 1 the run failed (droverd unreachable, disk error), 2 bad usage.
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

// Parses `args` into `flags`; returns -1 to go on, or the exit code to return now.
int ParseFlags(const std::string& command, FlagSet& flags, const std::vector<std::string>& args) {
  std::vector<std::string> positional;
  if (absl::Status s = flags.Parse(args, &positional); !s.ok()) {
    return UsageError(command, s.message());
  }
  if (flags.help_requested()) {
    std::fputs(flags.Help().c_str(), stdout);
    return 0;
  }
  if (!positional.empty()) {
    return UsageError(command, absl::StrCat("unexpected argument '", positional[0],
                                            "'; see drover-bench ", command, " --help"));
  }
  return -1;
}

int CheckOutputFormat(const std::string& command, const std::string& output) {
  if (output == "text" || output == "json") return -1;
  return UsageError(command,
                    absl::StrCat("--output: '", output, "' is not a format; use text or json"));
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
      "  drover-bench submit --server 127.0.0.1:7070 --clients 64 --duration 10s");
  flags.String("server", &options.server, "droverd's address", "HOST:PORT");
  flags.Int("clients,c", &options.clients, "Concurrent clients");
  flags.Int("channels", &options.channels,
            "gRPC connections the clients share (0: min(clients, 8))", "K");
  DurationFlag(flags, "duration,d", &options.duration, "How long to measure");
  DurationFlag(flags, "warmup", &options.warmup, "How long to submit before measuring");
  DurationFlag(flags, "rpc-timeout", &options.rpc_timeout, "Deadline of each submit");
  flags.String("output,o", &output, "text or json", "FORMAT");
  if (int code = ParseFlags("submit", flags, args); code >= 0) return code;
  if (int code = CheckOutputFormat("submit", output); code >= 0) return code;

  absl::StatusOr<drover::bench::SubmitBenchResult> result = drover::bench::RunSubmitBench(options);
  if (!result.ok()) {
    std::fprintf(stderr, "drover-bench submit: %s\n", std::string(result.status().message()).c_str());
    return absl::IsInvalidArgument(result.status()) ? kUsage : kRunFailed;
  }
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
  flags.String("output,o", &output, "text or json", "FORMAT");
  if (int code = ParseFlags("fsync", flags, args); code >= 0) return code;
  if (int code = CheckOutputFormat("fsync", output); code >= 0) return code;

  absl::StatusOr<drover::bench::FsyncBenchResult> result = drover::bench::RunFsyncBench(options);
  if (!result.ok()) {
    std::fprintf(stderr, "drover-bench fsync: %s\n", std::string(result.status().message()).c_str());
    return absl::IsInvalidArgument(result.status()) ? kUsage : kRunFailed;
  }
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

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const std::vector<std::string>& args);
};

constexpr Command kCommands[] = {
    {"submit", "measure durable submits/s and acknowledgement latency of a droverd", RunSubmit},
    {"fsync", "measure the cost of one durable write on a disk (the baseline)", RunFsync},
};

void PrintUsage(std::FILE* out) {
  std::fputs("usage: drover-bench COMMAND [flags]   (COMMAND --help for its flags)\n\ncommands:\n",
             out);
  for (const Command& c : kCommands) std::fprintf(out, "  %-8s %s\n", c.name, c.summary);
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
  std::fprintf(stderr, "drover-bench: unknown command '%s'; use one of: submit, fsync\n",
               name.c_str());
  return kUsage;
}
