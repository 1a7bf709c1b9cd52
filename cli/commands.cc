#include "cli/commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "cli/datastore_commands.h"
#include "cli/format.h"
#include "cli/image_commands.h"
#include "cli/invocation.h"
#include "cli/submit_spec.h"
#include "common/flags.h"

#ifndef DROVER_VERSION
#define DROVER_VERSION "unknown"
#endif

namespace drover::cli {
namespace {

absl::StatusOr<std::string> ReadInput(CliContext& ctx, const std::string& path) {
  std::stringstream buffer;
  if (path == "-") {
    buffer << ctx.in->rdbuf();
    return buffer.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int error = errno;
    return absl::InvalidArgumentError(absl::StrCat("cannot read job spec file '", path, "': ",
                                                   absl::AsciiStrToLower(strerror(error))));
  }
  buffer << in.rdbuf();
  return buffer.str();
}

// Follows a job until it ends; see `drover watch --help`. Reconnects when the stream breaks
// (droverd restarting) and skips the events it already printed.
int FollowJob(Invocation& inv, DroverClient& client, const std::string& job_id) {
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  bool seen = false;
  int64_t last_version = 0;
  v1::JobStatus::State last_state = v1::JobStatus::STATE_UNSPECIFIED;
  size_t retries = 0;
  while (true) {
    absl::Status status = client.WatchJob(request, [&](const v1::WatchJobResponse& event) {
      const v1::Job& job = event.job();
      if (seen && job.status().version() <= last_version) return;
      seen = true;
      last_version = job.status().version();
      last_state = job.status().state();
      retries = 0;
      if (inv.global().json) {
        inv.out() << JobToJson(job, /*pretty=*/false) << "\n";
      } else {
        inv.out() << FormatWatchLine(job, inv.ctx().zone) << "\n";
      }
      inv.out().flush();
    });
    if (IsTerminal(last_state)) break;
    bool retryable = status.ok() || status.code() == absl::StatusCode::kUnavailable;
    if (!retryable) return inv.ServerError(status);
    absl::Span<const absl::Duration> delays =
        seen ? absl::MakeConstSpan(kReconnectDelays) : absl::MakeConstSpan(kRetryDelays);
    if (retries >= delays.size()) {
      if (status.ok()) {
        status = absl::UnavailableError(absl::StrCat(
            "droverd ended the watch of ", job_id, " before the job finished (last state ",
            StateName(last_state), "); run 'drover watch ", job_id, "' again"));
      }
      return inv.ServerError(status);
    }
    inv.Pause(delays[retries++]);
  }
  return ExitCodeForEnd(last_state);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The job commands.

int SubmitCommand(Invocation& inv, const std::vector<std::string>& args) {
  SubmitSpecFlags spec_flags;
  bool watch = false;
  FlagSet flags("drover submit [flags] SCRIPT [ARGS...]",
                "Submits a training job and prints its id (with --output json: the job).\n"
                "Flags come before SCRIPT; everything after SCRIPT is passed to it. Without\n"
                "--source, SCRIPT is a path in the image, or a command on its PATH ('true').\n"
                "An ARG written ds://DATASTORE/PATH is a data reference that becomes a local\n"
                "path on the node: ?mode=mount (default, read-only; add &rw=true to write),\n"
                "?mode=download or ?mode=upload. Write \\ds://... to pass the text literally.\n"
                "Without --idempotency-key a random key is used, so that the submit is retried\n"
                "safely when droverd is briefly unavailable.");
  spec_flags.Register(&flags);
  std::string source;
  flags.String("source", &source,
               "Folder of code to run: built into a snapshot (honouring .droverignore, else\n"
               ".gitignore), uploaded unless droverd has it, and set as source_snapshot",
               "DIR");
  flags.Bool("watch,w", &watch, "After submitting, follow the job like 'drover watch'");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(
          flags, args, &positional, /*interspersed=*/false,
          "  drover submit --source . train.py --epochs 10\n"
          "  id=$(drover submit --name resnet --experiment vision --gpu --gpus 4 \\\n"
          "       --nodes 2 --processes-per-node 4 --backend pytorch --memory 64Gi \\\n"
          "       --image pytorch/pytorch:2.1.0-cuda12.1-cudnn8-runtime \\\n"
          "       train.py --data ds://imagenet/train --out ds://results/run1?mode=upload)\n"
          "  drover submit -f job.json --priority 10      # flags override the file\n"
          "  drover submit --watch --env SEED=1 --max-run-duration 2h train.py\n"
          "  drover submit --image host --cpus 1 echo hello     # no code: a command\n"
          "  drover submit --array 0-999%50 --source . train.py  # 1000 tasks, 50 at once\n")) {
    return *done;
  }
  absl::StatusOr<v1::JobSpec> spec = spec_flags.Build(
      flags, positional, [&](const std::string& path) { return ReadInput(inv.ctx(), path); },
      inv.ctx().getenv);
  if (!spec.ok()) return inv.Usage(spec.status());
  if (flags.WasSet("source")) {
    if (flags.WasSet("snapshot")) {
      return inv.Fail(kExitUsage,
                      "--source and --snapshot both name the job's code; give one of them");
    }
    if (source.empty()) return inv.Fail(kExitUsage, "--source: needs a folder, for example --source .");
  }
  bool generated_key = false;
  if (spec->idempotency_key().empty()) {
    absl::StatusOr<std::string> key = inv.ctx().new_idempotency_key();
    if (!key.ok()) return inv.Fail(kExitInternal, key.status().message());
    spec->set_idempotency_key(*key);
    generated_key = true;
  }
  if (watch || !source.empty()) inv.WillStream();
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  if (!source.empty()) {
    std::string digest;
    if (auto done = UploadSource(inv, *client, source, &digest)) return *done;
    spec->set_source_snapshot(digest);
  }
  v1::SubmitJobRequest request;
  *request.mutable_spec() = *std::move(spec);
  absl::StatusOr<v1::SubmitJobResponse> response =
      inv.WithRetry([&] { return client->SubmitJob(request); });
  if (!response.ok()) return inv.ServerError(response.status());
  const v1::Job& job = response->job();
  if (job.spec().has_array_task()) {
    // The array's id is what cancel and list take; the first task is the answer's job.
    const v1::ArrayTask& task = job.spec().array_task();
    inv.Print([&] { return JobToJson(job, /*pretty=*/!watch); },
              [&] { return absl::StrCat(task.array_id(), "\n"); });
    if (!inv.global().json) {
      *inv.ctx().err << "drover: array " << task.array_id() << ": " << task.size()
                     << " tasks, the first " << job.id() << "; drover list --array "
                     << task.array_id() << " shows them" << std::endl;
    }
  } else {
    inv.Print([&] { return JobToJson(job, /*pretty=*/!watch); },
              [&] { return absl::StrCat(job.id(), "\n"); });
  }
  if (!response->created() && !generated_key) {
    *inv.ctx().err << "drover: idempotency key '" << request.spec().idempotency_key()
                   << "' was used before; " << job.id() << " is the job it created" << std::endl;
  }
  if (watch) return FollowJob(inv, *client, job.id());
  return kExitOk;
}

int ListCommand(Invocation& inv, const std::vector<std::string>& args) {
  std::vector<std::string> states;
  std::string experiment;
  std::string tag;
  int64_t limit = 50;
  bool all = false;
  FlagSet flags("drover list [flags]",
                "Lists jobs, newest first: ID, NAME, EXPERIMENT, STATE, REASON, NODES\n"
                "(nodes x processes per node) and AGE. With --output json: a JSON array of\n"
                "jobs. Users see their own jobs; viewers and admins everyone's.");
  flags.Repeated("state", &states, "Only jobs in this state (any case; a,b for several)",
                 "STATE");
  flags.String("experiment", &experiment, "Only jobs of this experiment", "NAME");
  flags.String("tag", &tag, "Only jobs with this tag (any value) or tag value",
               "KEY|KEY=VALUE");
  flags.Int("limit", &limit, "Show at most N jobs");
  flags.Bool("all", &all, "Show every job (follows every page; ignores --limit)");
  std::string array_id;
  bool expand = false;
  flags.String("array", &array_id, "Only the tasks of this job array, one line each", "ARRAY");
  flags.Bool("expand", &expand,
             "Show each task of a job array on its own line (default: one line per array,\n"
             "its tasks counted by state)");
  std::string owner;
  flags.String("owner", &owner,
               "Only jobs of this user (viewers and admins; users always see only their own)",
               "USER");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover list\n"
                            "  drover list --state queued --state running --experiment vision\n"
                            "  drover list --tag team=nlp --limit 10\n"
                            "  drover list --array a-3f9c1b2e7d40aa01 --state running\n"
                            "  drover list --all --output json | jq -r '.[].id'\n")) {
    return *done;
  }
  if (auto done = NoPositionals(inv, "list", positional)) return *done;
  if (limit < 1) return inv.Fail(kExitUsage, "--limit: must be at least 1; use --all for every job");
  v1::ListJobsRequest request;
  for (const std::string& value : states) {
    for (absl::string_view name : absl::StrSplit(value, ',', absl::SkipWhitespace())) {
      absl::StatusOr<v1::JobStatus::State> state = ParseStateName(absl::StripAsciiWhitespace(name));
      if (!state.ok()) return inv.Fail(kExitUsage, absl::StrCat("--state: ", state.status().message()));
      request.add_states(*state);
    }
  }
  request.set_experiment(experiment);
  request.set_tag(tag);
  request.set_owner(owner);
  request.set_array_id(array_id);
  request.set_group_arrays(!expand && array_id.empty());
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;

