#include "server/job_service.h"

#include <deque>
#include <map>
#include <tuple>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/job_id.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"
#include "scheduler/job_spec.h"
#include "scheduler/job_state.h"
#include "common/grpc_status.h"
#include "server/metric_records.h"

namespace drover::server {
namespace {

using google::protobuf::util::TimeUtil;

constexpr int kDefaultPageSize = 100;
// How much of the metrics files one WatchMetrics message covers.
constexpr int64_t kMetricsPiece = 1 << 20;
// Stored bytes of records one GetMetrics answer holds by default.
constexpr int64_t kMetricsPage = 4 << 20;
constexpr int kMaxPageSize = 1000;

const absl::Status& ShuttingDown() {
  static const absl::Status status =
      absl::UnavailableError("droverd is shutting down; retry the call in a moment");
  return status;
}

std::string EncodePageToken(int64_t before_sequence) {
  return absl::WebSafeBase64Escape(absl::StrCat("before:", before_sequence));
}

absl::StatusOr<int64_t> DecodePageToken(const std::string& token) {
  std::string decoded;
  int64_t before = 0;
  if (!absl::WebSafeBase64Unescape(token, &decoded) || decoded.rfind("before:", 0) != 0 ||
      !absl::SimpleAtoi(decoded.substr(7), &before) || before <= 0) {
    return absl::InvalidArgumentError(
        "page_token: not a token this server issued; pass next_page_token from the previous "
        "page unchanged, or leave it empty for the first page");
  }
  return before;
}

absl::StatusOr<storage::ListJobsQuery> ToQuery(const v1::ListJobsRequest& request) {
  storage::ListJobsQuery query;
  for (int i = 0; i < request.states_size(); ++i) {
    auto state = static_cast<v1::JobStatus::State>(request.states(i));
    if (state == v1::JobStatus::STATE_UNSPECIFIED || !v1::JobStatus::State_IsValid(state)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "states[", i, "]: ", request.states(i), " is not a job state; use QUEUED, RUNNING, ..."));
    }
    query.states.push_back(state);
  }
  query.experiment = request.experiment();
  if (!request.tag().empty()) {
    size_t eq = request.tag().find('=');
    query.tag_key = request.tag().substr(0, eq);
    if (eq != std::string::npos) query.tag_value = request.tag().substr(eq + 1);
    if (query.tag_key.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("tag: '", request.tag(), "' has no key; write KEY or KEY=VALUE"));
    }
  }
  if (request.page_size() < 0 || request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: ", request.page_size(),
                                                   " is out of range; use 1 to ", kMaxPageSize,
                                                   " (0 means ", kDefaultPageSize, ")"));
  }
  query.page_size = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  if (!request.page_token().empty()) {
    absl::StatusOr<int64_t> before = DecodePageToken(request.page_token());
    if (!before.ok()) return before.status();
    query.before_sequence = *before;
  }
  return query;
}

// Streams one job: its current state, then every committed change, until it is terminal.
// One write in flight at a time, later ones queued; only the newest version is sent.
class WatchReactor final : public grpc::ServerWriteReactor<v1::WatchJobResponse>,
                           public JobSubscriber {
 public:
  WatchReactor(storage::Store& store, JobEventHub& events, std::string job_id, Caller caller)
      : events_(events), job_id_(std::move(job_id)), caller_(std::move(caller)) {
    // Subscribe before reading so that no change between the read and the subscription is
    // missed; versions drop the duplicates.
    if (!events_.Subscribe(job_id_, this)) {
      subscribed_ = false;
      Finish(ToGrpcStatus(ShuttingDown()));
      return;
    }
    absl::StatusOr<v1::Job> job = store.GetJob(job_id_);
    if (!job.ok()) {
      absl::MutexLock lock(&mu_);
      FinishLocked(ToGrpcStatus(job.status()));
      return;
    }
    OnJobChanged(*job);
  }

  void OnJobChanged(const v1::Job& job) override {
    absl::MutexLock lock(&mu_);
    if (finished_ || job.status().version() <= last_version_) return;
    last_version_ = job.status().version();
    pending_.emplace_back();
    *pending_.back().mutable_job() = job;
    RedactJob(caller_, pending_.back().mutable_job());
    if (!writing_) WriteNextLocked();
  }

  void OnHubClosed(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    subscribed_ = false;  // the hub dropped us
    FinishLocked(ToGrpcStatus(status));
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch stream broken"));
      return;
    }
    pending_.pop_front();
    if (!pending_.empty()) {
      WriteNextLocked();
    } else if (reached_end_) {
      FinishLocked(grpc::Status::OK);
    }
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    bool unsubscribe;
    {
      absl::MutexLock lock(&mu_);
      unsubscribe = subscribed_;
    }
    if (unsubscribe) events_.Unsubscribe(job_id_, this);
    delete this;
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writing_ = true;
    if (scheduler::IsTerminal(pending_.front().job().status().state())) reached_end_ = true;
    StartWrite(&pending_.front());
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  JobEventHub& events_;
  const std::string job_id_;
  const Caller caller_;
  absl::Mutex mu_;
  bool subscribed_ ABSL_GUARDED_BY(mu_) = true;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reached_end_ ABSL_GUARDED_BY(mu_) = false;
  int64_t last_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<v1::WatchJobResponse> pending_ ABSL_GUARDED_BY(mu_);  // front is being written
};

