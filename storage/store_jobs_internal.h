// Internal to the SQL stores (see store_ops_internal.h): jobs, their idempotency keys,
// status updates (a compare-and-set on the job's version), tags and listing, once for both
// engines (loading the unfinished jobs at start is store_jobs_load_internal.h's). Each engine gives the SQL text (JobSql) and prepares the writer's statements.
#ifndef DROVER_STORAGE_STORE_JOBS_INTERNAL_H_
#define DROVER_STORAGE_STORE_JOBS_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/job_id.h"
#include "common/pki/secret_box.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "storage/store.h"
#include "storage/store_ops_internal.h"
#include "storage/store_rules.h"

namespace drover::storage::store_ops {

// The columns every job row is read with (JobFromRow).
#define DROVER_JOB_COLUMNS "seq, spec, status, create_time_us, owner"

// An engine's SQL for jobs. Parameters are numbered as the comments say.
struct JobSql {
  // The writer's kept statements (JobStatements).
  const char* find_by_key;    // job columns WHERE idempotency_key = 1
  const char* insert_job;     // (idempotency_key, state, experiment, priority, version,
                              //  create_time_us, spec, status, owner) RETURNING seq
  const char* insert_tag;     // (seq, key, value)
  const char* update_status;  // SET state = 1, version = 2, status = 3 WHERE seq = 4 AND
                              // version = 5
  const char* job_version;    // version WHERE seq = 1
  const char* select_job;     // job columns WHERE seq = 1 (also GetJob's)
  const char* select_spec;    // spec WHERE seq = 1, the row held until the commit
  const char* update_spec;    // SET spec = 1 WHERE seq = 2
  const char* delete_tag;     // WHERE key = 1 AND value = 2 AND seq = 3
  // Unfinished jobs in submission order: job columns WHERE state NOT IN (1, 2, 3).
  const char* unfinished;
};

// The writer's kept job statements (part of each engine's Writer).
template <typename Statement>
struct JobStatements {
  std::unique_ptr<Statement> find_by_key, insert_job, insert_tag, update_status, job_version,
      select_job, select_spec, update_spec, delete_tag;
};

// Prepares the writer's job statements; the error of the first that fails to prepare.
template <typename E>
absl::Status PrepareJobStatements(typename E::Writer& w) {
  const JobSql& sql = E::kJobSql;
  DROVER_ASSIGN_OR_RETURN(w.find_by_key, E::PrepareKept(*w.db, sql.find_by_key));
  DROVER_ASSIGN_OR_RETURN(w.insert_job, E::PrepareKept(*w.db, sql.insert_job));
  DROVER_ASSIGN_OR_RETURN(w.insert_tag, E::PrepareKept(*w.db, sql.insert_tag));
  DROVER_ASSIGN_OR_RETURN(w.update_status, E::PrepareKept(*w.db, sql.update_status));
  DROVER_ASSIGN_OR_RETURN(w.job_version, E::PrepareKept(*w.db, sql.job_version));
  DROVER_ASSIGN_OR_RETURN(w.select_job, E::PrepareKept(*w.db, sql.select_job));
  DROVER_ASSIGN_OR_RETURN(w.select_spec, E::PrepareKept(*w.db, sql.select_spec));
  DROVER_ASSIGN_OR_RETURN(w.update_spec, E::PrepareKept(*w.db, sql.update_spec));
  DROVER_ASSIGN_OR_RETURN(w.delete_tag, E::PrepareKept(*w.db, sql.delete_tag));
  return absl::OkStatus();
}

// Reads a job from a row selected with DROVER_JOB_COLUMNS, its secret values opened.
template <typename Row>
absl::StatusOr<v1::Job> JobFromRow(const Row& row, const SecretBox* secrets) {
  using google::protobuf::util::TimeUtil;
  v1::Job job;
  job.set_id(FormatJobId(row.ColumnInt(0)));
  if (!ParseStored(row.ColumnBlob(1), *job.mutable_spec()) ||
      !ParseStored(row.ColumnBlob(2), *job.mutable_status())) {
    return absl::DataLossError(absl::StrCat("job '", job.id(), "' has an unreadable record"));
  }
  *job.mutable_create_time() = TimeUtil::MicrosecondsToTimestamp(row.ColumnInt(3));
  job.set_owner(row.ColumnText(4));
  DROVER_RETURN_IF_ERROR(rules::OpenSpec(secrets, job.id(), *job.mutable_spec()));
  return job;
}

// Job `job_id` (row `seq`) as the write in progress on `w` left it.
template <typename Writer>
absl::StatusOr<v1::Job> JobAsWritten(Writer& w, int64_t seq, const std::string& job_id) {
  auto& select = *w.select_job;
  select.Reset();
  select.Bind(1, seq);
  DROVER_ASSIGN_OR_RETURN(bool found, select.Step());
  if (!found) return absl::InternalError(absl::StrCat("job '", job_id, "' vanished"));
  absl::StatusOr<v1::Job> job = JobFromRow(select, w.secrets);
  select.Reset();
  return job;
}

template <typename E>
class CreateJobOp final : public E::WriteOp {
 public:
  CreateJobOp(v1::Job job, Store::CreateJobCallback done)
      : job_(std::move(job)), done_(std::move(done)) {}

