#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/job_id.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "storage/postgres_store_internal.h"
#include "storage/store_rules.h"

namespace drover::storage {
namespace {

using google::protobuf::util::TimeUtil;
using rules::OpenSpec;
using rules::SealedSpec;

constexpr char kJobColumns[] = "seq, spec, status, create_time_us, owner";

// Reads a job from a row selected with kJobColumns, its secret values opened.
absl::StatusOr<v1::Job> JobFromRow(const PgStatement& row, const SecretBox* secrets) {
  v1::Job job;
  job.set_id(FormatJobId(row.ColumnInt(0)));
  absl::string_view spec = row.ColumnBlob(1);
  absl::string_view status = row.ColumnBlob(2);
  if (!job.mutable_spec()->ParseFromArray(spec.data(), static_cast<int>(spec.size())) ||
      !job.mutable_status()->ParseFromArray(status.data(), static_cast<int>(status.size()))) {
    return absl::DataLossError(absl::StrCat("job '", job.id(), "' has an unreadable record"));
  }
  *job.mutable_create_time() = TimeUtil::MicrosecondsToTimestamp(row.ColumnInt(3));
  job.set_owner(row.ColumnText(4));
  DROVER_RETURN_IF_ERROR(OpenSpec(secrets, job.id(), *job.mutable_spec()));
  return job;
}

// Job `job_id` (row `seq`) as the write in progress on `w` left it.
absl::StatusOr<v1::Job> JobAsWritten(PostgresStore::Writer& w, int64_t seq,
                                     const std::string& job_id) {
  PgStatement& select = *w.select_job;
  select.Reset();
  select.Bind(1, seq);
  DROVER_ASSIGN_OR_RETURN(bool found, select.Step());
  if (!found) return absl::InternalError(absl::StrCat("job '", job_id, "' vanished"));
  absl::StatusOr<v1::Job> job = JobFromRow(select, w.secrets);
  select.Reset();
  return job;
}

class CreateJobOp final : public PostgresStore::WriteOp {
 public:
  CreateJobOp(v1::Job job, Store::CreateJobCallback done)
      : job_(std::move(job)), done_(std::move(done)) {}

