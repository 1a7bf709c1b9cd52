#include "bench/job_report.h"

#include <algorithm>
#include <iterator>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace drover::bench {
namespace {

using v1::JobStatus;

// The states a successful job passes through, in order; the phases are the gaps between them.
constexpr JobStatus::State kPath[] = {JobStatus::QUEUED,  JobStatus::PREPARING,
                                      JobStatus::STARTING, JobStatus::RUNNING,
                                      JobStatus::FINALIZING, JobStatus::COMPLETED};

std::string PhaseName(JobStatus::State from, JobStatus::State to) {
  if (from == JobStatus::QUEUED) return absl::StrCat("ack->", JobStatus::State_Name(to));
  return absl::StrCat(JobStatus::State_Name(from), "->", JobStatus::State_Name(to));
}

}  // namespace

JobLatencies SummarizeJobs(const std::vector<const JobTimeline*>& timelines) {
  JobLatencies result;
  std::vector<absl::Duration> ack, running, completed;
  std::map<size_t, std::vector<absl::Duration>> phases;  // by the index of the phase's start
  for (const JobTimeline* t : timelines) {
    if (!t->completed) {
      if (result.failed++ == 0) result.first_failure = t->failure;
      continue;
    }
    ++result.jobs;
    ack.push_back(absl::FromChrono(t->acked - t->sent));
    if (auto it = t->first_seen.find(JobStatus::RUNNING); it != t->first_seen.end()) {
      running.push_back(absl::FromChrono(it->second - t->sent));
    }
    completed.push_back(absl::FromChrono(t->first_seen.at(JobStatus::COMPLETED) - t->sent));
    for (size_t i = 0; i + 1 < std::size(kPath); ++i) {
      if (std::optional<absl::Duration> d = t->Between(kPath[i], kPath[i + 1])) {
        phases[i].push_back(*d);
      }
    }
  }
  result.submit_ack = Summarize(std::move(ack));
  result.to_running = Summarize(std::move(running));
  result.to_completed = Summarize(std::move(completed));
  for (auto& [i, samples] : phases) {
    result.phases.push_back({PhaseName(kPath[i], kPath[i + 1]), Summarize(std::move(samples))});
  }
  return result;
}

JobTrace TraceOf(const JobTimeline& t,
                 const std::vector<std::pair<std::string, absl::Time>>& events) {
  std::vector<std::pair<absl::Time, std::string>> order;
  for (const auto& [state, at] : t.first_seen) {
    order.emplace_back(t.wall_sent + absl::FromChrono(at - t.sent),
                       state == JobStatus::QUEUED ? "ACK" : JobStatus::State_Name(state));
  }
  for (const auto& [name, at] : events) {
    if (at != absl::InfinitePast()) order.emplace_back(at, name);
  }
  std::sort(order.begin(), order.end());
  JobTrace trace{t.job_id, t.wall_sent, {}};
  for (auto& [at, name] : order) trace.seen.emplace_back(std::move(name), at);
  return trace;
}

std::string TracesJsonLines(const std::vector<JobTrace>& traces) {
  std::string out;
  for (const JobTrace& trace : traces) {
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

std::string JobLatenciesText(const JobLatencies& l, absl::string_view extra) {
  std::string out;
  if (l.failed > 0) {
    absl::StrAppendFormat(&out, "  FAILED jobs    %d (first: %s)\n", l.failed, l.first_failure);
  }
  absl::StrAppend(&out, "  drover (client-seen, from sending SubmitJob):\n");
  absl::StrAppend(&out, "    submit->ack        ", LatencyText(l.submit_ack), "\n");
  absl::StrAppend(&out, "    submit->RUNNING    ", LatencyText(l.to_running), "\n");
  absl::StrAppend(&out, "    submit->COMPLETED  ", LatencyText(l.to_completed), "\n", extra);
  absl::StrAppend(&out, "  phases (first sight of each state on WatchJob):\n");
  for (const PhaseSummary& p : l.phases) {
    absl::StrAppendFormat(&out, "    %-22s %s\n", p.name, LatencyText(p.latency));
  }
  return out;
}

std::string JobLatenciesJsonFields(const JobLatencies& l) {
  std::vector<std::string> phases;
  for (const PhaseSummary& p : l.phases) {
    phases.push_back(absl::StrCat(JsonString(p.name), ":", LatencyJson(p.latency)));
  }
  return absl::StrCat("\"jobs\":", l.jobs, ",\"failed\":", l.failed,
                      ",\"first_failure\":", JsonString(l.first_failure),
                      ",\"submit_ack\":", LatencyJson(l.submit_ack),
                      ",\"to_running\":", LatencyJson(l.to_running),
                      ",\"to_completed\":", LatencyJson(l.to_completed), ",\"phases\":{",
                      absl::StrJoin(phases, ","), "}");
}

RuntimeLatencies SummarizeRuntimeRuns(const std::vector<RuntimeRun>& runs) {
  std::vector<absl::Duration> total, create, start, wait, remove;
  for (const RuntimeRun& r : runs) {
    total.push_back(r.total);
    create.push_back(r.create);
    start.push_back(r.start);
    wait.push_back(r.wait);
    remove.push_back(r.remove);
  }
  return {.total = Summarize(std::move(total)),
          .create = Summarize(std::move(create)),
          .start = Summarize(std::move(start)),
          .wait = Summarize(std::move(wait)),
          .remove = Summarize(std::move(remove))};
}

std::string RuntimeLatenciesText(const RuntimeLatencies& r) {
  return absl::StrCat("    RuncRuntime total  ", LatencyText(r.total), "\n",
                      "      create           ", LatencyText(r.create), "\n",
                      "      start            ", LatencyText(r.start), "\n",
                      "      wait             ", LatencyText(r.wait), "\n",
                      "      delete           ", LatencyText(r.remove), "\n");
}

std::string RuntimeLatenciesJsonFields(const RuntimeLatencies& r) {
  return absl::StrCat("\"runtime\":", LatencyJson(r.total),
                      ",\"runtime_create\":", LatencyJson(r.create),
                      ",\"runtime_start\":", LatencyJson(r.start),
                      ",\"runtime_wait\":", LatencyJson(r.wait),
                      ",\"runtime_delete\":", LatencyJson(r.remove));
}

std::string Ratio(absl::Duration part, absl::Duration whole) {
  if (whole <= absl::ZeroDuration()) return "-";
  return absl::StrFormat("%.2f", absl::FDivDuration(part, whole));
}

}  // namespace drover::bench
