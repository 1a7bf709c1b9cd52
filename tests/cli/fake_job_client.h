// FakeJobClient: an in-memory JobService for the CLI's unit tests. Records every request,
// hands out scripted errors before answering, numbers jobs j-1, j-2, ... and honours
// idempotency keys, lists newest first with page tokens, cancels like droverd (QUEUED ->
// CANCELED) and streams scripted watch events. Single-threaded.
#ifndef DROVER_TESTS_CLI_FAKE_JOB_CLIENT_H_
#define DROVER_TESTS_CLI_FAKE_JOB_CLIENT_H_

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cli/job_client.h"

namespace drover::cli {

// What the fake knows; outlives the clients the CLI makes from it.
struct FakeServer {
  std::vector<v1::Job> jobs;  // oldest first
  std::map<std::string, std::string> keys;  // idempotency key -> job id
  // Errors returned, one per call, before calls are answered normally.
  std::deque<absl::Status> errors;
  // Streams WatchJob serves, one per call: events, then the final status.
  struct Stream {
    std::vector<v1::Job> events;
    absl::Status end;
  };
  std::deque<Stream> streams;

  std::vector<v1::SubmitJobRequest> submits;
  std::vector<v1::GetJobRequest> gets;
  std::vector<v1::ListJobsRequest> lists;
  std::vector<v1::CancelJobRequest> cancels;
  std::vector<v1::WatchJobRequest> watches;
  std::vector<ConnectOptions> connects;

  v1::Job& Add(v1::JobStatus::State state, std::string name = "") {
    v1::Job job;
    job.set_id(absl::StrCat("j-", jobs.size() + 1));
    job.mutable_spec()->set_name(std::move(name));
    job.mutable_spec()->set_entry_script("train.py");
    job.mutable_status()->set_state(state);
    job.mutable_status()->set_version(1);
    job.mutable_create_time()->set_seconds(1'000'000 + static_cast<int64_t>(jobs.size()));
    jobs.push_back(job);
    return jobs.back();
  }
};

class FakeJobClient final : public JobClient {
 public:
  explicit FakeJobClient(FakeServer* server) : s_(server) {}

  absl::StatusOr<v1::SubmitJobResponse> SubmitJob(const v1::SubmitJobRequest& request) override {
    s_->submits.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::SubmitJobResponse response;
    const std::string& key = request.spec().idempotency_key();
    if (auto it = s_->keys.find(key); !key.empty() && it != s_->keys.end()) {
      *response.mutable_job() = *Find(it->second);
      response.set_created(false);
      return response;
    }
    v1::Job& job = s_->Add(v1::JobStatus::QUEUED);
    *job.mutable_spec() = request.spec();
    if (!key.empty()) s_->keys[key] = job.id();
    *response.mutable_job() = job;
    response.set_created(true);
    return response;
  }

  absl::StatusOr<v1::Job> GetJob(const v1::GetJobRequest& request) override {
    s_->gets.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::Job* job = Find(request.job_id());
    if (job == nullptr) return absl::NotFoundError(absl::StrCat("job '", request.job_id(), "' not found"));
    return *job;
  }

  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request) override {
    s_->lists.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    int64_t skip = 0;
    if (!request.page_token().empty() && !absl::SimpleAtoi(request.page_token(), &skip)) {
      return absl::InvalidArgumentError("page_token: not a token");
    }
    v1::ListJobsResponse response;
    int64_t matched = 0;
    for (auto it = s_->jobs.rbegin(); it != s_->jobs.rend(); ++it) {
      bool state_ok = request.states().empty();
      for (int state : request.states()) state_ok |= state == it->status().state();
      if (!state_ok) continue;
      if (!request.experiment().empty() && it->spec().experiment() != request.experiment()) continue;
      if (matched++ < skip) continue;
      if (response.jobs_size() == request.page_size()) {
        response.set_next_page_token(absl::StrCat(skip + request.page_size()));
        break;
      }
      *response.add_jobs() = *it;
    }
    return response;
  }

  absl::StatusOr<v1::Job> CancelJob(const v1::CancelJobRequest& request) override {
    s_->cancels.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    v1::Job* job = Find(request.job_id());
    if (job == nullptr) return absl::NotFoundError(absl::StrCat("job '", request.job_id(), "' not found"));
    switch (job->status().state()) {
      case v1::JobStatus::QUEUED:
        job->mutable_status()->set_state(v1::JobStatus::CANCELED);
        break;
      case v1::JobStatus::RUNNING:
        job->mutable_status()->set_state(v1::JobStatus::CANCEL_REQUESTED);
        break;
      case v1::JobStatus::COMPLETED:
      case v1::JobStatus::FAILED:
        return absl::FailedPreconditionError(absl::StrCat("job '", job->id(), "' already ended"));
      default:
        break;
    }
    return *job;
  }

  absl::Status WatchJob(const v1::WatchJobRequest& request,
                        const std::function<void(const v1::WatchJobResponse&)>& on_event) override {
    s_->watches.push_back(request);
    if (absl::Status e = NextError(); !e.ok()) return e;
    if (s_->streams.empty()) return absl::NotFoundError(absl::StrCat("job '", request.job_id(), "' not found"));
    FakeServer::Stream stream = s_->streams.front();
    s_->streams.pop_front();
    for (const v1::Job& job : stream.events) {
      v1::WatchJobResponse response;
      *response.mutable_job() = job;
      on_event(response);
    }
    return stream.end;
  }

 private:
  absl::Status NextError() {
    if (s_->errors.empty()) return absl::OkStatus();
    absl::Status e = s_->errors.front();
    s_->errors.pop_front();
    return e;
  }
  v1::Job* Find(const std::string& id) {
    for (v1::Job& job : s_->jobs) {
      if (job.id() == id) return &job;
    }
    return nullptr;
  }

  FakeServer* s_;
};

}  // namespace drover::cli

#endif  // DROVER_TESTS_CLI_FAKE_JOB_CLIENT_H_
