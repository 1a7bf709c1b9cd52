// Internal to the SQL stores (see store_ops_internal.h): who may do what, once for both
// engines: users and their token hashes, who holds which blob, join tokens, node
// certificates, and the audit trail of changing calls with its retention. Each engine gives
// the SQL text that differs (AccessSql); the SQL both read alike is here.
#ifndef DROVER_STORAGE_STORE_ACCESS_INTERNAL_H_
#define DROVER_STORAGE_STORE_ACCESS_INTERNAL_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/proto_bytes.h"
#include "common/status_macros.h"
#include "storage/store.h"
#include "storage/store_ops_internal.h"
#include "storage/store_rules.h"

namespace drover::storage::store_ops {

// The columns every join token row is read with (JoinTokenFromRow).
#define DROVER_JOIN_TOKEN_COLUMNS "hash, node, create_us, expire_us, used_us, used_by, revoked"
// The columns every audit row is read with (ListAudit).
#define DROVER_AUDIT_COLUMNS "id, time_us, who, who_kind, peer, method, target, code, message"

// An engine's SQL for users, blobs, node identity and the audit. Parameters are numbered as
// the comments say. Where SQLite names a column `user` (the users' record, the blob
// holder), PostgreSQL, where USER is a keyword, names it `record` and `holder`.
struct AccessSql {
  const char* add_user;           // (name 1, token_sha256 2, record 3); nothing when the name
                                  // exists
  const char* user_for_update;    // record WHERE name = 1, the row held until the commit
  const char* set_user;           // SET record = 1 WHERE name = 2
  const char* set_user_token;     // SET token_sha256 = 1, record = 2 WHERE name = 3
  const char* load_users;         // record ORDER BY name
  const char* user_by_token;      // record WHERE token_sha256 = 1
  const char* add_blob_uploader;  // (digest 1, holder 2, size 3); a row without its size
                                  // (size < 0) gets it
  const char* blob_holdings;      // digest, size WHERE holder = 1
  const char* forget_blob;        // WHERE digest = 1
  const char* is_blob_uploader;   // 1 WHERE digest = 1 AND holder = 2
  const char* add_join_token;     // (join token columns 1..7); nothing when the hash exists
  const char* join_token_for_update;  // join token columns WHERE hash = 1, the row held
  const char* use_join_token;     // SET used_us = 1, used_by = 2 WHERE hash = 3
  const char* revoke_join_tokens;  // SET revoked = 1 WHERE the first (1) characters of hash
                                   // are 2 AND used_us = 0
  const char* add_node_certificate;  // (fingerprint 1, node 2, not_after_us 3, recorded_us 4,
                                     //  revoked_us 5); nothing when the fingerprint exists
  const char* revoke_node_certificates;  // SET revoked_us = 1 WHERE node = 2 AND revoked_us = 0
  const char* append_audit;       // (time_us 1, who 2, who_kind 3, peer 4, method 5, target 6,
                                  //  code 7, message 8)
  const char* audit_bound;        // the id of the audit row at OFFSET 1 from the newest, or 0
  const char* prune_audit;        // the first (3) rows by id WHERE id <= 1 OR time_us < 2
};

// A time as stored: microseconds, far past times clamped to 0 rather than overflowing.
inline int64_t MicrosFrom(absl::Time time) {
  return time < absl::UnixEpoch() ? int64_t{0} : absl::ToUnixMicros(time);
}

// Parses a stored v1::User; DATA_LOSS naming `what` when it is unreadable.
inline absl::StatusOr<v1::User> UserFromBytes(absl::string_view bytes, absl::string_view what) {
  v1::User user;
  if (!ParseStored(bytes, user)) return absl::DataLossError(what);
  return user;
}

template <typename E>
std::unique_ptr<typename E::WriteOp> CreateUser(UserRecord record, Store::DoneCallback done) {
  return std::make_unique<typename E::FunctionOp>(
      [record = std::move(record)](typename E::Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto put, w.db->Prepare(E::kAccessSql.add_user));
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
      std::move(done));
}

// Changes the stored record of user `name` with `change` and, when `token_sha256` is given,
// their token hash (empty: revoked); `done` gets the updated user after the commit.
template <typename E>
std::unique_ptr<typename E::WriteOp> ModifyUser(std::string name,
                                                absl::AnyInvocable<void(v1::User&)> change,
                                                std::optional<std::string> token_sha256,
                                                Store::UserCallback done) {
  auto updated = std::make_shared<v1::User>();
  return std::make_unique<typename E::FunctionOp>(
      [name = std::move(name), change = std::move(change), token_sha256 = std::move(token_sha256),
       updated](typename E::Writer& w) mutable -> absl::Status {
        const AccessSql& sql = E::kAccessSql;
        DROVER_ASSIGN_OR_RETURN(auto find, w.db->Prepare(sql.user_for_update));
        find->Bind(1, name);
        DROVER_ASSIGN_OR_RETURN(bool found, find->Step());
        if (!found) {
          return absl::NotFoundError(
              absl::StrCat("user '", name, "' does not exist; see drover user list"));
        }
        DROVER_ASSIGN_OR_RETURN(
            *updated, UserFromBytes(find->ColumnBlob(0),
                                    absl::StrCat("user '", name, "' has an unreadable record")));
        change(*updated);
        if (!token_sha256.has_value()) {
          DROVER_ASSIGN_OR_RETURN(auto put, w.db->Prepare(sql.set_user));
          put->BindBlob(1, SerializeDeterministic(*updated)).Bind(2, name);
          return put->Run();
        }
        DROVER_ASSIGN_OR_RETURN(auto put, w.db->Prepare(sql.set_user_token));
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

template <typename E>
std::unique_ptr<typename E::WriteOp> SetUserToken(std::string name, std::string token_sha256,
                                                  Store::UserCallback done) {
  const bool revoked = token_sha256.empty();
  return ModifyUser<E>(
      std::move(name), [revoked](v1::User& user) { user.set_revoked(revoked); },
      std::move(token_sha256), std::move(done));
}

template <typename E>
std::unique_ptr<typename E::WriteOp> SetUserBlobQuota(std::string name, int64_t bytes,
                                                      Store::UserCallback done) {
  return ModifyUser<E>(
      std::move(name), [bytes](v1::User& user) { user.set_blob_quota_bytes(bytes); },
      std::nullopt, std::move(done));
}

template <typename E>
absl::StatusOr<std::vector<v1::User>> LoadUsers(typename E::Db& db) {
  return LoadAll<v1::User>(db, E::kAccessSql.load_users, "a stored user is unreadable");
}

template <typename E>
absl::StatusOr<v1::User> FindUserByToken(typename E::Db& db, absl::string_view token_sha256) {
  DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(E::kAccessSql.user_by_token));
  select->Bind(1, token_sha256);
  DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
  if (!found) return absl::NotFoundError("no user has this token");
  return UserFromBytes(select->ColumnBlob(0), "a stored user is unreadable");
}

template <typename E>
std::unique_ptr<typename E::WriteOp> AddBlobUploader(std::string digest, std::string user,
                                                     int64_t size, Store::DoneCallback done) {
  return OneStatement<E>(
      E::kAccessSql.add_blob_uploader,
      [digest = std::move(digest), user = std::move(user), size](auto& s) {
        s.Bind(1, digest).Bind(2, user).Bind(3, size);
      },
      std::move(done));
}

template <typename E>
absl::StatusOr<BlobHoldings> BlobHoldingsOf(typename E::Db& db, absl::string_view user) {
  DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(E::kAccessSql.blob_holdings));
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
}

template <typename E>
std::unique_ptr<typename E::WriteOp> ForgetBlobs(std::vector<std::string> digests,
                                                 Store::DoneCallback done) {
  return std::make_unique<typename E::FunctionOp>(
      [digests = std::move(digests)](typename E::Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto forget, w.db->Prepare(E::kAccessSql.forget_blob));
        for (const std::string& digest : digests) {
          forget->Reset();
          forget->Bind(1, digest);
          DROVER_RETURN_IF_ERROR(forget->Run());
        }
        return absl::OkStatus();
      },
      std::move(done));
}

template <typename E>
absl::StatusOr<bool> IsBlobUploader(typename E::Db& db, absl::string_view digest,
                                    absl::string_view user) {
  DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(E::kAccessSql.is_blob_uploader));
  select->Bind(1, digest).Bind(2, user);
  return select->Step();
}