// Streams what is stored for one attempt of a job (`Next` says what: logs, metrics), then
// with `follow` what arrives, until the job ended and everything was sent; the last message
// then carries the final job. With `across_attempts` (a followed stream of the current
// attempt), once an attempt is over and all of it was sent while the job goes on (droverd
// retries it), `SetNextAttempt` marks the move and the stream goes on with the next attempt.
// One write in flight; new data and job changes wake it up.
template <typename Response>
class AttemptStreamReactor : public grpc::ServerWriteReactor<Response>, public JobSubscriber {
 public:
  AttemptStreamReactor(storage::LogStore& logs, JobEventHub& events, bool follow, Caller caller)
      : logs_(logs), caller_(std::move(caller)), events_(events), follow_(follow) {}

  // Looks the job and attempt up and sends the first piece; the reactor then runs on its
  // own. Call once, right after construction. `attempt` 0: the current attempt (and with
  // `across_attempts` the later ones), `from_attempt` (only then) where to start instead.
  void Begin(storage::Store& store, const std::string& job_id, int64_t attempt,
             bool across_attempts = false, int64_t from_attempt = 0) {
    absl::StatusOr<v1::Job> job = store.GetJob(job_id);
    if (!job.ok()) {
      absl::MutexLock lock(&mu_);
      FinishLocked(ToGrpcStatus(job.status()));
      return;
    }
    absl::Status valid = absl::OkStatus();
    if (attempt < 0 || attempt > job->status().attempt()) {
      valid = absl::InvalidArgumentError(
          absl::StrCat("attempt: job '", job->id(), "' has no attempt ", attempt, "; it has ",
                       job->status().attempt(), " so far"));
    } else if (from_attempt != 0 && (!across_attempts || !follow_ || attempt != 0)) {
      valid = absl::InvalidArgumentError(
          "from_attempt: only for a followed stream of every attempt (follow, attempt 0); "
          "leave it 0 or ask for that");
    } else if (from_attempt < 0 || from_attempt > job->status().attempt()) {
      valid = absl::InvalidArgumentError(
          absl::StrCat("from_attempt: job '", job->id(), "' has no attempt ", from_attempt,
                       "; it has ", job->status().attempt(), " so far"));
    }
    if (!valid.ok()) {
      absl::MutexLock lock(&mu_);
      FinishLocked(ToGrpcStatus(valid));
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      job_ = *job;
      epoch_ = attempt > 0 ? attempt : from_attempt > 0 ? from_attempt : job->status().attempt();
      fixed_epoch_ = attempt > 0;
      across_attempts_ = follow_ && across_attempts && attempt == 0;
      NoteRetryLocked(job->status());
    }
    // Subscribe without holding mu_: the hub and the log store call back under their own
    // locks, then take mu_.
    if (follow_) {
      bool subscribed = events_.Subscribe(job->id(), this);
      int listener = logs_.AddListener(
          [this, job_id = job->id()](const storage::LogStreamKey& key, int64_t) {
            if (key.job_id != job_id) return;
            absl::MutexLock lock(&mu_);
            PumpLocked();
          });
      {
        absl::MutexLock lock(&mu_);
        subscribed_ = subscribed;
        listener_ = listener;
      }
      // A change committed between the first read and the subscription reached no one:
      // read again, or a job that ended meanwhile would be followed forever.
      if (absl::StatusOr<v1::Job> again = store.GetJob(job_id); again.ok()) {
        OnJobChanged(*again);
      }
    }
    absl::MutexLock lock(&mu_);
    PumpLocked();
  }

