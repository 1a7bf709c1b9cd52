// Internal to the SQL stores (storage/sqlite_store*.cc, storage/postgres_store*.cc); nothing
// outside storage/ includes it. What both engines share besides the Store contract: the
// logic of every read and write, written once as templates over an engine `E`, so that an
// engine keeps only what really differs: its SQL text where the dialects differ, its
// connections, its transactions and its migrations.
//
// The areas, one header each, with the SQL each engine gives them:
//   store_jobs_internal.h        jobs (JobSql)
//   store_jobs_load_internal.h   the unfinished jobs read at start
//   store_registries_internal.h  compute targets, images, datastores, node states, the
//                                pause of node-loss handling (RegistrySql)
//   store_access_internal.h      users, blob holders, join tokens, node certificates, the
//                                audit trail (AccessSql)
//
// An engine `E` (SqliteEngine in sqlite_store_internal.h, PostgresEngine in
// postgres_store_internal.h) names:
//   E::Db, E::Statement      its connection and statement (sqlite_db.h, postgres_db.h): the
//                            same surface, Prepare/Exec and Bind/BindBlob/BindNull/Step/Run/
//                            Reset/Affected/ColumnInt/ColumnIsNull/ColumnText/ColumnBlob
//   E::Writer                the writer thread's state: `db`, `secrets` and the job
//                            statements (JobStatements below)
//   E::WriteOp, E::FunctionOp  a queued write, and one given as a function of the Writer
//   E::Param(n)              the text of the n-th parameter (SQLite ?n, PostgreSQL $n), for
//                            SQL built from a query's filters
//   E::PrepareKept(db, sql)  a statement the writer keeps and reuses
//   E::InSnapshot(db, fn)    `fn()` reading one snapshot of several tables
//   E::kJobSql, E::kRegistrySql, E::kAccessSql, E::kLeaseSql  its SQL text
//
// Threads: what runs on a Writer runs on the writer thread only; reads take the
// connection they are given, from any thread.
#ifndef DROVER_STORAGE_STORE_OPS_INTERNAL_H_
#define DROVER_STORAGE_STORE_OPS_INTERNAL_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "storage/store.h"

namespace drover::storage::store_ops {

// Each engine's SQL text, by area (store_*_internal.h).
struct JobSql;
struct RegistrySql;
struct AccessSql;
struct LeaseSql;

// One queued write of a store whose writer thread's state is `Writer` (each engine's
// WriteOp). Apply runs inside the batch's transaction, under a savepoint, so that a failing
// write leaves the others of the batch intact; Finish runs after the commit with the
// write's own error, or the commit's.
template <typename Writer>
class QueuedWrite {
 public:
  virtual ~QueuedWrite() = default;
  virtual absl::Status Apply(Writer& w) = 0;
  virtual void Finish(absl::Status status) && = 0;
  // Whether the write fails, unapplied, in a batch of a store whose leader lease was taken
  // by another droverd (Store's leader lease): every write but the lease's own.
  virtual bool fenced() const { return true; }
  // Whether its batch's commit must be flushed before Finish (Store::Durability::kFlushed):
  // every write but a status fact written kCommitted. A batch is flushed when any of its
  // writes needs it.
  virtual bool needs_flush() const { return true; }
};

// Whether any write of `batch` needs its commit flushed (QueuedWrite::needs_flush).
template <typename Batch>
bool BatchNeedsFlush(const Batch& batch) {
  for (const auto& op : batch) {
    if (op->needs_flush()) return true;
  }
  return false;
}

// A write given as a function of the writer's state (each engine's FunctionOp).
template <typename WriteOp, typename Writer>
class FunctionOp final : public WriteOp {
 public:
  using Fn = absl::AnyInvocable<absl::Status(Writer&)>;
  FunctionOp(Fn apply, Store::DoneCallback done)
      : apply_(std::move(apply)), done_(std::move(done)) {}
  absl::Status Apply(Writer& w) override { return apply_(w); }
  void Finish(absl::Status status) && override { std::move(done_)(std::move(status)); }

 private:
  Fn apply_;
  Store::DoneCallback done_;
};

// A write of one statement `sql` with its values bound by `bind(statement)`.
template <typename E, typename Bind>
std::unique_ptr<typename E::WriteOp> OneStatement(const char* sql, Bind bind,
                                                  Store::DoneCallback done) {
  return std::make_unique<typename E::FunctionOp>(
      [sql, bind = std::move(bind)](typename E::Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto statement, w.db->Prepare(sql));
        bind(*statement);
        return statement->Run();
      },
      std::move(done));
}

// Parses a stored message from `bytes`; false when it is unreadable.
template <typename Message>
bool ParseStored(absl::string_view bytes, Message& message) {
  return message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

// Every row of `sql` (one blob column) parsed as a `Message`; DATA_LOSS with `what` when
// one is unreadable.
template <typename Message, typename Db>
absl::StatusOr<std::vector<Message>> LoadAll(Db& db, const char* sql, const char* what) {
  DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql));
  std::vector<Message> out;
  while (true) {
    DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
    if (!row) break;
    Message message;
    if (!ParseStored(select->ColumnBlob(0), message)) return absl::DataLossError(what);
    out.push_back(std::move(message));
  }
  return out;
}

// Every row of `select` as `from_row(statement)` gives it (a value or a StatusOr).
template <typename T, typename Statement, typename FromRow>
absl::StatusOr<std::vector<T>> AllRows(Statement& select, FromRow from_row) {
  std::vector<T> out;
  while (true) {
    DROVER_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    absl::StatusOr<T> value = from_row(select);
    if (!value.ok()) return value.status();
    out.push_back(*std::move(value));
  }
  return out;
}

// Numbers a query's parameters in the order its filters add them (`E::Param`), so that
// SQL built from optional filters binds its values in the same order.
template <typename E>
class ParamCounter {
 public:
  std::string Next() { return E::Param(++count_); }

 private:
  int count_ = 0;
};

}  // namespace drover::storage::store_ops

#endif  // DROVER_STORAGE_STORE_OPS_INTERNAL_H_
