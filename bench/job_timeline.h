// What the benchmarks that time whole jobs share: a job's life as the client sees it
// (SubmitJob, then WatchJob to its end, noting on the client's steady clock when each state
// was first seen), waiting for READY nodes, the machine's load. Each call blocks the calling
// thread.
#ifndef DROVER_BENCH_JOB_TIMELINE_H_
#define DROVER_BENCH_JOB_TIMELINE_H_

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"

namespace drover::bench {

struct JobTimeline {
  using Clock = std::chrono::steady_clock;
  std::string job_id;
  absl::Time wall_sent;  // wall clock, to line up with the daemons' logs
  Clock::time_point sent;
  Clock::time_point acked;
  // First time each state was seen (QUEUED: the submit's answer).
  std::map<v1::JobStatus::State, Clock::time_point> first_seen;
  v1::JobStatus last;  // the last status seen
  bool completed = false;
  std::string failure;  // why it did not complete; empty when it did

  // Time from the first sight of `from` to the first sight of `to`; nullopt when either
  // was not seen.
  std::optional<absl::Duration> Between(v1::JobStatus::State from, v1::JobStatus::State to) const;
};

// Submits `request` and watches the job until it ends or `timeout` (from the submit) passes.
JobTimeline SubmitAndWatch(v1::JobService::Stub& jobs, const v1::SubmitJobRequest& request,
                           absl::Duration timeout);

// Polls until droverd lists `count` READY nodes with at least `cpus` cores and `memory_mib`
// MiB each. UNAVAILABLE after `timeout`, naming the nodes it saw.
absl::Status AwaitReadyNodes(v1::AdminService::Stub& admin, int64_t count, absl::Duration timeout,
                             const std::string& server, double cpus = 0, int64_t memory_mib = 0);

// The 1, 5 and 15 minute load averages (/proc/loadavg), "0.52 0.61 0.70".
std::string LoadAverage();

}  // namespace drover::bench

#endif  // DROVER_BENCH_JOB_TIMELINE_H_