  void OnJobChanged(const v1::Job& job) override {
    absl::MutexLock lock(&mu_);
    if (job.status().version() <= job_.status().version()) return;
    job_ = job;
    if (!fixed_epoch_ && epoch_ == 0) epoch_ = job.status().attempt();
    NoteRetryLocked(job.status());
    PumpLocked();
  }

  void OnHubClosed(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    subscribed_ = false;
    FinishLocked(ToGrpcStatus(status));
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
      return;
    }
    if (final_sent_) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    PumpLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    bool unsubscribe;
    int listener;
    {
      absl::MutexLock lock(&mu_);
      unsubscribe = subscribed_;
      listener = listener_;
    }
    if (listener != 0) logs_.RemoveListener(listener);
    if (unsubscribe) events_.Unsubscribe(job_.id(), this);
    delete this;
  }

 protected:
  // Fills `out` with the next piece of attempt `epoch` of `job_id` and returns true, or
  // returns false when nothing new is stored; `ended`: the job ended, so its streams no
  // longer grow. An error ends the call.
  virtual absl::StatusOr<bool> Next(const std::string& job_id, int64_t epoch, bool ended,
                                    Response* out) = 0;
  // The last message of a followed stream.
  virtual void SetFinalJob(const v1::Job& job, Response* out) = 0;
  // The message that says the stream moves on to `attempt`; `previous`: the job's status
  // when the retry was decided, null when this stream did not see it. Only called with
  // `across_attempts`.
  virtual void SetNextAttempt(int64_t /*attempt*/, const v1::JobStatus* /*previous*/,
                              Response* /*out*/) {}

  storage::LogStore& logs_;
  const Caller caller_;  // whom the final job is redacted for

 private:
  // Sends the next piece, or ends the stream when everything was sent and nothing more can
  // come.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_ || final_sent_) return;
    // Read the job's state before the data: a job that ended has all of it stored.
    bool ended = scheduler::IsTerminal(job_.status().state());
    if (epoch_ > 0) {
      out_ = Response();
      absl::StatusOr<bool> more = Next(job_.id(), epoch_, ended, &out_);
      if (!more.ok()) {
        FinishLocked(ToGrpcStatus(more.status()));
        return;
      }
      if (*more) {
        writing_ = true;
        this->StartWrite(&out_);
        return;
      }
    }
    // All of attempt `epoch_` was sent; when it is over and the job was retried, go on with
    // the next one. Its logs are complete: droverd takes nothing more of an attempt that
    // ended (an agent reports the end after its logs; a lost node's epoch is refused).
    int64_t current = job_.status().attempt();
    bool requeued = current == epoch_ && job_.status().state() == v1::JobStatus::QUEUED;
    if (across_attempts_ && epoch_ > 0 && (current > epoch_ || requeued)) {
      auto retry = retry_status_.find(epoch_);
      out_ = Response();
      SetNextAttempt(epoch_ + 1, retry == retry_status_.end() ? nullptr : &retry->second, &out_);
      retry_status_.erase(retry_status_.begin(), retry_status_.upper_bound(epoch_));
      ++epoch_;
      writing_ = true;
      this->StartWrite(&out_);
      return;
    }
    if (!follow_) {
      FinishLocked(grpc::Status::OK);
    } else if (ended) {
      out_ = Response();
      v1::Job final_job = job_;
      RedactJob(caller_, &final_job);
      SetFinalJob(final_job, &out_);
      final_sent_ = true;
      writing_ = true;
      this->StartWrite(&out_);
    }
    // Otherwise wait for new data or a job change.
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    this->Finish(status);
  }

  // Keeps the first status that shows attempt N ended and the job was queued again (a job
  // is QUEUED with an attempt number only after a retry; later QUEUED changes of that wait
  // only change its reason).
  void NoteRetryLocked(const v1::JobStatus& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!across_attempts_ || status.state() != v1::JobStatus::QUEUED || status.attempt() < 1 ||
        status.attempt() < epoch_) {
      return;
    }
    retry_status_.emplace(status.attempt(), status);
  }

  JobEventHub& events_;
  const bool follow_;
  absl::Mutex mu_;
  v1::Job job_ ABSL_GUARDED_BY(mu_);
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  bool fixed_epoch_ ABSL_GUARDED_BY(mu_) = false;
  bool across_attempts_ ABSL_GUARDED_BY(mu_) = false;
  // Attempt -> the status that queued the job again after it (see NoteRetryLocked).
  std::map<int64_t, v1::JobStatus> retry_status_ ABSL_GUARDED_BY(mu_);
  Response out_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool final_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool subscribed_ ABSL_GUARDED_BY(mu_) = false;
  int listener_ ABSL_GUARDED_BY(mu_) = 0;
};

