#include "cli/format.h"

#include <algorithm>
#include <utility>

#include <google/protobuf/util/json_util.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "cli/submit_spec.h"
#include "common/archive/snapshot.h"
#include "common/job_id.h"

namespace drover::cli {
namespace {

constexpr size_t kReasonWidth = 40;

absl::Time ToTime(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

std::string OrDash(absl::string_view text) { return text.empty() ? "-" : std::string(text); }

std::string YesNo(bool b) { return b ? "yes" : "no"; }

std::string BackendName(v1::JobSpec::DistributedBackend backend) {
  switch (backend) {
    case v1::JobSpec::MPI:
      return "mpi";
    case v1::JobSpec::PYTORCH:
      return "pytorch";
    default:
      return "none";
  }
}

// One "key: value" section; values spanning lines are indented under the first.
class Section {
 public:
  explicit Section(std::string title) : title_(std::move(title)) {}
  void Add(std::string key, std::string value) { lines_.emplace_back(std::move(key), std::move(value)); }
  void AppendTo(std::string* out, bool top_level) const {
    if (lines_.empty()) return;
    std::string indent = top_level ? "" : "  ";
    if (!top_level) absl::StrAppend(out, "\n", title_, ":\n");
    size_t width = 0;
    for (const auto& [key, value] : lines_) width = std::max(width, key.size());
    for (const auto& [key, value] : lines_) {
      std::string pad(width - key.size() + 1, ' ');
      std::string shown = value;
      std::string continuation = absl::StrCat("\n", indent, std::string(width + 2, ' '));
      for (size_t pos = shown.find('\n'); pos != std::string::npos;
           pos = shown.find('\n', pos + continuation.size())) {
        shown.replace(pos, 1, continuation);
      }
      absl::StrAppend(out, indent, key, ":", pad, shown, "\n");
    }
  }

 private:
  std::string title_;
  std::vector<std::pair<std::string, std::string>> lines_;
};

std::string TimeWithAge(const google::protobuf::Timestamp& ts, absl::Time now,
                        absl::TimeZone zone) {
  absl::Time t = ToTime(ts);
  return absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M:%S %z", t, zone), " (",
                      FormatAge(now - t), " ago)");
}

std::string OneLineText(absl::string_view text) {
  return absl::StrReplaceAll(text, {{"\r\n", " "}, {"\n", " "}, {"\r", " "}});
}

// The usual name of a Linux signal, "" for others.
std::string SignalName(int signal) {
  static constexpr std::pair<int, const char*> kNames[] = {
      {1, "SIGHUP"},   {2, "SIGINT"},   {3, "SIGQUIT"},  {4, "SIGILL"},  {5, "SIGTRAP"},
      {6, "SIGABRT"},  {7, "SIGBUS"},   {8, "SIGFPE"},   {9, "SIGKILL"}, {10, "SIGUSR1"},
      {11, "SIGSEGV"}, {12, "SIGUSR2"}, {13, "SIGPIPE"}, {14, "SIGALRM"}, {15, "SIGTERM"},
      {24, "SIGXCPU"}, {25, "SIGXFSZ"}, {31, "SIGSYS"}};
  for (const auto& [number, name] : kNames) {
    if (number == signal) return name;
  }
  return "";
}

std::string SortedMap(const google::protobuf::Map<std::string, std::string>& map,
                      absl::string_view separator) {
  std::vector<std::pair<std::string, std::string>> entries(map.begin(), map.end());
  std::sort(entries.begin(), entries.end());
  std::vector<std::string> parts;
  for (const auto& [k, v] : entries) parts.push_back(absl::StrCat(k, "=", v));
  return absl::StrJoin(parts, separator);
}

}  // namespace

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty()) return "";
  size_t columns = rows[0].size();
  std::vector<size_t> widths(columns, 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < columns && c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < columns; ++c) {
      const std::string cell = c < row.size() ? row[c] : "";
      absl::StrAppend(&line, cell);
      if (c + 1 < columns) line.append(widths[c] - cell.size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string FormatAge(absl::Duration age) {
  if (age < absl::ZeroDuration()) age = absl::ZeroDuration();
  int64_t seconds = absl::ToInt64Seconds(age);
  if (seconds < 60) return absl::StrCat(seconds, "s");
  if (seconds < 3600) return absl::StrCat(seconds / 60, "m");
  if (seconds < 86400) return absl::StrCat(seconds / 3600, "h");
  return absl::StrCat(seconds / 86400, "d");
}

std::string Truncate(absl::string_view text, size_t width) {
  if (text.size() <= width) return std::string(text);
  if (width <= 3) return std::string(text.substr(0, width));
  return absl::StrCat(text.substr(0, width - 3), "...");
}

std::string StateName(v1::JobStatus::State state) { return v1::JobStatus::State_Name(state); }

absl::StatusOr<v1::JobStatus::State> ParseStateName(absl::string_view name) {
  v1::JobStatus::State state;
  std::string upper = absl::AsciiStrToUpper(name);
  if (upper != "STATE_UNSPECIFIED" && v1::JobStatus::State_Parse(upper, &state)) return state;
  std::vector<std::string> names;
  for (int i = v1::JobStatus::State_MIN; i <= v1::JobStatus::State_MAX; ++i) {
    if (v1::JobStatus::State_IsValid(i) && i != v1::JobStatus::STATE_UNSPECIFIED) {
      names.push_back(v1::JobStatus::State_Name(static_cast<v1::JobStatus::State>(i)));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a job state; use one of ",
                                                 absl::StrJoin(names, ", ")));
}

bool IsTerminal(v1::JobStatus::State state) {
  return state == v1::JobStatus::COMPLETED || state == v1::JobStatus::FAILED ||
         state == v1::JobStatus::CANCELED;
}

std::string FormatArrayCounts(const v1::ArraySummary& array) {
  // Running first, then waiting, then ended: what a user scans for.
  static constexpr v1::JobStatus::State kOrder[] = {
      v1::JobStatus::RUNNING,          v1::JobStatus::PREPARING, v1::JobStatus::STARTING,
      v1::JobStatus::FINALIZING,       v1::JobStatus::CANCEL_REQUESTED, v1::JobStatus::QUEUED,
      v1::JobStatus::COMPLETED,        v1::JobStatus::FAILED,    v1::JobStatus::CANCELED};
  std::vector<std::string> parts;
  for (v1::JobStatus::State state : kOrder) {
    for (const v1::ArraySummary::StateCount& count : array.counts()) {
      if (count.state() == state && count.count() > 0) {
        parts.push_back(absl::StrCat(count.count(), " ", absl::AsciiStrToLower(StateName(state))));
      }
    }
  }
  return parts.empty() ? "-" : absl::StrJoin(parts, ", ");
}

std::string FormatJobTable(const std::vector<v1::Job>& jobs, absl::Time now,
                           const std::vector<v1::ArraySummary>& arrays) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"ID", "NAME", "EXPERIMENT", "STATE", "REASON", "NODES", "AGE"});
  // Jobs and arrays newest first, an array by its first task's id.
  std::vector<std::pair<int64_t, const v1::Job*>> order;
  for (const v1::Job& job : jobs) {
    absl::StatusOr<int64_t> seq = ParseJobId(job.id());
    order.emplace_back(seq.ok() ? *seq : 0, &job);
  }
  for (const v1::ArraySummary& array : arrays) {
    absl::StatusOr<int64_t> seq = ParseJobId(array.first_task().id());
    order.emplace_back(seq.ok() ? *seq : 0, nullptr);
  }
  if (!arrays.empty()) {
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
  }
  for (const auto& [seq, found] : order) {
    if (found == nullptr) {
      for (const v1::ArraySummary& array : arrays) {
        absl::StatusOr<int64_t> first = ParseJobId(array.first_task().id());
        if (!first.ok() || *first != seq) continue;
        const v1::Job& job = array.first_task();
        rows.push_back({
            array.array_id(),
            OrDash(array.name()),
            OrDash(array.experiment()),
            absl::StrCat("ARRAY[", array.size(),
                         array.max_running() > 0 ? absl::StrCat("%", array.max_running()) : "",
                         "]"),
            FormatArrayCounts(array),
            absl::StrCat(std::max(job.spec().node_count(), 1), "x",
                         std::max(job.spec().process_count_per_node(), 1)),
            job.has_create_time() ? FormatAge(now - ToTime(job.create_time())) : "-",
        });
      }
      continue;
    }
    const v1::Job& job = *found;
    rows.push_back({
        job.id(),
        OrDash(job.spec().name()),
        OrDash(job.spec().experiment()),
        StateName(job.status().state()),
        OrDash(Truncate(job.status().reason(), kReasonWidth)),
        absl::StrCat(std::max(job.spec().node_count(), 1), "x",
                     std::max(job.spec().process_count_per_node(), 1)),
        job.has_create_time() ? FormatAge(now - ToTime(job.create_time())) : "-",
    });
  }
  return FormatTable(rows);
}