// Reads a join token from a row selected with DROVER_JOIN_TOKEN_COLUMNS.
template <typename Row>
JoinToken JoinTokenFromRow(const Row& row) {
  return {.hash = row.ColumnText(0),
          .node = row.ColumnText(1),
          .create_time = absl::FromUnixMicros(row.ColumnInt(2)),
          .expire_time = absl::FromUnixMicros(row.ColumnInt(3)),
          .used_time = absl::FromUnixMicros(row.ColumnInt(4)),
          .used_by = row.ColumnText(5),
          .revoked = row.ColumnInt(6) != 0};
}

template <typename E>
std::unique_ptr<typename E::WriteOp> PutJoinToken(JoinToken token, Store::DoneCallback done) {
  return std::make_unique<typename E::FunctionOp>(
      [token = std::move(token)](typename E::Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(auto put, w.db->Prepare(E::kAccessSql.add_join_token));
        put->Bind(1, token.hash)
            .Bind(2, token.node)
            .Bind(3, absl::ToUnixMicros(token.create_time))
            .Bind(4, absl::ToUnixMicros(token.expire_time))
            .Bind(5, absl::ToUnixMicros(token.used_time))
            .Bind(6, token.used_by)
            .Bind(7, int64_t{token.revoked ? 1 : 0});
        DROVER_RETURN_IF_ERROR(put->Run());
        if (put->Affected() == 0) {
          return absl::AlreadyExistsError("a join token with this hash exists");
        }
        return absl::OkStatus();
      },
      std::move(done));
}