  constexpr int64_t kMaxPageSize = 1000;
  std::vector<v1::Job> jobs;
  std::vector<v1::ArraySummary> arrays;  // with group_arrays: one line each
  bool more = false;
  while (true) {
    int64_t wanted = all ? kMaxPageSize : std::min<int64_t>(limit - jobs.size(), kMaxPageSize);
    request.set_page_size(static_cast<int32_t>(wanted));
    absl::StatusOr<v1::ListJobsResponse> page = inv.WithRetry([&] { return client->ListJobs(request); });
    if (!page.ok()) return inv.ServerError(page.status());
    for (v1::ArraySummary& array : *page->mutable_arrays()) arrays.push_back(std::move(array));
    for (v1::Job& job : *page->mutable_jobs()) {
      if (!all && static_cast<int64_t>(jobs.size()) >= limit) {
        more = true;
        break;
      }
      jobs.push_back(std::move(job));
    }
    if (page->next_page_token().empty()) break;
    if (!all && static_cast<int64_t>(jobs.size()) >= limit) {
      more = true;
      break;
    }
    request.set_page_token(page->next_page_token());
  }

  if (inv.global().json) {
    std::vector<std::string> items;
    for (const v1::Job& job : jobs) items.push_back(JobToJson(job, /*pretty=*/false));
    for (const v1::ArraySummary& array : arrays) items.push_back(MessageToJson(array, false));
    inv.out() << JsonArray(items) << "\n";
  } else {
    inv.out() << FormatJobTable(jobs, inv.ctx().now(), arrays);
    if (more) {
      *inv.ctx().err << "drover: showing the newest " << jobs.size()
                     << " jobs; use --limit N or --all for more" << std::endl;
    }
  }
  inv.out().flush();
  return kExitOk;
}

