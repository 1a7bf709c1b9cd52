#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "storage/sqlite_store_internal.h"

namespace drover::storage {

using sqlite_store_internal::FunctionOp;

void SqliteStore::PutNodeAdminState(NodeAdminState state, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [state = std::move(state)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT OR REPLACE INTO node_admin "
                                    "(name, draining, reason, set_time_us) VALUES (?, ?, ?, ?)"));
        put->Bind(1, state.node)
            .Bind(2, int64_t{state.draining ? 1 : 0})
            .Bind(3, state.reason)
            .Bind(4, absl::ToUnixMicros(state.set_time));
        return put->Run();
      },
      std::move(done)));
}

void SqliteStore::DeleteNodeAdminState(std::string node, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [node = std::move(node)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto del, w.db->Prepare("DELETE FROM node_admin WHERE name = ?"));
        del->Bind(1, node);
        return del->Run();
      },
      std::move(done)));
}

absl::StatusOr<std::vector<NodeAdminState>> SqliteStore::LoadNodeAdminStates() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::vector<NodeAdminState>> {
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

void SqliteStore::PutNodeLossPause(std::optional<NodeLossPause> pause, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [pause = std::move(pause)](Writer& w) -> absl::Status {
        DROVER_RETURN_IF_ERROR(
            w.db->Exec("DELETE FROM node_loss_pause; DELETE FROM node_loss_pause_nodes;"));
        if (!pause.has_value()) return absl::OkStatus();
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT INTO node_loss_pause (id, paused_since_us) "
                                    "VALUES (1, ?)"));
        put->Bind(1, absl::ToUnixMicros(pause->paused_since));
        DROVER_RETURN_IF_ERROR(put->Run());
        DROVER_ASSIGN_OR_RETURN(
            auto member,
            w.db->Prepare("INSERT OR REPLACE INTO node_loss_pause_nodes "
                          "(name, role, listed, last_seen_us, lost_at_us, node) "
                          "VALUES (?, ?, ?, ?, ?, ?)"));
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

absl::StatusOr<std::optional<NodeLossPause>> SqliteStore::LoadNodeLossPause() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::optional<NodeLossPause>> {
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
            "the stored pause of node-loss handling has an unreadable record of node '", m.name,
            "'"));
      }
      m.role = static_cast<NodeLossPause::Role>(role);
      m.listed = select->ColumnInt(2) != 0;
      m.last_seen = absl::FromUnixMicros(select->ColumnInt(3));
      m.lost_at = absl::FromUnixMicros(select->ColumnInt(4));
      pause.nodes.push_back(std::move(m));
    }
    return pause;
  });
}

}  // namespace drover::storage