std::string FormatMib(int64_t mib) {
  if (mib != 0 && mib % (1024 * 1024) == 0) return absl::StrCat(mib / (1024 * 1024), "Ti");
  if (mib != 0 && mib % 1024 == 0) return absl::StrCat(mib / 1024, "Gi");
  return absl::StrCat(mib, "Mi");
}

std::string FormatJobDetails(const v1::Job& job, absl::Time now, absl::TimeZone zone) {
  const v1::JobSpec& spec = job.spec();
  const v1::JobStatus& status = job.status();

  Section top("job");
  top.Add("id", job.id());
  top.Add("name", OrDash(spec.name()));
  top.Add("experiment", OrDash(spec.experiment()));
  if (!job.owner().empty()) top.Add("owner", job.owner());
  if (!spec.tags().empty()) top.Add("tags", SortedMap(spec.tags(), ", "));
  if (spec.has_array_task()) {
    const v1::ArrayTask& task = spec.array_task();
    top.Add("array", absl::StrCat(task.array_id(), " index ", task.index(), " (", task.size(),
                                  " tasks", task.max_running() > 0
                                                ? absl::StrCat(", at most ", task.max_running(),
                                                               " running")
                                                : "",
                                  ")"));
  }

  Section state("status");
  state.Add("state", StateName(status.state()));
  state.Add("reason", OrDash(status.reason()));
  if (status.cause() != v1::JobStatus::CAUSE_UNSPECIFIED) {
    state.Add("cause", v1::JobStatus::Cause_Name(status.cause()));
  }
  if (!status.message().empty()) state.Add("message", status.message());
  state.Add("attempt", absl::StrCat(status.attempt()));
  if (!status.nodes().empty()) state.Add("nodes", absl::StrJoin(status.nodes(), ", "));
  if (!status.gpus().empty()) {
    std::vector<std::string> gpus;
    for (const v1::NodeGpus& held : status.gpus()) {
      std::vector<std::string> indices, uuids;
      for (const v1::Gpu& gpu : held.gpus()) {
        indices.push_back(absl::StrCat(gpu.index()));
        uuids.push_back(gpu.uuid());
      }
      gpus.push_back(absl::StrCat(held.node(), ": ", absl::StrJoin(indices, ","), " (",
                                  absl::StrJoin(uuids, ", "), ")"));
    }
    state.Add("gpus", absl::StrJoin(gpus, "\n"));
  }
  if (!status.exits().empty()) {
    std::vector<std::string> exits;
    for (const v1::RankExit& exit : status.exits()) exits.push_back(FormatRankExit(exit));
    state.Add("exits", absl::StrJoin(exits, "\n"));
  }
  if (!status.outputs_digest().empty()) {
    state.Add("outputs", absl::StrCat(status.outputs_digest(), " (",
                                      archive::FormatBytes(static_cast<uint64_t>(std::max<int64_t>(status.outputs_size(), 0))),
                                      status.has_outputs_removed_time()
                                          ? "); removed by droverd's retention"
                                          : absl::StrCat("); fetch with drover download ", job.id())));
  }
  // Retention (docs/operations.md#retention): what the job lost, and when.
  std::vector<std::string> removed;
  if (status.has_logs_removed_time()) {
    removed.push_back(absl::StrCat("logs ", TimeWithAge(status.logs_removed_time(), now, zone)));
  }
  if (status.has_snapshot_removed_time()) {
    removed.push_back(absl::StrCat("snapshot ", TimeWithAge(status.snapshot_removed_time(), now, zone)));
  }
  if (status.has_outputs_removed_time()) {
    removed.push_back(absl::StrCat("outputs ", TimeWithAge(status.outputs_removed_time(), now, zone)));
  }
  if (!removed.empty()) state.Add("removed", absl::StrJoin(removed, "\n"));
  state.Add("version", absl::StrCat(status.version()));

  Section run("spec");
  run.Add("entry script", OrDash(spec.entry_script()));
  run.Add("snapshot", spec.source_snapshot().empty() ? "none" : spec.source_snapshot());
  run.Add("compute target", OrDash(spec.compute_target()));
  run.Add("nodes", absl::StrCat(std::max(spec.node_count(), 1), " x ",
                                std::max(spec.process_count_per_node(), 1),
                                " processes per node"));
  run.Add("backend", BackendName(spec.distributed_backend()));
  run.Add("priority", absl::StrCat(spec.priority()));
  run.Add("max retries", absl::StrCat(spec.max_retries()));
  absl::Duration limit = absl::Seconds(spec.max_run_duration().seconds()) +
                         absl::Nanoseconds(spec.max_run_duration().nanos());
  run.Add("max run duration",
          limit == absl::ZeroDuration() ? "no limit" : absl::FormatDuration(limit));
  if (!spec.idempotency_key().empty()) run.Add("idempotency key", spec.idempotency_key());
  for (const v1::DataInput& input : spec.inputs()) {
    run.Add("input", absl::StrCat(input.name(), "=", FormatDataReference(input.data())));
  }
  for (const v1::OutputTarget& output : spec.outputs()) {
    run.Add("output", absl::StrCat("ds://", output.datastore(), "/", output.path()));
  }

  Section arguments("arguments");
  for (int i = 0; i < spec.arguments_size(); ++i) {
    // Numbered from 0 like the field paths in droverd's errors ("spec.arguments[2]").
    arguments.Add(absl::StrCat("[", i, "]"), FormatArgument(spec.arguments(i)));
  }

  const v1::Environment& env = spec.environment();
  Section environment("environment");
  environment.Add("image", OrDash(env.image()));
  environment.Add("use gpu", YesNo(env.use_gpu()));
  if (!env.pip_packages().empty()) environment.Add("pip", absl::StrJoin(env.pip_packages(), " "));
  if (!env.conda_packages().empty()) {
    environment.Add("conda", absl::StrJoin(env.conda_packages(), " "));
  }
  if (env.horovod()) environment.Add("horovod", "yes");
  if (!env.env().empty()) environment.Add("variables", SortedMap(env.env(), "\n"));

  const v1::Resources& res = spec.resources();
  Section resources("resources per node");
  resources.Add("cpus", absl::StrCat(res.cpus()));
  resources.Add("memory", FormatMib(res.memory_mib()));
  resources.Add("gpus", absl::StrCat(res.gpus()));
  resources.Add("shm", FormatMib(res.shm_mib()));

  Section times("times");
  auto add_time = [&](const char* key, bool has, const google::protobuf::Timestamp& ts) {
    times.Add(key, has ? TimeWithAge(ts, now, zone) : "-");
  };
  add_time("created", job.has_create_time(), job.create_time());
  add_time("updated", status.has_update_time(), status.update_time());
  add_time("started", status.has_start_time(), status.start_time());
  add_time("ended", status.has_end_time(), status.end_time());

  std::string out;
  top.AppendTo(&out, /*top_level=*/true);
  for (const Section* section : {&state, &run, &arguments, &environment, &resources, &times}) {
    section->AppendTo(&out, /*top_level=*/false);
  }
  return out;
}