int ShowCommand(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover show [flags] JOB",
                "Shows one job: its status, spec, arguments, environment, resources and times.\n"
                "With --output json: the job in protobuf JSON form (proto field names).");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover show j-42\n"
                            "  drover show 42 --output json | jq .status.state\n")) {
    return *done;
  }
  v1::GetJobRequest request;
  if (auto done = TakeJobId(inv, "show", positional, request.mutable_job_id())) return *done;
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::Job> job = inv.WithRetry([&] { return client->GetJob(request); });
  if (!job.ok()) return inv.ServerError(job.status());
  inv.Print([&] { return JobToJson(*job, /*pretty=*/true); },
            [&] { return FormatJobDetails(*job, inv.ctx().now(), inv.ctx().zone); });
  return kExitOk;
}

int CancelCommand(Invocation& inv, const std::vector<std::string>& args) {
  std::string reason;
  FlagSet flags("drover cancel [flags] JOB|ARRAY",
                "Cancels a job and prints its new state: a queued job is CANCELED at once, a\n"
                "placed one is CANCEL_REQUESTED until its nodes stopped it. Canceling a job\n"
                "that is already canceled succeeds; a COMPLETED or FAILED job gives exit code 5.\n"
                "A job array's id (a-...) cancels every task of the array not ended.");
  flags.String("reason", &reason, "Why, recorded in the job's status message", "TEXT");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover cancel j-42\n"
                            "  drover cancel j-42 --reason 'wrong learning rate'\n"
                            "  drover cancel a-3f9c1b2e7d40aa01      # every task of an array\n")) {
    return *done;
  }
  v1::CancelJobRequest request;
  request.set_reason(reason);
  const bool is_array = positional.size() == 1 && absl::StartsWith(positional[0], "a-");
  if (is_array) {
    request.set_job_id(positional[0]);  // droverd checks the array id
  } else if (auto done = TakeJobId(inv, "cancel", positional, request.mutable_job_id())) {
    return *done;
  }
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::Job> job = inv.WithRetry([&] { return client->CancelJob(request); });
  if (!job.ok()) return inv.ServerError(job.status());
  inv.Print([&] { return JobToJson(*job, /*pretty=*/true); },
            [&] {
              if (is_array) {
                return absl::StrCat(request.job_id(), " every task not ended canceled (",
                                    job->id(), " ", StateName(job->status().state()), ")\n");
              }
              return absl::StrCat(job->id(), " ", StateName(job->status().state()), "\n");
            });
  return kExitOk;
}

