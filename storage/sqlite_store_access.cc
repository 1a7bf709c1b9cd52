#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "storage/sqlite_store_internal.h"
#include "storage/store_rules.h"

namespace drover::storage {

using sqlite_store_internal::FunctionOp;

void SqliteStore::CreateUser(UserRecord record, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [record = std::move(record)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto find, w.db->Prepare("SELECT 1 FROM users WHERE name = ?"));
        find->Bind(1, record.user.name());
        DROVER_ASSIGN_OR_RETURN(bool found, find->Step());
        if (found) {
          return absl::AlreadyExistsError(absl::StrCat(
              "user '", record.user.name(),
              "' already exists; see drover user list, or give them a new token with drover "
              "user token ", record.user.name()));
        }
        DROVER_ASSIGN_OR_RETURN(
            auto put,
            w.db->Prepare("INSERT INTO users (name, token_sha256, user) VALUES (?, ?, ?)"));
        put->Bind(1, record.user.name());
        if (record.token_sha256.empty()) {
          put->BindNull(2);
        } else {
          put->Bind(2, record.token_sha256);
        }
        put->BindBlob(3, SerializeDeterministic(record.user));
        return put->Run();
      },
      std::move(done)));
}

namespace {

// Changes the stored record of user `name` with `change` and, when `token_sha256` is given,
// their token hash (empty: revoked); `done` gets the updated user after the commit.
std::unique_ptr<FunctionOp> ModifyUser(std::string name,
                                       absl::AnyInvocable<void(v1::User&)> change,
                                       std::optional<std::string> token_sha256,
                                       Store::UserCallback done) {
  auto updated = std::make_shared<v1::User>();
  return std::make_unique<FunctionOp>(
      [name = std::move(name), change = std::move(change), token_sha256 = std::move(token_sha256),
       updated](SqliteStore::Writer& w) mutable -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto find, w.db->Prepare("SELECT user FROM users WHERE name = ?"));
        find->Bind(1, name);
        DROVER_ASSIGN_OR_RETURN(bool found, find->Step());
        if (!found) {
          return absl::NotFoundError(
              absl::StrCat("user '", name, "' does not exist; see drover user list"));
        }
        absl::string_view bytes = find->ColumnBlob(0);
        if (!updated->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
          return absl::DataLossError(absl::StrCat("user '", name, "' has an unreadable record"));
        }
        change(*updated);
        if (!token_sha256.has_value()) {
          DROVER_ASSIGN_OR_RETURN(auto put,
                                  w.db->Prepare("UPDATE users SET user = ? WHERE name = ?"));
          put->BindBlob(1, SerializeDeterministic(*updated)).Bind(2, name);
          return put->Run();
        }
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("UPDATE users SET token_sha256 = ?, user = ? WHERE name = ?"));
        if (token_sha256->empty()) {
          put->BindNull(1);
        } else {
          put->Bind(1, *token_sha256);
        }
        put->BindBlob(2, SerializeDeterministic(*updated)).Bind(3, name);
        return put->Run();
      },
      [updated, done = std::move(done)](absl::Status status) mutable {
        if (status.ok()) {
          std::move(done)(*updated);
        } else {
          std::move(done)(std::move(status));
        }
      });
}

}  // namespace

void SqliteStore::SetUserToken(std::string name, std::string token_sha256, UserCallback done) {
  const bool revoked = token_sha256.empty();
  Enqueue(ModifyUser(
      std::move(name), [revoked](v1::User& user) { user.set_revoked(revoked); },
      std::move(token_sha256), std::move(done)));
}

void SqliteStore::SetUserBlobQuota(std::string name, int64_t bytes, UserCallback done) {
  Enqueue(ModifyUser(
      std::move(name), [bytes](v1::User& user) { user.set_blob_quota_bytes(bytes); },
      std::nullopt, std::move(done)));
}

absl::StatusOr<std::vector<v1::User>> SqliteStore::LoadUsers() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::vector<v1::User>> {
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare("SELECT user FROM users ORDER BY name"));
    std::vector<v1::User> users;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      absl::string_view bytes = select->ColumnBlob(0);
      v1::User user;
      if (!user.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
        return absl::DataLossError("a stored user is unreadable");
      }
      users.push_back(std::move(user));
    }
    return users;
  });
}