  absl::Status Apply(typename E::Writer& w) override {
    const std::string& key = job_.spec().idempotency_key();
    if (!key.empty()) {
      auto& find = *w.find_by_key;
      find.Reset();
      find.Bind(1, key);
      DROVER_ASSIGN_OR_RETURN(bool found, find.Step());
      if (found) {
        DROVER_ASSIGN_OR_RETURN(v1::Job existing, JobFromRow(find, w.secrets));
        find.Reset();
        DROVER_RETURN_IF_ERROR(rules::CheckIdempotentRetry(existing, job_));
        result_ = CreateJobResult{std::move(existing), false};
        return absl::OkStatus();
      }
      find.Reset();
    }
    auto& insert = *w.insert_job;
    insert.Reset();
    if (key.empty()) {
      insert.BindNull(1);
    } else {
      insert.Bind(1, key);
    }
    insert.Bind(2, static_cast<int64_t>(job_.status().state()))
        .Bind(3, job_.spec().experiment())
        .Bind(4, static_cast<int64_t>(job_.spec().priority()))
        .Bind(5, job_.status().version())
        .Bind(6, google::protobuf::util::TimeUtil::TimestampToMicroseconds(job_.create_time()))
        .BindBlob(7, w.secrets == nullptr
                         ? SerializeDeterministic(job_.spec())
                         : SerializeDeterministic(rules::SealedSpec(w.secrets, job_.spec())))
        .BindBlob(8, SerializeDeterministic(job_.status()))
        .Bind(9, job_.owner());
    DROVER_ASSIGN_OR_RETURN(bool returned, insert.Step());
    if (!returned) return absl::InternalError("inserting a job returned no id");
    const int64_t seq = insert.ColumnInt(0);
    insert.Reset();
    for (const auto& [tag_key, tag_value] : job_.spec().tags()) {
      auto& tag = *w.insert_tag;
      tag.Reset();
      tag.Bind(1, seq).Bind(2, tag_key).Bind(3, tag_value);
      DROVER_RETURN_IF_ERROR(tag.Run());
    }
    job_.set_id(FormatJobId(seq));
    result_ = CreateJobResult{std::move(job_), true};
    return absl::OkStatus();
  }

  void Finish(absl::Status status) && override {
    if (status.ok()) {
      std::move(done_)(std::move(result_));
    } else {
      std::move(done_)(std::move(status));
    }
  }

 private:
  v1::Job job_;
  Store::CreateJobCallback done_;
  CreateJobResult result_;
};

// The jobs of one CreateJobs call (the tasks of a job array): each applied as CreateJobOp
// applies it, all inside this write's savepoint, so that one failing rolls back every one.
template <typename E>
class CreateJobsOp final : public E::WriteOp {
 public:
  CreateJobsOp(std::vector<v1::Job> jobs, Store::CreateJobsCallback done)
      : done_(std::move(done)) {
    ops_.reserve(jobs.size());
    results_.resize(jobs.size());
    for (size_t i = 0; i < jobs.size(); ++i) {
      ops_.push_back(std::make_unique<CreateJobOp<E>>(
          std::move(jobs[i]), [this, i](absl::StatusOr<CreateJobResult> result) {
            if (result.ok()) results_[i] = *std::move(result);
          }));
    }
  }

  absl::Status Apply(typename E::Writer& w) override {
    for (auto& op : ops_) DROVER_RETURN_IF_ERROR(op->Apply(w));
    return absl::OkStatus();
  }

  void Finish(absl::Status status) && override {
    if (!status.ok()) {
      std::move(done_)(std::move(status));
      return;
    }
    for (auto& op : ops_) std::move(*op).Finish(absl::OkStatus());  // fills results_
    std::move(done_)(std::move(results_));
  }

 private:
  std::vector<std::unique_ptr<CreateJobOp<E>>> ops_;
  std::vector<CreateJobResult> results_;
  Store::CreateJobsCallback done_;
};

// A write that changes job `job_id` and answers with the job as committed.
template <typename E>
class JobUpdateOp : public E::WriteOp {
 public:
  JobUpdateOp(int64_t seq, std::string job_id, Store::UpdateCallback done)
      : seq_(seq), job_id_(std::move(job_id)), done_(std::move(done)) {}