int TagCommand(Invocation& inv, const std::vector<std::string>& args) {
  std::vector<std::string> remove;
  FlagSet flags("drover tag [flags] JOB [KEY=VALUE...]",
                "Changes the tags of a submitted job, in any state, and prints them all:\n"
                "KEY=VALUE adds a tag or replaces its value, --remove KEY removes one (a key the\n"
                "job has no tag of is no error). A job has at most 64 tags; keys are 1-63\n"
                "characters of [A-Za-z0-9._/-], values at most 256 bytes. Only the job's owner\n"
                "and admins change its tags. With --output json: the job.");
  flags.Repeated("remove", &remove, "Remove the tag with this key", "KEY");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover tag j-42 stage=final lr=0.01\n"
                            "  drover tag j-42 --remove stage\n"
                            "  drover tag j-42 best=yes --remove candidate\n"
                            "  drover list --tag best=yes\n")) {
    return *done;
  }
  v1::UpdateJobTagsRequest request;
  // JOB first, then the assignments.
  const std::vector<std::string> job_arg(
      positional.begin(), positional.begin() + std::min<size_t>(1, positional.size()));
  if (auto done = TakeJobId(inv, "tag", job_arg, request.mutable_job_id())) return *done;
  for (size_t i = 1; i < positional.size(); ++i) {
    const std::string& assignment = positional[i];
    const size_t equals = assignment.find('=');
    if (equals == std::string::npos || equals == 0) {
      return inv.Fail(kExitUsage, absl::StrCat("'", assignment, "': write KEY=VALUE to set a tag, ",
                                               "or --remove KEY to remove one"));
    }
    (*request.mutable_set())[assignment.substr(0, equals)] = assignment.substr(equals + 1);
  }
  for (const std::string& key : remove) request.add_remove(key);
  if (request.set().empty() && request.remove().empty()) {
    return inv.Fail(kExitUsage,
                    "nothing to change; give KEY=VALUE to set a tag or --remove KEY to remove one");
  }
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  // Setting and removing the same tags twice gives the same tags: safe to retry.
  absl::StatusOr<v1::Job> job = inv.WithRetry([&] { return client->UpdateJobTags(request); });
  if (!job.ok()) return inv.ServerError(job.status());
  inv.Print([&] { return JobToJson(*job, /*pretty=*/true); },
            [&] {
              std::map<std::string, std::string> sorted(job->spec().tags().begin(),
                                                        job->spec().tags().end());
              std::string line = job->id();
              if (sorted.empty()) absl::StrAppend(&line, " (no tags)");
              for (const auto& [key, value] : sorted) absl::StrAppend(&line, " ", key, "=", value);
              return absl::StrCat(line, "\n");
            });
  return kExitOk;
}

