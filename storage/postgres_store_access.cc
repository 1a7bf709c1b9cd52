#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "storage/postgres_store_internal.h"
#include "storage/store_rules.h"

namespace drover::storage {

using postgres_store_internal::FunctionOp;

namespace {

// Parses a stored v1::User; DATA_LOSS naming `what` when it is unreadable.
absl::StatusOr<v1::User> UserFromBytes(absl::string_view bytes, absl::string_view what) {
  v1::User user;
  if (!user.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(what);
  }
  return user;
}

// Changes the stored record of user `name` with `change` and, when `token_sha256` is given,
// their token hash (empty: revoked); `done` gets the updated user after the commit.
std::unique_ptr<FunctionOp> ModifyUser(std::string name,
                                       absl::AnyInvocable<void(v1::User&)> change,
                                       std::optional<std::string> token_sha256,
                                       Store::UserCallback done) {
  auto updated = std::make_shared<v1::User>();
  return std::make_unique<FunctionOp>(
      [name = std::move(name), change = std::move(change), token_sha256 = std::move(token_sha256),
       updated](PostgresStore::Writer& w) mutable -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto find, w.db->Prepare("SELECT record FROM users WHERE name = $1 FOR UPDATE"));
        find->Bind(1, name);
        DROVER_ASSIGN_OR_RETURN(bool found, find->Step());
        if (!found) {
          return absl::NotFoundError(
              absl::StrCat("user '", name, "' does not exist; see drover user list"));
        }
        DROVER_ASSIGN_OR_RETURN(
            *updated,
            UserFromBytes(find->ColumnBlob(0), absl::StrCat("user '", name,
                                                            "' has an unreadable record")));
        change(*updated);
        if (!token_sha256.has_value()) {
          DROVER_ASSIGN_OR_RETURN(auto put,
                                  w.db->Prepare("UPDATE users SET record = $1 WHERE name = $2"));
          put->BindBlob(1, SerializeDeterministic(*updated)).Bind(2, name);
          return put->Run();
        }
        DROVER_ASSIGN_OR_RETURN(
            auto put,
            w.db->Prepare("UPDATE users SET token_sha256 = $1, record = $2 WHERE name = $3"));
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

constexpr char kJoinTokenColumns[] =
    "hash, node, create_us, expire_us, used_us, used_by, revoked";

JoinToken JoinTokenFromRow(const PgStatement& row) {
  return {.hash = row.ColumnText(0),
          .node = row.ColumnText(1),
          .create_time = absl::FromUnixMicros(row.ColumnInt(2)),
          .expire_time = absl::FromUnixMicros(row.ColumnInt(3)),
          .used_time = absl::FromUnixMicros(row.ColumnInt(4)),
          .used_by = row.ColumnText(5),
          .revoked = row.ColumnInt(6) != 0};
}

// Uses a join token: read (locking the row), check, mark used, in the writer's transaction.
class UseJoinTokenOp final : public PostgresStore::WriteOp {
 public:
  UseJoinTokenOp(std::string hash, std::string node, absl::Time now, Store::JoinTokenCallback done)
      : hash_(std::move(hash)), node_(std::move(node)), now_(now), done_(std::move(done)) {}

  absl::Status Apply(PostgresStore::Writer& w) override {
    DROVER_ASSIGN_OR_RETURN(auto select,
                            w.db->Prepare(absl::StrCat("SELECT ", kJoinTokenColumns,
                                                       " FROM join_tokens WHERE hash = $1 "
                                                       "FOR UPDATE")));
    select->Bind(1, hash_);
    DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
    if (!found) return absl::NotFoundError("the join token is unknown to this droverd");
    token_ = JoinTokenFromRow(*select);
    DROVER_RETURN_IF_ERROR(rules::CheckJoinTokenUsable(token_, node_, now_));
    DROVER_ASSIGN_OR_RETURN(
        auto use,
        w.db->Prepare("UPDATE join_tokens SET used_us = $1, used_by = $2 WHERE hash = $3"));
    use->Bind(1, absl::ToUnixMicros(now_)).Bind(2, node_).Bind(3, hash_);
    return use->Run();
  }

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

constexpr char kAuditColumns[] = "id, time_us, who, who_kind, peer, method, target, code, message";

// A time as stored: microseconds, far past times clamped to 0 rather than overflowing.
int64_t MicrosFrom(absl::Time time) {
  return time < absl::UnixEpoch() ? int64_t{0} : absl::ToUnixMicros(time);
}

}  // namespace

void PostgresStore::CreateUser(UserRecord record, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [record = std::move(record)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT INTO users (name, token_sha256, record) "
                                    "VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING"));
        put->Bind(1, record.user.name());
        if (record.token_sha256.empty()) {
          put->BindNull(2);
        } else {
          put->Bind(2, record.token_sha256);
        }
        put->BindBlob(3, SerializeDeterministic(record.user));
        DROVER_RETURN_IF_ERROR(put->Run());
        if (put->Affected() == 0) {
          return absl::AlreadyExistsError(absl::StrCat(
              "user '", record.user.name(),
              "' already exists; see drover user list, or give them a new token with drover "
              "user token ", record.user.name()));
        }
        return absl::OkStatus();
      },
      std::move(done)));
}