// A job's logs, rank by rank: the selected ranks and streams (stdout and stderr unless
// others are asked for).
class LogsReactor final : public AttemptStreamReactor<v1::StreamLogsResponse> {
 public:
  static constexpr int64_t kChunk = 256 * 1024;

  LogsReactor(storage::LogStore& logs, JobEventHub& events, const v1::StreamLogsRequest& request,
              Caller caller)
      : AttemptStreamReactor(logs, events, request.follow(), std::move(caller)),
        request_(request) {}

 private:
  bool Selected(const storage::LogStreamInfo& stream) const {
    bool rank_ok = request_.ranks().empty();
    for (int32_t rank : request_.ranks()) rank_ok = rank_ok || rank == stream.rank;
    bool stream_ok = request_.streams().empty() &&
                     (stream.stream == v1::STDOUT || stream.stream == v1::STDERR);
    for (int s : request_.streams()) stream_ok = stream_ok || s == stream.stream;
    return rank_ok && stream_ok;
  }

  absl::StatusOr<bool> Next(const std::string& job_id, int64_t epoch, bool ended,
                            v1::StreamLogsResponse* out) override {
    for (const storage::LogStreamInfo& stream : logs_.Streams(job_id, epoch)) {
      if (!Selected(stream)) continue;
      int64_t& sent = sent_[{epoch, stream.rank, stream.stream}];
      if (stream.size <= sent) continue;
      storage::LogStreamKey key{job_id, epoch, stream.rank, stream.stream};
      absl::StatusOr<std::string> data = logs_.Read(key, sent, kChunk);
      if (!data.ok()) return data.status();
      if (data->empty()) continue;
      out->set_attempt(epoch);
      out->set_rank(stream.rank);
      out->set_stream(stream.stream);
      out->set_offset(sent);
      sent += static_cast<int64_t>(data->size());
      out->set_data(*std::move(data));
      return true;
    }
    return false;
  }

  void SetFinalJob(const v1::Job& job, v1::StreamLogsResponse* out) override {
    *out->mutable_job() = job;
  }

  void SetNextAttempt(int64_t attempt, const v1::JobStatus* previous,
                      v1::StreamLogsResponse* out) override {
    v1::StreamLogsResponse::NextAttempt* next = out->mutable_next_attempt();
    next->set_attempt(attempt);
    if (previous != nullptr) *next->mutable_previous() = *previous;
  }

  const v1::StreamLogsRequest request_;
  // (attempt, rank, stream) -> bytes sent; only on the reactor's turn (under mu_).
  std::map<std::tuple<int64_t, int32_t, int>, int64_t> sent_;
};

// A job's metrics (GetMetricsRequest selects), in pieces of about kPiece bytes.
class MetricsReactor final : public AttemptStreamReactor<v1::GetMetricsResponse> {
 public:
  MetricsReactor(storage::LogStore& logs, JobEventHub& events,
                 const v1::GetMetricsRequest& request, Caller caller)
      : AttemptStreamReactor(logs, events, request.follow(), std::move(caller)),
        request_(request) {}

 private:
  absl::StatusOr<bool> Next(const std::string& job_id, int64_t epoch, bool ended,
                            v1::GetMetricsResponse* out) override {
    MetricsCollector collector(request_, out);
    absl::StatusOr<std::optional<MetricsCursor>> read =
        ReadMetrics(logs_, job_id, epoch, ended, kMetricsPiece, &collector, &read_);
    if (!read.ok()) return read.status();
    out->set_attempt(epoch);
    return out->series_size() > 0 || !out->tags().empty() || out->skipped_lines() > 0;
  }

  void SetFinalJob(const v1::Job& job, v1::GetMetricsResponse* out) override {
    *out->mutable_job() = job;
  }

