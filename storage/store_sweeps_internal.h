// Internal to the SQL stores (see store_ops_internal.h): sweeps and their trials, once for
// both engines. Each engine gives the SQL text (SweepSql). A sweep is one row of `sweeps`
// (its v1::Sweep without trials, the trial template's secret values sealed as a job's) and
// one row of `sweep_trials` per started trial (its v1::SweepTrial), keyed (sweep, index) so
// that an index is stored at most once; a trial row is written in the same write as its job
// (CreateTrialsOp), so neither is ever stored without the other.
#ifndef DROVER_STORAGE_STORE_SWEEPS_INTERNAL_H_
#define DROVER_STORAGE_STORE_SWEEPS_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "storage/store.h"
#include "storage/store_jobs_internal.h"
#include "storage/store_ops_internal.h"
#include "storage/store_rules.h"

namespace drover::storage::store_ops {

// The columns every sweep row is read with (SweepFromRow).
#define DROVER_SWEEP_COLUMNS "seq, sweep"

// An engine's SQL for sweeps. Parameters are numbered as the comments say.
struct SweepSql {
  const char* find_by_key;   // sweep columns WHERE owner = 1 AND idempotency_key = 2
  const char* find_by_id;    // sweep columns WHERE id = 1
  const char* insert_sweep;  // (id, owner, idempotency_key, state, create_time_us, sweep)
                             // RETURNING seq
  const char* update_sweep;  // SET state = 1, sweep = 2 WHERE seq = 3
  const char* trial_exists;  // 1 WHERE sweep_seq = 1 AND idx = 2
  const char* insert_trial;  // (sweep_seq, idx, job_seq, trial)
  const char* select_trial;  // trial WHERE sweep_seq = 1 AND idx = 2 (held until commit)
  const char* update_trial;  // SET trial = 1 WHERE sweep_seq = 2 AND idx = 3
  const char* trials_of;     // trial WHERE sweep_seq = 1 ORDER BY idx
  const char* trial_count;   // COUNT(*) WHERE sweep_seq = 1
  // Unfinished sweeps, oldest first: sweep columns WHERE state NOT IN (1, 2, 3).
  const char* unfinished;
};

inline bool SweepEnded(v1::SweepStatus::State state) {
  return state == v1::SweepStatus::COMPLETED || state == v1::SweepStatus::CANCELED ||
         state == v1::SweepStatus::FAILED;
}

// A sweep's record as stored: no trials, nothing computed, the template's secrets sealed.
inline v1::Sweep StoredSweep(const SecretBox* secrets, v1::Sweep sweep) {
  sweep.clear_trials();
  sweep.clear_best_trial_index();
  sweep.clear_best_result();
  sweep.clear_trial_count();
  if (sweep.spec().has_trial_template()) {
    *sweep.mutable_spec()->mutable_trial_template() =
        rules::SealedSpec(secrets, std::move(*sweep.mutable_spec()->mutable_trial_template()));
  }
  return sweep;
}

// Reads a sweep (no trials) from a row selected with DROVER_SWEEP_COLUMNS, its template's
// secret values opened; `seq` gets the row's sequence.
template <typename Row>
absl::StatusOr<v1::Sweep> SweepFromRow(const Row& row, const SecretBox* secrets,
                                       int64_t* seq = nullptr) {
  v1::Sweep sweep;
  if (seq != nullptr) *seq = row.ColumnInt(0);
  if (!ParseStored(row.ColumnBlob(1), sweep)) {
    return absl::DataLossError(
        absl::StrCat("sweep of row ", row.ColumnInt(0), " has an unreadable record"));
  }
  if (sweep.spec().has_trial_template()) {
    DROVER_RETURN_IF_ERROR(
        rules::OpenSpec(secrets, sweep.id(), *sweep.mutable_spec()->mutable_trial_template()));
  }
  return sweep;
}

// Adds the stored trials of sweep row `seq` to `sweep` (by index) and sets trial_count.
template <typename Db, typename Sql>
absl::Status AddTrials(Db& db, const Sql& sql, int64_t seq, v1::Sweep& sweep) {
  DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql.trials_of));
  select->Bind(1, seq);
  while (true) {
    DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
    if (!row) break;
    v1::SweepTrial* trial = sweep.add_trials();
    if (!ParseStored(select->ColumnBlob(0), *trial)) {
      return absl::DataLossError(
          absl::StrCat("sweep '", sweep.id(), "' has an unreadable trial record"));
    }
  }
  sweep.set_trial_count(sweep.trials_size());
  return absl::OkStatus();
}