void PostgresStore::SetUserToken(std::string name, std::string token_sha256, UserCallback done) {
  const bool revoked = token_sha256.empty();
  Enqueue(ModifyUser(
      std::move(name), [revoked](v1::User& user) { user.set_revoked(revoked); },
      std::move(token_sha256), std::move(done)));
}

void PostgresStore::SetUserBlobQuota(std::string name, int64_t bytes, UserCallback done) {
  Enqueue(ModifyUser(
      std::move(name), [bytes](v1::User& user) { user.set_blob_quota_bytes(bytes); },
      std::nullopt, std::move(done)));
}

absl::StatusOr<std::vector<v1::User>> PostgresStore::LoadUsers() {
  return WithReader([&](PgDb& db) -> absl::StatusOr<std::vector<v1::User>> {
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare("SELECT record FROM users ORDER BY name"));
    std::vector<v1::User> users;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      DROVER_ASSIGN_OR_RETURN(v1::User user,
                              UserFromBytes(select->ColumnBlob(0), "a stored user is unreadable"));
      users.push_back(std::move(user));
    }
    return users;
  });
}

absl::StatusOr<v1::User> PostgresStore::FindUserByToken(absl::string_view token_sha256) {
  return WithReader([&](PgDb& db) -> absl::StatusOr<v1::User> {
    DROVER_ASSIGN_OR_RETURN(auto select,
                            db.Prepare("SELECT record FROM users WHERE token_sha256 = $1"));
    select->Bind(1, token_sha256);
    DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
    if (!found) return absl::NotFoundError("no user has this token");
    return UserFromBytes(select->ColumnBlob(0), "a stored user is unreadable");
  });
}

void PostgresStore::AddBlobUploader(std::string digest, std::string user, int64_t size,
                                    DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [digest = std::move(digest), user = std::move(user), size](Writer& w) -> absl::Status {
        // A row an older droverd wrote without its size gets it now.
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT INTO blob_uploaders (digest, holder, size) "
                                    "VALUES ($1, $2, $3) ON CONFLICT (digest, holder) DO UPDATE "
                                    "SET size = EXCLUDED.size WHERE blob_uploaders.size < 0"));
        put->Bind(1, digest).Bind(2, user).Bind(3, size);
        return put->Run();
      },
      std::move(done)));
}

absl::StatusOr<BlobHoldings> PostgresStore::BlobHoldingsOf(absl::string_view user) {
  return WithReader([&](PgDb& db) -> absl::StatusOr<BlobHoldings> {
    DROVER_ASSIGN_OR_RETURN(
        auto select, db.Prepare("SELECT digest, size FROM blob_uploaders WHERE holder = $1"));
    select->Bind(1, user);
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

void PostgresStore::ForgetBlobs(std::vector<std::string> digests, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [digests = std::move(digests)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto forget,
                                w.db->Prepare("DELETE FROM blob_uploaders WHERE digest = $1"));
        for (const std::string& digest : digests) {
          forget->Reset();
          forget->Bind(1, digest);
          DROVER_RETURN_IF_ERROR(forget->Run());
        }
        return absl::OkStatus();
      },
      std::move(done)));
}

