#include "server/job_streams.h"

#include <algorithm>
#include <deque>
#include <map>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"
#include "scheduler/job_state.h"
#include "server/metric_records.h"

namespace drover::server {
namespace {

using google::protobuf::util::TimeUtil;

// How much of the metrics files one WatchMetrics message covers.
constexpr int64_t kMetricsPiece = 1 << 20;

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

// The request as WatchMetrics reads it: every point, never thinned or cut to steps (those
// fields are GetMetrics only).
v1::GetMetricsRequest WatchRequest(v1::GetMetricsRequest request) {
  request.clear_max_points();
  request.clear_from_step();
  request.clear_to_step();
  return request;
}

// A job's metrics (GetMetricsRequest selects), in pieces of about kPiece bytes.
class MetricsReactor final : public AttemptStreamReactor<v1::GetMetricsResponse> {
 public:
  MetricsReactor(storage::LogStore& logs, JobEventHub& events,
                 const v1::GetMetricsRequest& request, Caller caller)
      : AttemptStreamReactor(logs, events, request.follow(), std::move(caller)),
        request_(WatchRequest(request)) {}

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

}  // namespace

const absl::Status& ShuttingDown() {
  static const absl::Status status =
      absl::UnavailableError("droverd is shutting down; retry the call in a moment");
  return status;
}

grpc::ServerWriteReactor<v1::WatchJobResponse>* StartWatchJob(storage::Store& store,
                                                              JobEventHub& events,
                                                              std::string job_id,
                                                              Caller caller) {
  return new WatchReactor(store, events, std::move(job_id), std::move(caller));
}

grpc::ServerWriteReactor<v1::StreamLogsResponse>* StartStreamLogs(
    storage::Store& store, storage::LogStore& logs, JobEventHub& events,
    const v1::StreamLogsRequest& request, Caller caller) {
  auto* reactor = new LogsReactor(logs, events, request, std::move(caller));
  reactor->Begin(store, request.job_id(), request.attempt(), /*across_attempts=*/true,
                 request.from_attempt());
  return reactor;
}

grpc::ServerWriteReactor<v1::GetMetricsResponse>* StartWatchMetrics(
    storage::Store& store, storage::LogStore& logs, JobEventHub& events,
    const v1::GetMetricsRequest& request, Caller caller) {
  auto* reactor = new MetricsReactor(logs, events, request, std::move(caller));
  reactor->Begin(store, request.job_id(), request.attempt());
  return reactor;
}

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

}  // namespace drover::server
