#include "server/job_service.h"

#include <deque>
#include <map>
#include <optional>
#include <tuple>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/job_id.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "scheduler/job_array.h"
#include "scheduler/job_spec.h"
#include "scheduler/job_state.h"
#include "server/metric_records.h"

namespace drover::server {
namespace {

using google::protobuf::util::TimeUtil;

constexpr int kDefaultPageSize = 100;
// Stored bytes of records one GetMetrics answer holds by default.
constexpr int64_t kMetricsPage = 4 << 20;
constexpr int kMaxPageSize = 1000;

std::string EncodePageToken(int64_t before_sequence) {
  return absl::WebSafeBase64Escape(absl::StrCat("before:", before_sequence));
}

// GetMetrics' `max_points`, `from_step` and `to_step`.
absl::Status CheckMetricsRange(const v1::GetMetricsRequest& request) {
  if (request.max_points() < 0 || request.max_points() > kMaxThinnedPoints) {
    return absl::InvalidArgumentError(absl::StrCat("max_points: ", request.max_points(),
                                                   " is out of range; give 4 to ",
                                                   kMaxThinnedPoints, ", or 0 for every point"));
  }
  if (request.max_points() > 0 && !request.page_token().empty()) {
    return absl::InvalidArgumentError(
        "page_token: an answer with max_points holds every series whole; leave page_token "
        "empty");
  }
  if (request.has_from_step() && request.has_to_step() && request.from_step() > request.to_step()) {
    return absl::InvalidArgumentError(absl::StrCat("from_step ", request.from_step(),
                                                   " is after to_step ", request.to_step(),
                                                   "; give from_step <= to_step"));
  }
  return absl::OkStatus();
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
  if (!request.array_id().empty()) {
    if (!scheduler::IsArrayId(request.array_id())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "array_id: '", absl::CHexEscape(request.array_id().substr(0, 64)),
          "' is not a job array id; write 'a-' and 16 hex digits, as drover list shows"));
    }
    if (!request.tag().empty()) {
      return absl::InvalidArgumentError(
          "tag, array_id: give one of them; an array's tasks are found by their array tag");
    }
    query.tag_key = scheduler::kArrayTag;
    query.tag_value = request.array_id();
  }
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

// Job array `array_id` counted by state, read through every task (pages of the store's
// array tag index), of `owner` only when set.
absl::StatusOr<v1::ArraySummary> SummarizeArray(storage::Store& store, const std::string& array_id,
                                                const std::optional<std::string>& owner) {
  storage::ListJobsQuery query;
  query.tag_key = scheduler::kArrayTag;
  query.tag_value = array_id;
  query.owner = owner;
  query.page_size = kMaxPageSize;
  std::map<v1::JobStatus::State, int64_t> counts;
  v1::ArraySummary summary;
  summary.set_array_id(array_id);
  while (true) {
    DROVER_ASSIGN_OR_RETURN(storage::ListJobsPage page, store.ListJobs(query));
    for (v1::Job& job : page.jobs) {
      ++counts[job.status().state()];
      if (!summary.has_first_task() ||
          job.spec().array_task().index() < summary.first_task().spec().array_task().index()) {
        *summary.mutable_first_task() = std::move(job);
      }
    }
    if (page.next_before_sequence == 0) break;
    query.before_sequence = page.next_before_sequence;
  }
  const v1::JobSpec& spec = summary.first_task().spec();
  summary.set_name(spec.name());
  summary.set_experiment(spec.experiment());
  summary.set_size(spec.array_task().size());
  summary.set_max_running(spec.array_task().max_running());
  for (const auto& [state, count] : counts) {
    v1::ArraySummary::StateCount* entry = summary.add_counts();
    entry->set_state(state);
    entry->set_count(count);
  }
  return summary;
}

// The job `job_id` when `caller` may read it (authz.h); the status to answer with otherwise.
absl::StatusOr<v1::Job> ReadableJob(storage::Store& store, const Caller& caller,
                                    const std::string& job_id) {
  absl::StatusOr<v1::Job> job = store.GetJob(job_id);
  if (!job.ok()) return job.status();
  if (absl::Status allowed = CanReadJob(caller, *job); !allowed.ok()) return allowed;
  return job;
}

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

absl::Status CheckSpecAgainstCluster(Core& core, storage::Store& store,
                                     const storage::BlobStore& blobs, const Caller& caller,
                                     const v1::JobSpec& spec, absl::string_view field) {
  if (!core.target_names().Exists(spec.compute_target())) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".compute_target: '", spec.compute_target(),
        "' does not exist; see drover target list, or leave it empty for 'default'"));
  }
  if (const std::string& image = spec.environment().image();
      !scheduler::IsBuiltInImage(image) && !core.images().Exists(image)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".environment.image: '", image,
        "' is not an imported image; import it with drover image import ", image,
        " FILE (see drover image list), write 'docker://", image,
        "' to have the nodes pull it from a registry, or use 'host'"));
  }
  // These two name the fields under "spec." themselves.
  absl::Status status = core.datastores().CheckReferences(spec);
  if (status.ok()) status = CheckSnapshot(store, blobs, caller, spec.source_snapshot());
  if (status.ok() || field == "spec") return status;
  return absl::Status(status.code(), absl::StrCat(field, ": ", status.message()));
}

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
  if (absl::Status usable =
          CheckSpecAgainstCluster(core_, store_, blobs_, *caller, job.spec(), "spec");
      !usable.ok()) {
    reactor->Finish(ToGrpcStatus(usable));
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

  if (job.spec().has_array()) {
    SubmitArray(std::move(job), *caller, reactor, response);
    return reactor;
  }
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
  const bool group = request->group_arrays() && request->array_id().empty();
  std::vector<std::string> arrays;  // of the page, in order of first appearance
  for (v1::Job& job : page->jobs) {
    if (group && job.spec().has_array_task()) {
      const std::string& array_id = job.spec().array_task().array_id();
      if (absl::c_find(arrays, array_id) == arrays.end()) arrays.push_back(array_id);
      continue;
    }
    RedactJob(*caller, &job);
    *response->add_jobs() = std::move(job);
  }
  for (const std::string& array_id : arrays) {
    absl::StatusOr<v1::ArraySummary> summary = SummarizeArray(store_, array_id, query->owner);
    if (!summary.ok()) {
      reactor->Finish(ToGrpcStatus(summary.status()));
      return reactor;
    }
    RedactJob(*caller, summary->mutable_first_task());
    *response->add_arrays() = *std::move(summary);
  }
  if (page->next_before_sequence > 0) {
    response->set_next_page_token(EncodePageToken(page->next_before_sequence));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

absl::StatusOr<Caller> JobServiceImpl::CallerChangingJob(
    const grpc::CallbackServerContext& context, absl::string_view method,
    const std::string& job_id) {
  DROVER_ASSIGN_OR_RETURN(Caller caller, auth_.Check(context, method));
  if (!accepting_.load()) return ShuttingDown();
  DROVER_RETURN_IF_ERROR(ParseJobId(job_id).status());
  // The owner never changes, so checking it before the change is enough.
  DROVER_ASSIGN_OR_RETURN(v1::Job stored, store_.GetJob(job_id));
  DROVER_RETURN_IF_ERROR(CanChangeJob(caller, stored));
  return caller;
}

grpc::ServerUnaryReactor* JobServiceImpl::CancelJob(grpc::CallbackServerContext* context,
                                                    const v1::CancelJobRequest* request,
                                                    v1::Job* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (scheduler::IsArrayId(request->job_id())) {
    CancelArray(*context, *request, reactor, response);
    return reactor;
  }
  absl::StatusOr<Caller> caller =
      CallerChangingJob(*context, "/drover.v1.JobService/CancelJob", request->job_id());
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
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

grpc::ServerUnaryReactor* JobServiceImpl::UpdateJobTags(grpc::CallbackServerContext* context,
                                                        const v1::UpdateJobTagsRequest* request,
                                                        v1::Job* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Caller> caller =
      CallerChangingJob(*context, "/drover.v1.JobService/UpdateJobTags", request->job_id());
  if (!caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return reactor;
  }
  if (request->set().empty() && request->remove().empty()) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(
        "set, remove: both are empty; give a tag to set or a key to remove")));
    return reactor;
  }
  bool touches_array_tag = request->set().contains(scheduler::kArrayTag);
  for (const std::string& key : request->remove()) touches_array_tag |= key == scheduler::kArrayTag;
  if (touches_array_tag) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "tags['", scheduler::kArrayTag,
        "']: droverd keeps the array of a task there; set or remove other keys"))));
    return reactor;
  }
  storage::JobTagUpdate update;
  for (int i = 0; i < request->remove_size(); ++i) {
    const std::string& key = request->remove(i);
    if (request->set().contains(key)) {
      reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
          "remove[", i, "]: '", key, "' is also in set; either set the tag or remove it"))));
      return reactor;
    }
    update.remove.push_back(key);
  }
  update.set.insert(request->set().begin(), request->set().end());
  // Checked on the tags as they become, inside the write, so that two updates at once
  // cannot together pass the limits.
  update.check = [](const google::protobuf::Map<std::string, std::string>& tags) {
    return scheduler::CheckJobTags("tags", tags);
  };
  store_.UpdateJobTags(
      request->job_id(), std::move(update),
      [this, reactor, response, caller = *caller](absl::StatusOr<v1::Job> job) {
        if (!job.ok()) {
          reactor->Finish(ToGrpcStatus(job.status()));
          return;
        }
        // Answer from the core once its copy has the new tags, so that the job's next
        // assignment (DROVER_TAGS) carries them.
        loop_.Post([this, reactor, response, caller, job = *std::move(job)]() mutable {
          core_.JobTagsChanged(job);
          Log(LogLevel::kInfo, "job_tags_updated",
              {{"job", job.id()}, {"tags", job.spec().tags_size()}});
          *response = std::move(job);
          RedactJob(caller, response);
          reactor->Finish(grpc::Status::OK);
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
  return StartWatchJob(store_, events_, request->job_id(), *caller);
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
  return StartStreamLogs(store_, logs_, events_, *request, *caller);
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
  if (absl::Status range = CheckMetricsRange(*request); !range.ok()) {
    reactor->Finish(ToGrpcStatus(range));
    return reactor;
  }
  const bool thin = request->max_points() > 0;
  response->set_attempt(epoch);
  if (epoch > 0) {
    MetricsCollector collector(*request, response);
    std::map<std::pair<int32_t, int>, int64_t> read;
    // Thinned, the whole selection is read at once: the answer stays small whatever it read.
    absl::StatusOr<std::optional<MetricsCursor>> next =
        ReadMetrics(logs_, job->id(), epoch, scheduler::IsTerminal(job->status().state()),
                    thin ? -1 : page_bytes, &collector, &read, from ? &*from : nullptr);
    if (!next.ok()) {
      reactor->Finish(ToGrpcStatus(next.status()));
      return reactor;
    }
    collector.Finish();
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
  return StartWatchMetrics(store_, logs_, events_, *request, *caller);
}

}  // namespace drover::server