absl::StatusOr<bool> PostgresStore::IsBlobUploader(absl::string_view digest,
                                                   absl::string_view user) {
  return WithReader([&](PgDb& db) -> absl::StatusOr<bool> {
    DROVER_ASSIGN_OR_RETURN(
        auto select,
        db.Prepare("SELECT 1 FROM blob_uploaders WHERE digest = $1 AND holder = $2"));
    select->Bind(1, digest).Bind(2, user);
    return select->Step();
  });
}

void PostgresStore::PutJoinToken(JoinToken token, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [token = std::move(token)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare(absl::StrCat("INSERT INTO join_tokens (", kJoinTokenColumns,
                                                 ") VALUES ($1, $2, $3, $4, $5, $6, $7) "
                                                 "ON CONFLICT (hash) DO NOTHING")));
        put->Bind(1, token.hash)
            .Bind(2, token.node)
            .Bind(3, absl::ToUnixMicros(token.create_time))
            .Bind(4, absl::ToUnixMicros(token.expire_time))
            .Bind(5, absl::ToUnixMicros(token.used_time))
            .Bind(6, token.used_by)
            .Bind(7, int64_t{token.revoked ? 1 : 0});
        DROVER_RETURN_IF_ERROR(put->Run());
        if (put->Affected() == 0) return absl::AlreadyExistsError("a join token with this hash exists");
        return absl::OkStatus();
      },
      std::move(done)));
}

void PostgresStore::UseJoinToken(std::string hash, std::string node, absl::Time now,
                                 JoinTokenCallback done) {
  Enqueue(std::make_unique<UseJoinTokenOp>(std::move(hash), std::move(node), now, std::move(done)));
}

void PostgresStore::RevokeJoinTokens(std::string prefix, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [prefix = std::move(prefix)](Writer& w) -> absl::Status {
        DROVER_RETURN_IF_ERROR(rules::CheckJoinTokenPrefix(prefix));
        // The prefix is hex digits only (checked above): no LIKE wildcard in it.
        DROVER_ASSIGN_OR_RETURN(
            auto revoke, w.db->Prepare("UPDATE join_tokens SET revoked = 1 "
                                       "WHERE left(hash, $1) = $2 AND used_us = 0"));
        revoke->Bind(1, static_cast<int64_t>(prefix.size())).Bind(2, prefix);
        DROVER_RETURN_IF_ERROR(revoke->Run());
        if (revoke->Affected() == 0) return rules::NoJoinTokenWithPrefix(prefix);
        return absl::OkStatus();
      },
      std::move(done)));
}

absl::StatusOr<std::vector<JoinToken>> PostgresStore::LoadJoinTokens() {
  return WithReader([&](PgDb& db) -> absl::StatusOr<std::vector<JoinToken>> {
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

void PostgresStore::PutNodeCertificate(NodeCertificateRecord record, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [record = std::move(record)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT INTO node_certificates "
                                    "(fingerprint, node, not_after_us, recorded_us, revoked_us) "
                                    "VALUES ($1, $2, $3, $4, $5) "
                                    "ON CONFLICT (fingerprint) DO NOTHING"));
        put->Bind(1, record.fingerprint)
            .Bind(2, record.node)
            .Bind(3, absl::ToUnixMicros(record.not_after))
            .Bind(4, absl::ToUnixMicros(record.recorded))
            .Bind(5, absl::ToUnixMicros(record.revoked));
        return put->Run();
      },
      std::move(done)));
}

void PostgresStore::RevokeNodeCertificates(std::string node, absl::Time now, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [node = std::move(node), now](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto revoke, w.db->Prepare("UPDATE node_certificates SET revoked_us = $1 "
                                       "WHERE node = $2 AND revoked_us = 0"));
        revoke->Bind(1, absl::ToUnixMicros(now)).Bind(2, node);
        return revoke->Run();
      },
      std::move(done)));
}