  const v1::GetMetricsRequest request_;
  std::map<std::pair<int32_t, int>, int64_t> read_;  // only on the reactor's turn (under mu_)
};

// The job `job_id` when `caller` may read it (authz.h); the status to answer with otherwise.
absl::StatusOr<v1::Job> ReadableJob(storage::Store& store, const Caller& caller,
                                    const std::string& job_id) {
  absl::StatusOr<v1::Job> job = store.GetJob(job_id);
  if (!job.ok()) return job.status();
  if (absl::Status allowed = CanReadJob(caller, *job); !allowed.ok()) return allowed;
  return job;
}

}  // namespace

std::string EncodeMetricsCursor(const MetricsCursor& c) {
  return absl::StrCat("m1.", c.epoch, ".", c.rank, ".", c.stream, ".", c.offset);
}

absl::StatusOr<MetricsCursor> DecodeMetricsCursor(absl::string_view token) {
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  MetricsCursor c;
  if (parts.size() != 5 || parts[0] != "m1" || !absl::SimpleAtoi(parts[1], &c.epoch) ||
      !absl::SimpleAtoi(parts[2], &c.rank) || !absl::SimpleAtoi(parts[3], &c.stream) ||
      !absl::SimpleAtoi(parts[4], &c.offset) || c.epoch < 1 || c.rank < 0 || c.offset < 0) {
    return absl::InvalidArgumentError(
        "page_token: not a token droverd gave; pass next_page_token of the previous answer "
        "unchanged, or nothing for the first page");
  }
  return c;
}

absl::StatusOr<std::optional<MetricsCursor>> ReadMetrics(
    storage::LogStore& logs, const std::string& job_id, int64_t epoch, bool ended,
    int64_t max_bytes, MetricsCollector* collector,
    std::map<std::pair<int32_t, int>, int64_t>* read, const MetricsCursor* from) {
  int64_t budget = max_bytes;
  for (const storage::LogStreamInfo& stream : logs.Streams(job_id, epoch)) {
    v1::MetricSeries::Source source;
    if (stream.stream == v1::METRICS) {
      source = v1::MetricSeries::USER;
    } else if (stream.stream == v1::SYSTEM_METRICS) {
      source = v1::MetricSeries::SYSTEM;
    } else {
      continue;
    }
    if (!collector->Wants(source, stream.rank)) continue;
    const std::pair<int32_t, int> id{stream.rank, stream.stream};
    if (from != nullptr && id < std::pair<int32_t, int>{from->rank, from->stream}) continue;
    int64_t& offset = (*read)[id];
    if (from != nullptr && id == std::pair<int32_t, int>{from->rank, from->stream}) {
      offset = std::max(offset, from->offset);
    }
    storage::LogStreamKey key{job_id, epoch, stream.rank, stream.stream};
    while (offset < stream.size) {
      if (max_bytes >= 0 && budget <= 0) {
        return MetricsCursor{epoch, stream.rank, stream.stream, offset};
      }
      int64_t want = std::min<int64_t>(stream.size - offset, 1 << 20);
      if (max_bytes >= 0) want = std::min(want, std::max<int64_t>(budget, 64 << 10));
      absl::StatusOr<std::string> data = logs.Read(key, offset, want);
      if (!data.ok()) return data.status();  // short of descriptors: the caller retries
      if (data->empty()) break;
      // A piece that ends inside a line is read again from that line next time.
      bool last = offset + static_cast<int64_t>(data->size()) >= stream.size;
      size_t used = collector->Add(source, stream.rank, *data, ended && last);
      if (used == 0) break;
      offset += static_cast<int64_t>(used);
      budget -= static_cast<int64_t>(used);
    }
  }
  return std::nullopt;
}