absl::StatusOr<v1::User> SqliteStore::FindUserByToken(absl::string_view token_sha256) {
  return WithReader([&](Db& db) -> absl::StatusOr<v1::User> {
    DROVER_ASSIGN_OR_RETURN(auto select,
                            db.Prepare("SELECT user FROM users WHERE token_sha256 = ?"));
    select->Bind(1, std::string(token_sha256));
    DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
    if (!found) return absl::NotFoundError("no user has this token");
    absl::string_view bytes = select->ColumnBlob(0);
    v1::User user;
    if (!user.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      return absl::DataLossError("a stored user is unreadable");
    }
    return user;
  });
}

void SqliteStore::AddBlobUploader(std::string digest, std::string user, int64_t size,
                                  DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [digest = std::move(digest), user = std::move(user), size](Writer& w) -> absl::Status {
        // A row an older droverd wrote without its size gets it now.
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT INTO blob_uploaders (digest, user, size) "
                                    "VALUES (?, ?, ?) ON CONFLICT (digest, user) DO UPDATE "
                                    "SET size = excluded.size WHERE size < 0"));
        put->Bind(1, digest).Bind(2, user).Bind(3, size);
        return put->Run();
      },
      std::move(done)));
}

absl::StatusOr<BlobHoldings> SqliteStore::BlobHoldingsOf(absl::string_view user) {
  return WithReader([&](Db& db) -> absl::StatusOr<BlobHoldings> {
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT digest, size FROM blob_uploaders WHERE user = ?"));
    select->Bind(1, std::string(user));
    BlobHoldings holdings;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      int64_t size = select->ColumnInt(1);
      if (size >= 0) {
        holdings.bytes += size;
      } else {
        holdings.unsized.emplace_back(select->ColumnText(0));
      }
    }
    return holdings;
  });
}

void SqliteStore::ForgetBlobs(std::vector<std::string> digests, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [digests = std::move(digests)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto forget,
                                w.db->Prepare("DELETE FROM blob_uploaders WHERE digest = ?"));
        for (const std::string& digest : digests) {
          forget->Reset();
          forget->Bind(1, digest);
          if (absl::Status s = forget->Run(); !s.ok()) return s;
        }
        return absl::OkStatus();
      },
      std::move(done)));
}

absl::StatusOr<bool> SqliteStore::IsBlobUploader(absl::string_view digest,
                                                 absl::string_view user) {
  return WithReader([&](Db& db) -> absl::StatusOr<bool> {
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT 1 FROM blob_uploaders WHERE digest = ? AND user = ?"));
    select->Bind(1, std::string(digest)).Bind(2, std::string(user));
    return select->Step();
  });
}

namespace {

constexpr char kJoinTokenColumns[] =
    "hash, node, create_us, expire_us, used_us, used_by, revoked";

JoinToken JoinTokenFromRow(const Statement& row) {
  return {.hash = row.ColumnText(0),
          .node = row.ColumnText(1),
          .create_time = absl::FromUnixMicros(row.ColumnInt(2)),
          .expire_time = absl::FromUnixMicros(row.ColumnInt(3)),
          .used_time = absl::FromUnixMicros(row.ColumnInt(4)),
          .used_by = row.ColumnText(5),
          .revoked = row.ColumnInt(6) != 0};
}

// Uses a join token: read, check, mark used, in the writer's transaction.
class UseJoinTokenOp final : public SqliteStore::WriteOp {
 public:
  UseJoinTokenOp(std::string hash, std::string node, absl::Time now, Store::JoinTokenCallback done)
      : hash_(std::move(hash)), node_(std::move(node)), now_(now), done_(std::move(done)) {}

  absl::Status Apply(SqliteStore::Writer& w) override;

  void Finish(absl::Status status) && override {
    if (status.ok()) {
      std::move(done_)(std::move(token_));
    } else {
      std::move(done_)(std::move(status));
    }
  }

 private:
  std::string hash_;
  std::string node_;
  absl::Time now_;
  Store::JoinTokenCallback done_;
  JoinToken token_;
};

}  // namespace

absl::Status UseJoinTokenOp::Apply(SqliteStore::Writer& w) {
  DROVER_ASSIGN_OR_RETURN(
      auto select,
      w.db->Prepare(absl::StrCat("SELECT ", kJoinTokenColumns, " FROM join_tokens WHERE hash = ?")));
  select->Bind(1, hash_);
  DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
  if (!found) return absl::NotFoundError("the join token is unknown to this droverd");
  token_ = JoinTokenFromRow(*select);
  DROVER_RETURN_IF_ERROR(rules::CheckJoinTokenUsable(token_, node_, now_));
  DROVER_ASSIGN_OR_RETURN(
      auto use, w.db->Prepare("UPDATE join_tokens SET used_us = ?, used_by = ? WHERE hash = ?"));
  use->Bind(1, absl::ToUnixMicros(now_)).Bind(2, node_).Bind(3, hash_);
  return use->Run();
}