// Sweep `sweep_id`'s row sequence and record as the write in progress sees it.
template <typename E>
absl::StatusOr<std::pair<int64_t, v1::Sweep>> FindSweep(typename E::Writer& w,
                                                        const std::string& sweep_id) {
  DROVER_ASSIGN_OR_RETURN(auto find, w.db->Prepare(E::kSweepSql.find_by_id));
  find->Bind(1, sweep_id);
  DROVER_ASSIGN_OR_RETURN(bool found, find->Step());
  if (!found) return absl::NotFoundError(absl::StrCat("sweep '", sweep_id, "' does not exist"));
  int64_t seq = 0;
  DROVER_ASSIGN_OR_RETURN(v1::Sweep sweep, SweepFromRow(*find, w.secrets, &seq));
  return std::make_pair(seq, std::move(sweep));
}

template <typename E>
class CreateSweepOp final : public E::WriteOp {
 public:
  CreateSweepOp(v1::Sweep sweep, Store::CreateSweepCallback done)
      : sweep_(std::move(sweep)), done_(std::move(done)) {}

  absl::Status Apply(typename E::Writer& w) override {
    const SweepSql& sql = E::kSweepSql;
    const std::string& key = sweep_.spec().idempotency_key();
    if (!key.empty()) {
      DROVER_ASSIGN_OR_RETURN(auto find, w.db->Prepare(sql.find_by_key));
      find->Bind(1, sweep_.owner()).Bind(2, key);
      DROVER_ASSIGN_OR_RETURN(bool found, find->Step());
      if (found) {
        int64_t seq = 0;
        DROVER_ASSIGN_OR_RETURN(v1::Sweep existing, SweepFromRow(*find, w.secrets, &seq));
        find.reset();
        if (SerializeDeterministic(existing.spec()) != SerializeDeterministic(sweep_.spec())) {
          return absl::AlreadyExistsError(absl::StrCat(
              "sweep.idempotency_key: '", key, "' was already used for sweep '", existing.id(),
              "' with a different spec; use a new key for a different sweep"));
        }
        DROVER_RETURN_IF_ERROR(AddTrials(*w.db, sql, seq, existing));
        result_ = CreateSweepResult{std::move(existing), false};
        return absl::OkStatus();
      }
    }
    {
      DROVER_ASSIGN_OR_RETURN(auto find, w.db->Prepare(sql.find_by_id));
      find->Bind(1, sweep_.id());
      DROVER_ASSIGN_OR_RETURN(bool taken, find->Step());
      if (taken) {
        return absl::AlreadyExistsError(absl::StrCat("sweep '", sweep_.id(), "' exists"));
      }
    }
    DROVER_ASSIGN_OR_RETURN(auto insert, w.db->Prepare(sql.insert_sweep));
    insert->Bind(1, sweep_.id()).Bind(2, sweep_.owner());
    if (key.empty()) {
      insert->BindNull(3);
    } else {
      insert->Bind(3, key);
    }
    insert->Bind(4, static_cast<int64_t>(sweep_.status().state()))
        .Bind(5, google::protobuf::util::TimeUtil::TimestampToMicroseconds(sweep_.create_time()))
        .BindBlob(6, SerializeDeterministic(StoredSweep(w.secrets, sweep_)));
    DROVER_ASSIGN_OR_RETURN(bool returned, insert->Step());
    if (!returned) return absl::InternalError("inserting a sweep returned no row");
    v1::Sweep stored = sweep_;
    stored.clear_trials();
    stored.set_trial_count(0);
    result_ = CreateSweepResult{std::move(stored), true};
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
  v1::Sweep sweep_;
  Store::CreateSweepCallback done_;
  CreateSweepResult result_;
};

template <typename E>
class CreateTrialsOp final : public E::WriteOp {
 public:
  CreateTrialsOp(std::string sweep_id, std::vector<v1::SweepTrial> trials,
                 std::vector<v1::Job> jobs, Store::CreateJobsCallback done)
      : sweep_id_(std::move(sweep_id)),
        trials_(std::move(trials)),
        jobs_(std::move(jobs)),
        done_(std::move(done)) {}