namespace {

// Whether a job may run with code snapshot `digest`: the caller uploaded it (an admin any)
// and it is on droverd; it counts as used now, so that retention keeps it until the job is
// stored and refers to it. FAILED_PRECONDITION saying what to do otherwise.
absl::Status CheckSnapshot(storage::Store& store, const storage::BlobStore& blobs,
                           const Caller& caller, const std::string& digest) {
  if (digest.empty()) return absl::OkStatus();
  if (!caller.is_admin()) {
    // Knowing a digest is not having the code: another user's snapshot is not yours to run.
    absl::StatusOr<bool> held = store.IsBlobUploader(digest, caller.name);
    if (!held.ok()) return held.status();
    if (!*held) {
      return absl::FailedPreconditionError(absl::StrCat(
          "spec.source_snapshot: blob ", digest,
          " was not uploaded by you (or droverd's retention removed it since); upload the "
          "snapshot before submitting with it (drover submit does)"));
    }
  }
  absl::Status used = blobs.Touch(digest);
  if (absl::IsNotFound(used)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "spec.source_snapshot: blob ", digest,
        " is not on droverd (never uploaded, or removed by retention); upload it again "
        "(drover submit does)"));
  }
  return used;
}

}  // namespace

JobServiceImpl::JobServiceImpl(storage::Store& store, storage::LogStore& logs,
                               const storage::BlobStore& blobs, Core& core, CoreLoop& loop,
                               JobEventHub& events, const Clock& clock, Authenticator& auth)
    : store_(store),
      logs_(logs),
      blobs_(blobs),
      core_(core),
      loop_(loop),
      events_(events),
      clock_(clock),
      auth_(auth) {}

