#include "storage/sqlite_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/sqlite_schema.h"
#include "tests/storage/store_test_util.h"
#include "tests/testing/fail_file_writes.h"

namespace drover::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST_F(SqliteStoreTest, ConcurrentWritesShareCommits) {
  auto store = OpenStore();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
    });
  }
  for (auto& t : threads) t.join();
  SqliteStore::Stats stats = store->stats();
  EXPECT_EQ(stats.writes, kThreads * kPerThread);
  // With 8 writers waiting on each other's fsync, batches form: fewer commits than writes.
  EXPECT_LT(stats.commits, stats.writes);
}

TEST_P(StoreTest, WritesAfterCloseFailUnavailableAndQueuedOnesCommit) {
  auto store = OpenStore();
  std::atomic<int> ok{0};
  for (int i = 0; i < 50; ++i) {
    store->CreateJob(NewJob(), [&](absl::StatusOr<CreateJobResult> r) {
      if (r.ok()) ok++;
    });
  }
  store->Close();
  EXPECT_EQ(ok.load(), 50);
  auto late = CreateSync(*store, NewJob());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(SqliteStoreTest, UsesWalWithFullSyncAndTheLatestSchema) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  auto pragma = [db](const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
    sqlite3_step(stmt);
    std::string value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return value;
  };
  EXPECT_EQ(pragma("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(pragma("PRAGMA user_version"), absl::StrCat(LatestSchemaVersion()));
  EXPECT_EQ(pragma("PRAGMA integrity_check"), "ok");
  sqlite3_close(db);
}

// Registers itself as SQLite's default VFS while it lives: the default one, with every
// xSync on a write-ahead log counted (what a flushed commit costs: one fdatasync of the WAL).
class WalSyncCounter {
 public:
  WalSyncCounter() {
    real_ = sqlite3_vfs_find(nullptr);
    vfs_ = *real_;
    vfs_.zName = "drover-test-wal-sync-counter";
    vfs_.szOsFile = static_cast<int>(sizeof(File)) + real_->szOsFile;
    vfs_.xOpen = &Open;
    vfs_.pNext = nullptr;
    instance_ = this;
    sqlite3_vfs_register(&vfs_, /*makeDflt=*/1);
  }
  ~WalSyncCounter() {
    sqlite3_vfs_unregister(&vfs_);
    sqlite3_vfs_register(real_, /*makeDflt=*/1);
    instance_ = nullptr;
  }
  int wal_syncs() const { return wal_syncs_.load(); }

 private:
  // Our file, with the real VFS's file right after it in the same allocation.
  struct File {
    sqlite3_file base;
    sqlite3_file* real;
    bool wal;
  };
  static sqlite3_file* Real(sqlite3_file* f) { return reinterpret_cast<File*>(f)->real; }

  static int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out) {
    File* file = reinterpret_cast<File*>(f);
    file->real = reinterpret_cast<sqlite3_file*>(file + 1);
    file->wal = (flags & SQLITE_OPEN_WAL) != 0;
    file->base.pMethods = nullptr;
    int rc = instance_->real_->xOpen(instance_->real_, name, file->real, flags, out);
    if (file->real->pMethods != nullptr) file->base.pMethods = &kMethods;
    return rc;
  }
  static int Sync(sqlite3_file* f, int flags) {
    if (reinterpret_cast<File*>(f)->wal) instance_->wal_syncs_++;
    return Real(f)->pMethods->xSync(Real(f), flags);
  }
  static constexpr sqlite3_io_methods kMethods = {
      3,
      [](sqlite3_file* f) { return Real(f)->pMethods->xClose(Real(f)); },
      [](sqlite3_file* f, void* b, int n, sqlite3_int64 o) {
        return Real(f)->pMethods->xRead(Real(f), b, n, o);
      },
      [](sqlite3_file* f, const void* b, int n, sqlite3_int64 o) {
        return Real(f)->pMethods->xWrite(Real(f), b, n, o);
      },
      [](sqlite3_file* f, sqlite3_int64 size) {
        return Real(f)->pMethods->xTruncate(Real(f), size);
      },
      &Sync,
      [](sqlite3_file* f, sqlite3_int64* size) {
        return Real(f)->pMethods->xFileSize(Real(f), size);
      },
      [](sqlite3_file* f, int l) { return Real(f)->pMethods->xLock(Real(f), l); },
      [](sqlite3_file* f, int l) { return Real(f)->pMethods->xUnlock(Real(f), l); },
      [](sqlite3_file* f, int* out) {
        return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
      },
      [](sqlite3_file* f, int op, void* arg) {
        return Real(f)->pMethods->xFileControl(Real(f), op, arg);
      },
      [](sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); },
      [](sqlite3_file* f) { return Real(f)->pMethods->xDeviceCharacteristics(Real(f)); },
      [](sqlite3_file* f, int page, int size, int extend, void volatile** out) {
        return Real(f)->pMethods->xShmMap(Real(f), page, size, extend, out);
      },
      [](sqlite3_file* f, int offset, int n, int flags) {
        return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
      },
      [](sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); },
      [](sqlite3_file* f, int remove) { return Real(f)->pMethods->xShmUnmap(Real(f), remove); },
      [](sqlite3_file* f, sqlite3_int64 o, int n, void** out) {
        return Real(f)->pMethods->xFetch(Real(f), o, n, out);
      },
      [](sqlite3_file* f, sqlite3_int64 o, void* p) {
        return Real(f)->pMethods->xUnfetch(Real(f), o, p);
      },
  };

  static inline WalSyncCounter* instance_ = nullptr;
  sqlite3_vfs* real_;
  sqlite3_vfs vfs_;
  std::atomic<int> wal_syncs_{0};
};

