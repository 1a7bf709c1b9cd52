#include "tests/testing/job_history.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "drover/v1/job_service.grpc.pb.h"

namespace drover::testing {
namespace {

using v1::JobStatus;

bool IsTerminal(JobStatus::State s) {
  return s == JobStatus::COMPLETED || s == JobStatus::FAILED || s == JobStatus::CANCELED;
}

// How far an attempt has got. QUEUED after an attempt (a retry) ends that attempt.
int Progress(const JobStatus& status) {
  switch (status.state()) {
    case JobStatus::QUEUED:
      return status.attempt() == 0 ? 0 : 6;
    case JobStatus::PREPARING:
      return 1;
    case JobStatus::STARTING:
      return 2;
    case JobStatus::RUNNING:
      return 3;
    case JobStatus::FINALIZING:
      return 4;
    case JobStatus::CANCEL_REQUESTED:
      return 5;
    default:
      return 6;
  }
}

std::string Describe(const JobStatus& status) {
  return absl::StrCat("v", status.version(), " attempt ", status.attempt(), " ",
                      JobStatus::State_Name(status.state()), " ", status.reason());
}

// Every status of `seen` once, by version.
std::vector<JobStatus> ByVersion(const std::map<std::string, std::vector<JobStatus>>& seen) {
  std::map<int64_t, JobStatus> by_version;
  for (const auto& [source, statuses] : seen) {
    for (const JobStatus& status : statuses) by_version.emplace(status.version(), status);
  }
  std::vector<JobStatus> ordered;
  for (auto& [version, status] : by_version) ordered.push_back(status);
  return ordered;
}

}  // namespace

JobHistory::~JobHistory() {
  stopping_ = true;
  {
    absl::MutexLock lock(&mu_);
    for (auto& context : contexts_) context->TryCancel();
  }
  for (std::thread& watcher : watchers_) watcher.join();
}

void JobHistory::Watch(const std::string& job_id) {
  watchers_.emplace_back([this, job_id] {
    auto stub = v1::JobService::NewStub(channel_);
    while (!stopping_) {
      auto context = std::make_unique<grpc::ClientContext>();
      grpc::ClientContext* call = context.get();
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        contexts_.push_back(std::move(context));
      }
      v1::WatchJobRequest request;
      request.set_job_id(job_id);
      auto reader = stub->WatchJob(call, request);
      v1::WatchJobResponse response;
      bool ended = false;
      while (reader->Read(&response)) {
        Add("watch", response.job());
        ended = IsTerminal(response.job().status().state());
      }
      reader->Finish();
      if (ended) return;
      absl::SleepFor(absl::Milliseconds(100));  // droverd restarting: watch again
    }
  });
}

void JobHistory::Record(const v1::Job& job) { Add("poll", job); }

void JobHistory::Add(const std::string& source, const v1::Job& job) {
  if (job.id().empty()) return;
  absl::MutexLock lock(&mu_);
  seen_[job.id()][source].push_back(job.status());
}

std::map<std::string, std::vector<JobStatus>> JobHistory::Seen(const std::string& job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = seen_.find(job_id);
  return it == seen_.end() ? std::map<std::string, std::vector<JobStatus>>() : it->second;
}

std::string JobHistory::Check(const std::string& job_id) const {
  std::map<std::string, std::vector<JobStatus>> seen = Seen(job_id);
  if (seen.empty()) return absl::StrCat("nothing was seen of ", job_id);
  std::map<int64_t, std::string> one_status;  // version -> the status serialized
  for (const auto& [source, statuses] : seen) {
    for (size_t i = 0; i < statuses.size(); ++i) {
      if (i > 0 && statuses[i].version() < statuses[i - 1].version()) {
        return absl::StrCat(source, " saw ", Describe(statuses[i]), " after ",
                            Describe(statuses[i - 1]));
      }
      std::string bytes = statuses[i].SerializeAsString();
      auto [it, inserted] = one_status.emplace(statuses[i].version(), bytes);
      if (!inserted && it->second != bytes) {
        return absl::StrCat("version ", statuses[i].version(),
                            " was seen as two statuses: ", statuses[i].ShortDebugString());
      }
    }
  }
  std::vector<JobStatus> ordered = ByVersion(seen);
  int completed = 0;
  std::string listing;
  for (const JobStatus& status : ordered) absl::StrAppend(&listing, "\n  ", Describe(status));
  for (size_t i = 0; i < ordered.size(); ++i) {
    const JobStatus& now = ordered[i];
    if (now.state() == JobStatus::COMPLETED) ++completed;
    if (i == 0) continue;
    const JobStatus& before = ordered[i - 1];
    if (IsTerminal(before.state())) {
      return absl::StrCat("a status follows the terminal one:", listing);
    }
    if (now.attempt() < before.attempt()) {
      return absl::StrCat("the attempt number went down:", listing);
    }
    if (now.attempt() == before.attempt() && Progress(now) < Progress(before)) {
      return absl::StrCat("attempt ", now.attempt(), " went back from ",
                          JobStatus::State_Name(before.state()), " to ",
                          JobStatus::State_Name(now.state()), ":", listing);
    }
  }
  if (completed > 1) return absl::StrCat("COMPLETED was seen ", completed, " times:", listing);
  return "";
}

std::vector<int> JobHistory::RunningAttempts(const std::string& job_id) const {
  std::vector<int> attempts;
  for (const JobStatus& status : ByVersion(Seen(job_id))) {
    if (status.state() == JobStatus::RUNNING &&
        std::find(attempts.begin(), attempts.end(), status.attempt()) == attempts.end()) {
      attempts.push_back(status.attempt());
    }
  }
  return attempts;
}

}  // namespace drover::testing
