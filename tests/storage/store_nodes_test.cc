#include "storage/sqlite_store.h"

#include <sqlite3.h>

#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/storage/store_test_util.h"

namespace drover::storage {
namespace {


TEST_P(StoreTest, NodeCordonsAndDrainsSurviveAReopenAndUncordonRemovesThem) {
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  {
    auto store = OpenStore();
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutNodeAdminState({.node = "n1", .reason = "disk check", .set_time = t},
                                           std::move(done));
                }).ok());
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutNodeAdminState({.node = "n2", .draining = true, .set_time = t},
                                           std::move(done));
                }).ok());
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutNodeAdminState({.node = "n3", .reason = "bios", .set_time = t},
                                           std::move(done));
                }).ok());
    // A second change of n1 replaces the first; an uncordon removes n3.
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutNodeAdminState(
                      {.node = "n1", .draining = true, .reason = "swap disk", .set_time = t},
                      std::move(done));
                }).ok());
    ASSERT_TRUE(Sync([&](auto done) { store->DeleteNodeAdminState("n3", std::move(done)); }).ok());
    ASSERT_TRUE(
        Sync([&](auto done) { store->DeleteNodeAdminState("nothing", std::move(done)); }).ok());
  }
  auto store = OpenStore();
  absl::StatusOr<std::vector<NodeAdminState>> states = store->LoadNodeAdminStates();
  ASSERT_TRUE(states.ok()) << states.status();
  ASSERT_EQ(states->size(), 2u);
  EXPECT_EQ((*states)[0].node, "n1");
  EXPECT_TRUE((*states)[0].draining);
  EXPECT_EQ((*states)[0].reason, "swap disk");
  EXPECT_EQ((*states)[0].set_time, t);
  EXPECT_EQ((*states)[1].node, "n2");
  EXPECT_TRUE((*states)[1].draining);
  EXPECT_EQ((*states)[1].reason, "");
}


TEST_P(StoreTest, NodeLossPauseSurvivesAReopenUntilItIsCleared) {
  const absl::Time since = absl::FromUnixSeconds(1700000000);
  NodeLossPause pause;
  pause.paused_since = since;
  using Role = NodeLossPause::Role;
  pause.nodes.push_back({.name = "n1", .role = Role::kCounted, .last_seen = since});
  NodeLossPause::Member waiting{.name = "n2",
                                .role = Role::kWaiting,
                                .last_seen = since - absl::Seconds(11)};
  waiting.node.set_name("n2");
  waiting.node.set_state(v1::Node::DOWN);
  waiting.node.set_reason("MISSED_LEASE last_seen=2023-11-14T22:13:09Z");
  waiting.node.mutable_capacity()->set_cpus(4);
  pause.nodes.push_back(waiting);
  NodeLossPause::Member lost{.name = "n3",
                             .role = Role::kDeclaredLost,
                             .listed = false,
                             .last_seen = since - absl::Seconds(12),
                             .lost_at = since + absl::Seconds(5)};
  lost.node.set_state(v1::Node::DOWN);
  pause.nodes.push_back(lost);
  {
    auto store = OpenStore();
    absl::StatusOr<std::optional<NodeLossPause>> none = store->LoadNodeLossPause();
    ASSERT_TRUE(none.ok()) << none.status();
    EXPECT_FALSE(none->has_value());
    // The last write wins: a first pause with another node is replaced whole.
    NodeLossPause earlier;
    earlier.nodes.push_back({.name = "n9"});
    ASSERT_TRUE(Sync([&](auto done) { store->PutNodeLossPause(earlier, std::move(done)); }).ok());
    ASSERT_TRUE(Sync([&](auto done) { store->PutNodeLossPause(pause, std::move(done)); }).ok());
  }
  {
    auto store = OpenStore();
    absl::StatusOr<std::optional<NodeLossPause>> loaded = store->LoadNodeLossPause();
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_TRUE(loaded->has_value());
    const NodeLossPause& got = **loaded;
    EXPECT_EQ(got.paused_since, since);
    ASSERT_EQ(got.nodes.size(), 3u);
    EXPECT_EQ(got.nodes[0].name, "n1");
    EXPECT_EQ(got.nodes[0].role, Role::kCounted);
    EXPECT_EQ(got.nodes[1].name, "n2");
    EXPECT_EQ(got.nodes[1].role, Role::kWaiting);
    EXPECT_TRUE(got.nodes[1].listed);
    EXPECT_EQ(got.nodes[1].last_seen, since - absl::Seconds(11));
    EXPECT_EQ(got.nodes[1].node.reason(), "MISSED_LEASE last_seen=2023-11-14T22:13:09Z");
    EXPECT_EQ(got.nodes[1].node.capacity().cpus(), 4);
    EXPECT_EQ(got.nodes[2].role, Role::kDeclaredLost);
    EXPECT_FALSE(got.nodes[2].listed);
    EXPECT_EQ(got.nodes[2].lost_at, since + absl::Seconds(5));
    // The pause ended.
    ASSERT_TRUE(
        Sync([&](auto done) { store->PutNodeLossPause(std::nullopt, std::move(done)); }).ok());
  }
  auto store = OpenStore();
  absl::StatusOr<std::optional<NodeLossPause>> ended = store->LoadNodeLossPause();
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_FALSE(ended->has_value());
}

TEST_F(SqliteStoreTest, ADatabaseFromBeforeNodeStatesGainsTheTablesAndKeepsItsDatastores) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutDatastore(NewHostpathDatastore("data", "/data"), false,
                                      std::move(done));
                }).ok());
  }
  // What a droverd of schema version 4 left behind.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE node_admin; DROP TABLE node_loss_pause; "
                         "DROP TABLE node_loss_pause_nodes; "
                         "DROP TABLE users; DROP TABLE blob_uploaders; DROP INDEX jobs_by_owner; "
                         "ALTER TABLE jobs DROP COLUMN owner; "
                         "DROP TABLE join_tokens; DROP TABLE node_certificates; DROP TABLE audit; "
                         "DROP TABLE leader_lease; DROP TABLE sweep_trials; DROP TABLE sweeps; "
                         "PRAGMA user_version = 4",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<v1::Datastore>> datastores = store->LoadDatastores();
  ASSERT_TRUE(datastores.ok()) << datastores.status();
  EXPECT_EQ(datastores->size(), 1u);
  absl::StatusOr<std::vector<NodeAdminState>> states = store->LoadNodeAdminStates();
  ASSERT_TRUE(states.ok()) << states.status();
  EXPECT_TRUE(states->empty());
  absl::StatusOr<std::optional<NodeLossPause>> pause = store->LoadNodeLossPause();
  ASSERT_TRUE(pause.ok()) << pause.status();
  EXPECT_FALSE(pause->has_value());
  EXPECT_TRUE(Sync([&](auto done) {
                store->PutNodeAdminState({.node = "n1"}, std::move(done));
              }).ok());
}

}  // namespace
}  // namespace drover::storage