grpc::ServerUnaryReactor* JobServiceImpl::SubmitJob(grpc::CallbackServerContext* context,
                                                    const v1::SubmitJobRequest* request,
                                                    v1::SubmitJobResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.JobService/SubmitJob");
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  if (!accepting_.load()) {
    reactor->Finish(ToGrpcStatus(ShuttingDown()));
    return reactor;
  }
  if (!request->has_spec()) {
    reactor->Finish(ToGrpcStatus(
        absl::InvalidArgumentError("spec: required; send the job's spec with the request")));
    return reactor;
  }
  v1::Job job;
  *job.mutable_spec() = request->spec();
  // The owner comes from the token, never from the request, and never changes.
  job.set_owner(caller->name);
  scheduler::ApplyJobSpecDefaults(job.mutable_spec());
  if (absl::Status valid = scheduler::ValidateJobSpec(job.spec()); !valid.ok()) {
    Log(LogLevel::kDebug, "job_refused", {{"error", valid.message()}});
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  if (!core_.TargetExists(job.spec().compute_target())) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "spec.compute_target: '", job.spec().compute_target(),
        "' does not exist; see drover target list, or leave it empty for 'default'"))));
    return reactor;
  }
  if (const std::string& image = job.spec().environment().image();
      !IsBuiltInImage(image) && !core_.ImageExists(image)) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "spec.environment.image: '", image,
        "' is not an imported image; import it with drover image import ", image,
        " FILE (see drover image list), write 'docker://", image,
        "' to have the nodes pull it from a registry, or use 'host'"))));
    return reactor;
  }
  if (absl::Status data = core_.CheckDataReferences(job.spec()); !data.ok()) {
    reactor->Finish(ToGrpcStatus(data));
    return reactor;
  }
  if (absl::Status snapshot = CheckSnapshot(store_, blobs_, *caller, job.spec().source_snapshot());
      !snapshot.ok()) {
    reactor->Finish(ToGrpcStatus(snapshot));
    return reactor;
  }
  google::protobuf::Timestamp now =
      TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(clock_.Now()));
  *job.mutable_create_time() = now;
  v1::JobStatus* status = job.mutable_status();
  status->set_state(v1::JobStatus::QUEUED);
  // No node registry yet: nothing is free until agents register.
  status->set_reason(scheduler::JobQueue::WaitingReason(job.spec(), 0));
  status->set_version(1);
  *status->mutable_update_time() = now;

  store_.CreateJob(std::move(job), [this, reactor, response, caller = *caller](
                                       absl::StatusOr<storage::CreateJobResult> result) {
    if (!result.ok()) {
      if (!absl::IsAlreadyExists(result.status())) {
        Log(LogLevel::kWarning, "job_submit_failed", {{"error", result.status().ToString()}});
      }
      reactor->Finish(ToGrpcStatus(result.status()));
      return;
    }
    // Acknowledge from the core, after it knows the job, so that a cancel sent right after
    // the reply finds it there.
    loop_.Post([this, reactor, response, caller, result = *std::move(result)]() mutable {
      if (result.created) {
        core_.JobCreated(result.job);
        Log(LogLevel::kInfo, "job_submitted",
            {{"job", result.job.id()},
             {"experiment", result.job.spec().experiment()},
             {"nodes", result.job.spec().node_count()}});
      }
      *response->mutable_job() = std::move(result.job);
      RedactJob(caller, response->mutable_job());
      response->set_created(result.created);
      reactor->Finish(grpc::Status::OK);
    });
  });
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::GetJob(grpc::CallbackServerContext* context,
                                                 const v1::GetJobRequest* request,
                                                 v1::Job* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.JobService/GetJob");
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  absl::StatusOr<v1::Job> job = ReadableJob(store_, *caller, request->job_id());
  if (job.ok()) {
    *response = *std::move(job);
    RedactJob(*caller, response);
  }
  reactor->Finish(ToGrpcStatus(job.status()));
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::ListJobs(grpc::CallbackServerContext* context,
                                                   const v1::ListJobsRequest* request,
                                                   v1::ListJobsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.JobService/ListJobs");
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  absl::StatusOr<storage::ListJobsQuery> query = ToQuery(*request);
  if (!query.ok()) {
    reactor->Finish(ToGrpcStatus(query.status()));
    return reactor;
  }
  // Users list their own jobs only; viewers and admins every owner's unless they ask.
  const bool own_only = !caller->is_admin() && caller->role != v1::User::VIEWER;
  if (own_only && !request->owner().empty() && request->owner() != caller->name) {
    reactor->Finish(ToGrpcStatus(absl::PermissionDeniedError(absl::StrCat(
        "owner: users list only their own jobs; leave it empty or give '", caller->name, "'"))));
    return reactor;
  }
  if (own_only) {
    query->owner = caller->name;
  } else if (!request->owner().empty()) {
    query->owner = request->owner();
  }
  absl::StatusOr<storage::ListJobsPage> page = store_.ListJobs(*query);
  if (!page.ok()) {
    reactor->Finish(ToGrpcStatus(page.status()));
    return reactor;
  }
  for (v1::Job& job : page->jobs) {
    RedactJob(*caller, &job);
    *response->add_jobs() = std::move(job);
  }
  if (page->next_before_sequence > 0) {
    response->set_next_page_token(EncodePageToken(page->next_before_sequence));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                    const v1::CancelJobRequest* request,
                                                    v1::Job* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.JobService/CancelJob");
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  if (!accepting_.load()) {
    reactor->Finish(ToGrpcStatus(ShuttingDown()));
    return reactor;
  }
  if (absl::StatusOr<int64_t> id = ParseJobId(request->job_id()); !id.ok()) {
    reactor->Finish(ToGrpcStatus(id.status()));
    return reactor;
  }
  // The owner never changes, so checking it before the cancel is enough.
  absl::StatusOr<v1::Job> stored = store_.GetJob(request->job_id());
  absl::Status allowed = stored.ok() ? CanChangeJob(*caller, *stored) : stored.status();
  if (!allowed.ok()) {
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  if (request->reason().size() > 1024) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "reason: ", request->reason().size(), " bytes is too long; use at most 1024"))));
    return reactor;
  }
  loop_.Post([this, job_id = request->job_id(), reason = request->reason(), reactor, response,
              caller = *caller] {
    core_.Cancel(job_id, reason, [reactor, response, caller](absl::StatusOr<v1::Job> job) {
      if (job.ok()) {
        *response = *std::move(job);
        RedactJob(caller, response);
      }
      reactor->Finish(ToGrpcStatus(job.status()));
    });
  });
  return reactor;
}

grpc::ServerWriteReactor<v1::WatchJobResponse>* JobServiceImpl::WatchJob(
    grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.JobService/WatchJob");
  absl::Status allowed = caller.status();
  if (allowed.ok()) allowed = ReadableJob(store_, *caller, request->job_id()).status();
  if (!allowed.ok()) return new RefusedWriteReactor<v1::WatchJobResponse>(ToGrpcStatus(allowed));
  return new WatchReactor(store_, events_, request->job_id(), *caller);
}