  absl::Status Apply(typename E::Writer& w) override {
    const SweepSql& sql = E::kSweepSql;
    if (trials_.size() != jobs_.size()) {
      return absl::InvalidArgumentError(absl::StrCat(trials_.size(), " trials but ",
                                                     jobs_.size(), " jobs; give one job each"));
    }
    DROVER_ASSIGN_OR_RETURN(auto found, FindSweep<E>(w, sweep_id_));
    auto& [seq, sweep] = found;
    if (SweepEnded(sweep.status().state())) {
      return absl::FailedPreconditionError(
          absl::StrCat("sweep '", sweep_id_, "' ended (",
                       v1::SweepStatus::State_Name(sweep.status().state()),
                       "); it starts no more trials"));
    }
    results_.clear();
    for (size_t i = 0; i < trials_.size(); ++i) {
      v1::SweepTrial& trial = trials_[i];
      const v1::SweepTrialRef& ref = jobs_[i].spec().sweep_trial();
      if (ref.sweep_id() != sweep_id_ || ref.index() != trial.index()) {
        return absl::InvalidArgumentError(
            absl::StrCat("the job of trial ", trial.index(), " names trial ", ref.index(),
                         " of sweep '", ref.sweep_id(), "'; it must name its own trial"));
      }
      DROVER_ASSIGN_OR_RETURN(auto exists, w.db->Prepare(sql.trial_exists));
      exists->Bind(1, seq).Bind(2, trial.index());
      DROVER_ASSIGN_OR_RETURN(bool taken, exists->Step());
      if (taken) {
        return absl::AlreadyExistsError(absl::StrCat("trial ", trial.index(), " of sweep '",
                                                     sweep_id_, "' was already started"));
      }
      CreateJobResult created;
      CreateJobOp<E> job_op(std::move(jobs_[i]), [&created](absl::StatusOr<CreateJobResult> r) {
        if (r.ok()) created = *std::move(r);
      });
      DROVER_RETURN_IF_ERROR(job_op.Apply(w));
      std::move(job_op).Finish(absl::OkStatus());
      if (!created.created) {
        return absl::AlreadyExistsError(absl::StrCat(
            "the job of trial ", trial.index(), " matched an earlier job by its idempotency "
            "key; a trial's job carries none"));
      }
      DROVER_ASSIGN_OR_RETURN(int64_t job_seq, ParseJobId(created.job.id()));
      trial.set_job_id(created.job.id());
      DROVER_ASSIGN_OR_RETURN(auto insert, w.db->Prepare(sql.insert_trial));
      insert->Bind(1, seq).Bind(2, trial.index()).Bind(3, job_seq).BindBlob(
          4, SerializeDeterministic(trial));
      DROVER_RETURN_IF_ERROR(insert->Run());
      results_.push_back(std::move(created));
    }
    if (sweep.status().state() == v1::SweepStatus::QUEUED && !trials_.empty()) {
      sweep.mutable_status()->set_state(v1::SweepStatus::RUNNING);
      sweep.mutable_status()->set_reason("RUNNING");
      sweep.mutable_status()->clear_message();
      if (trials_[0].has_create_time()) {
        *sweep.mutable_status()->mutable_update_time() = trials_[0].create_time();
      }
      DROVER_ASSIGN_OR_RETURN(auto update, w.db->Prepare(sql.update_sweep));
      update->Bind(1, static_cast<int64_t>(v1::SweepStatus::RUNNING))
          .BindBlob(2, SerializeDeterministic(StoredSweep(w.secrets, std::move(sweep))))
          .Bind(3, seq);
      DROVER_RETURN_IF_ERROR(update->Run());
    }
    return absl::OkStatus();
  }

