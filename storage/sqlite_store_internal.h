// Internal to SqliteStore (storage/sqlite_store*.cc); nothing outside storage/ includes it.
// What the parts of the store share: the writer thread's state (`SqliteStore::Writer`), a
// queued write (`SqliteStore::WriteOp`) and a write given as a function (`FunctionOp`),
// reading through a pooled connection (`WithReader`), and SQLite as the engine of the logic
// both SQL stores share (`SqliteEngine`, see store_ops_internal.h).
//
// The store is split by what it keeps, one file each, as PostgresStore is:
//   sqlite_store.cc             opening, the writer thread and its group commit, the readers
//   sqlite_store_jobs.cc        jobs (idempotency keys, status updates, tags, listing)
//   sqlite_store_registries.cc  compute targets, images, datastores, node states, the pause
//                               of node-loss handling
//   sqlite_store_access.cc      users, blob holders, join tokens, node certificates, audit
// Each holds the SQL text of its area; the logic is in store_*_internal.h.
//
// Threads: a `Writer` and every `WriteOp::Apply` run on the writer thread only;
// `WithReader` may be called from any thread.
#ifndef DROVER_STORAGE_SQLITE_STORE_INTERNAL_H_
#define DROVER_STORAGE_SQLITE_STORE_INTERNAL_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/pki/secret_box.h"
#include "storage/sqlite_db.h"
#include "storage/sqlite_store.h"
#include "storage/store_jobs_internal.h"
#include "storage/store_ops_internal.h"
#include "storage/store_sweeps_internal.h"

namespace drover::storage {

// What the writer thread owns: the write connection and its prepared statements.
struct SqliteStore::Writer : store_ops::JobStatements<Statement> {
  std::unique_ptr<Db> db;
  const SecretBox* secrets = nullptr;
  std::unique_ptr<Statement> begin, commit, rollback;
  std::unique_ptr<Statement> savepoint, release, rollback_to;
  // Whether the connection's commits are flushed now (PRAGMA synchronous FULL, the
  // default) or only written (NORMAL: a batch of Durability::kCommitted writes).
  bool flushes = true;
};

// One queued write (store_ops::QueuedWrite says when each part runs).
class SqliteStore::WriteOp : public store_ops::QueuedWrite<SqliteStore::Writer> {};

// Runs `fn` on a read-only connection borrowed from the pool; the error of borrowing one
// (UNAVAILABLE when no connection opens) or what `fn` returns.
template <typename Fn>
auto SqliteStore::WithReader(Fn&& fn) -> decltype(fn(std::declval<Db&>())) {
  absl::StatusOr<std::unique_ptr<Db>> db = AcquireReader();
  if (!db.ok()) return db.status();
  auto result = fn(**db);
  ReleaseReader(*std::move(db));
  return result;
}

namespace sqlite_store_internal {

// A write given as a function of the writer's connection.
using FunctionOp = store_ops::FunctionOp<SqliteStore::WriteOp, SqliteStore::Writer>;

}  // namespace sqlite_store_internal

// SQLite as the engine of the shared store logic (store_ops_internal.h says what each
// name is for).
struct SqliteEngine {
  using Db = storage::Db;
  using Statement = storage::Statement;
  using Writer = SqliteStore::Writer;
  using WriteOp = SqliteStore::WriteOp;
  using FunctionOp = sqlite_store_internal::FunctionOp;

  // SQLite's numbered parameters: ?1, ?2, ...
  static std::string Param(int n) { return absl::StrCat("?", n); }
  // Every SQLite statement is prepared to be kept.
  static absl::StatusOr<std::unique_ptr<Statement>> PrepareKept(Db& db, absl::string_view sql) {
    return db.Prepare(sql);
  }
  // Runs `fn` as it is: a SQLite reader's statements each read the database as the
  // writer's last commit left it.
  template <typename Fn>
  static auto InSnapshot(Db&, Fn fn) {
    return fn();
  }

  static const store_ops::JobSql kJobSql;             // sqlite_store_jobs.cc
  static const store_ops::RegistrySql kRegistrySql;   // sqlite_store_registries.cc
  static const store_ops::AccessSql kAccessSql;       // sqlite_store_access.cc
  static const store_ops::LeaseSql kLeaseSql;         // sqlite_store.cc
  static const store_ops::SweepSql kSweepSql;           // sqlite_store_sweeps.cc
};

}  // namespace drover::storage

#endif  // DROVER_STORAGE_SQLITE_STORE_INTERNAL_H_
