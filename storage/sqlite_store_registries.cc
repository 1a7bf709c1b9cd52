// SqliteStore's registries (compute targets, images, datastores, node states, the pause of
// node-loss handling): the SQL text that is SQLite's own; the logic is
// store_registries_internal.h's, shared with PostgresStore.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storage/sqlite_store_internal.h"
#include "storage/store_registries_internal.h"

namespace drover::storage {

const store_ops::RegistrySql SqliteEngine::kRegistrySql = {
    .put_compute_target = "INSERT OR REPLACE INTO compute_targets (name, target) VALUES (?1, ?2)",
    .delete_compute_target = "DELETE FROM compute_targets WHERE name = ?1",
    .put_image = "INSERT OR REPLACE INTO images (name, image) VALUES (?1, ?2)",
    .delete_image = "DELETE FROM images WHERE name = ?1",
    .put_datastore = "INSERT OR REPLACE INTO datastores (name, datastore) VALUES (?1, ?2)",
    .add_datastore = "INSERT INTO datastores (name, datastore) VALUES (?1, ?2) "
                     "ON CONFLICT (name) DO NOTHING",
    .delete_datastore = "DELETE FROM datastores WHERE name = ?1",
    .update_datastore = "UPDATE datastores SET datastore = ?1 WHERE name = ?2",
    .begin_write = "BEGIN IMMEDIATE",
    .put_node_admin = "INSERT OR REPLACE INTO node_admin (name, draining, reason, set_time_us) "
                      "VALUES (?1, ?2, ?3, ?4)",
    .delete_node_admin = "DELETE FROM node_admin WHERE name = ?1",
    .insert_pause = "INSERT INTO node_loss_pause (id, paused_since_us) VALUES (1, ?1)",
    .put_pause_member = "INSERT OR REPLACE INTO node_loss_pause_nodes "
                        "(name, role, listed, last_seen_us, lost_at_us, node) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};

void SqliteStore::PutComputeTarget(v1::ComputeTarget target, DoneCallback done) {
  Enqueue(store_ops::PutComputeTarget<SqliteEngine>(std::move(target), std::move(done)));
}

void SqliteStore::DeleteComputeTarget(std::string name, DoneCallback done) {
  Enqueue(store_ops::DeleteComputeTarget<SqliteEngine>(std::move(name), std::move(done)));
}

absl::StatusOr<std::vector<v1::ComputeTarget>> SqliteStore::LoadComputeTargets() {
  return WithReader([](Db& db) { return store_ops::LoadComputeTargets<SqliteEngine>(db); });
}

void SqliteStore::PutImage(v1::Image image, DoneCallback done) {
  Enqueue(store_ops::PutImage<SqliteEngine>(std::move(image), std::move(done)));
}

void SqliteStore::DeleteImage(std::string name, DoneCallback done) {
  Enqueue(store_ops::DeleteImage<SqliteEngine>(std::move(name), std::move(done)));
}

absl::StatusOr<std::vector<v1::Image>> SqliteStore::LoadImages() {
  return WithReader([](Db& db) { return store_ops::LoadImages<SqliteEngine>(db); });
}

void SqliteStore::PutDatastore(v1::Datastore datastore, bool replace, DoneCallback done) {
  Enqueue(store_ops::PutDatastore<SqliteEngine>(std::move(datastore), replace, std::move(done)));
}

void SqliteStore::DeleteDatastore(std::string name, DoneCallback done) {
  Enqueue(store_ops::DeleteDatastore<SqliteEngine>(std::move(name), std::move(done)));
}

absl::StatusOr<std::vector<v1::Datastore>> SqliteStore::LoadDatastores() {
  return WithReader(
      [&](Db& db) { return store_ops::LoadDatastores<SqliteEngine>(db, options_.secrets); });
}

void SqliteStore::PutNodeAdminState(NodeAdminState state, DoneCallback done) {
  Enqueue(store_ops::PutNodeAdminState<SqliteEngine>(std::move(state), std::move(done)));
}

void SqliteStore::DeleteNodeAdminState(std::string node, DoneCallback done) {
  Enqueue(store_ops::DeleteNodeAdminState<SqliteEngine>(std::move(node), std::move(done)));
}

absl::StatusOr<std::vector<NodeAdminState>> SqliteStore::LoadNodeAdminStates() {
  return WithReader([](Db& db) { return store_ops::LoadNodeAdminStates<SqliteEngine>(db); });
}

void SqliteStore::PutNodeLossPause(std::optional<NodeLossPause> pause, DoneCallback done) {
  Enqueue(store_ops::PutNodeLossPause<SqliteEngine>(std::move(pause), std::move(done)));
}

absl::StatusOr<std::optional<NodeLossPause>> SqliteStore::LoadNodeLossPause() {
  return WithReader([](Db& db) { return store_ops::LoadNodeLossPause<SqliteEngine>(db); });
}

}  // namespace drover::storage
