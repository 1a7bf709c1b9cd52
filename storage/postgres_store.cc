#include "storage/postgres_store.h"

#include <utility>

#include "common/log.h"
#include "common/status_macros.h"
#include "storage/postgres_schema.h"
#include "storage/postgres_store_internal.h"
#include "storage/store_lease_internal.h"
#include "storage/store_registries_internal.h"

namespace drover::storage {
namespace {

using postgres_store_internal::FunctionOp;

// Every commit waits for the server's WAL flush (the server's default; set in case the
// database or role says otherwise), as SQLite's synchronous=FULL does. A transaction of the
// writer that sits idle for 3 s (its droverd paused, or cut off from the server while the
// connection looks alive) is ended by the server: a batch holds the leader lease's row
// (FOR SHARE), and a standby's takeover must not wait for a droverd that will never commit
// (docs/operations.md#standby). The writer sends a batch's statements back to back.
constexpr char kWriterSettings[] =
    "SET synchronous_commit = on; SET idle_in_transaction_session_timeout = '3s';";
constexpr char kReaderSettings[] = "SET default_transaction_read_only = on;";
constexpr int kMaxIdleReaders = 8;

}  // namespace

// The leader lease: the row is locked by whoever reads it in a write transaction, FOR
// UPDATE to change it, FOR SHARE to check the fence, so that a takeover waits for the
// batches of the droverd it deposes and they for it.
const store_ops::LeaseSql PostgresEngine::kLeaseSql = {
    .lease_for_update =
        "SELECT " DROVER_LEASE_COLUMNS " FROM leader_lease WHERE id = 1 FOR UPDATE",
    .put_lease = "INSERT INTO leader_lease (id, holder, address, token, expire_us) "
                 "VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET "
                 "holder = EXCLUDED.holder, address = EXCLUDED.address, "
                 "token = EXCLUDED.token, expire_us = EXCLUDED.expire_us",
    .fence = "SELECT holder, token FROM leader_lease WHERE id = 1 FOR SHARE",
};

PostgresStore::PostgresStore(PostgresStoreOptions options)
    : options_(std::move(options)),
      health_("database", "the PostgreSQL server's data directory", options_.on_write_error) {}

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(PostgresStoreOptions options) {
  auto store = std::unique_ptr<PostgresStore>(new PostgresStore(std::move(options)));
  {
    DROVER_ASSIGN_OR_RETURN(std::unique_ptr<PgDb> db, PgDb::Open(store->options_.conninfo));
    DROVER_ASSIGN_OR_RETURN(int found_version, MigratePostgresSchema(*db));
    if (found_version != LatestPostgresSchemaVersion()) {
      Log(LogLevel::kInfo, "schema_migrated",
          {{"store", RedactConninfo(store->options_.conninfo)},
           {"from", found_version},
           {"to", LatestPostgresSchemaVersion()}});
    }
    if (store->options_.secrets != nullptr) {
      DROVER_RETURN_IF_ERROR(
          store_ops::SealStoredDatastores<PostgresEngine>(*db, *store->options_.secrets));
    }
  }
  DROVER_ASSIGN_OR_RETURN(store->writer_, store->ConnectWriter());
  store->writer_thread_ = std::thread([s = store.get()] { s->WriterLoop(); });
  return store;
}

absl::StatusOr<std::unique_ptr<PostgresStore::Writer>> PostgresStore::ConnectWriter() {
  auto w = std::make_unique<Writer>();
  w->secrets = options_.secrets;
  DROVER_ASSIGN_OR_RETURN(w->db, PgDb::Open(options_.conninfo));
  DROVER_RETURN_IF_ERROR(w->db->Exec(kWriterSettings));
  DROVER_RETURN_IF_ERROR(store_ops::PrepareJobStatements<PostgresEngine>(*w));
  return w;
}

PostgresStore::~PostgresStore() { Close(); }

void PostgresStore::Close() {
  if (!queue_.BeginClose()) return;
  if (writer_thread_.joinable()) writer_thread_.join();
  queue_.EndClose();
  writer_.reset();
}

void PostgresStore::Enqueue(std::unique_ptr<WriteOp> op) { queue_.Push(std::move(op)); }

void PostgresStore::Barrier(DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>([](Writer&) { return absl::OkStatus(); }, std::move(done)));
}

void PostgresStore::WriterLoop() {
  std::vector<std::unique_ptr<WriteOp>> batch;
  while (queue_.NextBatch(options_.max_batch, batch)) {
    (void)CommitBatch(batch);  // failures already went to each write's callback
  }
}