int WatchCommand(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover watch [flags] JOB",
                "Follows a job until it ends, one line per change:\n"
                "  <time> <job> <STATE> [<reason>] [-- <message>]\n"
                "With --output json: one JSON object (the job) per line. The exit code tells\n"
                "how the job ended: 0 COMPLETED, 10 FAILED, 11 CANCELED.");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover watch j-42\n"
                            "  drover watch j-42 && echo trained || echo \"ended with $?\"\n"
                            "  drover watch j-42 --output json | jq -r .status.state\n")) {
    return *done;
  }
  std::string job_id;
  if (auto done = TakeJobId(inv, "watch", positional, &job_id)) return *done;
  inv.WillStream();
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  return FollowJob(inv, *client, job_id);
}

namespace {

int VersionCommand(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover version", "Prints the version of this drover client.");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true, "  drover version\n")) {
    return *done;
  }
  if (auto done = NoPositionals(inv, "version", positional)) return *done;
  inv.out() << "drover " << DroverVersion() << "\n";
  return kExitOk;
}

int HelpCommand(Invocation& inv, const std::vector<std::string>& args);

struct Command {
  absl::string_view name;
  absl::string_view summary;
  int (*handler)(Invocation& inv, const std::vector<std::string>& args);
  // Takes an ACTION first ("drover node cordon"): `drover help node cordon` works.
  bool has_actions = false;
};

constexpr Command kCommands[] = {
    {"submit", "Submit a job; prints its id", SubmitCommand},
    {"list", "List jobs, newest first", ListCommand},
    {"show", "Show one job in detail", ShowCommand},
    {"cancel", "Cancel a job", CancelCommand},
    {"tag", "Set or remove a job's tags", TagCommand},
    {"watch", "Follow a job until it ends; the exit code tells how", WatchCommand},
    {"logs", "Print a job's output; -f follows it until the job ends", LogsCommand},
    {"metrics", "Print a job's metrics (run.log, CPU, memory); -f follows them", MetricsCommand},
    {"download", "Fetch the files a job wrote to its outputs folder", DownloadCommand},
    {"sweep", "Submit, show, list or cancel hyperparameter sweeps", SweepCommand, true},
    {"nodes", "List the cluster's nodes with their resources and jobs", NodesCommand},
    {"node", "Cordon, uncordon, drain or declare lost a node (administrators)", NodeCommand, true},
    {"target", "Create, list or delete compute targets (administrators)", TargetCommand, true},
    {"image", "Import, list or delete OCI images (administrators)", ImageCommand, true},
    {"datastore", "Create, list or delete datastores (administrators)", DatastoreCommand, true},
    {"user", "Create, list, revoke users and give them tokens (administrators)", UserCommand, true},
    {"login", "Save a server, CA and token for later commands", LoginCommand},
    {"whoami", "Print the user and role droverd takes you for", WhoAmICommand},
    {"audit", "Show who changed what, from where, with which result (administrators)",
     AuditCommand},
    {"gc", "Run droverd's retention pass now: old logs, snapshots, outputs (administrators)",
     GcCommand},
    {"help", "Show help for drover or one command", HelpCommand},
    {"version", "Print the client's version", VersionCommand},
};

