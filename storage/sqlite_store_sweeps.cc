// SqliteStore's sweeps: the SQL text; the logic is store_sweeps_internal.h's, shared with
// PostgresStore.
#include <string>
#include <utility>
#include <vector>

#include "storage/sqlite_store_internal.h"

namespace drover::storage {

const store_ops::SweepSql SqliteEngine::kSweepSql = {
    .find_by_key = "SELECT " DROVER_SWEEP_COLUMNS " FROM sweeps "
                   "WHERE owner = ?1 AND idempotency_key = ?2",
    .find_by_id = "SELECT " DROVER_SWEEP_COLUMNS " FROM sweeps WHERE id = ?1",
    .insert_sweep = "INSERT INTO sweeps (id, owner, idempotency_key, state, create_time_us, "
                    "sweep) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING seq",
    .update_sweep = "UPDATE sweeps SET state = ?1, sweep = ?2 WHERE seq = ?3",
    .trial_exists = "SELECT 1 FROM sweep_trials WHERE sweep_seq = ?1 AND idx = ?2",
    .insert_trial = "INSERT INTO sweep_trials (sweep_seq, idx, job_seq, trial) "
                    "VALUES (?1, ?2, ?3, ?4)",
    .select_trial = "SELECT trial FROM sweep_trials WHERE sweep_seq = ?1 AND idx = ?2",
    .update_trial = "UPDATE sweep_trials SET trial = ?1 WHERE sweep_seq = ?2 AND idx = ?3",
    .trials_of = "SELECT trial FROM sweep_trials WHERE sweep_seq = ?1 ORDER BY idx",
    .trial_count = "SELECT COUNT(*) FROM sweep_trials WHERE sweep_seq = ?1",
    .unfinished = "SELECT " DROVER_SWEEP_COLUMNS " FROM sweeps "
                  "WHERE state NOT IN (?1, ?2, ?3) ORDER BY seq",
};

void SqliteStore::CreateSweep(v1::Sweep sweep, CreateSweepCallback done) {
  Enqueue(std::make_unique<store_ops::CreateSweepOp<SqliteEngine>>(std::move(sweep),
                                                                   std::move(done)));
}

void SqliteStore::CreateTrials(std::string sweep_id, std::vector<v1::SweepTrial> trials,
                              std::vector<v1::Job> jobs, CreateJobsCallback done) {
  Enqueue(std::make_unique<store_ops::CreateTrialsOp<SqliteEngine>>(
      std::move(sweep_id), std::move(trials), std::move(jobs), std::move(done)));
}

void SqliteStore::UpdateSweepStatus(std::string sweep_id, v1::SweepStatus status,
                                   DoneCallback done) {
  Enqueue(store_ops::UpdateSweepStatus<SqliteEngine>(std::move(sweep_id), std::move(status),
                                                    std::move(done)));
}

void SqliteStore::PutTrialStop(std::string sweep_id, int64_t index, v1::TrialStop stop,
                              DoneCallback done) {
  Enqueue(store_ops::PutTrialStop<SqliteEngine>(std::move(sweep_id), index, std::move(stop),
                                               std::move(done)));
}

absl::StatusOr<v1::Sweep> SqliteStore::GetSweep(absl::string_view sweep_id) {
  return WithReader([&](Db& db) {
    return store_ops::GetSweep<SqliteEngine>(db, sweep_id, options_.secrets);
  });
}

absl::StatusOr<ListSweepsPage> SqliteStore::ListSweeps(const ListSweepsQuery& query) {
  return WithReader([&](Db& db) {
    return store_ops::ListSweeps<SqliteEngine>(db, query, options_.secrets);
  });
}

absl::StatusOr<std::vector<v1::Sweep>> SqliteStore::LoadUnfinishedSweeps() {
  return WithReader([&](Db& db) {
    return store_ops::LoadUnfinishedSweeps<SqliteEngine>(db, options_.secrets);
  });
}

}  // namespace drover::storage
