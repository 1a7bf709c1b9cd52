// What only the PostgreSQL store has: its schema version table, its group commit, its
// answer when the server is unreachable or drops its connections. The rest of its contract
// is the conformance suite's (StoreTest, store_*_test.cc).
#include "storage/postgres_store.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/postgres_schema.h"
#include "tests/storage/store_test_util.h"
#include "tests/testing/postgres_server.h"

namespace drover::storage {
namespace {

using ::testing::HasSubstr;

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<testing::PostgresServer*> server = testing::PostgresServer::Shared();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *server;
    absl::StatusOr<std::string> database = server_->CreateDatabase();
    ASSERT_TRUE(database.ok()) << database.status();
    database_ = *database;
  }
  std::unique_ptr<PostgresStore> OpenStore() {
    absl::StatusOr<std::unique_ptr<PostgresStore>> store =
        PostgresStore::Open({.conninfo = server_->Uri(database_)});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  std::string Psql(const std::string& sql) {
    absl::StatusOr<std::string> out = server_->Psql(database_, sql);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : "";
  }
  testing::PostgresServer* server_ = nullptr;
  std::string database_;
};

TEST_F(PostgresStoreTest, KeepsItsSchemaVersionAndRefusesADatabaseFromANewerDroverd) {
  { auto store = OpenStore(); }
  EXPECT_EQ(Psql("SELECT version FROM schema_version"),
            absl::StrCat(LatestPostgresSchemaVersion(), "\n"));
  { auto store = OpenStore(); }  // reopening an up-to-date database changes nothing
  Psql("UPDATE schema_version SET version = 999");
  absl::StatusOr<std::unique_ptr<PostgresStore>> store =
      PostgresStore::Open({.conninfo = server_->Uri(database_)});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 999"));
}

TEST_F(PostgresStoreTest, ConcurrentWritesShareCommits) {
  auto store = OpenStore();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
    });
  }
  for (auto& t : threads) t.join();
  PostgresStore::Stats stats = store->stats();
  EXPECT_EQ(stats.writes, kThreads * kPerThread);
  EXPECT_LT(stats.commits, stats.writes);
  EXPECT_EQ(Psql("SELECT count(*) FROM jobs"), absl::StrCat(kThreads * kPerThread, "\n"));
}

TEST_F(PostgresStoreTest, ABatchOfUnflushedStatusesCommitsWithoutWaitingForTheWalFlush) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
  const PostgresStore::Stats before = store->stats();
  v1::JobStatus running;
  running.set_state(v1::JobStatus::RUNNING);
  running.set_version(2);
  ASSERT_TRUE(UpdateSync(*store, "j-1", 1, running, Store::Durability::kCommitted).ok());
  EXPECT_EQ(store->stats().commits, before.commits + 1);
  EXPECT_EQ(store->stats().flushed_commits, before.flushed_commits);
  // Committed: another connection reads it.
  EXPECT_EQ(Psql("SELECT version FROM jobs"), "2\n");
  // A flushed write after it is counted flushed (the flush itself cannot be seen here: the
  // test server runs with fsync=off).
  v1::JobStatus done = running;
  done.set_state(v1::JobStatus::COMPLETED);
  done.set_version(3);
  ASSERT_TRUE(UpdateSync(*store, "j-1", 2, done).ok());
  EXPECT_EQ(store->stats().flushed_commits, before.flushed_commits + 1);
}

TEST_F(PostgresStoreTest, AnUnreachableServerIsUnavailableNamingTheStore) {
  absl::StatusOr<std::unique_ptr<PostgresStore>> store = PostgresStore::Open(
      {.conninfo = "postgresql://drover:s3cret@/nodb?host=/nonexistent-drover-socket-dir"});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store.status().message(), HasSubstr("cannot connect to PostgreSQL"));
  EXPECT_THAT(store.status().message(), ::testing::Not(HasSubstr("s3cret")));
}

TEST_F(PostgresStoreTest, WritesWorkAgainAfterTheServerDroppedTheConnections) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
  ASSERT_TRUE(store->GetJob("j-1").ok());
  // What a restart of PostgreSQL does to droverd's connections.
  Psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
       "WHERE datname = current_database() AND pid <> pg_backend_pid()");
  // The first write may fail (UNAVAILABLE: retry the call), never with another code.
  absl::StatusOr<CreateJobResult> first = CreateSync(*store, NewJob("default", "key-after"));
  if (!first.ok()) {
    EXPECT_EQ(first.status().code(), absl::StatusCode::kUnavailable) << first.status();
    first = CreateSync(*store, NewJob("default", "key-after"));
  }
  ASSERT_TRUE(first.ok()) << first.status();
  // A retry with the same key is the same job.
  absl::StatusOr<CreateJobResult> again = CreateSync(*store, NewJob("default", "key-after"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->job.id(), first->job.id());
  // Reads reconnect by themselves: a read is tried again on a new connection.
  absl::StatusOr<v1::Job> read = store->GetJob(first->job.id());
  ASSERT_TRUE(read.ok()) << read.status();
}

}  // namespace
}  // namespace drover::storage