v1::JobStatus StatusAt(v1::JobStatus::State state, int64_t version) {
  v1::JobStatus status;
  status.set_state(state);
  status.set_version(version);
  return status;
}

TEST_F(SqliteStoreTest, AStatusCommittedUnflushedSkipsTheWalSyncAndTheNextFlushedWriteSyncs) {
  WalSyncCounter counter;
  auto store = OpenStore();
  ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
  const int after_create = counter.wal_syncs();
  EXPECT_GT(after_create, 0) << "a create is flushed";
  const SqliteStore::Stats before = store->stats();

  ASSERT_TRUE(UpdateSync(*store, "j-1", 1, StatusAt(v1::JobStatus::PREPARING, 2),
                         Store::Durability::kCommitted)
                  .ok());
  EXPECT_EQ(counter.wal_syncs(), after_create);
  // Committed: every reader sees it at once.
  absl::StatusOr<v1::Job> read = store->GetJob("j-1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->status().state(), v1::JobStatus::PREPARING);
  EXPECT_EQ(store->stats().commits, before.commits + 1);
  EXPECT_EQ(store->stats().flushed_commits, before.flushed_commits);

  // The next flushed write syncs the log, which holds the unflushed commit before it too.
  ASSERT_TRUE(UpdateSync(*store, "j-1", 2, StatusAt(v1::JobStatus::RUNNING, 3)).ok());
  EXPECT_GT(counter.wal_syncs(), after_create);
  EXPECT_EQ(store->stats().flushed_commits, before.flushed_commits + 1);
  ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
  EXPECT_EQ(store->stats().flushed_commits, before.flushed_commits + 2);
}

TEST_F(SqliteStoreTest, AStatusCommittedUnflushedSurvivesTheProcessBeingKilled) {
  // The child stores a job and an unflushed status, then dies without closing anything
  // (as droverd under SIGKILL); the commit is in the file for the next process.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open({.path = DbPath()});
    if (!store.ok() || !CreateSync(**store, NewJob()).ok()) _exit(2);
    if (!UpdateSync(**store, "j-1", 1, StatusAt(v1::JobStatus::RUNNING, 2),
                    Store::Durability::kCommitted)
             .ok()) {
      _exit(3);
    }
    kill(getpid(), SIGKILL);
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  auto store = OpenStore();
  absl::StatusOr<v1::Job> read = store->GetJob("j-1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->status().state(), v1::JobStatus::RUNNING);
  EXPECT_EQ(read->status().version(), 2);
}

TEST_F(SqliteStoreTest, RefusesADatabaseFromANewerDroverd) {
  {
    auto store = OpenStore();
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 999", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto store = SqliteStore::Open({.path = DbPath()});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 999"));
}

TEST_F(SqliteStoreTest, FailedMigrationLeavesTheDatabaseUntouched) {
  // A database where table `jobs` already exists but user_version is 0: migration 1 fails
  // and must roll back as a whole.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE jobs (x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto store = SqliteStore::Open({.path = DbPath()});
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("schema migration 1 failed"));
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  int tables = -1;
  sqlite3_exec(
      db, "SELECT count(*) FROM sqlite_master WHERE name = 'job_tags'",
      [](void* out, int, char** values, char**) {
        *static_cast<int*>(out) = atoi(values[0]);
        return 0;
      },
      &tables, nullptr);
  sqlite3_close(db);
  EXPECT_EQ(tables, 0);
}

TEST_F(SqliteStoreTest, RefusedWriteFailsNamingTheFolderAndTheNextOneWorks) {
  std::vector<std::string> errors;  // as droverd's metric sees them
  auto store = SqliteStore::Open(
      {.path = DbPath(), .on_write_error = [&](absl::string_view store, WriteError kind) {
         errors.push_back(absl::StrCat(store, "/", WriteErrorName(kind)));
       }});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(CreateSync(**store, NewJob("default", "before")).ok());
  {
    testing::FailFileWrites disk_refuses;
    auto refused = CreateSync(**store, NewJob("default", "refused"));
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
    EXPECT_THAT(refused.status().message(), HasSubstr("state disk error"));
    EXPECT_THAT(refused.status().message(), HasSubstr(dir_.path()));
    auto update = UpdateSync(**store, "j-1", 1, NewJob().status());
    EXPECT_EQ(update.status().code(), absl::StatusCode::kUnavailable) << update.status();
    // Reads go on.
    EXPECT_TRUE((*store)->GetJob("j-1").ok());
  }
  EXPECT_THAT(errors, ElementsAre("database/io_error", "database/io_error"));
  // The writer and its connection went on: the next write works, with the next id.
  auto after = CreateSync(**store, NewJob("default", "after"));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->job.id(), "j-2");
  store->reset();
  auto reopened = OpenStore();
  auto page = reopened->ListJobs({});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->jobs.size(), 2u);
  EXPECT_EQ(page->jobs[0].spec().idempotency_key(), "after");
  EXPECT_EQ(page->jobs[1].spec().idempotency_key(), "before");
}

TEST_F(SqliteStoreTest, OpensAnUpToDateDatabaseWithoutWritingSoItStartsOnAFullDisk) {
  // Kept open, as a killed droverd leaves its WAL and shared memory behind.
  auto before = OpenStore();
  ASSERT_TRUE(CreateSync(*before, NewJob()).ok());
  testing::FailFileWrites disk_refuses;
  auto store = SqliteStore::Open({.path = DbPath()});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->GetJob("j-1").ok());
}

}  // namespace
}  // namespace drover::storage
