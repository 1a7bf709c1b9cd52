// PostgresStore's registries (compute targets, images, datastores, node states, the pause
// of node-loss handling): the SQL text that is PostgreSQL's own; the logic is
// store_registries_internal.h's, shared with SqliteStore.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storage/postgres_store_internal.h"
#include "storage/store_registries_internal.h"

namespace drover::storage {

const store_ops::RegistrySql PostgresEngine::kRegistrySql = {
    .put_compute_target = "INSERT INTO compute_targets (name, target) VALUES ($1, $2) "
                          "ON CONFLICT (name) DO UPDATE SET target = EXCLUDED.target",
    .delete_compute_target = "DELETE FROM compute_targets WHERE name = $1",
    .put_image = "INSERT INTO images (name, image) VALUES ($1, $2) "
                 "ON CONFLICT (name) DO UPDATE SET image = EXCLUDED.image",
    .delete_image = "DELETE FROM images WHERE name = $1",
    .put_datastore = "INSERT INTO datastores (name, datastore) VALUES ($1, $2) "
                     "ON CONFLICT (name) DO UPDATE SET datastore = EXCLUDED.datastore",
    .add_datastore = "INSERT INTO datastores (name, datastore) VALUES ($1, $2) "
                     "ON CONFLICT (name) DO NOTHING",
    .delete_datastore = "DELETE FROM datastores WHERE name = $1",
    .update_datastore = "UPDATE datastores SET datastore = $1 WHERE name = $2",
    .begin_write = "BEGIN",
    .put_node_admin = "INSERT INTO node_admin (name, draining, reason, set_time_us) "
                      "VALUES ($1, $2, $3, $4) "
                      "ON CONFLICT (name) DO UPDATE SET draining = EXCLUDED.draining, "
                      "reason = EXCLUDED.reason, set_time_us = EXCLUDED.set_time_us",
    .delete_node_admin = "DELETE FROM node_admin WHERE name = $1",
    .insert_pause = "INSERT INTO node_loss_pause (id, paused_since_us) VALUES (1, $1)",
    .put_pause_member = "INSERT INTO node_loss_pause_nodes "
                        "(name, role, listed, last_seen_us, lost_at_us, node) "
                        "VALUES ($1, $2, $3, $4, $5, $6) "
                        "ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, "
                        "listed = EXCLUDED.listed, last_seen_us = EXCLUDED.last_seen_us, "
                        "lost_at_us = EXCLUDED.lost_at_us, node = EXCLUDED.node",
};

void PostgresStore::PutComputeTarget(v1::ComputeTarget target, DoneCallback done) {
  Enqueue(store_ops::PutComputeTarget<PostgresEngine>(std::move(target), std::move(done)));
}

void PostgresStore::DeleteComputeTarget(std::string name, DoneCallback done) {
  Enqueue(store_ops::DeleteComputeTarget<PostgresEngine>(std::move(name), std::move(done)));
}

absl::StatusOr<std::vector<v1::ComputeTarget>> PostgresStore::LoadComputeTargets() {
  return WithReader([](PgDb& db) { return store_ops::LoadComputeTargets<PostgresEngine>(db); });
}

void PostgresStore::PutImage(v1::Image image, DoneCallback done) {
  Enqueue(store_ops::PutImage<PostgresEngine>(std::move(image), std::move(done)));
}

void PostgresStore::DeleteImage(std::string name, DoneCallback done) {
  Enqueue(store_ops::DeleteImage<PostgresEngine>(std::move(name), std::move(done)));
}

absl::StatusOr<std::vector<v1::Image>> PostgresStore::LoadImages() {
  return WithReader([](PgDb& db) { return store_ops::LoadImages<PostgresEngine>(db); });
}

void PostgresStore::PutDatastore(v1::Datastore datastore, bool replace, DoneCallback done) {
  Enqueue(store_ops::PutDatastore<PostgresEngine>(std::move(datastore), replace, std::move(done)));
}

void PostgresStore::DeleteDatastore(std::string name, DoneCallback done) {
  Enqueue(store_ops::DeleteDatastore<PostgresEngine>(std::move(name), std::move(done)));
}

absl::StatusOr<std::vector<v1::Datastore>> PostgresStore::LoadDatastores() {
  return WithReader(
      [&](PgDb& db) { return store_ops::LoadDatastores<PostgresEngine>(db, options_.secrets); });
}

void PostgresStore::PutNodeAdminState(NodeAdminState state, DoneCallback done) {
  Enqueue(store_ops::PutNodeAdminState<PostgresEngine>(std::move(state), std::move(done)));
}

void PostgresStore::DeleteNodeAdminState(std::string node, DoneCallback done) {
  Enqueue(store_ops::DeleteNodeAdminState<PostgresEngine>(std::move(node), std::move(done)));
}

absl::StatusOr<std::vector<NodeAdminState>> PostgresStore::LoadNodeAdminStates() {
  return WithReader([](PgDb& db) { return store_ops::LoadNodeAdminStates<PostgresEngine>(db); });
}

void PostgresStore::PutNodeLossPause(std::optional<NodeLossPause> pause, DoneCallback done) {
  Enqueue(store_ops::PutNodeLossPause<PostgresEngine>(std::move(pause), std::move(done)));
}

absl::StatusOr<std::optional<NodeLossPause>> PostgresStore::LoadNodeLossPause() {
  return WithReader([](PgDb& db) { return store_ops::LoadNodeLossPause<PostgresEngine>(db); });
}

}  // namespace drover::storage
