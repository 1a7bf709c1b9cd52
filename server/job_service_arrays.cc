// JobServiceImpl's job arrays (docs/job-arrays.md): submitting one (SubmitArray: its tasks
// made from the spec and stored in one write, acknowledged once the core knows them) and
// canceling one (CancelArray: every task not ended). SubmitJob and CancelJob, in
// job_service.cc, hand an array to these.
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/archive/sha256.h"
#include "common/grpc_status.h"
#include "common/job_id.h"
#include "common/log.h"
#include "scheduler/job_array.h"
#include "server/authz.h"
#include "server/job_service.h"
#include "server/job_streams.h"

namespace drover::server {

void JobServiceImpl::SubmitArray(v1::Job array, const Caller& caller,
                                 grpc::ServerUnaryReactor* reactor,
                                 v1::SubmitJobResponse* response) {
  // Validated with the spec: the parse cannot fail here.
  absl::StatusOr<std::vector<int64_t>> indices =
      scheduler::ParseArrayIndices("spec.array.indices", array.spec().array().indices());
  if (!indices.ok()) {
    reactor->Finish(ToGrpcStatus(indices.status()));
    return;
  }
  // With an idempotency key the id follows from it (and the owner), so that a retried
  // submit makes the very same tasks; without one it is random.
  std::string seed = array.spec().idempotency_key().empty()
                         ? absl::StrCat(std::random_device()(), "/", std::random_device()(), "/",
                                        absl::ToUnixNanos(clock_.Now()))
                         : absl::StrCat("key\n", array.owner(), "\n", array.spec().idempotency_key());
  std::string digest = archive::Sha256Digest(seed);
  const uint64_t id_bits = std::stoull(digest.substr(digest.find(':') + 1, 16), nullptr, 16);
  const std::string array_id = scheduler::FormatArrayId(id_bits);
  std::vector<v1::Job> tasks = scheduler::MakeArrayTasks(array, array_id, *indices);
  const size_t size = tasks.size();
  store_.CreateJobs(std::move(tasks), [this, reactor, response, caller, array_id, size](
                                          absl::StatusOr<std::vector<storage::CreateJobResult>>
                                              results) {
    if (!results.ok()) {
      if (!absl::IsAlreadyExists(results.status())) {
        Log(LogLevel::kWarning, "job_array_submit_failed",
            {{"array", array_id}, {"error", results.status().ToString()}});
      }
      reactor->Finish(ToGrpcStatus(results.status()));
      return;
    }
    // Every task is durable; acknowledge from the core once it knows them all.
    loop_.Post([this, reactor, response, caller, array_id, size,
                results = *std::move(results)]() mutable {
      int64_t created = 0;
      for (const storage::CreateJobResult& result : results) {
        if (!result.created) continue;
        core_.JobCreated(result.job);
        ++created;
      }
      Log(LogLevel::kInfo, "job_array_submitted",
          {{"array", array_id}, {"tasks", size}, {"created", created},
           {"first", results.front().job.id()}});
      *response->mutable_job() = std::move(results.front().job);
      RedactJob(caller, response->mutable_job());
      response->set_created(created > 0);
      reactor->Finish(grpc::Status::OK);
    });
  });
}

void JobServiceImpl::CancelArray(const grpc::CallbackServerContext& context,
                                 const v1::CancelJobRequest& request,
                                 grpc::ServerUnaryReactor* reactor, v1::Job* response) {
  absl::StatusOr<Caller> caller = auth_.Check(context, "/drover.v1.JobService/CancelJob");
  absl::Status allowed = caller.status();
  if (allowed.ok() && !accepting_.load()) allowed = ShuttingDown();
  if (allowed.ok() && request.reason().size() > 1024) {
    allowed = absl::InvalidArgumentError(absl::StrCat(
        "reason: ", request.reason().size(), " bytes is too long; use at most 1024"));
  }
  // Any task tells the owner: every task of an array has the submitter's.
  storage::ListJobsQuery query;
  query.tag_key = scheduler::kArrayTag;
  query.tag_value = request.job_id();
  query.page_size = 1;
  absl::StatusOr<storage::ListJobsPage> page =
      allowed.ok() ? store_.ListJobs(query) : absl::StatusOr<storage::ListJobsPage>(allowed);
  if (page.ok() && page->jobs.empty()) {
    page = absl::NotFoundError(absl::StrCat("job array '", request.job_id(),
                                            "' does not exist; see drover list"));
  }
  if (page.ok()) {
    if (absl::Status can = CanChangeJob(*caller, page->jobs.front()); !can.ok()) page = can;
  }
  if (!page.ok()) {
    reactor->Finish(ToGrpcStatus(page.status()));
    return;
  }
  // The answer is the first task: the newest task is the last one, and an array's tasks
  // have consecutive ids (one write), so the first is size - 1 ids before it.
  const v1::Job& last = page->jobs.front();
  absl::StatusOr<int64_t> last_seq = ParseJobId(last.id());
  if (last_seq.ok() && *last_seq - last.spec().array_task().size() + 1 >= 1) {
    absl::StatusOr<v1::Job> first =
        store_.GetJob(FormatJobId(*last_seq - last.spec().array_task().size() + 1));
    if (first.ok() && first->spec().array_task().array_id() == request.job_id()) {
      page->jobs.front() = *std::move(first);
    }
  }
  loop_.Post([this, array_id = request.job_id(), reason = request.reason(), reactor, response,
              caller = *caller, fallback = std::move(page->jobs.front())]() mutable {
    core_.CancelArray(array_id, reason, std::move(fallback),
                      [reactor, response, caller](absl::StatusOr<v1::Job> job) {
                        if (job.ok()) {
                          *response = *std::move(job);
                          RedactJob(caller, response);
                        }
                        reactor->Finish(ToGrpcStatus(job.status()));
                      });
  });
}

}  // namespace drover::server