// Uses a join token: read (holding the row), check, mark used, in the writer's transaction.
template <typename E>
class UseJoinTokenOp final : public E::WriteOp {
 public:
  UseJoinTokenOp(std::string hash, std::string node, absl::Time now, Store::JoinTokenCallback done)
      : hash_(std::move(hash)), node_(std::move(node)), now_(now), done_(std::move(done)) {}

  absl::Status Apply(typename E::Writer& w) override {
    DROVER_ASSIGN_OR_RETURN(auto select, w.db->Prepare(E::kAccessSql.join_token_for_update));
    select->Bind(1, hash_);
    DROVER_ASSIGN_OR_RETURN(bool found, select->Step());
    if (!found) return absl::NotFoundError("the join token is unknown to this droverd");
    token_ = JoinTokenFromRow(*select);
    DROVER_RETURN_IF_ERROR(rules::CheckJoinTokenUsable(token_, node_, now_));
    DROVER_ASSIGN_OR_RETURN(auto use, w.db->Prepare(E::kAccessSql.use_join_token));
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

template <typename E>
std::unique_ptr<typename E::WriteOp> UseJoinToken(std::string hash, std::string node,
                                                  absl::Time now, Store::JoinTokenCallback done) {
  return std::make_unique<UseJoinTokenOp<E>>(std::move(hash), std::move(node), now,
                                             std::move(done));
}

template <typename E>
std::unique_ptr<typename E::WriteOp> RevokeJoinTokens(std::string prefix,
                                                      Store::DoneCallback done) {
  return std::make_unique<typename E::FunctionOp>(
      [prefix = std::move(prefix)](typename E::Writer& w) -> absl::Status {
        // The prefix is hex digits only (checked here): no wildcard or quote in it.
        DROVER_RETURN_IF_ERROR(rules::CheckJoinTokenPrefix(prefix));
        DROVER_ASSIGN_OR_RETURN(auto revoke, w.db->Prepare(E::kAccessSql.revoke_join_tokens));
        revoke->Bind(1, static_cast<int64_t>(prefix.size())).Bind(2, prefix);
        DROVER_RETURN_IF_ERROR(revoke->Run());
        if (revoke->Affected() == 0) return rules::NoJoinTokenWithPrefix(prefix);
        return absl::OkStatus();
      },
      std::move(done));
}

template <typename E>
absl::StatusOr<std::vector<JoinToken>> LoadJoinTokens(typename E::Db& db) {
  DROVER_ASSIGN_OR_RETURN(
      auto select,
      db.Prepare("SELECT " DROVER_JOIN_TOKEN_COLUMNS " FROM join_tokens ORDER BY create_us DESC"));
  return AllRows<JoinToken>(*select, [](const auto& row) { return JoinTokenFromRow(row); });
}

template <typename E>
std::unique_ptr<typename E::WriteOp> PutNodeCertificate(NodeCertificateRecord record,
                                                        Store::DoneCallback done) {
  return OneStatement<E>(
      E::kAccessSql.add_node_certificate,
      [record = std::move(record)](auto& s) {
        s.Bind(1, record.fingerprint)
            .Bind(2, record.node)
            .Bind(3, absl::ToUnixMicros(record.not_after))
            .Bind(4, absl::ToUnixMicros(record.recorded))
            .Bind(5, absl::ToUnixMicros(record.revoked));
      },
      std::move(done));
}

template <typename E>
std::unique_ptr<typename E::WriteOp> RevokeNodeCertificates(std::string node, absl::Time now,
                                                            Store::DoneCallback done) {
  return OneStatement<E>(
      E::kAccessSql.revoke_node_certificates,
      [node = std::move(node), now](auto& s) { s.Bind(1, absl::ToUnixMicros(now)).Bind(2, node); },
      std::move(done));
}

template <typename E>
absl::StatusOr<std::vector<NodeCertificateRecord>> LoadNodeCertificates(typename E::Db& db) {
  DROVER_ASSIGN_OR_RETURN(
      auto select, db.Prepare("SELECT fingerprint, node, not_after_us, recorded_us, revoked_us "
                              "FROM node_certificates ORDER BY node, recorded_us"));
  return AllRows<NodeCertificateRecord>(*select, [](const auto& row) -> NodeCertificateRecord {
    return {.fingerprint = row.ColumnText(0),
            .node = row.ColumnText(1),
            .not_after = absl::FromUnixMicros(row.ColumnInt(2)),
            .recorded = absl::FromUnixMicros(row.ColumnInt(3)),
            .revoked = absl::FromUnixMicros(row.ColumnInt(4))};
  });
}

template <typename E>
std::unique_ptr<typename E::WriteOp> AppendAudit(AuditRecord record, Store::DoneCallback done) {
  return OneStatement<E>(
      E::kAccessSql.append_audit,
      [record = std::move(record)](auto& s) {
        s.Bind(1, absl::ToUnixMicros(record.time))
            .Bind(2, record.who)
            .Bind(3, record.who_kind)
            .Bind(4, record.peer)
            .Bind(5, record.method)
            .Bind(6, record.target)
            .Bind(7, static_cast<int64_t>(record.code))
            .Bind(8, record.message);
      },
      std::move(done));
}

// Store::ListAudit: the SQL is built from the query's filters, then run on a reader
// connection by Run.
template <typename E>
class ListAudit {
 public:
  explicit ListAudit(const AuditQuery& query)
      : query_(query), limit_(std::clamp(query.limit, 1, 1000)) {
    ParamCounter<E> param;
    sql_ = "SELECT " DROVER_AUDIT_COLUMNS " FROM audit WHERE TRUE";
    if (query.before_id > 0) absl::StrAppend(&sql_, " AND id < ", param.Next());
    if (query.since != absl::InfinitePast()) {
      absl::StrAppend(&sql_, " AND time_us >= ", param.Next());
    }
    if (query.who.has_value()) absl::StrAppend(&sql_, " AND who = ", param.Next());
    if (!query.method.empty()) {
      const std::string exact = param.Next(), slash = param.Next(), dot = param.Next();
      absl::StrAppend(&sql_, " AND (method = ", exact, " OR method LIKE ", slash,
                      " ESCAPE '\\' OR method LIKE ", dot, " ESCAPE '\\')");
    }
    absl::StrAppend(&sql_, " ORDER BY id DESC LIMIT ", param.Next());
  }

  absl::StatusOr<AuditPage> Run(typename E::Db& db) const {
    const AuditQuery& query = query_;
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql_));
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
    select->Bind(index++, static_cast<int64_t>(limit_) + 1);
    AuditPage page;
    while (true) {
      DROVER_ASSIGN_OR_RETURN(bool row, select->Step());
      if (!row) break;
      if (static_cast<int>(page.records.size()) == limit_) {
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
  }

 private:
  const AuditQuery& query_;
  const int limit_;
  std::string sql_;
};

template <typename E>
std::unique_ptr<typename E::WriteOp> PruneAudit(absl::Time before, int64_t keep_newest,
                                                int64_t max_removed, Store::DoneCallback done) {
  return std::make_unique<typename E::FunctionOp>(
      [before, keep_newest, max_removed](typename E::Writer& w) -> absl::Status {
        // The oldest id to keep: the newest `keep_newest` records, of those only the ones at
        // or after `before`.
        DROVER_ASSIGN_OR_RETURN(auto bound, w.db->Prepare(E::kAccessSql.audit_bound));
        bound->Bind(1, std::max<int64_t>(keep_newest, 0));
        DROVER_ASSIGN_OR_RETURN(bool found, bound->Step());
        const int64_t last_over_count = found ? bound->ColumnInt(0) : 0;
        DROVER_ASSIGN_OR_RETURN(auto remove, w.db->Prepare(E::kAccessSql.prune_audit));
        remove->Bind(1, last_over_count)
            .Bind(2, MicrosFrom(before))
            .Bind(3, std::max<int64_t>(max_removed, 0));
        return remove->Run();
      },
      std::move(done));
}

}  // namespace drover::storage::store_ops

#endif  // DROVER_STORAGE_STORE_ACCESS_INTERNAL_H_
