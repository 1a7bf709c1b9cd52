// Internal to PostgresStore (storage/postgres_store*.cc); nothing outside storage/ includes
// it. The same parts as sqlite_store_internal.h: the writer thread's state, a queued write,
// a write given as a function, reading through a pooled connection.
//
// The store is split by what it keeps, one file each:
//   postgres_store.cc             connecting, the writer thread and its group commit, readers
//   postgres_store_jobs.cc        jobs (idempotency keys, status updates, tags, listing)
//   postgres_store_registries.cc  compute targets, images, datastores, node states, the
//                                 pause of node-loss handling
//   postgres_store_access.cc      users, blob holders, join tokens, node certificates, audit
//
// Threads: a `Writer` and every `WriteOp::Apply` run on the writer thread only;
// `WithReader` may be called from any thread.
#ifndef DROVER_STORAGE_POSTGRES_STORE_INTERNAL_H_
#define DROVER_STORAGE_POSTGRES_STORE_INTERNAL_H_

#include <memory>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/pki/secret_box.h"
#include "storage/postgres_db.h"
#include "storage/postgres_store.h"

namespace drover::storage {

// What the writer thread owns: the write connection and its kept statements.
struct PostgresStore::Writer {
  std::unique_ptr<PgDb> db;
  const SecretBox* secrets = nullptr;
  std::unique_ptr<PgStatement> find_by_key, insert_job, insert_tag, update_status, job_version,
      select_job, select_spec, update_spec, delete_tag;
};

// One queued write. Apply runs inside the batch's transaction, under a savepoint; Finish
// runs after the commit with the write's own error, or the commit's.
class PostgresStore::WriteOp {
 public:
  virtual ~WriteOp() = default;
  virtual absl::Status Apply(Writer& w) = 0;
  virtual void Finish(absl::Status status) && = 0;
};

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

class FunctionOp final : public PostgresStore::WriteOp {
 public:
  using Fn = absl::AnyInvocable<absl::Status(PostgresStore::Writer&)>;
  FunctionOp(Fn apply, Store::DoneCallback done)
      : apply_(std::move(apply)), done_(std::move(done)) {}
  absl::Status Apply(PostgresStore::Writer& w) override { return apply_(w); }
  void Finish(absl::Status status) && override { std::move(done_)(std::move(status)); }

 private:
  Fn apply_;
  Store::DoneCallback done_;
};

// Prepares the writer's job statements on its connection (postgres_store_jobs.cc).
absl::Status PrepareJobStatements(PostgresStore::Writer& w);

// Seals the options of datastores stored in clear, in one transaction
// (postgres_store_registries.cc).
absl::Status SealStoredDatastores(PgDb& db, const SecretBox& secrets);

}  // namespace postgres_store_internal
}  // namespace drover::storage

#endif  // DROVER_STORAGE_POSTGRES_STORE_INTERNAL_H_
