#include "storage/sqlite_store.h"

#include <filesystem>
#include <utility>

#include "common/log.h"
#include "common/status_macros.h"
#include "storage/sqlite_schema.h"
#include "storage/sqlite_store_internal.h"
#include "storage/store_lease_internal.h"
#include "storage/store_registries_internal.h"

namespace drover::storage {
namespace {

using sqlite_store_internal::FunctionOp;

// Connection settings every connection gets. WAL lets readers run beside the writer;
// synchronous=FULL makes every commit durable (the WAL is fsynced at each commit); the
// writer switches to NORMAL for a batch of Durability::kCommitted writes only
// (CommitBatch).
constexpr char kConnectionPragmas[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = FULL;"
    "PRAGMA foreign_keys = ON;"
    "PRAGMA busy_timeout = 10000;";

absl::Status OpenConnection(Db& db) { return db.Exec(kConnectionPragmas); }

}  // namespace

// The leader lease: SQLite's writer holds the database's one write lock (BEGIN IMMEDIATE)
// from its first statement, so the rows it reads stay as read until its commit.
const store_ops::LeaseSql SqliteEngine::kLeaseSql = {
    .lease_for_update = "SELECT " DROVER_LEASE_COLUMNS " FROM leader_lease WHERE id = 1",
    .put_lease = "INSERT OR REPLACE INTO leader_lease (id, holder, address, token, expire_us) "
                 "VALUES (1, ?1, ?2, ?3, ?4)",
    .fence = "SELECT holder, token FROM leader_lease WHERE id = 1",
};

SqliteStore::SqliteStore(SqliteStoreOptions options)
    : options_(std::move(options)),
      health_("database", std::filesystem::path(options_.path).parent_path().string(),
              options_.on_write_error) {}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(SqliteStoreOptions options) {
  auto store = std::unique_ptr<SqliteStore>(new SqliteStore(std::move(options)));
  DROVER_RETURN_IF_ERROR(store->StartWriter());
  return store;
}

absl::Status SqliteStore::StartWriter() {
  auto w = std::make_unique<Writer>();
  w->secrets = options_.secrets;
  DROVER_ASSIGN_OR_RETURN(w->db, Db::Open(options_.path));
  DROVER_RETURN_IF_ERROR(OpenConnection(*w->db));
  DROVER_ASSIGN_OR_RETURN(int found_version, MigrateSchema(*w->db));
  if (found_version != LatestSchemaVersion()) {
    Log(LogLevel::kInfo, "schema_migrated",
        {{"path", options_.path}, {"from", found_version}, {"to", LatestSchemaVersion()}});
  }
  if (options_.secrets != nullptr) {
    DROVER_RETURN_IF_ERROR(
        store_ops::SealStoredDatastores<SqliteEngine>(*w->db, *options_.secrets));
  }
  DROVER_ASSIGN_OR_RETURN(w->begin, w->db->Prepare("BEGIN IMMEDIATE"));
  DROVER_ASSIGN_OR_RETURN(w->commit, w->db->Prepare("COMMIT"));
  DROVER_ASSIGN_OR_RETURN(w->rollback, w->db->Prepare("ROLLBACK"));
  DROVER_ASSIGN_OR_RETURN(w->savepoint, w->db->Prepare("SAVEPOINT op"));
  DROVER_ASSIGN_OR_RETURN(w->release, w->db->Prepare("RELEASE op"));
  DROVER_ASSIGN_OR_RETURN(w->rollback_to, w->db->Prepare("ROLLBACK TO op"));
  DROVER_RETURN_IF_ERROR(store_ops::PrepareJobStatements<SqliteEngine>(*w));
  writer_ = std::move(w);
  writer_thread_ = std::thread([this] { WriterLoop(); });
  return absl::OkStatus();
}

SqliteStore::~SqliteStore() { Close(); }

void SqliteStore::Close() {
  if (!queue_.BeginClose()) return;
  if (writer_thread_.joinable()) writer_thread_.join();
  queue_.EndClose();
  writer_.reset();
}

void SqliteStore::Enqueue(std::unique_ptr<WriteOp> op) { queue_.Push(std::move(op)); }

void SqliteStore::Barrier(DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>([](Writer&) { return absl::OkStatus(); }, std::move(done)));
}

void SqliteStore::WriterLoop() {
  std::vector<std::unique_ptr<WriteOp>> batch;
  while (queue_.NextBatch(options_.max_batch, batch)) {
    (void)CommitBatch(batch);  // failures already went to each write's callback
  }
}

absl::Status SqliteStore::CommitBatch(std::vector<std::unique_ptr<WriteOp>>& batch) {
  Writer& w = *writer_;
  std::vector<absl::Status> results(batch.size());
  auto fail_all = [&](const absl::Status& error) {
    // Ends the transaction whether or not SQLite already rolled it back (it does for some
    // I/O errors), so the connection is ready for the next batch.
    (void)w.rollback->Run();
    w.rollback->Reset();
    absl::Status status = health_.Failed(error, static_cast<int64_t>(batch.size()));
    if (status == error) {  // not the disk's doing: WriteHealth did not log it
      Log(LogLevel::kError, "store_commit_failed",
          {{"writes", batch.size()}, {"error", status.ToString()}});
    }
    for (auto& op : batch) std::move(*op).Finish(status);
    return status;
  };
  const int64_t changes_before = sqlite3_total_changes64(w.db->raw());
  // In WAL mode, synchronous=NORMAL commits without an fsync of the WAL; the next FULL
  // commit's fsync covers every frame before it.
  if (const bool flush = store_ops::BatchNeedsFlush(batch); flush != w.flushes) {
    if (absl::Status s = w.db->Exec(flush ? "PRAGMA synchronous = FULL"
                                          : "PRAGMA synchronous = NORMAL");
        !s.ok()) {
      return fail_all(s);
    }
    w.flushes = flush;
  }
  w.begin->Reset();
  if (absl::Status s = w.begin->Run(); !s.ok()) {
    w.begin->Reset();
    return fail_all(s);
  }
  w.begin->Reset();
  // A store that took the leader lease writes only while the lease is still its own.
  absl::Status deposed = absl::OkStatus();
  if (fence_token_.has_value()) {
    absl::Status s = store_ops::CheckFence<SqliteEngine>(w, *fence_token_, deposed);
    if (!s.ok()) return fail_all(s);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!deposed.ok() && batch[i]->fenced()) {
      results[i] = deposed;
      continue;
    }
    w.savepoint->Reset();
    if (absl::Status s = w.savepoint->Run(); !s.ok()) return fail_all(s);
    results[i] = batch[i]->Apply(w);
    if (!results[i].ok()) {
      w.rollback_to->Reset();
      if (absl::Status s = w.rollback_to->Run(); !s.ok()) return fail_all(s);
      // A full disk or an I/O error fails the whole batch rather than only this write.
      if (absl::IsResourceExhausted(results[i]) || absl::IsUnavailable(results[i])) {
        return fail_all(results[i]);
      }
    }
    w.release->Reset();
    if (absl::Status s = w.release->Run(); !s.ok()) return fail_all(s);
  }
  w.commit->Reset();
  absl::Status committed = w.commit->Run();
  w.commit->Reset();
  if (!committed.ok()) return fail_all(committed);
  // Only a commit that wrote says the disk takes writes again (a batch of refused updates
  // or barriers commits nothing).
  if (sqlite3_total_changes64(w.db->raw()) != changes_before) health_.Succeeded();
  queue_.Committed(static_cast<int64_t>(batch.size()), w.flushes);
  for (size_t i = 0; i < batch.size(); ++i) std::move(*batch[i]).Finish(results[i]);
  return absl::OkStatus();
}

