#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "storage/postgres_store_internal.h"
#include "storage/store_rules.h"

namespace drover::storage {

using postgres_store_internal::FunctionOp;

namespace postgres_store_internal {

absl::Status SealStoredDatastores(PgDb& db, const SecretBox& secrets) {
  DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare("SELECT name, datastore FROM datastores"));
  std::vector<v1::Datastore> unsealed;
  while (true) {
    DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
    if (!row) break;
    absl::string_view bytes = select->ColumnBlob(1);
    v1::Datastore datastore;
    if (!datastore.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) continue;
    if (rules::HasUnsealedOption(datastore)) unsealed.push_back(std::move(datastore));
  }
  if (unsealed.empty()) return absl::OkStatus();
  DROVER_RETURN_IF_ERROR(db.Exec("BEGIN"));
  for (v1::Datastore& datastore : unsealed) {
    rules::SealClearOptions(secrets, datastore);
    DROVER_ASSIGN_OR_RETURN(auto update,
                            db.Prepare("UPDATE datastores SET datastore = $1 WHERE name = $2"));
    update->BindBlob(1, SerializeDeterministic(datastore)).Bind(2, datastore.name());
    if (absl::Status s = update->Run(); !s.ok()) {
      db.Exec("ROLLBACK").IgnoreError();
      return s;
    }
  }
  DROVER_RETURN_IF_ERROR(db.Exec("COMMIT"));
  Log(LogLevel::kInfo, "datastores_sealed", {{"count", static_cast<int64_t>(unsealed.size())}});
  return absl::OkStatus();
}

}  // namespace postgres_store_internal

namespace {

// A write of one statement with its values bound by `bind`.
template <typename Bind>
std::unique_ptr<FunctionOp> OneStatement(std::string sql, Bind bind, Store::DoneCallback done) {
  return std::make_unique<FunctionOp>(
      [sql = std::move(sql), bind = std::move(bind)](PostgresStore::Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto statement, w.db->Prepare(sql));
        bind(*statement);
        return statement->Run();
      },
      std::move(done));
}

// Every row of `sql` (one BYTEA column) parsed as a `Message`; DATA_LOSS with `what` when
// one is unreadable.
template <typename Message>
absl::StatusOr<std::vector<Message>> LoadAll(PgDb& db, const char* sql, const char* what) {
  DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql));
  std::vector<Message> out;
  while (true) {
    DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
    if (!row) break;
    absl::string_view bytes = select->ColumnBlob(0);
    Message message;
    if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError(what);
    }
    out.push_back(std::move(message));
  }
  return out;
}

}  // namespace

void PostgresStore::PutComputeTarget(v1::ComputeTarget target, DoneCallback done) {
  Enqueue(OneStatement(
      "INSERT INTO compute_targets (name, target) VALUES ($1, $2) "
      "ON CONFLICT (name) DO UPDATE SET target = EXCLUDED.target",
      [target = std::move(target)](PgStatement& s) {
        s.Bind(1, target.name()).BindBlob(2, SerializeDeterministic(target));
      },
      std::move(done)));
}

void PostgresStore::DeleteComputeTarget(std::string name, DoneCallback done) {
  Enqueue(OneStatement("DELETE FROM compute_targets WHERE name = $1",
                    [name = std::move(name)](PgStatement& s) { s.Bind(1, name); },
                    std::move(done)));
}

absl::StatusOr<std::vector<v1::ComputeTarget>> PostgresStore::LoadComputeTargets() {
  return WithReader([&](PgDb& db) {
    return LoadAll<v1::ComputeTarget>(db, "SELECT target FROM compute_targets ORDER BY name",
                                      "a stored compute target is unreadable");
  });
}

void PostgresStore::PutImage(v1::Image image, DoneCallback done) {
  Enqueue(OneStatement(
      "INSERT INTO images (name, image) VALUES ($1, $2) "
      "ON CONFLICT (name) DO UPDATE SET image = EXCLUDED.image",
      [image = std::move(image)](PgStatement& s) {
        s.Bind(1, image.name()).BindBlob(2, SerializeDeterministic(image));
      },
      std::move(done)));
}

