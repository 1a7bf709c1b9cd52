// Internal to SqliteStore (storage/sqlite_store*.cc); nothing outside storage/ includes it.
// What the parts of the store share: the writer thread's state (`SqliteStore::Writer`), a
// queued write (`SqliteStore::WriteOp`) and a write given as a function (`FunctionOp`),
// reading through a pooled connection (`WithReader`), and the two steps of opening that
// belong to their tables (the writer's job statements, the sealing of stored datastores).
//
// The store is split by what it keeps, one file each:
//   sqlite_store.cc             opening, the writer thread and its group commit, the readers
//   sqlite_store_jobs.cc        jobs (idempotency keys, status updates, listing) and the
//                               sealing of their secret environment values
//   sqlite_store_registries.cc  compute targets, images, datastores (their credentials sealed)
//   sqlite_store_nodes.cc       cordons and drains, the pause of node-loss handling
//   sqlite_store_access.cc      users, blob holders, join tokens, node certificates
//   sqlite_store_audit.cc       the audit trail and its retention
//
// Threads: a `Writer` and every `WriteOp::Apply` run on the writer thread only;
// `WithReader` may be called from any thread.
#ifndef DROVER_STORAGE_SQLITE_STORE_INTERNAL_H_
#define DROVER_STORAGE_SQLITE_STORE_INTERNAL_H_

#include <memory>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/pki/secret_box.h"
#include "storage/sqlite_db.h"
#include "storage/sqlite_store.h"

namespace drover::storage {

// What the writer thread owns: the write connection and its prepared statements.
struct SqliteStore::Writer {
  std::unique_ptr<Db> db;
  const SecretBox* secrets = nullptr;
  std::unique_ptr<Statement> begin, commit, rollback;
  std::unique_ptr<Statement> savepoint, release, rollback_to;
  std::unique_ptr<Statement> find_by_key, insert_job, insert_tag, update_status, job_version, select_job;
  std::unique_ptr<Statement> select_spec, update_spec, delete_tag;
};

// One queued write. Apply runs inside the batch's transaction (under a savepoint, so a
// failing write leaves the others of the batch intact); Finish runs after the commit with
// the write's own error, or the commit's.
class SqliteStore::WriteOp {
 public:
  virtual ~WriteOp() = default;
  virtual absl::Status Apply(Writer& w) = 0;
  virtual void Finish(absl::Status status) && = 0;
};

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
class FunctionOp final : public SqliteStore::WriteOp {
 public:
  using Fn = absl::AnyInvocable<absl::Status(SqliteStore::Writer&)>;
  FunctionOp(Fn apply, Store::DoneCallback done)
      : apply_(std::move(apply)), done_(std::move(done)) {}
  absl::Status Apply(SqliteStore::Writer& w) override { return apply_(w); }
  void Finish(absl::Status status) && override { std::move(done_)(std::move(status)); }

 private:
  Fn apply_;
  Store::DoneCallback done_;
};

// Prepares the writer's job statements (`find_by_key` to `delete_tag`); the error of the
// first that fails to prepare (sqlite_store_jobs.cc).
absl::Status PrepareJobStatements(SqliteStore::Writer& w);

// Seals the options of datastores stored before droverd sealed them (or while it had no
// key), in one transaction: from then on drover.db holds no datastore credential in clear.
// The error of the read or of the write (sqlite_store_registries.cc).
absl::Status SealStoredDatastores(Db& db, const SecretBox& secrets);

}  // namespace sqlite_store_internal
}  // namespace drover::storage

#endif  // DROVER_STORAGE_SQLITE_STORE_INTERNAL_H_
