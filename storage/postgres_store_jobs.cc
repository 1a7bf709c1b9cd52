// PostgresStore's jobs: the SQL text; the logic is store_jobs_internal.h's, shared with
// SqliteStore.
#include <string>
#include <utility>
#include <vector>

#include "storage/postgres_store_internal.h"
#include "storage/store_jobs_load_internal.h"

namespace drover::storage {

const store_ops::JobSql PostgresEngine::kJobSql = {
    .find_by_key = "SELECT " DROVER_JOB_COLUMNS " FROM jobs WHERE idempotency_key = $1",
    .insert_job = "INSERT INTO jobs (idempotency_key, state, experiment, priority, version, "
                  "create_time_us, spec, status, owner) "
                  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
    .insert_tag = "INSERT INTO job_tags (seq, key, value) VALUES ($1, $2, $3)",
    .update_status = "UPDATE jobs SET state = $1, version = $2, status = $3 "
                     "WHERE seq = $4 AND version = $5",
    .job_version = "SELECT version FROM jobs WHERE seq = $1",
    .select_job = "SELECT " DROVER_JOB_COLUMNS " FROM jobs WHERE seq = $1",
    // The row is locked (FOR UPDATE) so that the read and the write of the tags are one step.
    .select_spec = "SELECT spec FROM jobs WHERE seq = $1 FOR UPDATE",
    .update_spec = "UPDATE jobs SET spec = $1 WHERE seq = $2",
    .delete_tag = "DELETE FROM job_tags WHERE key = $1 AND value = $2 AND seq = $3",
    .unfinished = "SELECT " DROVER_JOB_COLUMNS " FROM jobs WHERE state NOT IN ($1, $2, $3) "
                  "ORDER BY seq",
};

void PostgresStore::CreateJob(v1::Job job, CreateJobCallback done) {
  Enqueue(
      std::make_unique<store_ops::CreateJobOp<PostgresEngine>>(std::move(job), std::move(done)));
}

void PostgresStore::CreateJobs(std::vector<v1::Job> jobs, CreateJobsCallback done) {
  Enqueue(
      std::make_unique<store_ops::CreateJobsOp<PostgresEngine>>(std::move(jobs), std::move(done)));
}

void PostgresStore::UpdateJobStatus(std::string job_id, int64_t expected_version,
                                    v1::JobStatus status, Durability durability,
                                    UpdateCallback done) {
  if (auto op = store_ops::UpdateJobStatus<PostgresEngine>(std::move(job_id), expected_version,
                                                           std::move(status), std::move(done),
                                                           durability)) {
    Enqueue(std::move(op));
  }
}

void PostgresStore::UpdateJobTags(std::string job_id, JobTagUpdate update, UpdateCallback done) {
  if (auto op = store_ops::UpdateJobTags<PostgresEngine>(std::move(job_id), std::move(update),
                                                         std::move(done))) {
    Enqueue(std::move(op));
  }
}

absl::StatusOr<v1::Job> PostgresStore::GetJob(absl::string_view job_id) {
  DROVER_ASSIGN_OR_RETURN(int64_t seq, ParseJobId(job_id));
  return WithReader([&](PgDb& db) {
    return store_ops::GetJob<PostgresEngine>(db, seq, job_id, options_.secrets);
  });
}

absl::StatusOr<ListJobsPage> PostgresStore::ListJobs(const ListJobsQuery& query) {
  const store_ops::ListJobs<PostgresEngine> list(query);
  return WithReader([&](PgDb& db) { return list.Run(db, options_.secrets); });
}

absl::StatusOr<std::vector<v1::Job>> PostgresStore::LoadUnfinishedJobs() {
  return WithReader([&](PgDb& db) {
    return store_ops::LoadUnfinishedJobs<PostgresEngine>(db, options_.secrets);
  });
}

absl::Status PostgresStore::ReadUnfinishedJobs(
    absl::FunctionRef<absl::Status(UnfinishedJobRow&)> each) {
  return WithReader([&](PgDb& db) {
    return store_ops::ReadUnfinishedJobs<PostgresEngine>(db, options_.secrets, each);
  });
}

}  // namespace drover::storage
