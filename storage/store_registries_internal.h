// Internal to the SQL stores (see store_ops_internal.h): what administrators register and
// set, once for both engines: compute targets, images, datastores (their options sealed at
// rest), the cordons and drains of nodes, and the pause of node-loss handling. Each engine
// gives the SQL text that differs (RegistrySql); the SQL both read alike is here.
#ifndef DROVER_STORAGE_STORE_REGISTRIES_INTERNAL_H_
#define DROVER_STORAGE_STORE_REGISTRIES_INTERNAL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/pki/secret_box.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "storage/store.h"
#include "storage/store_ops_internal.h"
#include "storage/store_rules.h"

namespace drover::storage::store_ops {

// An engine's SQL for the registries. Parameters are numbered as the comments say; "put"
// inserts or replaces the row of that name.
struct RegistrySql {
  const char* put_compute_target;     // (name 1, target 2)
  const char* delete_compute_target;  // WHERE name = 1
  const char* put_image;              // (name 1, image 2)
  const char* delete_image;           // WHERE name = 1
  const char* put_datastore;          // (name 1, datastore 2)
  const char* add_datastore;          // (name 1, datastore 2); nothing when the name exists
  const char* delete_datastore;       // WHERE name = 1
  const char* update_datastore;       // SET datastore = 1 WHERE name = 2
  const char* begin_write;            // a transaction that writes, outside the writer
  const char* put_node_admin;         // (name 1, draining 2, reason 3, set_time_us 4)
  const char* delete_node_admin;      // WHERE name = 1
  const char* insert_pause;           // (id = 1, paused_since_us 1): the one row
  const char* put_pause_member;       // (name 1, role 2, listed 3, last_seen_us 4,
                                      //  lost_at_us 5, node 6)
};

// Seals the options of datastores stored in clear (stored before droverd sealed them, or
// while it had no key), in one transaction: from then on the database holds no datastore
// credential in clear. The error of the read or of the write. Runs at Open, before the
// writer starts.
template <typename E>
absl::Status SealStoredDatastores(typename E::Db& db, const SecretBox& secrets) {
  std::vector<v1::Datastore> unsealed;
  {
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare("SELECT name, datastore FROM datastores"));
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      v1::Datastore datastore;
      if (!ParseStored(select->ColumnBlob(1), datastore)) continue;
      if (rules::HasUnsealedOption(datastore)) unsealed.push_back(std::move(datastore));
    }
  }
  if (unsealed.empty()) return absl::OkStatus();
  DROVER_RETURN_IF_ERROR(db.Exec(E::kRegistrySql.begin_write));
  for (v1::Datastore& datastore : unsealed) {
    rules::SealClearOptions(secrets, datastore);
    DROVER_ASSIGN_OR_RETURN(auto update, db.Prepare(E::kRegistrySql.update_datastore));
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

// A write of `sql` binding `name` (1) and `message` (2) serialized.
template <typename E, typename Message>
std::unique_ptr<typename E::WriteOp> PutNamed(const char* sql, Message message,
                                              Store::DoneCallback done) {
  return OneStatement<E>(
      sql,
      [message = std::move(message)](auto& s) {
        s.Bind(1, message.name()).BindBlob(2, SerializeDeterministic(message));
      },
      std::move(done));
}

// A write of `sql` binding `name` (1): a delete by name.
template <typename E>
std::unique_ptr<typename E::WriteOp> DeleteNamed(const char* sql, std::string name,
                                                 Store::DoneCallback done) {
  return OneStatement<E>(
      sql, [name = std::move(name)](auto& s) { s.Bind(1, name); }, std::move(done));
}

template <typename E>
std::unique_ptr<typename E::WriteOp> PutComputeTarget(v1::ComputeTarget target,
                                                      Store::DoneCallback done) {
  return PutNamed<E>(E::kRegistrySql.put_compute_target, std::move(target), std::move(done));
}

template <typename E>
std::unique_ptr<typename E::WriteOp> DeleteComputeTarget(std::string name,
                                                         Store::DoneCallback done) {
  return DeleteNamed<E>(E::kRegistrySql.delete_compute_target, std::move(name), std::move(done));
}

template <typename E>
absl::StatusOr<std::vector<v1::ComputeTarget>> LoadComputeTargets(typename E::Db& db) {
  return LoadAll<v1::ComputeTarget>(db, "SELECT target FROM compute_targets ORDER BY name",
                                    "a stored compute target is unreadable");
}

template <typename E>
std::unique_ptr<typename E::WriteOp> PutImage(v1::Image image, Store::DoneCallback done) {
  return PutNamed<E>(E::kRegistrySql.put_image, std::move(image), std::move(done));
}

template <typename E>
std::unique_ptr<typename E::WriteOp> DeleteImage(std::string name, Store::DoneCallback done) {
  return DeleteNamed<E>(E::kRegistrySql.delete_image, std::move(name), std::move(done));
}

template <typename E>
absl::StatusOr<std::vector<v1::Image>> LoadImages(typename E::Db& db) {
  return LoadAll<v1::Image>(db, "SELECT image FROM images ORDER BY name",
                            "a stored image registration is unreadable");
}

template <typename E>
std::unique_ptr<typename E::WriteOp> PutDatastore(v1::Datastore datastore, bool replace,
                                                  Store::DoneCallback done) {
  return std::make_unique<typename E::FunctionOp>(
      [datastore = std::move(datastore), replace](typename E::Writer& w) -> absl::Status {
        // Without `replace` the unique name decides: an existing row is left alone.
        DROVER_ASSIGN_OR_RETURN(auto put, w.db->Prepare(replace ? E::kRegistrySql.put_datastore
                                                                : E::kRegistrySql.add_datastore));
        put->Bind(1, datastore.name())
            .BindBlob(2, SerializeDeterministic(rules::SealedDatastore(w.secrets, datastore)));
        DROVER_RETURN_IF_ERROR(put->Run());
        if (put->Affected() == 0) {
          return absl::AlreadyExistsError(absl::StrCat(
              "datastore '", datastore.name(), "' already exists; set replace to overwrite it"));
        }
        return absl::OkStatus();
      },
      std::move(done));
}

template <typename E>
std::unique_ptr<typename E::WriteOp> DeleteDatastore(std::string name, Store::DoneCallback done) {
  return DeleteNamed<E>(E::kRegistrySql.delete_datastore, std::move(name), std::move(done));
}

// Every datastore, its options opened with `secrets`.
template <typename E>
absl::StatusOr<std::vector<v1::Datastore>> LoadDatastores(typename E::Db& db,
                                                          const SecretBox* secrets) {
  DROVER_ASSIGN_OR_RETURN(auto select,
                          db.Prepare("SELECT name, datastore FROM datastores ORDER BY name"));
  return AllRows<v1::Datastore>(
      *select, [secrets](const auto& row) -> absl::StatusOr<v1::Datastore> {
        v1::Datastore datastore;
        if (!ParseStored(row.ColumnBlob(1), datastore)) {
          return absl::DataLossError(
              absl::StrCat("the stored datastore '", row.ColumnText(0), "' is unreadable"));
        }
        DROVER_RETURN_IF_ERROR(rules::OpenDatastore(secrets, datastore));
        return datastore;
      });
}

template <typename E>
std::unique_ptr<typename E::WriteOp> PutNodeAdminState(NodeAdminState state,
                                                       Store::DoneCallback done) {
  return OneStatement<E>(
      E::kRegistrySql.put_node_admin,
      [state = std::move(state)](auto& s) {
        s.Bind(1, state.node)
            .Bind(2, int64_t{state.draining ? 1 : 0})
            .Bind(3, state.reason)
            .Bind(4, absl::ToUnixMicros(state.set_time));
      },
      std::move(done));
}

template <typename E>
std::unique_ptr<typename E::WriteOp> DeleteNodeAdminState(std::string node,
                                                          Store::DoneCallback done) {
  return DeleteNamed<E>(E::kRegistrySql.delete_node_admin, std::move(node), std::move(done));
}

template <typename E>
absl::StatusOr<std::vector<NodeAdminState>> LoadNodeAdminStates(typename E::Db& db) {
  DROVER_ASSIGN_OR_RETURN(
      auto select,
      db.Prepare("SELECT name, draining, reason, set_time_us FROM node_admin ORDER BY name"));
  return AllRows<NodeAdminState>(*select, [](const auto& row) -> NodeAdminState {
    return {.node = row.ColumnText(0),
            .draining = row.ColumnInt(1) != 0,
            .reason = row.ColumnText(2),
            .set_time = absl::FromUnixMicros(row.ColumnInt(3))};
  });
}

// Replaces the stored pause of node-loss handling with `pause` (none: deletes it).
template <typename E>
std::unique_ptr<typename E::WriteOp> PutNodeLossPause(std::optional<NodeLossPause> pause,
                                                      Store::DoneCallback done) {
  return std::make_unique<typename E::FunctionOp>(
      [pause = std::move(pause)](typename E::Writer& w) -> absl::Status {
        DROVER_RETURN_IF_ERROR(
            w.db->Exec("DELETE FROM node_loss_pause; DELETE FROM node_loss_pause_nodes;"));
        if (!pause.has_value()) return absl::OkStatus();
        DROVER_ASSIGN_OR_RETURN(auto put, w.db->Prepare(E::kRegistrySql.insert_pause));
        put->Bind(1, absl::ToUnixMicros(pause->paused_since));
        DROVER_RETURN_IF_ERROR(put->Run());
        DROVER_ASSIGN_OR_RETURN(auto member, w.db->Prepare(E::kRegistrySql.put_pause_member));
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
      std::move(done));
}

// The stored pause of node-loss handling, both of its tables read in one snapshot where
// the engine gives one (E::InSnapshot).
template <typename E>
absl::StatusOr<std::optional<NodeLossPause>> LoadNodeLossPause(typename E::Db& db) {
  return E::InSnapshot(db, [&]() -> absl::StatusOr<std::optional<NodeLossPause>> {
    DROVER_ASSIGN_OR_RETURN(auto since, db.Prepare("SELECT paused_since_us FROM node_loss_pause"));
    DROVER_ASSIGN_OR_RETURN(bool paused, since->Step());
    if (!paused) return std::nullopt;
    NodeLossPause pause;
    pause.paused_since = absl::FromUnixMicros(since->ColumnInt(0));
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT name, role, listed, last_seen_us, lost_at_us, node "
                                "FROM node_loss_pause_nodes ORDER BY name"));
    DROVER_ASSIGN_OR_RETURN(
        pause.nodes,
        AllRows<NodeLossPause::Member>(
            *select, [](const auto& row) -> absl::StatusOr<NodeLossPause::Member> {
              NodeLossPause::Member m;
              m.name = row.ColumnText(0);
              const int64_t role = row.ColumnInt(1);
              if (role < 0 || role > static_cast<int64_t>(NodeLossPause::Role::kSilent) ||
                  !ParseStored(row.ColumnBlob(5), m.node)) {
                return absl::DataLossError(absl::StrCat(
                    "the stored pause of node-loss handling has an unreadable record of node '",
                    m.name, "'"));
              }
              m.role = static_cast<NodeLossPause::Role>(role);
              m.listed = row.ColumnInt(2) != 0;
              m.last_seen = absl::FromUnixMicros(row.ColumnInt(3));
              m.lost_at = absl::FromUnixMicros(row.ColumnInt(4));
              return m;
            }));
    return pause;
  });
}

}  // namespace drover::storage::store_ops

#endif  // DROVER_STORAGE_STORE_REGISTRIES_INTERNAL_H_