absl::StatusOr<std::vector<NodeCertificateRecord>> PostgresStore::LoadNodeCertificates() {
  return WithReader([&](PgDb& db) -> absl::StatusOr<std::vector<NodeCertificateRecord>> {
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

void PostgresStore::AppendAudit(AuditRecord record, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [record = std::move(record)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto put,
            w.db->Prepare("INSERT INTO audit (time_us, who, who_kind, peer, method, target, "
                          "code, message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"));
        put->Bind(1, absl::ToUnixMicros(record.time))
            .Bind(2, record.who)
            .Bind(3, record.who_kind)
            .Bind(4, record.peer)
            .Bind(5, record.method)
            .Bind(6, record.target)
            .Bind(7, static_cast<int64_t>(record.code))
            .Bind(8, record.message);
        return put->Run();
      },
      std::move(done)));
}

absl::StatusOr<AuditPage> PostgresStore::ListAudit(const AuditQuery& query) {
  int next = 0;
  auto param = [&next] { return absl::StrCat("$", ++next); };
  std::string sql = absl::StrCat("SELECT ", kAuditColumns, " FROM audit WHERE TRUE");
  if (query.before_id > 0) absl::StrAppend(&sql, " AND id < ", param());
  if (query.since != absl::InfinitePast()) absl::StrAppend(&sql, " AND time_us >= ", param());
  if (query.who.has_value()) absl::StrAppend(&sql, " AND who = ", param());
  if (!query.method.empty()) {
    const std::string exact = param(), slash = param(), dot = param();
    absl::StrAppend(&sql, " AND (method = ", exact, " OR method LIKE ", slash,
                    " ESCAPE '\\' OR method LIKE ", dot, " ESCAPE '\\')");
  }
  absl::StrAppend(&sql, " ORDER BY id DESC LIMIT ", param());
  const int limit = std::clamp(query.limit, 1, 1000);
  return WithReader([&](PgDb& db) -> absl::StatusOr<AuditPage> {
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql));
    int index = 1;
    if (query.before_id > 0) select->Bind(index++, query.before_id);
    if (query.since != absl::InfinitePast()) select->Bind(index++, MicrosFrom(query.since));
    if (query.who.has_value()) select->Bind(index++, *query.who);
    if (!query.method.empty()) {
      select->Bind(index++, query.method);
      // "SubmitJob" ends "/drover.v1.JobService/SubmitJob"; "JobService/SubmitJob" too.
      select->Bind(index++, absl::StrCat("%/", rules::EscapeLike(query.method)));
      select->Bind(index++, absl::StrCat("%.", rules::EscapeLike(query.method)));
    }
    select->Bind(index++, static_cast<int64_t>(limit) + 1);
    AuditPage page;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      if (static_cast<int>(page.records.size()) == limit) {
        page.next_before_id = page.records.back().id;
        break;
      }
      page.records.push_back({.id = select->ColumnInt(0),
                              .time = absl::FromUnixMicros(select->ColumnInt(1)),
                              .who = select->ColumnText(2),
                              .who_kind = select->ColumnText(3),
                              .peer = select->ColumnText(4),
                              .method = select->ColumnText(5),
                              .target = select->ColumnText(6),
                              .code = static_cast<int>(select->ColumnInt(7)),
                              .message = select->ColumnText(8)});
    }
    return page;
  });
}

void PostgresStore::PruneAudit(absl::Time before, int64_t keep_newest, int64_t max_removed,
                               DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [before, keep_newest, max_removed](Writer& w) -> absl::Status {
        // The oldest id to keep: the newest `keep_newest` records, of those only the ones at
        // or after `before`.
        DROVER_ASSIGN_OR_RETURN(
            auto bound, w.db->Prepare("SELECT COALESCE(("
                                      "  SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET $1"
                                      "), 0)"));
        bound->Bind(1, std::max<int64_t>(keep_newest, 0));
        DROVER_ASSIGN_OR_RETURN(bool found, bound->Step());
        const int64_t last_over_count = found ? bound->ColumnInt(0) : 0;
        DROVER_ASSIGN_OR_RETURN(
            auto remove, w.db->Prepare("DELETE FROM audit WHERE id IN ("
                                       "  SELECT id FROM audit WHERE id <= $1 OR time_us < $2 "
                                       "  ORDER BY id LIMIT $3)"));
        remove->Bind(1, last_over_count)
            .Bind(2, MicrosFrom(before))
            .Bind(3, std::max<int64_t>(max_removed, 0));
        return remove->Run();
      },
      std::move(done)));
}

}  // namespace drover::storage
