// The engines the conformance suite (StoreTest) runs on, and how each opens its store.
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "tests/storage/store_test_util.h"
#include "tests/testing/postgres_server.h"

namespace drover::storage {

void StoreTest::SetUp() {
  if (GetParam() != Engine::kPostgres) return;
  absl::StatusOr<testing::PostgresServer*> server = testing::PostgresServer::Shared();
  ASSERT_TRUE(server.ok()) << "the PostgreSQL half of the store conformance suite needs a "
                              "PostgreSQL server: "
                           << server.status();
  absl::StatusOr<std::string> database = (*server)->CreateDatabase();
  ASSERT_TRUE(database.ok()) << database.status();
  server_ = *server;
  database_ = *database;
  conninfo_ = server_->Uri(database_);
}

std::string StoreTest::BytesAtRest() {
  if (GetParam() == Engine::kSqlite) return DatabaseBytes(dir_.path() + "/drover.db");
  // bytea as 'escape' text: printable ASCII as it is, so a value stored in clear shows.
  absl::StatusOr<std::string> out = server_->Psql(
      database_,
      "SELECT encode(spec, 'escape') || encode(status, 'escape') FROM jobs "
      "UNION ALL SELECT encode(datastore, 'escape') FROM datastores "
      "UNION ALL SELECT encode(sweep, 'escape') FROM sweeps");
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

std::unique_ptr<Store> StoreTest::OpenStore(const SecretBox* secrets) {
  absl::StatusOr<std::unique_ptr<Store>> store;
  switch (GetParam()) {
    case Engine::kSqlite:
      store = SqliteStore::Open({.path = dir_.path() + "/drover.db", .secrets = secrets});
      break;
    case Engine::kPostgres:
      store = PostgresStore::Open({.conninfo = conninfo_, .secrets = secrets});
      break;
  }
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

INSTANTIATE_TEST_SUITE_P(Engines, StoreTest,
                         ::testing::Values(Engine::kSqlite, Engine::kPostgres),
                         [](const ::testing::TestParamInfo<Engine>& info) {
                           return info.param == Engine::kSqlite ? "Sqlite" : "Postgres";
                         });

}  // namespace drover::storage
