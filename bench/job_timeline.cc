#include "bench/job_timeline.h"

#include <grpcpp/client_context.h>

#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace drover::bench {

using v1::JobStatus;

std::optional<absl::Duration> JobTimeline::Between(JobStatus::State from,
                                                   JobStatus::State to) const {
  auto a = first_seen.find(from);
  auto b = first_seen.find(to);
  if (a == first_seen.end() || b == first_seen.end()) return std::nullopt;
  return absl::FromChrono(b->second - a->second);
}

JobTimeline SubmitAndWatch(v1::JobService::Stub& jobs, const v1::SubmitJobRequest& request,
                           absl::Duration timeout) {
  auto terminal = [](JobStatus::State s) {
    return s == JobStatus::COMPLETED || s == JobStatus::FAILED || s == JobStatus::CANCELED;
  };
  JobTimeline t;
  auto deadline = std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout);
  grpc::ClientContext submit_context;
  submit_context.set_deadline(deadline);
  v1::SubmitJobResponse response;
  t.wall_sent = absl::Now();
  t.sent = JobTimeline::Clock::now();
  grpc::Status submitted = jobs.SubmitJob(&submit_context, request, &response);
  t.acked = JobTimeline::Clock::now();
  if (!submitted.ok()) {
    t.failure = absl::StrCat("submit failed: ", submitted.error_message());
    return t;
  }
  t.first_seen.emplace(JobStatus::QUEUED, t.acked);
  t.job_id = response.job().id();

  grpc::ClientContext watch_context;
  watch_context.set_deadline(deadline);
  v1::WatchJobRequest watch;
  watch.set_job_id(t.job_id);
  auto reader = jobs.WatchJob(&watch_context, watch);
  v1::WatchJobResponse change;
  while (reader->Read(&change)) {
    JobTimeline::Clock::time_point now = JobTimeline::Clock::now();
    t.last = change.job().status();
    t.first_seen.try_emplace(t.last.state(), now);
    if (terminal(t.last.state())) break;
  }
  watch_context.TryCancel();
  grpc::Status watched = reader->Finish();
  if (t.last.state() == JobStatus::COMPLETED) {
    t.completed = true;
  } else if (terminal(t.last.state())) {
    t.failure = absl::StrCat("job ", t.job_id, " ended ", JobStatus::State_Name(t.last.state()),
                             " (", JobStatus::Cause_Name(t.last.cause()), "): ", t.last.message());
  } else {
    t.failure = absl::StrCat("job ", t.job_id, " did not end within ",
                             absl::FormatDuration(timeout), "; last seen ",
                             JobStatus::State_Name(t.last.state()), " ", t.last.reason(),
                             watched.ok() ? "" : absl::StrCat("; watch: ", watched.error_message()));
  }
  return t;
}

absl::Status AwaitReadyNodes(v1::AdminService::Stub& admin, int64_t count, absl::Duration timeout,
                             const std::string& server, double cpus, int64_t memory_mib) {
  absl::Time deadline = absl::Now() + timeout;
  std::string seen = "none";
  while (absl::Now() < deadline) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListNodesResponse nodes;
    if (admin.ListNodes(&context, v1::ListNodesRequest(), &nodes).ok()) {
      std::vector<std::string> names;
      int64_t ready = 0;
      for (const v1::Node& node : nodes.nodes()) {
        names.push_back(absl::StrCat(node.name(), " ", v1::Node::State_Name(node.state())));
        if (node.state() == v1::Node::READY && node.capacity().cpus() >= cpus &&
            node.capacity().memory_mib() >= memory_mib) {
          ++ready;
        }
      }
      if (ready >= count) return absl::OkStatus();
      if (!names.empty()) seen = absl::StrJoin(names, ", ");
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return absl::UnavailableError(absl::StrCat(
      "droverd at '", server, "' has fewer than ", count, " READY nodes",
      cpus > 0 || memory_mib > 0 ? absl::StrCat(" with ", cpus, " cpus and ", memory_mib, " MiB") : "",
      " after ", absl::FormatDuration(timeout), " (nodes: ", seen,
      "); start a drover-agent per node with --scheduler ", server));
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return absl::StrCat(one, " ", five, " ", fifteen);
}

}  // namespace drover::bench