SqliteStore::Stats SqliteStore::stats() const { return queue_.stats(); }

absl::StatusOr<std::unique_ptr<Db>> SqliteStore::AcquireReader() {
  {
    absl::MutexLock lock(&readers_mu_);
    if (!idle_readers_.empty()) {
      std::unique_ptr<Db> db = std::move(idle_readers_.back());
      idle_readers_.pop_back();
      return db;
    }
  }
  DROVER_ASSIGN_OR_RETURN(std::unique_ptr<Db> db, Db::Open(options_.path));
  DROVER_RETURN_IF_ERROR(db->Exec("PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;"));
  return db;
}

void SqliteStore::ReleaseReader(std::unique_ptr<Db> db) {
  absl::MutexLock lock(&readers_mu_);
  if (idle_readers_.size() < 8) idle_readers_.push_back(std::move(db));
}

void SqliteStore::AcquireLeaderLease(std::string holder, std::string address, absl::Time now,
                                     absl::Duration ttl, LeaseCallback done) {
  Enqueue(store_ops::AcquireLeaderLease<SqliteEngine>(std::move(holder), std::move(address), now,
      ttl, &fence_token_, std::move(done)));
}

void SqliteStore::RenewLeaderLease(std::string holder, int64_t token, absl::Time now,
                                   absl::Duration ttl, LeaseCallback done) {
  Enqueue(store_ops::RenewLeaderLease<SqliteEngine>(std::move(holder), token, now, ttl,
      &fence_token_, std::move(done)));
}

absl::StatusOr<std::optional<LeaderLease>> SqliteStore::LoadLeaderLease() {
  return WithReader([](Db& db) { return store_ops::LoadLeaderLease<SqliteEngine>(db); });
}

}  // namespace drover::storage