absl::Status PostgresStore::CommitBatch(std::vector<std::unique_ptr<WriteOp>>& batch) {
  auto fail_all = [&](const absl::Status& error) {
    const bool connection_lost = writer_ == nullptr || writer_->db->broken();
    if (!connection_lost) (void)writer_->db->Exec("ROLLBACK");
    // A lost connection is not the disk's doing: WriteHealth would call it a disk error.
    absl::Status status =
        connection_lost ? error : health_.Failed(error, static_cast<int64_t>(batch.size()));
    if (status == error) {  // not a lack of space or an I/O error: WriteHealth did not log it
      Log(LogLevel::kError, "store_commit_failed",
          {{"writes", batch.size()}, {"error", status.ToString()}});
    }
    for (auto& op : batch) std::move(*op).Finish(status);
    return status;
  };
  // A lost connection (the server restarted) is replaced before the batch, so that one
  // failed batch is all a restart of PostgreSQL costs.
  if (writer_ == nullptr || writer_->db->broken()) {
    absl::StatusOr<std::unique_ptr<Writer>> w = ConnectWriter();
    if (!w.ok()) {
      writer_.reset();
      return fail_all(w.status());
    }
    writer_ = *std::move(w);
    Log(LogLevel::kInfo, "store_reconnected", {{"store", RedactConninfo(options_.conninfo)}});
  }
  Writer& w = *writer_;
  std::vector<absl::Status> results(batch.size());
  if (absl::Status s = w.db->Exec("BEGIN"); !s.ok()) return fail_all(s);
  // A batch of Durability::kCommitted writes only: COMMIT returns without waiting for the
  // WAL flush (the WAL writer flushes it soon after; a later synchronous commit covers it).
  const bool flush = store_ops::BatchNeedsFlush(batch);
  if (!flush) {
    if (absl::Status s = w.db->Exec("SET LOCAL synchronous_commit = off"); !s.ok()) {
      return fail_all(s);
    }
  }
  // A store that took the leader lease writes only while the lease is still its own.
  absl::Status deposed = absl::OkStatus();
  if (fence_token_.has_value()) {
    absl::Status s = store_ops::CheckFence<PostgresEngine>(w, *fence_token_, deposed);
    if (!s.ok()) return fail_all(s);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!deposed.ok() && batch[i]->fenced()) {
      results[i] = deposed;
      continue;
    }
    if (absl::Status s = w.db->Exec("SAVEPOINT op"); !s.ok()) return fail_all(s);
    results[i] = batch[i]->Apply(w);
    if (!results[i].ok()) {
      if (absl::Status s = w.db->Exec("ROLLBACK TO SAVEPOINT op"); !s.ok()) return fail_all(s);
      // Lack of space or a lost server fails the whole batch rather than only this write.
      if (absl::IsResourceExhausted(results[i]) || absl::IsUnavailable(results[i])) {
        return fail_all(results[i]);
      }
    }
    if (absl::Status s = w.db->Exec("RELEASE SAVEPOINT op"); !s.ok()) return fail_all(s);
  }
  if (absl::Status s = w.db->Exec("COMMIT"); !s.ok()) return fail_all(s);
  health_.Succeeded();
  queue_.Committed(static_cast<int64_t>(batch.size()), flush);
  for (size_t i = 0; i < batch.size(); ++i) std::move(*batch[i]).Finish(results[i]);
  return absl::OkStatus();
}

PostgresStore::Stats PostgresStore::stats() const { return queue_.stats(); }

absl::StatusOr<std::unique_ptr<PgDb>> PostgresStore::AcquireReader() {
  {
    absl::MutexLock lock(&readers_mu_);
    if (!idle_readers_.empty()) {
      std::unique_ptr<PgDb> db = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return db;
    }
  }
  DROVER_ASSIGN_OR_RETURN(std::unique_ptr<PgDb> db, PgDb::Open(options_.conninfo));
  DROVER_RETURN_IF_ERROR(db->Exec(kReaderSettings));
  return db;
}

void PostgresStore::DropIdleReaders() {
  std::vector<std::unique_ptr<PgDb>> dropped;
  absl::MutexLock lock(&readers_mu_);
  dropped.swap(idle_readers_);
}

void PostgresStore::ReleaseReader(std::unique_ptr<PgDb> db) {
  absl::MutexLock lock(&readers_mu_);
  if (idle_readers_.size() < kMaxIdleReaders) idle_readers_.push_back(std::move(db));
}

void PostgresStore::AcquireLeaderLease(std::string holder, std::string address, absl::Time now,
                                       absl::Duration ttl, LeaseCallback done) {
  Enqueue(store_ops::AcquireLeaderLease<PostgresEngine>(std::move(holder), std::move(address), now,
      ttl, &fence_token_, std::move(done)));
}

void PostgresStore::RenewLeaderLease(std::string holder, int64_t token, absl::Time now,
                                     absl::Duration ttl, LeaseCallback done) {
  Enqueue(store_ops::RenewLeaderLease<PostgresEngine>(std::move(holder), token, now, ttl,
      &fence_token_, std::move(done)));
}

absl::StatusOr<std::optional<LeaderLease>> PostgresStore::LoadLeaderLease() {
  return WithReader([](PgDb& db) { return store_ops::LoadLeaderLease<PostgresEngine>(db); });
}

}  // namespace drover::storage