  void Finish(absl::Status status) && override {
    if (status.ok()) {
      std::move(done_)(std::move(results_));
    } else {
      std::move(done_)(std::move(status));
    }
  }

 private:
  std::string sweep_id_;
  std::vector<v1::SweepTrial> trials_;
  std::vector<v1::Job> jobs_;
  Store::CreateJobsCallback done_;
  std::vector<CreateJobResult> results_;
};

// Store::UpdateSweepStatus's write.
template <typename E>
std::unique_ptr<typename E::WriteOp> UpdateSweepStatus(std::string sweep_id,
                                                       v1::SweepStatus status,
                                                       Store::DoneCallback done) {
  return std::make_unique<typename E::FunctionOp>(
      [sweep_id = std::move(sweep_id),
       status = std::move(status)](typename E::Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto found, FindSweep<E>(w, sweep_id));
        auto& [seq, sweep] = found;
        if (SweepEnded(sweep.status().state())) {
          return absl::FailedPreconditionError(
              absl::StrCat("sweep '", sweep_id, "' already ended (",
                           v1::SweepStatus::State_Name(sweep.status().state()), ")"));
        }
        *sweep.mutable_status() = status;
        DROVER_ASSIGN_OR_RETURN(auto update, w.db->Prepare(E::kSweepSql.update_sweep));
        update->Bind(1, static_cast<int64_t>(status.state()))
            .BindBlob(2, SerializeDeterministic(StoredSweep(w.secrets, std::move(sweep))))
            .Bind(3, seq);
        return update->Run();
      },
      std::move(done));
}

// Store::PutTrialStop's write.
template <typename E>
std::unique_ptr<typename E::WriteOp> PutTrialStop(std::string sweep_id, int64_t index,
                                                  v1::TrialStop stop, Store::DoneCallback done) {
  return std::make_unique<typename E::FunctionOp>(
      [sweep_id = std::move(sweep_id), index,
       stop = std::move(stop)](typename E::Writer& w) -> absl::Status {
        const SweepSql& sql = E::kSweepSql;
        DROVER_ASSIGN_OR_RETURN(auto found, FindSweep<E>(w, sweep_id));
        const int64_t seq = found.first;
        DROVER_ASSIGN_OR_RETURN(auto select, w.db->Prepare(sql.select_trial));
        select->Bind(1, seq).Bind(2, index);
        DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
        if (!row) {
          return absl::NotFoundError(
              absl::StrCat("sweep '", sweep_id, "' has no trial ", index));
        }
        v1::SweepTrial trial;
        if (!ParseStored(select->ColumnBlob(0), trial)) {
          return absl::DataLossError(
              absl::StrCat("trial ", index, " of sweep '", sweep_id, "' is unreadable"));
        }
        select.reset();
        if (trial.has_stop()) return absl::OkStatus();  // the first stop stays
        *trial.mutable_stop() = stop;
        DROVER_ASSIGN_OR_RETURN(auto update, w.db->Prepare(sql.update_trial));
        update->BindBlob(1, SerializeDeterministic(trial)).Bind(2, seq).Bind(3, index);
        return update->Run();
      },
      std::move(done));
}

// Store::GetSweep on a reader connection.
template <typename E>
absl::StatusOr<v1::Sweep> GetSweep(typename E::Db& db, absl::string_view sweep_id,
                                   const SecretBox* secrets) {
  return E::InSnapshot(db, [&]() -> absl::StatusOr<v1::Sweep> {
    DROVER_ASSIGN_OR_RETURN(auto find, db.Prepare(E::kSweepSql.find_by_id));
    find->Bind(1, sweep_id);
    DROVER_ASSIGN_OR_RETURN(bool found, find->Step());
    if (!found) {
      return absl::NotFoundError(absl::StrCat("sweep '", sweep_id, "' does not exist"));
    }
    int64_t seq = 0;
    DROVER_ASSIGN_OR_RETURN(v1::Sweep sweep, SweepFromRow(*find, secrets, &seq));
    find.reset();
    DROVER_RETURN_IF_ERROR(AddTrials(db, E::kSweepSql, seq, sweep));
    return sweep;
  });
}