const Command* FindCommand(absl::string_view name) {
  for (const Command& command : kCommands) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

std::string TopHelp() {
  GlobalOptions unused;
  std::string summary = "Submits training jobs to droverd, the Drover scheduler, follows them and fetches\ntheir outputs; administers nodes, compute targets, images and datastores.\n\nCommands:\n";
  for (const Command& command : kCommands) {
    absl::StrAppend(&summary, "  ", command.name, std::string(10 - command.name.size(), ' '),
                    command.summary, "\n");
  }
  absl::StrAppend(&summary,
                  "\nThe flags below are accepted before or after COMMAND. Run 'drover help "
                  "COMMAND'\nor 'drover COMMAND --help' for the flags of a command.");
  FlagSet flags("drover [flags] COMMAND [flags] [ARGS...]", summary);
  AddGlobalFlags(&flags, &unused);
  return absl::StrCat(flags.Help(),
                      "\nExamples:\n"
                      "  id=$(drover submit --name mnist --source . train.py --epochs 10)\n"
                      "  drover logs -f \"$id\"\n"
                      "  drover download \"$id\"\n"
                      "  drover list --state running\n"
                      "  DROVER_SERVER=head:7070 drover show j-42 --output json\n\n",
                      kExitCodesHelp);
}

int HelpCommand(Invocation& inv, const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    inv.out() << TopHelp();
    return kExitOk;
  }
  const Command* command = FindCommand(args[0]);
  size_t allowed = command != nullptr && command->has_actions ? 2 : 1;
  if (command == nullptr || args.size() > allowed) {
    return inv.Fail(kExitUsage, absl::StrCat(command == nullptr ? "unknown command '" : "too many arguments after '",
                                             args[0], "'; run 'drover help' for the commands"));
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  rest.push_back("--help");
  return command->handler(inv, rest);
}

}  // namespace

int ExitCodeForServerStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return kExitInvalid;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return kExitConflict;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return kExitUnavailable;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied:
      return kExitAuth;
    default:
      return kExitInternal;
  }
}

int RunDrover(const std::vector<std::string>& args, CliContext& ctx) {
  Invocation inv(ctx);
  FlagSet flags("drover [flags] COMMAND [flags] [ARGS...]", "");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  absl::Status status = flags.Parse(args, &positional, /*interspersed=*/false);
  if (!status.ok()) return inv.Usage(status);
  if (flags.help_requested()) {
    *ctx.out << TopHelp();
    return kExitOk;
  }
  if (positional.empty()) {
    *ctx.err << TopHelp();
    return inv.Fail(kExitUsage, "missing COMMAND; see the list above");
  }
  const Command* command = FindCommand(positional[0]);
  if (command == nullptr) {
    return inv.Fail(kExitUsage, absl::StrCat("unknown command '", positional[0],
                                             "'; run 'drover help' for the commands"));
  }
  std::vector<std::string> rest(positional.begin() + 1, positional.end());
  return command->handler(inv, rest);
}

absl::StatusOr<std::string> RandomIdempotencyKey() {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open /dev/urandom for an idempotency key: ",
                                            strerror(errno), "; pass --idempotency-key"));
  }
  char bytes[16];
  size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = read(fd, bytes + got, sizeof bytes - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  if (got != sizeof bytes) {
    return absl::InternalError("cannot read /dev/urandom for an idempotency key; pass --idempotency-key");
  }
  return absl::StrCat("drover-", absl::BytesToHexString(absl::string_view(bytes, sizeof bytes)));
}

absl::string_view DroverVersion() { return DROVER_VERSION; }

}  // namespace drover::cli