std::string FormatWatchLine(const v1::Job& job, absl::TimeZone zone) {
  const v1::JobStatus& status = job.status();
  std::string line = absl::StrCat(
      status.has_update_time() ? absl::FormatTime(absl::RFC3339_sec, ToTime(status.update_time()), zone)
                               : "-",
      " ", job.id(), " ", StateName(status.state()));
  if (!status.reason().empty()) absl::StrAppend(&line, " ", status.reason());
  if (IsTerminal(status.state()) && !status.message().empty()) {
    absl::StrAppend(&line, " -- ", status.message());
  }
  return line;
}

std::string MessageToJson(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = false;
  options.add_whitespace = pretty;
  std::string out;
  // Printing a parsed message cannot fail: every field holds a valid value.
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  while (!out.empty() && absl::ascii_isspace(static_cast<unsigned char>(out.back()))) out.pop_back();
  return out;
}

std::string JobToJson(const v1::Job& job, bool pretty) { return MessageToJson(job, pretty); }

std::string JsonArray(const std::vector<std::string>& items) {
  if (items.empty()) return "[]";
  return absl::StrCat("[\n", absl::StrJoin(items, ",\n"), "\n]");
}

std::string FormatMemory(int64_t mib) {
  if (mib == 0) return "0";
  if (mib < 1024) return absl::StrCat(mib, "Mi");
  // One decimal, dropped when it is 0 ("12.5Gi", "64Gi"), in the largest unit that still
  // shows at least 1 after rounding.
  auto tenths = [mib](int64_t unit) { return (mib * 10 + unit / 2) / unit; };
  int64_t value = tenths(1024);
  absl::string_view suffix = "Gi";
  if (value >= 10 * 1024) {
    value = tenths(int64_t{1024} * 1024);
    suffix = "Ti";
  }
  if (value % 10 == 0) return absl::StrCat(value / 10, suffix);
  return absl::StrCat(value / 10, ".", value % 10, suffix);
}

