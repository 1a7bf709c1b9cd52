// `drover logs`: a job's stored output (or with --prepare its nodes' preparation logs), and
// with -f what follows until the job ends.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/types/span.h"
#include "cli/format.h"
#include "cli/invocation.h"
#include "cli/log_printer.h"

namespace drover::cli {
namespace {

// The --rank values: numbers from 0, repeatable, "a,b" for several; sorted, without
// repeats.
absl::Status ParseRanks(const std::vector<std::string>& values, std::vector<int32_t>* ranks) {
  for (const std::string& value : values) {
    for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      part = absl::StripAsciiWhitespace(part);
      int32_t rank = 0;
      if (!absl::SimpleAtoi(part, &rank) || rank < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--rank: '", part, "' is not a rank; ranks are numbers from 0, as in --rank 0"));
      }
      ranks->push_back(rank);
    }
  }
  std::sort(ranks->begin(), ranks->end());
  ranks->erase(std::unique(ranks->begin(), ranks->end()), ranks->end());
  return absl::OkStatus();
}

bool BeforeRunning(v1::JobStatus::State state) {
  return state == v1::JobStatus::QUEUED || state == v1::JobStatus::PREPARING ||
         state == v1::JobStatus::STARTING;
}

// The line that separates a retried job's attempts, for example
// "--- attempt 2 (attempt 1 ended: node n3 stopped answering (no message for 15s); retried) ---".
std::string NextAttemptLine(int64_t attempt, const v1::JobStatus* previous) {
  std::string ended = absl::StrCat("attempt ", attempt - 1, " ended");
  if (previous != nullptr && !previous->message().empty()) {
    absl::StrAppend(&ended, ": ", previous->message());
  }
  return absl::StrCat("--- attempt ", attempt, " (", ended, "; retried) ---\n");
}

}  // namespace