void SqliteStore::PutJoinToken(JoinToken token, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [token = std::move(token)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto find, w.db->Prepare("SELECT 1 FROM join_tokens WHERE hash = ?"));
        find->Bind(1, token.hash);
        DROVER_ASSIGN_OR_RETURN(bool found, find->Step());
        if (found) return absl::AlreadyExistsError("a join token with this hash exists");
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare(absl::StrCat("INSERT INTO join_tokens (", kJoinTokenColumns,
                                                 ") VALUES (?, ?, ?, ?, ?, ?, ?)")));
        put->Bind(1, token.hash)
            .Bind(2, token.node)
            .Bind(3, absl::ToUnixMicros(token.create_time))
            .Bind(4, absl::ToUnixMicros(token.expire_time))
            .Bind(5, absl::ToUnixMicros(token.used_time))
            .Bind(6, token.used_by)
            .Bind(7, int64_t{token.revoked ? 1 : 0});
        return put->Run();
      },
      std::move(done)));
}

void SqliteStore::UseJoinToken(std::string hash, std::string node, absl::Time now,
                               JoinTokenCallback done) {
  Enqueue(std::make_unique<UseJoinTokenOp>(std::move(hash), std::move(node), now, std::move(done)));
}

void SqliteStore::RevokeJoinTokens(std::string prefix, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [prefix = std::move(prefix)](Writer& w) -> absl::Status {
        DROVER_RETURN_IF_ERROR(rules::CheckJoinTokenPrefix(prefix));
        DROVER_ASSIGN_OR_RETURN(
            auto revoke, w.db->Prepare("UPDATE join_tokens SET revoked = 1 "
                                       "WHERE substr(hash, 1, ?) = ? AND used_us = 0"));
        revoke->Bind(1, static_cast<int64_t>(prefix.size())).Bind(2, prefix);
        DROVER_RETURN_IF_ERROR(revoke->Run());
        if (sqlite3_changes(w.db->raw()) == 0) {
          return rules::NoJoinTokenWithPrefix(prefix);
        }
        return absl::OkStatus();
      },
      std::move(done)));
}

absl::StatusOr<std::vector<JoinToken>> SqliteStore::LoadJoinTokens() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::vector<JoinToken>> {
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare(absl::StrCat("SELECT ", kJoinTokenColumns,
                                             " FROM join_tokens ORDER BY create_us DESC")));
    std::vector<JoinToken> tokens;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      tokens.push_back(JoinTokenFromRow(*select));
    }
    return tokens;
  });
}

void SqliteStore::PutNodeCertificate(NodeCertificateRecord record, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [record = std::move(record)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT OR IGNORE INTO node_certificates "
                                    "(fingerprint, node, not_after_us, recorded_us, revoked_us) "
                                    "VALUES (?, ?, ?, ?, ?)"));
        put->Bind(1, record.fingerprint)
            .Bind(2, record.node)
            .Bind(3, absl::ToUnixMicros(record.not_after))
            .Bind(4, absl::ToUnixMicros(record.recorded))
            .Bind(5, absl::ToUnixMicros(record.revoked));
        return put->Run();
      },
      std::move(done)));
}

void SqliteStore::RevokeNodeCertificates(std::string node, absl::Time now, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [node = std::move(node), now](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto revoke, w.db->Prepare("UPDATE node_certificates SET revoked_us = ? "
                                       "WHERE node = ? AND revoked_us = 0"));
        revoke->Bind(1, absl::ToUnixMicros(now)).Bind(2, node);
        return revoke->Run();
      },
      std::move(done)));
}

absl::StatusOr<std::vector<NodeCertificateRecord>> SqliteStore::LoadNodeCertificates() {
  return WithReader([&](Db& db) -> absl::StatusOr<std::vector<NodeCertificateRecord>> {
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT fingerprint, node, not_after_us, recorded_us, revoked_us "
                                "FROM node_certificates ORDER BY node, recorded_us"));
    std::vector<NodeCertificateRecord> records;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      records.push_back({.fingerprint = select->ColumnText(0),
                         .node = select->ColumnText(1),
                         .not_after = absl::FromUnixMicros(select->ColumnInt(2)),
                         .recorded = absl::FromUnixMicros(select->ColumnInt(3)),
                         .revoked = absl::FromUnixMicros(select->ColumnInt(4))});
    }
    return records;
  });
}

}  // namespace drover::storage