std::string FormatCpus(double cpus) {
  // At most two decimals, without trailing zeros.
  std::string text = absl::StrFormat("%.2f", cpus);
  while (!text.empty() && text.back() == '0') text.pop_back();
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text == "-0" ? "0" : text;
}

std::string FormatRankExit(const v1::RankExit& exit) {
  std::string who = absl::StrCat("rank ", exit.rank());
  if (!exit.node().empty()) absl::StrAppend(&who, " on ", exit.node());
  if (exit.oom_killed()) return absl::StrCat(who, " was killed for running out of memory");
  if (exit.signal() != 0) {
    std::string name = SignalName(exit.signal());
    return absl::StrCat(who, " was killed by signal ", exit.signal(),
                        name.empty() ? "" : absl::StrCat(" (", name, ")"));
  }
  return absl::StrCat(who, " exited with code ", exit.exit_code());
}

std::string FormatJobEnd(const v1::Job& job) {
  constexpr size_t kMaxListed = 16;
  const v1::JobStatus& status = job.status();
  std::string out = absl::StrCat(job.id(), " ", StateName(status.state()));
  if (status.cause() != v1::JobStatus::CAUSE_UNSPECIFIED &&
      status.cause() != v1::JobStatus::PROCESS_FAILED &&
      status.cause() != v1::JobStatus::CANCELED_BY_USER) {
    absl::StrAppend(&out, " ", v1::JobStatus::Cause_Name(status.cause()));
  }
  if (!status.message().empty()) absl::StrAppend(&out, ": ", OneLineText(status.message()));
  out.push_back('\n');
  if (status.state() == v1::JobStatus::COMPLETED) return out;
  size_t listed = 0;
  size_t unlisted = 0;
  size_t clean = 0;
  for (const v1::RankExit& exit : status.exits()) {
    if (exit.exit_code() == 0 && exit.signal() == 0 && !exit.oom_killed()) {
      ++clean;
    } else if (listed < kMaxListed) {
      absl::StrAppend(&out, "  ", FormatRankExit(exit), "\n");
      ++listed;
    } else {
      ++unlisted;
    }
  }
  if (unlisted > 0) {
    absl::StrAppend(&out, "  and ", unlisted, " more ", unlisted == 1 ? "rank" : "ranks",
                    " that did not exit 0; see drover show ", job.id(), " --output json\n");
  }
  if (clean > 0) {
    bool all = clean == static_cast<size_t>(status.exits_size());
    std::string ranks = clean == 1 ? (all ? "1 rank" : "the other rank")
                                   : absl::StrCat(all ? "" : "the other ", clean, " ranks");
    absl::StrAppend(&out, "  ", ranks, " exited with code 0\n");
  }
  return out;
}