void PostgresStore::DeleteImage(std::string name, DoneCallback done) {
  Enqueue(OneStatement("DELETE FROM images WHERE name = $1",
                    [name = std::move(name)](PgStatement& s) { s.Bind(1, name); },
                    std::move(done)));
}

absl::StatusOr<std::vector<v1::Image>> PostgresStore::LoadImages() {
  return WithReader([&](PgDb& db) {
    return LoadAll<v1::Image>(db, "SELECT image FROM images ORDER BY name",
                              "a stored image registration is unreadable");
  });
}

void PostgresStore::PutDatastore(v1::Datastore datastore, bool replace, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [datastore = std::move(datastore), replace](Writer& w) -> absl::Status {
        // Without `replace` the unique name decides: an existing row is left alone.
        DROVER_ASSIGN_OR_RETURN(
            auto put,
            w.db->Prepare(replace ? "INSERT INTO datastores (name, datastore) VALUES ($1, $2) "
                                    "ON CONFLICT (name) DO UPDATE SET datastore = "
                                    "EXCLUDED.datastore"
                                  : "INSERT INTO datastores (name, datastore) VALUES ($1, $2) "
                                    "ON CONFLICT (name) DO NOTHING"));
        put->Bind(1, datastore.name())
            .BindBlob(2, SerializeDeterministic(rules::SealedDatastore(w.secrets, datastore)));
        DROVER_RETURN_IF_ERROR(put->Run());
        if (put->Affected() == 0) {
          return absl::AlreadyExistsError(absl::StrCat(
              "datastore '", datastore.name(), "' already exists; set replace to overwrite it"));
        }
        return absl::OkStatus();
      },
      std::move(done)));
}

void PostgresStore::DeleteDatastore(std::string name, DoneCallback done) {
  Enqueue(OneStatement("DELETE FROM datastores WHERE name = $1",
                    [name = std::move(name)](PgStatement& s) { s.Bind(1, name); },
                    std::move(done)));
}

absl::StatusOr<std::vector<v1::Datastore>> PostgresStore::LoadDatastores() {
  return WithReader([&](PgDb& db) -> absl::StatusOr<std::vector<v1::Datastore>> {
    DROVER_ASSIGN_OR_RETURN(auto select,
                            db.Prepare("SELECT name, datastore FROM datastores ORDER BY name"));
    std::vector<v1::Datastore> datastores;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      absl::string_view bytes = select->ColumnBlob(1);
      v1::Datastore datastore;
      if (!datastore.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError(absl::StrCat("the stored datastore '",
                                                select->ColumnText(0), "' is unreadable"));
      }
      DROVER_RETURN_IF_ERROR(rules::OpenDatastore(options_.secrets, datastore));
      datastores.push_back(std::move(datastore));
    }
    return datastores;
  });
}

void PostgresStore::PutNodeAdminState(NodeAdminState state, DoneCallback done) {
  Enqueue(OneStatement(
      "INSERT INTO node_admin (name, draining, reason, set_time_us) VALUES ($1, $2, $3, $4) "
      "ON CONFLICT (name) DO UPDATE SET draining = EXCLUDED.draining, "
      "reason = EXCLUDED.reason, set_time_us = EXCLUDED.set_time_us",
      [state = std::move(state)](PgStatement& s) {
        s.Bind(1, state.node)
            .Bind(2, int64_t{state.draining ? 1 : 0})
            .Bind(3, state.reason)
            .Bind(4, absl::ToUnixMicros(state.set_time));
      },
      std::move(done)));
}

void PostgresStore::DeleteNodeAdminState(std::string node, DoneCallback done) {
  Enqueue(OneStatement("DELETE FROM node_admin WHERE name = $1",
                    [node = std::move(node)](PgStatement& s) { s.Bind(1, node); },
                    std::move(done)));
}

absl::StatusOr<std::vector<NodeAdminState>> PostgresStore::LoadNodeAdminStates() {
  return WithReader([&](PgDb& db) -> absl::StatusOr<std::vector<NodeAdminState>> {
    DROVER_ASSIGN_OR_RETURN(
        auto select,
        db.Prepare("SELECT name, draining, reason, set_time_us FROM node_admin ORDER BY name"));
    std::vector<NodeAdminState> states;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      states.push_back({.node = select->ColumnText(0),
                        .draining = select->ColumnInt(1) != 0,
                        .reason = select->ColumnText(2),
                        .set_time = absl::FromUnixMicros(select->ColumnInt(3))});
    }
    return states;
  });
}