grpc::ServerWriteReactor<v1::StreamLogsResponse>* JobServiceImpl::StreamLogs(
    grpc::CallbackServerContext* context, const v1::StreamLogsRequest* request) {
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.JobService/StreamLogs");
  absl::StatusOr<v1::Job> job =
      caller.ok() ? ReadableJob(store_, *caller, request->job_id()) : caller.status();
  absl::Status allowed = job.status();
  if (allowed.ok() && job->status().has_logs_removed_time()) {
    bool asks_logs = request->streams().empty();
    for (int stream : request->streams()) {
      asks_logs = asks_logs || stream == v1::STDOUT || stream == v1::STDERR ||
                  stream == v1::PREPARE;
    }
    if (asks_logs) {
      allowed = absl::NotFoundError(absl::StrCat(
          "the logs of job '", job->id(), "' were removed on ",
          TimeUtil::ToString(job->status().logs_removed_time()),
          " by droverd's retention of ended jobs' logs (--log-retention, "
          "docs/operations.md#retention); its metrics are kept: drover metrics ",
          job->id()));
    }
  }
  if (!allowed.ok()) {
    return new RefusedWriteReactor<v1::StreamLogsResponse>(ToGrpcStatus(allowed));
  }
  auto* reactor = new LogsReactor(logs_, events_, *request, *caller);
  reactor->Begin(store_, request->job_id(), request->attempt(), /*across_attempts=*/true,
                 request->from_attempt());
  return reactor;
}

grpc::ServerUnaryReactor* JobServiceImpl::GetMetrics(grpc::CallbackServerContext* context,
                                                     const v1::GetMetricsRequest* request,
                                                     v1::GetMetricsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.JobService/GetMetrics");
  absl::StatusOr<v1::Job> job =
      caller.ok() ? ReadableJob(store_, *caller, request->job_id()) : caller.status();
  if (!job.ok()) {
    reactor->Finish(ToGrpcStatus(job.status()));
    return reactor;
  }
  int64_t epoch = request->attempt() > 0 ? request->attempt() : job->status().attempt();
  if (request->attempt() < 0 || request->attempt() > job->status().attempt()) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("attempt: job '", job->id(), "' has no attempt ", request->attempt(),
                     "; it has ", job->status().attempt(), " so far"))));
    return reactor;
  }
  // One page: about `page_bytes` of stored records, so that no answer grows with the job.
  std::optional<MetricsCursor> from;
  if (!request->page_token().empty()) {
    absl::StatusOr<MetricsCursor> cursor = DecodeMetricsCursor(request->page_token());
    if (cursor.ok() && request->attempt() > 0 && cursor->epoch != request->attempt()) {
      cursor = absl::InvalidArgumentError("page_token: it is of another attempt");
    }
    if (!cursor.ok() || cursor->epoch > job->status().attempt()) {
      reactor->Finish(ToGrpcStatus(
          cursor.ok() ? absl::InvalidArgumentError("page_token: not of this job") : cursor.status()));
      return reactor;
    }
    from = *cursor;
    epoch = cursor->epoch;  // later pages stay with the attempt of the first
  }
  int64_t page_bytes = request->page_bytes() > 0 ? request->page_bytes() : kMetricsPage;
  if (page_bytes < (64 << 10) || page_bytes > (16 << 20)) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "page_bytes: ", page_bytes, " is out of range; give 65536 to 16777216, or 0 for 4 MiB"))));
    return reactor;
  }
  response->set_attempt(epoch);
  if (epoch > 0) {
    MetricsCollector collector(*request, response);
    std::map<std::pair<int32_t, int>, int64_t> read;
    absl::StatusOr<std::optional<MetricsCursor>> next =
        ReadMetrics(logs_, job->id(), epoch, scheduler::IsTerminal(job->status().state()),
                    page_bytes, &collector, &read, from ? &*from : nullptr);
    if (!next.ok()) {
      reactor->Finish(ToGrpcStatus(next.status()));
      return reactor;
    }
    if (next->has_value()) response->set_next_page_token(EncodeMetricsCursor(**next));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<v1::GetMetricsResponse>* JobServiceImpl::WatchMetrics(
    grpc::CallbackServerContext* context, const v1::GetMetricsRequest* request) {
  absl::StatusOr<Caller> caller = auth_.Check(*context, "/drover.v1.JobService/WatchMetrics");
  absl::Status allowed = caller.status();
  if (allowed.ok()) allowed = ReadableJob(store_, *caller, request->job_id()).status();
  if (!allowed.ok()) {
    return new RefusedWriteReactor<v1::GetMetricsResponse>(ToGrpcStatus(allowed));
  }
  auto* reactor = new MetricsReactor(logs_, events_, *request, *caller);
  reactor->Begin(store_, request->job_id(), request->attempt());
  return reactor;
}

}  // namespace drover::server