std::string NodeStateName(v1::Node::State state) { return v1::Node::State_Name(state); }

std::string FormatNodeTable(const std::vector<v1::Node>& nodes, absl::Time now) {
  constexpr int kShownJobs = 3;
  constexpr size_t kLabelsWidth = 40;
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "STATE", "CPUS", "MEMORY", "GPUS", "JOBS", "LABELS", "LAST SEEN"});
  for (const v1::Node& node : nodes) {
    std::vector<std::string> shown;
    for (int i = 0; i < node.running_jobs_size() && i < kShownJobs; ++i) {
      shown.push_back(node.running_jobs(i));
    }
    std::string jobs = absl::StrJoin(shown, ",");
    if (node.running_jobs_size() > kShownJobs) {
      absl::StrAppend(&jobs, " +", node.running_jobs_size() - kShownJobs);
    }
    rows.push_back({
        node.name(),
        NodeStateName(node.state()),
        absl::StrCat(FormatCpus(node.allocated().cpus()), "/", FormatCpus(node.capacity().cpus())),
        absl::StrCat(FormatMemory(node.allocated().memory_mib()), "/",
                     FormatMemory(node.capacity().memory_mib())),
        node.capacity().gpus() == 0 && node.allocated().gpus() == 0
            ? "-"
            : absl::StrCat(node.allocated().gpus(), "/", node.capacity().gpus()),
        OrDash(jobs),
        OrDash(Truncate(SortedMap(node.labels(), ","), kLabelsWidth)),
        node.has_last_seen_time() ? FormatAge(now - ToTime(node.last_seen_time())) : "-",
    });
  }
  return FormatTable(rows);
}