void PostgresStore::PutNodeLossPause(std::optional<NodeLossPause> pause, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [pause = std::move(pause)](Writer& w) -> absl::Status {
        DROVER_RETURN_IF_ERROR(
            w.db->Exec("DELETE FROM node_loss_pause; DELETE FROM node_loss_pause_nodes;"));
        if (!pause.has_value()) return absl::OkStatus();
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT INTO node_loss_pause (id, paused_since_us) "
                                    "VALUES (1, $1)"));
        put->Bind(1, absl::ToUnixMicros(pause->paused_since));
        DROVER_RETURN_IF_ERROR(put->Run());
        DROVER_ASSIGN_OR_RETURN(
            auto member,
            w.db->Prepare("INSERT INTO node_loss_pause_nodes "
                          "(name, role, listed, last_seen_us, lost_at_us, node) "
                          "VALUES ($1, $2, $3, $4, $5, $6) "
                          "ON CONFLICT (name) DO UPDATE SET role = EXCLUDED.role, "
                          "listed = EXCLUDED.listed, last_seen_us = EXCLUDED.last_seen_us, "
                          "lost_at_us = EXCLUDED.lost_at_us, node = EXCLUDED.node"));
        for (const NodeLossPause::Member& m : pause->nodes) {
          member->Reset();
          member->Bind(1, m.name)
              .Bind(2, static_cast<int64_t>(m.role))
              .Bind(3, int64_t{m.listed ? 1 : 0})
              .Bind(4, absl::ToUnixMicros(m.last_seen))
              .Bind(5, absl::ToUnixMicros(m.lost_at))
              .BindBlob(6, SerializeDeterministic(m.node));
          DROVER_RETURN_IF_ERROR(member->Run());
        }
        return absl::OkStatus();
      },
      std::move(done)));
}

absl::StatusOr<std::optional<NodeLossPause>> PostgresStore::LoadNodeLossPause() {
  return WithReader([&](PgDb& db) -> absl::StatusOr<std::optional<NodeLossPause>> {
    // One snapshot for both tables: a pause written between the two reads is not mixed in.
    DROVER_RETURN_IF_ERROR(db.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    absl::StatusOr<std::optional<NodeLossPause>> result =
        [&]() -> absl::StatusOr<std::optional<NodeLossPause>> {
      DROVER_ASSIGN_OR_RETURN(auto since,
                              db.Prepare("SELECT paused_since_us FROM node_loss_pause"));
      DROVER_ASSIGN_OR_RETURN(bool paused, since->Step());
      if (!paused) return std::nullopt;
      NodeLossPause pause;
      pause.paused_since = absl::FromUnixMicros(since->ColumnInt(0));
      DROVER_ASSIGN_OR_RETURN(
          auto select, db.Prepare("SELECT name, role, listed, last_seen_us, lost_at_us, node "
                                  "FROM node_loss_pause_nodes ORDER BY name"));
      while (true) {
        DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
        if (!row) break;
        NodeLossPause::Member m;
        m.name = select->ColumnText(0);
        const int64_t role = select->ColumnInt(1);
        absl::string_view bytes = select->ColumnBlob(5);
        if (role < 0 || role > static_cast<int64_t>(NodeLossPause::Role::kSilent) ||
            !m.node.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
          return absl::DataLossError(absl::StrCat(
              "the stored pause of node-loss handling has an unreadable record of node '",
              m.name, "'"));
        }
        m.role = static_cast<NodeLossPause::Role>(role);
        m.listed = select->ColumnInt(2) != 0;
        m.last_seen = absl::FromUnixMicros(select->ColumnInt(3));
        m.lost_at = absl::FromUnixMicros(select->ColumnInt(4));
        pause.nodes.push_back(std::move(m));
      }
      return pause;
    }();
    (void)db.Exec("COMMIT");
    return result;
  });
}

}  // namespace drover::storage
