#include "storage/sqlite_store.h"

#include <sqlite3.h>

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
