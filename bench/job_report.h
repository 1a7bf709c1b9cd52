// What the benchmarks that time whole jobs (run-latency, distributed-latency) report about
// them, apart from how they run them: the measured jobs summed up as the client saw them
// (submit -> ack, RUNNING, COMPLETED and the phases between the states), each job's trace
// in wall-clock time, the runtime baseline's parts, and the text and JSON of all of it.
// Pure functions, any thread.
#ifndef DROVER_BENCH_JOB_REPORT_H_
#define DROVER_BENCH_JOB_REPORT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bench/container_baseline.h"
#include "bench/job_timeline.h"
#include "bench/latency.h"

namespace drover::bench {

// Client-seen intervals of one phase of the jobs' lives, e.g. "STARTING->RUNNING".
struct PhaseSummary {
  std::string name;
  LatencySummary latency;
};

// What the measured jobs add up to.
struct JobLatencies {
  int64_t jobs = 0;  // that COMPLETED
  // That ended otherwise (or timed out), with the first one's story.
  int64_t failed = 0;
  std::string first_failure;
  // Submit sent -> acknowledged (durable), -> RUNNING first seen, -> COMPLETED first seen.
  LatencySummary submit_ack;
  LatencySummary to_running;
  LatencySummary to_completed;
  // Between the states of a successful job's path, in order ("ack->PREPARING", ...).
  std::vector<PhaseSummary> phases;
};

// Sums up the jobs of `timelines`; only COMPLETED ones count in the latencies.
JobLatencies SummarizeJobs(const std::vector<const JobTimeline*>& timelines);

// One measured job as the client saw it, in wall-clock time (to line up with droverd's and
// drover-agent's log lines, which carry UTC timestamps).
struct JobTrace {
  std::string job_id;
  absl::Time sent;
  // (name, when) in time order: "ACK" for the submit's answer, each state's name when first
  // seen, and the events the benchmark adds.
  std::vector<std::pair<std::string, absl::Time>> seen;
};

// The trace of `t`, with `events` (name, time) added; events at InfinitePast() are left out.
JobTrace TraceOf(const JobTimeline& t,
                 const std::vector<std::pair<std::string, absl::Time>>& events = {});

// One JSON object per line per job: {"job":..,"sent":"<RFC 3339 UTC>","ACK_ms":..,
// "PREPARING_ms":..,...}, times in ms after `sent`.
std::string TracesJsonLines(const std::vector<JobTrace>& traces);

// The report's lines about the jobs: submit->ack, ->RUNNING, ->COMPLETED, then `extra`
// (lines of the benchmark's own), then the phases.
std::string JobLatenciesText(const JobLatencies& l, absl::string_view extra = "");
// `"jobs":N,"failed":N,"first_failure":"..","submit_ack":{..},"to_running":{..},
// "to_completed":{..},"phases":{"ack->PREPARING":{..},..}`, fields for a result object.
std::string JobLatenciesJsonFields(const JobLatencies& l);

// The runtime baseline (RuncRuntime create + start + wait + delete) summed up.
struct RuntimeLatencies {
  LatencySummary total;
  LatencySummary create;
  LatencySummary start;
  LatencySummary wait;
  LatencySummary remove;
};
RuntimeLatencies SummarizeRuntimeRuns(const std::vector<RuntimeRun>& runs);
// "    RuncRuntime total  p50 ...\n      create ...\n" (start, wait, delete).
std::string RuntimeLatenciesText(const RuntimeLatencies& r);
// `"runtime":{..},"runtime_create":{..},"runtime_start":{..},"runtime_wait":{..},
// "runtime_delete":{..}`, fields for a baseline object.
std::string RuntimeLatenciesJsonFields(const RuntimeLatencies& r);

// `part / whole` with two decimals; "-" when `whole` is not positive.
std::string Ratio(absl::Duration part, absl::Duration whole);

}  // namespace drover::bench

#endif  // DROVER_BENCH_JOB_REPORT_H_
