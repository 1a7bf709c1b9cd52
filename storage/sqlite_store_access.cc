// SqliteStore's users, blob holders, join tokens, node certificates and audit trail: the SQL
// text that is SQLite's own; the logic is store_access_internal.h's, shared with
// PostgresStore.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "storage/sqlite_store_internal.h"
#include "storage/store_access_internal.h"

namespace drover::storage {

const store_ops::AccessSql SqliteEngine::kAccessSql = {
    .add_user = "INSERT INTO users (name, token_sha256, user) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (name) DO NOTHING",
    // The writer holds the database's one write lock (BEGIN IMMEDIATE): rows it reads stay
    // as read until the commit.
    .user_for_update = "SELECT user FROM users WHERE name = ?1",
    .set_user = "UPDATE users SET user = ?1 WHERE name = ?2",
    .set_user_token = "UPDATE users SET token_sha256 = ?1, user = ?2 WHERE name = ?3",
    .load_users = "SELECT user FROM users ORDER BY name",
    .user_by_token = "SELECT user FROM users WHERE token_sha256 = ?1",
    .add_blob_uploader = "INSERT INTO blob_uploaders (digest, user, size) VALUES (?1, ?2, ?3) "
                         "ON CONFLICT (digest, user) DO UPDATE SET size = excluded.size "
                         "WHERE size < 0",
    .blob_holdings = "SELECT digest, size FROM blob_uploaders WHERE user = ?1",
    .forget_blob = "DELETE FROM blob_uploaders WHERE digest = ?1",
    .is_blob_uploader = "SELECT 1 FROM blob_uploaders WHERE digest = ?1 AND user = ?2",
    .add_join_token = "INSERT INTO join_tokens (" DROVER_JOIN_TOKEN_COLUMNS ") "
                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (hash) DO NOTHING",
    .join_token_for_update = "SELECT " DROVER_JOIN_TOKEN_COLUMNS " FROM join_tokens "
                             "WHERE hash = ?1",
    .use_join_token = "UPDATE join_tokens SET used_us = ?1, used_by = ?2 WHERE hash = ?3",
    .revoke_join_tokens = "UPDATE join_tokens SET revoked = 1 "
                          "WHERE substr(hash, 1, ?1) = ?2 AND used_us = 0",
    .add_node_certificate = "INSERT OR IGNORE INTO node_certificates "
                            "(fingerprint, node, not_after_us, recorded_us, revoked_us) "
                            "VALUES (?1, ?2, ?3, ?4, ?5)",
    .revoke_node_certificates = "UPDATE node_certificates SET revoked_us = ?1 "
                                "WHERE node = ?2 AND revoked_us = 0",
    .append_audit = "INSERT INTO audit (time_us, who, who_kind, peer, method, target, code, "
                    "message) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    .audit_bound = "SELECT COALESCE((SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?1), 0)",
    .prune_audit = "DELETE FROM audit WHERE id IN (SELECT id FROM audit "
                   "WHERE id <= ?1 OR time_us < ?2 ORDER BY id LIMIT ?3)",
};

void SqliteStore::CreateUser(UserRecord record, DoneCallback done) {
  Enqueue(store_ops::CreateUser<SqliteEngine>(std::move(record), std::move(done)));
}

void SqliteStore::SetUserToken(std::string name, std::string token_sha256, UserCallback done) {
  Enqueue(store_ops::SetUserToken<SqliteEngine>(std::move(name), std::move(token_sha256),
                                                std::move(done)));
}

void SqliteStore::SetUserBlobQuota(std::string name, int64_t bytes, UserCallback done) {
  Enqueue(store_ops::SetUserBlobQuota<SqliteEngine>(std::move(name), bytes, std::move(done)));
}

absl::StatusOr<std::vector<v1::User>> SqliteStore::LoadUsers() {
  return WithReader([](Db& db) { return store_ops::LoadUsers<SqliteEngine>(db); });
}

absl::StatusOr<v1::User> SqliteStore::FindUserByToken(absl::string_view token_sha256) {
  return WithReader(
      [&](Db& db) { return store_ops::FindUserByToken<SqliteEngine>(db, token_sha256); });
}

void SqliteStore::AddBlobUploader(std::string digest, std::string user, int64_t size,
                                  DoneCallback done) {
  Enqueue(store_ops::AddBlobUploader<SqliteEngine>(std::move(digest), std::move(user), size,
                                                   std::move(done)));
}

absl::StatusOr<BlobHoldings> SqliteStore::BlobHoldingsOf(absl::string_view user) {
  return WithReader([&](Db& db) { return store_ops::BlobHoldingsOf<SqliteEngine>(db, user); });
}

void SqliteStore::ForgetBlobs(std::vector<std::string> digests, DoneCallback done) {
  Enqueue(store_ops::ForgetBlobs<SqliteEngine>(std::move(digests), std::move(done)));
}

absl::StatusOr<bool> SqliteStore::IsBlobUploader(absl::string_view digest,
                                                 absl::string_view user) {
  return WithReader(
      [&](Db& db) { return store_ops::IsBlobUploader<SqliteEngine>(db, digest, user); });
}

void SqliteStore::PutJoinToken(JoinToken token, DoneCallback done) {
  Enqueue(store_ops::PutJoinToken<SqliteEngine>(std::move(token), std::move(done)));
}

void SqliteStore::UseJoinToken(std::string hash, std::string node, absl::Time now,
                               JoinTokenCallback done) {
  Enqueue(store_ops::UseJoinToken<SqliteEngine>(std::move(hash), std::move(node), now,
                                                std::move(done)));
}

void SqliteStore::RevokeJoinTokens(std::string prefix, DoneCallback done) {
  Enqueue(store_ops::RevokeJoinTokens<SqliteEngine>(std::move(prefix), std::move(done)));
}

absl::StatusOr<std::vector<JoinToken>> SqliteStore::LoadJoinTokens() {
  return WithReader([](Db& db) { return store_ops::LoadJoinTokens<SqliteEngine>(db); });
}

void SqliteStore::PutNodeCertificate(NodeCertificateRecord record, DoneCallback done) {
  Enqueue(store_ops::PutNodeCertificate<SqliteEngine>(std::move(record), std::move(done)));
}

void SqliteStore::RevokeNodeCertificates(std::string node, absl::Time now, DoneCallback done) {
  Enqueue(store_ops::RevokeNodeCertificates<SqliteEngine>(std::move(node), now, std::move(done)));
}

absl::StatusOr<std::vector<NodeCertificateRecord>> SqliteStore::LoadNodeCertificates() {
  return WithReader([](Db& db) { return store_ops::LoadNodeCertificates<SqliteEngine>(db); });
}

void SqliteStore::AppendAudit(AuditRecord record, DoneCallback done) {
  Enqueue(store_ops::AppendAudit<SqliteEngine>(std::move(record), std::move(done)));
}

absl::StatusOr<AuditPage> SqliteStore::ListAudit(const AuditQuery& query) {
  const store_ops::ListAudit<SqliteEngine> list(query);
  return WithReader([&](Db& db) { return list.Run(db); });
}

void SqliteStore::PruneAudit(absl::Time before, int64_t keep_newest, int64_t max_removed,
                             DoneCallback done) {
  Enqueue(store_ops::PruneAudit<SqliteEngine>(before, keep_newest, max_removed, std::move(done)));
}

}  // namespace drover::storage