// Store::ListSweeps on a reader connection.
template <typename E>
absl::StatusOr<ListSweepsPage> ListSweeps(typename E::Db& db, const ListSweepsQuery& query,
                                          const SecretBox* secrets) {
  ParamCounter<E> param;
  std::string sql = "SELECT " DROVER_SWEEP_COLUMNS " FROM sweeps WHERE TRUE";
  if (query.before_sequence > 0) absl::StrAppend(&sql, " AND seq < ", param.Next());
  if (!query.states.empty()) {
    std::vector<std::string> states;
    for (size_t i = 0; i < query.states.size(); ++i) states.push_back(param.Next());
    absl::StrAppend(&sql, " AND state IN (", absl::StrJoin(states, ","), ")");
  }
  if (query.owner.has_value()) absl::StrAppend(&sql, " AND owner = ", param.Next());
  absl::StrAppend(&sql, " ORDER BY seq DESC LIMIT ", param.Next());
  const int page_size = query.page_size > 0 ? query.page_size : 100;
  return E::InSnapshot(db, [&]() -> absl::StatusOr<ListSweepsPage> {
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql));
    int index = 1;
    if (query.before_sequence > 0) select->Bind(index++, query.before_sequence);
    for (v1::SweepStatus::State state : query.states) {
      select->Bind(index++, static_cast<int64_t>(state));
    }
    if (query.owner.has_value()) select->Bind(index++, *query.owner);
    select->Bind(index++, static_cast<int64_t>(page_size) + 1);
    ListSweepsPage page{.next_before_sequence = 0};
    std::vector<int64_t> seqs;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      if (static_cast<int>(page.sweeps.size()) == page_size) {
        page.next_before_sequence = select->ColumnInt(0) + 1;
        break;
      }
      int64_t seq = 0;
      DROVER_ASSIGN_OR_RETURN(v1::Sweep sweep, SweepFromRow(*select, secrets, &seq));
      seqs.push_back(seq);
      page.sweeps.push_back(std::move(sweep));
    }
    select.reset();
    for (size_t i = 0; i < seqs.size(); ++i) {
      DROVER_ASSIGN_OR_RETURN(auto count, db.Prepare(E::kSweepSql.trial_count));
      count->Bind(1, seqs[i]);
      DROVER_ASSIGN_OR_RETURN(bool row, count->Step());
      page.sweeps[i].set_trial_count(row ? count->ColumnInt(0) : 0);
    }
    return page;
  });
}

// Store::LoadUnfinishedSweeps on a reader connection.
template <typename E>
absl::StatusOr<std::vector<v1::Sweep>> LoadUnfinishedSweeps(typename E::Db& db,
                                                            const SecretBox* secrets) {
  return E::InSnapshot(db, [&]() -> absl::StatusOr<std::vector<v1::Sweep>> {
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(E::kSweepSql.unfinished));
    select->Bind(1, static_cast<int64_t>(v1::SweepStatus::COMPLETED))
        .Bind(2, static_cast<int64_t>(v1::SweepStatus::CANCELED))
        .Bind(3, static_cast<int64_t>(v1::SweepStatus::FAILED));
    std::vector<v1::Sweep> sweeps;
    std::vector<int64_t> seqs;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      int64_t seq = 0;
      DROVER_ASSIGN_OR_RETURN(v1::Sweep sweep, SweepFromRow(*select, secrets, &seq));
      seqs.push_back(seq);
      sweeps.push_back(std::move(sweep));
    }
    select.reset();
    for (size_t i = 0; i < seqs.size(); ++i) {
      DROVER_RETURN_IF_ERROR(AddTrials(db, E::kSweepSql, seqs[i], sweeps[i]));
    }
    return sweeps;
  });
}

}  // namespace drover::storage::store_ops

#endif  // DROVER_STORAGE_STORE_SWEEPS_INTERNAL_H_