  void Finish(absl::Status status) && override {
    if (!status.ok()) {
      std::move(done_)(std::move(status));
      return;
    }
    std::move(done_)(std::move(job_));
  }

 protected:
  absl::Status NotFound() const {
    return absl::NotFoundError(absl::StrCat("job '", job_id_, "' does not exist"));
  }

  const int64_t seq_;
  const std::string job_id_;
  v1::Job job_;  // as committed

 private:
  Store::UpdateCallback done_;
};

template <typename E>
class UpdateStatusOp final : public JobUpdateOp<E> {
 public:
  UpdateStatusOp(int64_t seq, std::string job_id, int64_t expected_version, v1::JobStatus status,
                 Store::Durability durability, Store::UpdateCallback done)
      : JobUpdateOp<E>(seq, std::move(job_id), std::move(done)),
        expected_version_(expected_version),
        status_(std::move(status)),
        durability_(durability) {}

  bool needs_flush() const override { return durability_ == Store::Durability::kFlushed; }

  absl::Status Apply(typename E::Writer& w) override {
    auto& update = *w.update_status;
    update.Reset();
    update.Bind(1, static_cast<int64_t>(status_.state()))
        .Bind(2, status_.version())
        .BindBlob(3, SerializeDeterministic(status_))
        .Bind(4, this->seq_)
        .Bind(5, expected_version_);
    DROVER_RETURN_IF_ERROR(update.Run());
    const int64_t changed = update.Affected();
    update.Reset();
    if (changed != 1) {
      auto& version = *w.job_version;
      version.Reset();
      version.Bind(1, this->seq_);
      DROVER_ASSIGN_OR_RETURN(bool found, version.Step());
      if (!found) return this->NotFound();
      int64_t current = version.ColumnInt(0);
      version.Reset();
      return absl::AbortedError(absl::StrCat("job '", this->job_id_, "' changed (version ",
                                             current, ", expected ", expected_version_,
                                             "); read it again and retry"));
    }
    DROVER_ASSIGN_OR_RETURN(this->job_, JobAsWritten(w, this->seq_, this->job_id_));
    return absl::OkStatus();
  }

 private:
  int64_t expected_version_;
  v1::JobStatus status_;
  Store::Durability durability_;
};

template <typename E>
class UpdateTagsOp final : public JobUpdateOp<E> {
 public:
  UpdateTagsOp(int64_t seq, std::string job_id, JobTagUpdate update, Store::UpdateCallback done)
      : JobUpdateOp<E>(seq, std::move(job_id), std::move(done)), update_(std::move(update)) {}

  absl::Status Apply(typename E::Writer& w) override {
    // The stored spec as it is, its secret values still sealed: only the tags change.
    auto& read = *w.select_spec;
    read.Reset();
    read.Bind(1, this->seq_);
    DROVER_ASSIGN_OR_RETURN(bool found, read.Step());
    if (!found) return this->NotFound();
    v1::JobSpec spec;
    if (!ParseStored(read.ColumnBlob(0), spec)) {
      read.Reset();
      return absl::DataLossError(
          absl::StrCat("job '", this->job_id_, "' has an unreadable record"));
    }
    read.Reset();
    const google::protobuf::Map<std::string, std::string> before = spec.tags();
    auto& tags = *spec.mutable_tags();
    for (const std::string& key : update_.remove) tags.erase(key);
    for (const auto& [key, value] : update_.set) tags[key] = value;
    if (update_.check) DROVER_RETURN_IF_ERROR(update_.check(tags));

    auto& write = *w.update_spec;
    write.Reset();
    write.BindBlob(1, SerializeDeterministic(spec)).Bind(2, this->seq_);
    DROVER_RETURN_IF_ERROR(write.Run());
    // job_tags is keyed (key, value, seq): change only the rows that differ.
    for (const auto& [key, value] : before) {
      auto now = tags.find(key);
      if (now != tags.end() && now->second == value) continue;
      auto& drop = *w.delete_tag;
      drop.Reset();
      drop.Bind(1, key).Bind(2, value).Bind(3, this->seq_);
      DROVER_RETURN_IF_ERROR(drop.Run());
    }
    for (const auto& [key, value] : tags) {
      auto was = before.find(key);
      if (was != before.end() && was->second == value) continue;
      auto& add = *w.insert_tag;
      add.Reset();
      add.Bind(1, this->seq_).Bind(2, key).Bind(3, value);
      DROVER_RETURN_IF_ERROR(add.Run());
    }
    DROVER_ASSIGN_OR_RETURN(this->job_, JobAsWritten(w, this->seq_, this->job_id_));
    return absl::OkStatus();
  }

