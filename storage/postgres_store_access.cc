// PostgresStore's users, blob holders, join tokens, node certificates and audit trail: the SQL
// text that is PostgreSQL's own; the logic is store_access_internal.h's, shared with
// SqliteStore.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "storage/postgres_store_internal.h"
#include "storage/store_access_internal.h"

namespace drover::storage {

const store_ops::AccessSql PostgresEngine::kAccessSql = {
    .add_user = "INSERT INTO users (name, token_sha256, record) VALUES ($1, $2, $3) "
                "ON CONFLICT (name) DO NOTHING",
    .user_for_update = "SELECT record FROM users WHERE name = $1 FOR UPDATE",
    .set_user = "UPDATE users SET record = $1 WHERE name = $2",
    .set_user_token = "UPDATE users SET token_sha256 = $1, record = $2 WHERE name = $3",
    .load_users = "SELECT record FROM users ORDER BY name",
    .user_by_token = "SELECT record FROM users WHERE token_sha256 = $1",
    .add_blob_uploader = "INSERT INTO blob_uploaders (digest, holder, size) VALUES ($1, $2, $3) "
                         "ON CONFLICT (digest, holder) DO UPDATE SET size = EXCLUDED.size "
                         "WHERE blob_uploaders.size < 0",
    .blob_holdings = "SELECT digest, size FROM blob_uploaders WHERE holder = $1",
    .forget_blob = "DELETE FROM blob_uploaders WHERE digest = $1",
    .is_blob_uploader = "SELECT 1 FROM blob_uploaders WHERE digest = $1 AND holder = $2",
    .add_join_token = "INSERT INTO join_tokens (" DROVER_JOIN_TOKEN_COLUMNS ") "
                      "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (hash) DO NOTHING",
    .join_token_for_update = "SELECT " DROVER_JOIN_TOKEN_COLUMNS " FROM join_tokens "
                             "WHERE hash = $1 FOR UPDATE",
    .use_join_token = "UPDATE join_tokens SET used_us = $1, used_by = $2 WHERE hash = $3",
    .revoke_join_tokens = "UPDATE join_tokens SET revoked = 1 "
                          "WHERE left(hash, $1) = $2 AND used_us = 0",
    .add_node_certificate = "INSERT INTO node_certificates "
                            "(fingerprint, node, not_after_us, recorded_us, revoked_us) "
                            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (fingerprint) DO NOTHING",
    .revoke_node_certificates = "UPDATE node_certificates SET revoked_us = $1 "
                                "WHERE node = $2 AND revoked_us = 0",
    .append_audit = "INSERT INTO audit (time_us, who, who_kind, peer, method, target, code, "
                    "message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    .audit_bound = "SELECT COALESCE((SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET $1), 0)",
    .prune_audit = "DELETE FROM audit WHERE id IN (SELECT id FROM audit "
                   "WHERE id <= $1 OR time_us < $2 ORDER BY id LIMIT $3)",
};

void PostgresStore::CreateUser(UserRecord record, DoneCallback done) {
  Enqueue(store_ops::CreateUser<PostgresEngine>(std::move(record), std::move(done)));
}

void PostgresStore::SetUserToken(std::string name, std::string token_sha256, UserCallback done) {
  Enqueue(store_ops::SetUserToken<PostgresEngine>(std::move(name), std::move(token_sha256),
                                                  std::move(done)));
}

void PostgresStore::SetUserBlobQuota(std::string name, int64_t bytes, UserCallback done) {
  Enqueue(store_ops::SetUserBlobQuota<PostgresEngine>(std::move(name), bytes, std::move(done)));
}

absl::StatusOr<std::vector<v1::User>> PostgresStore::LoadUsers() {
  return WithReader([](PgDb& db) { return store_ops::LoadUsers<PostgresEngine>(db); });
}

absl::StatusOr<v1::User> PostgresStore::FindUserByToken(absl::string_view token_sha256) {
  return WithReader(
      [&](PgDb& db) { return store_ops::FindUserByToken<PostgresEngine>(db, token_sha256); });
}

void PostgresStore::AddBlobUploader(std::string digest, std::string user, int64_t size,
                                    DoneCallback done) {
  Enqueue(store_ops::AddBlobUploader<PostgresEngine>(std::move(digest), std::move(user), size,
                                                     std::move(done)));
}

absl::StatusOr<BlobHoldings> PostgresStore::BlobHoldingsOf(absl::string_view user) {
  return WithReader([&](PgDb& db) { return store_ops::BlobHoldingsOf<PostgresEngine>(db, user); });
}

void PostgresStore::ForgetBlobs(std::vector<std::string> digests, DoneCallback done) {
  Enqueue(store_ops::ForgetBlobs<PostgresEngine>(std::move(digests), std::move(done)));
}

absl::StatusOr<bool> PostgresStore::IsBlobUploader(absl::string_view digest,
                                                   absl::string_view user) {
  return WithReader(
      [&](PgDb& db) { return store_ops::IsBlobUploader<PostgresEngine>(db, digest, user); });
}

void PostgresStore::PutJoinToken(JoinToken token, DoneCallback done) {
  Enqueue(store_ops::PutJoinToken<PostgresEngine>(std::move(token), std::move(done)));
}

void PostgresStore::UseJoinToken(std::string hash, std::string node, absl::Time now,
                                 JoinTokenCallback done) {
  Enqueue(store_ops::UseJoinToken<PostgresEngine>(std::move(hash), std::move(node), now,
                                                  std::move(done)));
}

void PostgresStore::RevokeJoinTokens(std::string prefix, DoneCallback done) {
  Enqueue(store_ops::RevokeJoinTokens<PostgresEngine>(std::move(prefix), std::move(done)));
}

absl::StatusOr<std::vector<JoinToken>> PostgresStore::LoadJoinTokens() {
  return WithReader([](PgDb& db) { return store_ops::LoadJoinTokens<PostgresEngine>(db); });
}

void PostgresStore::PutNodeCertificate(NodeCertificateRecord record, DoneCallback done) {
  Enqueue(store_ops::PutNodeCertificate<PostgresEngine>(std::move(record), std::move(done)));
}

void PostgresStore::RevokeNodeCertificates(std::string node, absl::Time now, DoneCallback done) {
  Enqueue(store_ops::RevokeNodeCertificates<PostgresEngine>(std::move(node), now, std::move(done)));
}

absl::StatusOr<std::vector<NodeCertificateRecord>> PostgresStore::LoadNodeCertificates() {
  return WithReader([](PgDb& db) { return store_ops::LoadNodeCertificates<PostgresEngine>(db); });
}

void PostgresStore::AppendAudit(AuditRecord record, DoneCallback done) {
  Enqueue(store_ops::AppendAudit<PostgresEngine>(std::move(record), std::move(done)));
}

absl::StatusOr<AuditPage> PostgresStore::ListAudit(const AuditQuery& query) {
  const store_ops::ListAudit<PostgresEngine> list(query);
  return WithReader([&](PgDb& db) { return list.Run(db); });
}

void PostgresStore::PruneAudit(absl::Time before, int64_t keep_newest, int64_t max_removed,
                               DoneCallback done) {
  Enqueue(store_ops::PruneAudit<PostgresEngine>(before, keep_newest, max_removed, std::move(done)));
}

}  // namespace drover::storage