int LogsCommand(Invocation& inv, const std::vector<std::string>& args) {
  bool follow = false;
  std::vector<std::string> rank_values;
  bool only_stdout = false;
  bool only_stderr = false;
  bool all_streams = false;
  bool prepare = false;
  int64_t attempt = 0;
  FlagSet flags(
      "drover logs [flags] JOB",
      "Prints what a job's processes wrote: by default stdout and stderr of every rank of\n"
      "the current attempt, each rank's output in order. A process's stdout goes to\n"
      "drover's stdout and its stderr to drover's stderr, so '2>/dev/null' keeps stdout\n"
      "only. When more than one rank is shown, every line starts with '[rank N] '.\n"
      "With -f, keeps printing what the job writes until it ends, then prints how it\n"
      "ended on stderr (for example 'j-42 FAILED: rank 1 on n1 exited with code 3') and\n"
      "exits 0 (COMPLETED), 10 (FAILED) or 11 (CANCELED), like 'drover watch'.\n"
      "When the job is retried meanwhile (its node was lost, or it failed and max_retries\n"
      "allows another attempt), -f goes on with the new attempt: it prints on stderr\n"
      "'--- attempt 2 (attempt 1 ended: WHY; retried) ---', then the new attempt's output\n"
      "from its start. With --attempt N, only attempt N is shown.\n"
      "With --prepare, prints instead what the nodes did to prepare the job: the build of\n"
      "its environment (pip's or conda's output), or which cached environment it used;\n"
      "with several nodes every line starts with '[node N] '.");
  flags.Bool("follow,f", &follow, "Keep printing new output until the job ends");
  flags.Repeated("rank", &rank_values, "Only this rank (a,b for several)", "N");
  flags.Bool("stdout", &only_stdout, "Only the processes' stdout");
  flags.Bool("stderr", &only_stderr, "Only the processes' stderr");
  flags.Bool("all-streams", &all_streams, "Both stdout and stderr (the default)");
  flags.Bool("prepare", &prepare,
             "The nodes' preparation logs (environment builds) instead of the processes' output");
  flags.Int("attempt", &attempt,
            "Only this attempt (1, 2, ...); default: the current one, and with -f the later ones");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover logs j-42\n"
                            "  drover logs -f j-42 && echo trained\n"
                            "  drover logs j-42 --rank 0 --stdout > rank0.txt\n"
                            "  drover logs j-42 --stderr --attempt 1\n"
                            "  drover logs -f j-42 --prepare\n")) {
    return *done;
  }
  v1::StreamLogsRequest request;
  if (auto done = TakeJobId(inv, "logs", positional, request.mutable_job_id())) return *done;
  if (inv.global().json) {
    return inv.Fail(kExitUsage,
                    "drover logs prints the job's own output; --output json is not available "
                    "for it (drover show JOB --output json gives the job)");
  }
  if (static_cast<int>(only_stdout) + static_cast<int>(only_stderr) + static_cast<int>(all_streams) > 1) {
    return inv.Fail(kExitUsage, "--stdout, --stderr and --all-streams exclude each other; give one");
  }
  if (prepare && (only_stdout || only_stderr || all_streams || !rank_values.empty())) {
    return inv.Fail(kExitUsage,
                    "--prepare shows the nodes' preparation logs; it does not go with --rank, "
                    "--stdout, --stderr or --all-streams");
  }
  if (flags.WasSet("attempt") && attempt < 1) {
    return inv.Fail(kExitUsage, absl::StrCat("--attempt: ", attempt,
                                             " is not an attempt; attempts are numbered from 1"));
  }
  std::vector<int32_t> ranks;
  if (absl::Status s = ParseRanks(rank_values, &ranks); !s.ok()) return inv.Usage(s);

  inv.WillStream();
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  v1::GetJobRequest get;
  get.set_job_id(request.job_id());
  absl::StatusOr<v1::Job> job = inv.WithRetry([&] { return client->GetJob(get); });
  if (!job.ok()) return inv.ServerError(job.status());
  if (int32_t had = job->status().attempt(); attempt > had) {
    std::string so_far =
        had == 0 ? " has not been placed yet (no attempt so far)"
        : had == 1 ? " has had 1 attempt so far; give --attempt 1"
                   : absl::StrCat(" has had ", had, " attempts so far; give 1 to ", had);
    return inv.Fail(kExitUsage, absl::StrCat("--attempt ", attempt, ": ", job->id(), so_far));
  }
  int64_t world = int64_t{std::max(job->spec().node_count(), 1)} *
                  std::max(job->spec().process_count_per_node(), 1);
  for (int32_t rank : ranks) {
    if (rank >= world) {
      return inv.Fail(kExitUsage, absl::StrCat("--rank ", rank, ": ", job->id(), " has ",
                                               world == 1 ? "only rank 0"
                                                          : absl::StrCat("ranks 0 to ", world - 1)));
    }
  }

  request.set_attempt(attempt);
  for (int32_t rank : ranks) request.add_ranks(rank);
  if (only_stdout) request.add_streams(v1::STDOUT);
  if (only_stderr) request.add_streams(v1::STDERR);
  if (prepare) request.add_streams(v1::PREPARE);
  request.set_follow(follow);
  if (follow && !prepare && BeforeRunning(job->status().state())) {
    inv.err() << "drover: " << job->id() << " is " << StateName(job->status().state())
              << (job->status().reason().empty() ? "" : absl::StrCat(" (", job->status().reason(), ")"))
              << "; its output appears here once it runs" << std::endl;
  }

  bool prefix = prepare ? job->spec().node_count() > 1 : world > 1 && ranks.size() != 1;
  LogPrinter printer(&inv.out(), &inv.err(), /*prefix_ranks=*/prefix);
  std::optional<v1::Job> ended;
  bool received = false;
  size_t retries = 0;
  // The attempt being printed; 0 before the first. Offsets count from 0 in every attempt, so
  // the printer starts afresh with each.
  int64_t shown_attempt = 0;
  auto enter_attempt = [&](int64_t next, const v1::JobStatus* previous) {
    if (next <= shown_attempt) return;
    if (shown_attempt > 0) {
      printer.Flush();
      printer.Reset();
      inv.err() << NextAttemptLine(next, previous);
      inv.err().flush();
    }
    shown_attempt = next;
  };
  while (true) {
    absl::Status status = client->StreamLogs(request, [&](const v1::StreamLogsResponse& message) {
      received = true;
      retries = 0;
      if (message.has_job()) {
        ended = message.job();
        return;
      }
      if (message.has_next_attempt()) {
        const v1::StreamLogsResponse::NextAttempt& next = message.next_attempt();
        enter_attempt(next.attempt(), next.has_previous() ? &next.previous() : nullptr);
        return;
      }
      // A droverd that does not name attempts (0) sends one attempt.
      if (message.attempt() < shown_attempt && message.attempt() != 0) return;
      enter_attempt(message.attempt(), nullptr);
      printer.Add(message.rank(), message.stream(), message.offset(), message.data());
    });
    if (ended.has_value() || (!follow && status.ok())) break;
    // A broken stream is read again from the start of the attempt it was in (droverd sends
    // nothing of the ones before); the printer skips what it printed.
    if (attempt == 0 && shown_attempt > 0) request.set_from_attempt(shown_attempt);
    bool retryable = status.ok() || status.code() == absl::StatusCode::kUnavailable;
    absl::Span<const absl::Duration> delays =
        received ? absl::MakeConstSpan(kReconnectDelays) : absl::MakeConstSpan(kRetryDelays);
    if (!retryable || retries >= delays.size()) {
      printer.Flush();
      if (status.ok()) {
        status = absl::UnavailableError(absl::StrCat(
            "droverd ended the log stream of ", request.job_id(),
            " before the job finished; run 'drover logs -f ", request.job_id(), "' again"));
      }
      return inv.ServerError(status);
    }
    inv.Pause(delays[retries++]);
  }
  printer.Flush();
  if (!follow) return kExitOk;
  inv.err() << FormatJobEnd(*ended);
  inv.err().flush();
  return ExitCodeForEnd(ended->status().state());
}

}  // namespace drover::cli