std::string FormatNodeLoss(const v1::NodeLossStatus& loss, absl::Time now) {
  if (!loss.paused()) return "";
  return absl::StrCat(
      "node-loss handling PAUSED for ", FormatAge(now - ToTime(loss.paused_since())), ": ",
      loss.silent_nodes(), " of ", loss.counted_nodes(), " nodes silent (more than ",
      loss.pause_fraction(), "); the jobs on ", absl::StrJoin(loss.waiting_nodes(), ", "),
      " are kept until enough nodes are back ('drover node lost NODE' gives one up now)\n");
}

std::string FormatNodeDetails(const v1::Node& node, absl::Time now, absl::TimeZone zone) {
  Section top("node");
  top.Add("name", node.name());
  top.Add("state", NodeStateName(node.state()));
  top.Add("reason", OrDash(node.reason()));
  top.Add("addresses", OrDash(absl::StrJoin(node.addresses(), ", ")));
  if (!node.labels().empty()) top.Add("labels", SortedMap(node.labels(), ", "));
  top.Add("jobs", OrDash(absl::StrJoin(node.running_jobs(), ", ")));
  top.Add("agent version", OrDash(node.agent_version()));
  top.Add("container runtime", OrDash(node.container_runtime()));

  Section resources("resources (held by jobs / offered)");
  resources.Add("cpus", absl::StrCat(FormatCpus(node.allocated().cpus()), "/",
                                     FormatCpus(node.capacity().cpus())));
  resources.Add("memory", absl::StrCat(FormatMemory(node.allocated().memory_mib()), "/",
                                       FormatMemory(node.capacity().memory_mib())));
  resources.Add("gpus", absl::StrCat(node.allocated().gpus(), "/", node.capacity().gpus()));

  Section gpus("gpus");
  for (const v1::Gpu& gpu : node.gpus()) {
    std::string text = gpu.uuid();
    if (!gpu.name().empty()) absl::StrAppend(&text, "  ", gpu.name());
    if (gpu.memory_mib() > 0) absl::StrAppend(&text, "  ", FormatMemory(gpu.memory_mib()));
    gpus.Add(absl::StrCat(gpu.index()), text);
  }

  Section times("times");
  times.Add("registered",
            node.has_register_time() ? TimeWithAge(node.register_time(), now, zone) : "-");
  times.Add("last seen",
            node.has_last_seen_time() ? TimeWithAge(node.last_seen_time(), now, zone) : "-");

  std::string out;
  top.AppendTo(&out, /*top_level=*/true);
  for (const Section* section : {&resources, &gpus, &times}) {
    section->AppendTo(&out, /*top_level=*/false);
  }
  return out;
}

std::string FormatTargetTable(const std::vector<v1::ComputeTarget>& targets) {
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"NAME", "SELECTOR", "MAX NODES"});
  for (const v1::ComputeTarget& target : targets) {
    rows.push_back({
        target.name(),
        target.selector().empty() ? "(every node)" : SortedMap(target.selector(), ","),
        target.max_nodes() == 0 ? "no limit" : absl::StrCat(target.max_nodes()),
    });
  }
  return FormatTable(rows);
}

}  // namespace drover::cli
