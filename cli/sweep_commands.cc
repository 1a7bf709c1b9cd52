// `drover sweep submit|show|list|cancel`: hyperparameter sweeps run by droverd
// (docs/sweeps.md).
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/format.h"
#include "cli/invocation.h"
#include "drover/v1/sweep_service.pb.h"
#include "google/protobuf/util/json_util.h"

namespace drover::cli {
namespace {

std::string SweepStateName(v1::SweepStatus::State state) {
  return state == v1::SweepStatus::STATE_UNSPECIFIED ? "-" : v1::SweepStatus::State_Name(state);
}

// A number as the tables show it ("-0" shown as "0").
std::string Number(double value) { return absl::StrCat(value + 0.0); }

std::string ValueText(const v1::ParameterValue& value) {
  if (value.kind_case() == v1::ParameterValue::kText) return value.text();
  return Number(value.number());
}

// "batch_size=64 lr=0.001", names in byte order.
std::string ParametersText(const v1::SweepTrial& trial) {
  std::vector<std::string> names;
  for (const auto& [name, value] : trial.parameters()) names.push_back(name);
  std::sort(names.begin(), names.end());
  std::vector<std::string> parts;
  for (const std::string& name : names) {
    parts.push_back(absl::StrCat(name, "=", ValueText(trial.parameters().at(name))));
  }
  return absl::StrJoin(parts, " ");
}

// The trials best first (by result; ties by index), then those without a result by index.
std::vector<const v1::SweepTrial*> Ranked(const v1::Sweep& sweep) {
  std::vector<const v1::SweepTrial*> out;
  for (const v1::SweepTrial& trial : sweep.trials()) out.push_back(&trial);
  const bool maximize = sweep.spec().primary_metric_goal() == v1::MAXIMIZE;
  std::stable_sort(out.begin(), out.end(), [&](const v1::SweepTrial* a, const v1::SweepTrial* b) {
    if (a->has_result() != b->has_result()) return a->has_result();
    if (!a->has_result()) return a->index() < b->index();
    if (a->result() != b->result()) return maximize ? a->result() > b->result()
                                                    : a->result() < b->result();
    return a->index() < b->index();
  });
  return out;
}

absl::StatusOr<v1::SweepSpec> ParseSweepSpecJson(const std::string& json) {
  google::protobuf::util::JsonParseOptions options;
  options.case_insensitive_enum_parsing = true;
  v1::SweepSpec spec;
  auto status = google::protobuf::util::JsonStringToMessage(json, &spec, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sweep spec: ", std::string(status.message().data(), status.message().size()),
        "; write a SweepSpec in protobuf's JSON form (docs/sweeps.md)"));
  }
  return spec;
}

absl::StatusOr<std::string> ReadSpecFile(CliContext& ctx, const std::string& path) {
  std::stringstream buffer;
  if (path == "-") {
    buffer << ctx.in->rdbuf();
    return buffer.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int error = errno;
    return absl::InvalidArgumentError(absl::StrCat("cannot read sweep spec file '", path,
                                                   "': ", absl::AsciiStrToLower(strerror(error))));
  }
  buffer << in.rdbuf();
  return buffer.str();
}

// The sweep id of a command taking exactly one.
std::optional<int> TakeSweepId(Invocation& inv, absl::string_view action,
                               const std::vector<std::string>& positional, std::string* id) {
  if (positional.size() != 1 || positional[0].empty()) {
    return inv.Fail(kExitUsage,
                    absl::StrCat(positional.empty() ? "missing SWEEP" : "too many arguments",
                                 "; usage: drover sweep ", action, " SWEEP"));
  }
  *id = positional[0];
  return std::nullopt;
}

