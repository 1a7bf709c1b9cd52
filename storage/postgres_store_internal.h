// Internal to PostgresStore (storage/postgres_store*.cc); nothing outside storage/ includes
// it. The same parts as sqlite_store_internal.h: the writer thread's state, a queued write,
// a write given as a function, reading through a pooled connection, and PostgreSQL as the
// engine of the logic both SQL stores share (`PostgresEngine`, see store_ops_internal.h).
//
// The store is split by what it keeps, one file each:
//   postgres_store.cc             connecting, the writer thread and its group commit, readers
//   postgres_store_jobs.cc        jobs (idempotency keys, status updates, tags, listing)
//   postgres_store_registries.cc  compute targets, images, datastores, node states, the
//                                 pause of node-loss handling
//   postgres_store_access.cc      users, blob holders, join tokens, node certificates, audit
// Each holds the SQL text of its area; the logic is in store_*_internal.h.
//
// Threads: a `Writer` and every `WriteOp::Apply` run on the writer thread only;
// `WithReader` may be called from any thread.
#ifndef DROVER_STORAGE_POSTGRES_STORE_INTERNAL_H_
#define DROVER_STORAGE_POSTGRES_STORE_INTERNAL_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/pki/secret_box.h"
#include "common/status_macros.h"
#include "storage/postgres_db.h"
#include "storage/postgres_store.h"
#include "storage/store_jobs_internal.h"
#include "storage/store_ops_internal.h"
#include "storage/store_sweeps_internal.h"

namespace drover::storage {

// What the writer thread owns: the write connection and its kept statements.
struct PostgresStore::Writer : store_ops::JobStatements<PgStatement> {
  std::unique_ptr<PgDb> db;
  const SecretBox* secrets = nullptr;
};

// One queued write (store_ops::QueuedWrite says when each part runs).
class PostgresStore::WriteOp : public store_ops::QueuedWrite<PostgresStore::Writer> {};

// Runs `fn` on a read-only connection from the pool. A connection found broken (the server
// restarted) is dropped with every idle one, and a failed read on it is tried once more on
// a new connection: reads change nothing, so trying again is safe.
template <typename Fn>
auto PostgresStore::WithReader(Fn&& fn) -> decltype(fn(std::declval<PgDb&>())) {
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<std::unique_ptr<PgDb>> db = AcquireReader();
    if (!db.ok()) return db.status();
    auto result = fn(**db);
    if (!(*db)->broken()) {
      ReleaseReader(*std::move(db));
      return result;
    }
    DropIdleReaders();
    if (result.ok() || attempt > 0) return result;
  }
}

namespace postgres_store_internal {

// A write given as a function of the writer's connection.
using FunctionOp = store_ops::FunctionOp<PostgresStore::WriteOp, PostgresStore::Writer>;

}  // namespace postgres_store_internal

// PostgreSQL as the engine of the shared store logic (store_ops_internal.h says what each
// name is for).
struct PostgresEngine {
  using Db = PgDb;
  using Statement = PgStatement;
  using Writer = PostgresStore::Writer;
  using WriteOp = PostgresStore::WriteOp;
  using FunctionOp = postgres_store_internal::FunctionOp;

  // PostgreSQL's parameters: $1, $2, ...
  static std::string Param(int n) { return absl::StrCat("$", n); }
  // Prepared on the server once, by name.
  static absl::StatusOr<std::unique_ptr<Statement>> PrepareKept(Db& db, absl::string_view sql) {
    return db.PrepareKept(sql);
  }
  // Runs `fn` in one read-only REPEATABLE READ transaction, so that several tables are read
  // as of one moment (a write committed between two reads is not mixed in).
  template <typename Fn>
  static auto InSnapshot(Db& db, Fn fn) -> decltype(fn()) {
    DROVER_RETURN_IF_ERROR(db.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    auto result = fn();
    (void)db.Exec("COMMIT");
    return result;
  }

  static const store_ops::JobSql kJobSql;             // postgres_store_jobs.cc
  static const store_ops::RegistrySql kRegistrySql;   // postgres_store_registries.cc
  static const store_ops::AccessSql kAccessSql;       // postgres_store_access.cc
  static const store_ops::LeaseSql kLeaseSql;         // postgres_store.cc
  static const store_ops::SweepSql kSweepSql;           // postgres_store_sweeps.cc
};

}  // namespace drover::storage

#endif  // DROVER_STORAGE_POSTGRES_STORE_INTERNAL_H_