  absl::Status Apply(PostgresStore::Writer& w) override {
    const std::string& key = job_.spec().idempotency_key();
    if (!key.empty()) {
      PgStatement& find = *w.find_by_key;
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
    PgStatement& insert = *w.insert_job;
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
        .Bind(6, TimeUtil::TimestampToMicroseconds(job_.create_time()))
        .BindBlob(7, SerializeDeterministic(SealedSpec(w.secrets, job_.spec())))
        .BindBlob(8, SerializeDeterministic(job_.status()))
        .Bind(9, job_.owner());
    DROVER_ASSIGN_OR_RETURN(bool returned, insert.Step());
    if (!returned) return absl::InternalError("inserting a job returned no id");
    const int64_t seq = insert.ColumnInt(0);
    insert.Reset();
    for (const auto& [tag_key, tag_value] : job_.spec().tags()) {
      PgStatement& tag = *w.insert_tag;
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

// The jobs of one CreateJobs call: each applied as CreateJobOp applies it, all inside this
// write's savepoint, so that one failing rolls back every one of them.
class CreateJobsOp final : public PostgresStore::WriteOp {
 public:
  CreateJobsOp(std::vector<v1::Job> jobs, Store::CreateJobsCallback done)
      : done_(std::move(done)) {
    ops_.reserve(jobs.size());
    results_.resize(jobs.size());
    for (size_t i = 0; i < jobs.size(); ++i) {
      ops_.push_back(std::make_unique<CreateJobOp>(
          std::move(jobs[i]), [this, i](absl::StatusOr<CreateJobResult> result) {
            if (result.ok()) results_[i] = *std::move(result);
          }));
    }
  }

  absl::Status Apply(PostgresStore::Writer& w) override {
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
  std::vector<std::unique_ptr<CreateJobOp>> ops_;
  std::vector<CreateJobResult> results_;
  Store::CreateJobsCallback done_;
};

class UpdateStatusOp final : public PostgresStore::WriteOp {
 public:
  UpdateStatusOp(int64_t seq, std::string job_id, int64_t expected_version, v1::JobStatus status,
                 Store::UpdateCallback done)
      : seq_(seq),
        job_id_(std::move(job_id)),
        expected_version_(expected_version),
        status_(std::move(status)),
        done_(std::move(done)) {}

  absl::Status Apply(PostgresStore::Writer& w) override {
    PgStatement& update = *w.update_status;
    update.Reset();
    update.Bind(1, static_cast<int64_t>(status_.state()))
        .Bind(2, status_.version())
        .BindBlob(3, SerializeDeterministic(status_))
        .Bind(4, seq_)
        .Bind(5, expected_version_);
    DROVER_RETURN_IF_ERROR(update.Run());
    const int64_t changed = update.Affected();
    update.Reset();
    if (changed != 1) {
      PgStatement& version = *w.job_version;
      version.Reset();
      version.Bind(1, seq_);
      DROVER_ASSIGN_OR_RETURN(bool found, version.Step());
      if (!found) return absl::NotFoundError(absl::StrCat("job '", job_id_, "' does not exist"));
      int64_t current = version.ColumnInt(0);
      version.Reset();
      return absl::AbortedError(absl::StrCat("job '", job_id_, "' changed (version ", current,
                                             ", expected ", expected_version_,
                                             "); read it again and retry"));
    }
    DROVER_ASSIGN_OR_RETURN(job_, JobAsWritten(w, seq_, job_id_));
    return absl::OkStatus();
  }

  void Finish(absl::Status status) && override {
    if (!status.ok()) {
      std::move(done_)(std::move(status));
      return;
    }
    std::move(done_)(std::move(job_));
  }

 private:
  int64_t seq_;
  std::string job_id_;
  int64_t expected_version_;
  v1::JobStatus status_;
  Store::UpdateCallback done_;
  v1::Job job_;  // as committed
};

class UpdateTagsOp final : public PostgresStore::WriteOp {
 public:
  UpdateTagsOp(int64_t seq, std::string job_id, JobTagUpdate update, Store::UpdateCallback done)
      : seq_(seq), job_id_(std::move(job_id)), update_(std::move(update)), done_(std::move(done)) {}

  absl::Status Apply(PostgresStore::Writer& w) override {
    // The stored spec as it is, its secret values still sealed: only the tags change. The
    // row is locked (FOR UPDATE) so that the read and the write are one step.
    PgStatement& read = *w.select_spec;
    read.Reset();
    read.Bind(1, seq_);
    DROVER_ASSIGN_OR_RETURN(bool found, read.Step());
    if (!found) return absl::NotFoundError(absl::StrCat("job '", job_id_, "' does not exist"));
    v1::JobSpec spec;
    absl::string_view blob = read.ColumnBlob(0);
    if (!spec.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      read.Reset();
      return absl::DataLossError(absl::StrCat("job '", job_id_, "' has an unreadable record"));
    }
    read.Reset();
    const google::protobuf::Map<std::string, std::string> before = spec.tags();
    auto& tags = *spec.mutable_tags();
    for (const std::string& key : update_.remove) tags.erase(key);
    for (const auto& [key, value] : update_.set) tags[key] = value;
    if (update_.check) DROVER_RETURN_IF_ERROR(update_.check(tags));

    PgStatement& write = *w.update_spec;
    write.Reset();
    write.BindBlob(1, SerializeDeterministic(spec)).Bind(2, seq_);
    DROVER_RETURN_IF_ERROR(write.Run());
    // job_tags is keyed (key, value, seq): change only the rows that differ.
    for (const auto& [key, value] : before) {
      auto now = tags.find(key);
      if (now != tags.end() && now->second == value) continue;
      PgStatement& drop = *w.delete_tag;
      drop.Reset();
      drop.Bind(1, key).Bind(2, value).Bind(3, seq_);
      DROVER_RETURN_IF_ERROR(drop.Run());
    }
    for (const auto& [key, value] : tags) {
      auto was = before.find(key);
      if (was != before.end() && was->second == value) continue;
      PgStatement& add = *w.insert_tag;
      add.Reset();
      add.Bind(1, seq_).Bind(2, key).Bind(3, value);
      DROVER_RETURN_IF_ERROR(add.Run());
    }
    DROVER_ASSIGN_OR_RETURN(job_, JobAsWritten(w, seq_, job_id_));
    return absl::OkStatus();
  }

  void Finish(absl::Status status) && override {
    if (!status.ok()) {
      std::move(done_)(std::move(status));
      return;
    }
    std::move(done_)(std::move(job_));
  }

 private:
  int64_t seq_;
  std::string job_id_;
  JobTagUpdate update_;
  Store::UpdateCallback done_;
  v1::Job job_;  // as committed
};

}  // namespace

namespace postgres_store_internal {

absl::Status PrepareJobStatements(PostgresStore::Writer& w) {
  DROVER_ASSIGN_OR_RETURN(w.find_by_key,
                          w.db->PrepareKept(absl::StrCat("SELECT ", kJobColumns,
                                                         " FROM jobs WHERE idempotency_key = $1")));
  DROVER_ASSIGN_OR_RETURN(
      w.insert_job,
      w.db->PrepareKept("INSERT INTO jobs (idempotency_key, state, experiment, priority, version, "
                        "create_time_us, spec, status, owner) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq"));
  DROVER_ASSIGN_OR_RETURN(
      w.insert_tag,
      w.db->PrepareKept("INSERT INTO job_tags (seq, key, value) VALUES ($1, $2, $3)"));
  DROVER_ASSIGN_OR_RETURN(
      w.update_status,
      w.db->PrepareKept("UPDATE jobs SET state = $1, version = $2, status = $3 "
                        "WHERE seq = $4 AND version = $5"));
  DROVER_ASSIGN_OR_RETURN(w.job_version,
                          w.db->PrepareKept("SELECT version FROM jobs WHERE seq = $1"));
  DROVER_ASSIGN_OR_RETURN(
      w.select_job,
      w.db->PrepareKept(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE seq = $1")));
  DROVER_ASSIGN_OR_RETURN(w.select_spec,
                          w.db->PrepareKept("SELECT spec FROM jobs WHERE seq = $1 FOR UPDATE"));
  DROVER_ASSIGN_OR_RETURN(w.update_spec,
                          w.db->PrepareKept("UPDATE jobs SET spec = $1 WHERE seq = $2"));
  DROVER_ASSIGN_OR_RETURN(
      w.delete_tag,
      w.db->PrepareKept("DELETE FROM job_tags WHERE key = $1 AND value = $2 AND seq = $3"));
  return absl::OkStatus();
}

}  // namespace postgres_store_internal

void PostgresStore::CreateJob(v1::Job job, CreateJobCallback done) {
  Enqueue(std::make_unique<CreateJobOp>(std::move(job), std::move(done)));
}

void PostgresStore::CreateJobs(std::vector<v1::Job> jobs, CreateJobsCallback done) {
  Enqueue(std::make_unique<CreateJobsOp>(std::move(jobs), std::move(done)));
}

void PostgresStore::UpdateJobStatus(std::string job_id, int64_t expected_version,
                                    v1::JobStatus status, UpdateCallback done) {
  absl::StatusOr<int64_t> seq = ParseJobId(job_id);
  if (!seq.ok()) {
    std::move(done)(seq.status());
    return;
  }
  Enqueue(std::make_unique<UpdateStatusOp>(*seq, std::move(job_id), expected_version,
                                           std::move(status), std::move(done)));
}

void PostgresStore::UpdateJobTags(std::string job_id, JobTagUpdate update, UpdateCallback done) {
  absl::StatusOr<int64_t> seq = ParseJobId(job_id);
  if (!seq.ok()) {
    std::move(done)(seq.status());
    return;
  }
  Enqueue(std::make_unique<UpdateTagsOp>(*seq, std::move(job_id), std::move(update),
                                         std::move(done)));
}

absl::StatusOr<v1::Job> PostgresStore::GetJob(absl::string_view job_id) {
  DROVER_ASSIGN_OR_RETURN(int64_t seq, ParseJobId(job_id));
  return WithReader([&](PgDb& db) -> absl::StatusOr<v1::Job> {
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare(absl::StrCat("SELECT ", kJobColumns, " FROM jobs WHERE seq = $1")));
    select->Bind(1, seq);
    DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
    if (!found) return absl::NotFoundError(absl::StrCat("job '", job_id, "' does not exist"));
    return JobFromRow(*select, options_.secrets);
  });
}

absl::StatusOr<ListJobsPage> PostgresStore::ListJobs(const ListJobsQuery& query) {
  // Placeholders are numbered in the order the filters add them; values are bound below in
  // the same order.
  int next = 0;
  auto param = [&next] { return absl::StrCat("$", ++next); };
  std::string sql = absl::StrCat("SELECT ", kJobColumns, " FROM jobs j WHERE TRUE");
  if (query.before_sequence > 0) absl::StrAppend(&sql, " AND j.seq < ", param());
  if (!query.states.empty()) {
    std::vector<std::string> states;
    for (size_t i = 0; i < query.states.size(); ++i) states.push_back(param());
    absl::StrAppend(&sql, " AND j.state IN (", absl::StrJoin(states, ","), ")");
  }
  if (!query.experiment.empty()) absl::StrAppend(&sql, " AND j.experiment = ", param());
  if (query.owner.has_value()) absl::StrAppend(&sql, " AND j.owner = ", param());
  if (!query.tag_key.empty()) {
    absl::StrAppend(&sql, " AND EXISTS (SELECT 1 FROM job_tags t WHERE t.seq = j.seq AND t.key = ",
                    param());
    if (query.tag_value.has_value()) absl::StrAppend(&sql, " AND t.value = ", param());
    absl::StrAppend(&sql, ")");
  }
  absl::StrAppend(&sql, " ORDER BY j.seq DESC LIMIT ", param());
  int page_size = query.page_size > 0 ? query.page_size : 100;
  return WithReader([&](PgDb& db) -> absl::StatusOr<ListJobsPage> {
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql));
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
      DROVER_ASSIGN_OR_RETURN(v1::Job job, JobFromRow(*select, options_.secrets));
      page.jobs.push_back(std::move(job));
    }
    return page;
  });
}

absl::StatusOr<std::vector<v1::Job>> PostgresStore::LoadUnfinishedJobs() {
  return WithReader([&](PgDb& db) -> absl::StatusOr<std::vector<v1::Job>> {
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare(absl::StrCat("SELECT ", kJobColumns,
                                             " FROM jobs WHERE state NOT IN ($1, $2, $3) "
                                             "ORDER BY seq")));
    select->Bind(1, static_cast<int64_t>(v1::JobStatus::COMPLETED))
        .Bind(2, static_cast<int64_t>(v1::JobStatus::FAILED))
        .Bind(3, static_cast<int64_t>(v1::JobStatus::CANCELED));
    std::vector<v1::Job> jobs;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      DROVER_ASSIGN_OR_RETURN(v1::Job job, JobFromRow(*select, options_.secrets));
      jobs.push_back(std::move(job));
    }
    return jobs;
  });
}

}  // namespace drover::storage