std::string FormatSweepDetails(const v1::Sweep& sweep) {
  const v1::SweepSpec& spec = sweep.spec();
  std::string out = absl::StrCat(
      "Sweep:     ", sweep.id(), spec.name().empty() ? "" : absl::StrCat(" (", spec.name(), ")"),
      "\nOwner:     ", sweep.owner(), "\nState:     ", SweepStateName(sweep.status().state()),
      sweep.status().reason().empty() ? "" : absl::StrCat("  ", sweep.status().reason()), "\n");
  if (!sweep.status().message().empty()) {
    absl::StrAppend(&out, "Message:   ", sweep.status().message(), "\n");
  }
  absl::StrAppend(&out, "Metric:    ", spec.primary_metric_name(), " (",
                  spec.primary_metric_goal() == v1::MAXIMIZE ? "maximize" : "minimize", ")\n",
                  "Sampling:  ", v1::Sampling::Method_Name(spec.sampling().method()),
                  "\nTrials:    ", sweep.trial_count(), " of ", spec.max_total_trials(),
                  " started, at most ", spec.max_concurrent_trials(), " at once\n");
  if (sweep.has_best_trial_index()) {
    absl::StrAppend(&out, "Best:      trial ", sweep.best_trial_index(), ", ",
                    spec.primary_metric_name(), " ", Number(sweep.best_result()), "\n");
  } else {
    absl::StrAppend(&out, "Best:      - (no trial logged ", spec.primary_metric_name(), ")\n");
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"RANK", "TRIAL", "JOB", "STATE",
                  absl::AsciiStrToUpper(spec.primary_metric_name()), "INTERVALS", "PARAMETERS"});
  int rank = 0;
  for (const v1::SweepTrial* trial : Ranked(sweep)) {
    ++rank;
    std::string state = StateName(trial->job_state());
    if (trial->has_stop()) absl::StrAppend(&state, " (stopped: ", trial->stop().rule(), ")");
    rows.push_back({trial->has_result() ? absl::StrCat(rank) : "-", absl::StrCat(trial->index()),
                    trial->job_id(), state,
                    trial->has_result() ? Number(trial->result()) : "-",
                    absl::StrCat(trial->intervals()), ParametersText(*trial)});
  }
  absl::StrAppend(&out, "\n", FormatTable(rows));
  for (const v1::SweepTrial* trial : Ranked(sweep)) {
    if (trial->has_stop()) {
      absl::StrAppend(&out, "trial ", trial->index(), " stopped: ", trial->stop().message(), "\n");
    }
  }
  return out;
}

int SubmitAction(Invocation& inv, const std::vector<std::string>& args) {
  std::string file;
  FlagSet flags("drover sweep submit [flags] -f FILE",
                "Submits a hyperparameter sweep and prints its id. FILE ('-': stdin) holds a\n"
                "SweepSpec in protobuf's JSON form (docs/sweeps.md): the trial template (a job\n"
                "spec), the search space, the sampling, the primary metric and its goal, the\n"
                "trial limits and the early-termination policy. droverd checks it whole and\n"
                "refuses it naming the field (exit code 3); then it starts the trials itself,\n"
                "at most max_concurrent_trials at once. A retried submit is the same sweep.");
  flags.String("file,f", &file, "The sweep spec (JSON); '-' reads stdin", "FILE");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover sweep submit -f sweep.json\n"
                            "  id=$(drover sweep submit -f sweep.json) && "
                            "drover sweep show \"$id\"\n")) {
    return *done;
  }
  if (file.empty()) {
    return inv.Fail(kExitUsage, "missing -f FILE; usage: drover sweep submit -f FILE");
  }
  if (!positional.empty()) {
    return inv.Fail(kExitUsage, "drover sweep submit takes no arguments; give -f FILE");
  }
  absl::StatusOr<std::string> json = ReadSpecFile(inv.ctx(), file);
  if (!json.ok()) return inv.Fail(kExitUsage, json.status().message());
  absl::StatusOr<v1::SweepSpec> spec = ParseSweepSpecJson(*json);
  if (!spec.ok()) return inv.Fail(kExitUsage, spec.status().message());
  v1::SubmitSweepRequest request;
  *request.mutable_spec() = *std::move(spec);
  // A key of its own, so that a retry after UNAVAILABLE is the same sweep.
  if (request.spec().idempotency_key().empty()) {
    absl::StatusOr<std::string> key = inv.ctx().new_idempotency_key();
    if (!key.ok()) return inv.Fail(kExitInternal, key.status().message());
    request.mutable_spec()->set_idempotency_key(*key);
  }
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::SubmitSweepResponse> response =
      inv.WithRetry([&] { return client->SubmitSweep(request); });
  if (!response.ok()) return inv.ServerError(response.status());
  inv.Print([&] { return MessageToJson(response->sweep(), /*pretty=*/true); },
            [&] { return absl::StrCat(response->sweep().id(), "\n"); });
  return kExitOk;
}

int ShowAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover sweep show [flags] SWEEP",
                "Shows a sweep: its state, the best trial, and every trial ranked by the\n"
                "primary metric, best first (trials without a value last), with its job, the\n"
                "job's state (and the rule that stopped it early, if one did), its result,\n"
                "how many values it logged and its parameters. With --output json: the Sweep.");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover sweep show s-3f9c1b2e7d40aa01\n"
                            "  drover sweep show s-3f9c1b2e7d40aa01 --output json | "
                            "jq .bestTrialIndex\n")) {
    return *done;
  }
  v1::GetSweepRequest request;
  if (auto done = TakeSweepId(inv, "show", positional, request.mutable_sweep_id())) return *done;
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::Sweep> sweep = inv.WithRetry([&] { return client->GetSweep(request); });
  if (!sweep.ok()) return inv.ServerError(sweep.status());
  inv.Print([&] { return MessageToJson(*sweep, /*pretty=*/true); },
            [&] { return FormatSweepDetails(*sweep); });
  return kExitOk;
}

int ListAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover sweep list [flags]",
                "Lists sweeps, newest first: ID, NAME, STATE, TRIALS (started of the total)\n"
                "and BEST (the best result so far). A user sees their own sweeps. With\n"
                "--output json: a JSON array of sweeps (without their trials).");
  return inv.RunRead(
      flags, args, "sweep list", "  drover sweep list\n",
      [](DroverClient& client) { return client.ListSweeps(v1::ListSweepsRequest()); },
      [&](const v1::ListSweepsResponse& list) {
        std::vector<v1::Sweep> sweeps(list.sweeps().begin(), list.sweeps().end());
        inv.PrintList(sweeps, [&] {
          std::vector<std::vector<std::string>> rows;
          rows.push_back({"ID", "NAME", "STATE", "TRIALS", "BEST"});
          for (const v1::Sweep& sweep : sweeps) {
            rows.push_back({sweep.id(), sweep.spec().name().empty() ? "-" : sweep.spec().name(),
                            SweepStateName(sweep.status().state()),
                            absl::StrCat(sweep.trial_count(), "/", sweep.spec().max_total_trials()),
                            sweep.has_best_result() ? Number(sweep.best_result()) : "-"});
          }
          return FormatTable(rows);
        });
      });
}

int CancelAction(Invocation& inv, const std::vector<std::string>& args) {
  FlagSet flags("drover sweep cancel [flags] SWEEP",
                "Cancels a sweep: no trial starts after it and its running trials are\n"
                "canceled. Prints the sweep's id and state; a sweep that already ended is left\n"
                "as it is.");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover sweep cancel s-3f9c1b2e7d40aa01\n")) {
    return *done;
  }
  v1::CancelSweepRequest request;
  if (auto done = TakeSweepId(inv, "cancel", positional, request.mutable_sweep_id())) return *done;
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  absl::StatusOr<v1::Sweep> sweep = inv.WithRetry([&] { return client->CancelSweep(request); });
  if (!sweep.ok()) return inv.ServerError(sweep.status());
  inv.Print([&] { return MessageToJson(*sweep, /*pretty=*/true); },
            [&] {
              return absl::StrCat(sweep->id(), " ", SweepStateName(sweep->status().state()),
                                  "\n");
            });
  return kExitOk;
}

}  // namespace

int SweepCommand(Invocation& inv, const std::vector<std::string>& args) {
  return RunActions(inv, "sweep",
                    "Runs hyperparameter sweeps (docs/sweeps.md): droverd starts one job per\n"
                    "trial from a template and a search space, stops hopeless trials early and\n"
                    "ranks them by the primary metric the script logs with run.log.",
                    {{"submit", "Submit a sweep from a JSON spec; prints its id", SubmitAction},
                     {"show", "Show a sweep's trials, best first", ShowAction},
                     {"list", "List sweeps, newest first", ListAction},
                     {"cancel", "Cancel a sweep and its running trials", CancelAction}},
                    "  drover sweep submit -f sweep.json\n"
                    "  drover sweep show s-3f9c1b2e7d40aa01\n"
                    "  drover sweep list\n"
                    "  drover sweep cancel s-3f9c1b2e7d40aa01\n",
                    args);
}

}  // namespace drover::cli