 private:
  JobTagUpdate update_;
};

// The write `Op` of job `job_id` (built from `seq`, `job_id`, `args` and `done`), or null
// when `job_id` is malformed: then `done` has had the error.
template <typename Op, typename... Args>
std::unique_ptr<Op> JobWrite(std::string job_id, Store::UpdateCallback done, Args&&... args) {
  absl::StatusOr<int64_t> seq = ParseJobId(job_id);
  if (!seq.ok()) {
    std::move(done)(seq.status());
    return nullptr;
  }
  return std::make_unique<Op>(*seq, std::move(job_id), std::forward<Args>(args)...,
                              std::move(done));
}

// The write of UpdateJobStatus, or null as JobWrite says.
template <typename E>
std::unique_ptr<UpdateStatusOp<E>> UpdateJobStatus(std::string job_id, int64_t expected_version,
                                                   v1::JobStatus status,
                                                   Store::UpdateCallback done,
                                                   Store::Durability durability) {
  return JobWrite<UpdateStatusOp<E>>(std::move(job_id), std::move(done), expected_version,
                                     std::move(status), durability);
}

// The write of UpdateJobTags, or null as JobWrite says.
template <typename E>
std::unique_ptr<UpdateTagsOp<E>> UpdateJobTags(std::string job_id, JobTagUpdate update,
                                               Store::UpdateCallback done) {
  return JobWrite<UpdateTagsOp<E>>(std::move(job_id), std::move(done), std::move(update));
}

// Store::GetJob on a reader connection (`seq` parsed from `job_id`).
template <typename E>
absl::StatusOr<v1::Job> GetJob(typename E::Db& db, int64_t seq, absl::string_view job_id,
                               const SecretBox* secrets) {
  DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(E::kJobSql.select_job));
  select->Bind(1, seq);
  DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
  if (!found) return absl::NotFoundError(absl::StrCat("job '", job_id, "' does not exist"));
  return JobFromRow(*select, secrets);
}

// Store::ListJobs: the SQL is built from the query's filters, then run on a reader
// connection by Run.
template <typename E>
class ListJobs {
 public:
  explicit ListJobs(const ListJobsQuery& query) : query_(query) {
    ParamCounter<E> param;
    sql_ = "SELECT " DROVER_JOB_COLUMNS " FROM jobs j WHERE TRUE";
    if (query.before_sequence > 0) absl::StrAppend(&sql_, " AND j.seq < ", param.Next());
    if (!query.states.empty()) {
      std::vector<std::string> states;
      for (size_t i = 0; i < query.states.size(); ++i) states.push_back(param.Next());
      absl::StrAppend(&sql_, " AND j.state IN (", absl::StrJoin(states, ","), ")");
    }
    if (!query.experiment.empty()) absl::StrAppend(&sql_, " AND j.experiment = ", param.Next());
    if (query.owner.has_value()) absl::StrAppend(&sql_, " AND j.owner = ", param.Next());
    if (!query.tag_key.empty()) {
      absl::StrAppend(&sql_,
                      " AND EXISTS (SELECT 1 FROM job_tags t WHERE t.seq = j.seq AND t.key = ",
                      param.Next());
      if (query.tag_value.has_value()) absl::StrAppend(&sql_, " AND t.value = ", param.Next());
      absl::StrAppend(&sql_, ")");
    }
    absl::StrAppend(&sql_, " ORDER BY j.seq DESC LIMIT ", param.Next());
  }

  absl::StatusOr<ListJobsPage> Run(typename E::Db& db, const SecretBox* secrets) const {
    const ListJobsQuery& query = query_;
    const int page_size = query.page_size > 0 ? query.page_size : 100;
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql_));
    int index = 1;
    if (query.before_sequence > 0) select->Bind(index++, query.before_sequence);
    for (v1::JobStatus::State state : query.states) {
      select->Bind(index++, static_cast<int64_t>(state));
    }
    if (!query.experiment.empty()) select->Bind(index++, query.experiment);
    if (query.owner.has_value()) select->Bind(index++, *query.owner);
    if (!query.tag_key.empty()) {
      select->Bind(index++, query.tag_key);
      if (query.tag_value.has_value()) select->Bind(index++, *query.tag_value);
    }
    select->Bind(index++, static_cast<int64_t>(page_size) + 1);
    ListJobsPage page{.next_before_sequence = 0};
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      if (static_cast<int>(page.jobs.size()) == page_size) {
        page.next_before_sequence = select->ColumnInt(0) + 1;  // this row starts the next page
        break;
      }
      DROVER_ASSIGN_OR_RETURN(v1::Job job, JobFromRow(*select, secrets));
      page.jobs.push_back(std::move(job));
    }
    return page;
  }

 private:
  const ListJobsQuery& query_;
  std::string sql_;
};

}  // namespace drover::storage::store_ops

#endif  // DROVER_STORAGE_STORE_JOBS_INTERNAL_H_
