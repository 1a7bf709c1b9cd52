#include "storage/sqlite_schema.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace drover::storage {
namespace {

// Never edit a migration that has shipped; append a new one.
const std::vector<const char*>& Migrations() {
  static const std::vector<const char*> migrations = {
      // 1: jobs, their tags, idempotency keys.
      R"sql(
        CREATE TABLE jobs (
          seq             INTEGER PRIMARY KEY AUTOINCREMENT,
          idempotency_key TEXT UNIQUE,
          state           INTEGER NOT NULL,
          experiment      TEXT NOT NULL,
          priority        INTEGER NOT NULL,
          version         INTEGER NOT NULL,
          create_time_us  INTEGER NOT NULL,
          spec            BLOB NOT NULL,   -- drover.v1.JobSpec
          status          BLOB NOT NULL    -- drover.v1.JobStatus
        );
        CREATE INDEX jobs_by_state ON jobs (state, seq);
        CREATE INDEX jobs_by_experiment ON jobs (experiment, seq);
        CREATE TABLE job_tags (
          seq   INTEGER NOT NULL REFERENCES jobs (seq),
          key   TEXT NOT NULL,
          value TEXT NOT NULL,
          PRIMARY KEY (key, value, seq)
        ) WITHOUT ROWID;
      )sql",
      // 2: compute targets.
      R"sql(
        CREATE TABLE compute_targets (
          name   TEXT PRIMARY KEY,
          target BLOB NOT NULL   -- drover.v1.ComputeTarget
        ) WITHOUT ROWID;
      )sql",
      // 3: imported images (name -> OCI archive digest).
      R"sql(
        CREATE TABLE images (
          name  TEXT PRIMARY KEY,
          image BLOB NOT NULL   -- drover.v1.Image
        ) WITHOUT ROWID;
      )sql",
      // 4: datastores (credentials included: the database is droverd's alone).
      R"sql(
        CREATE TABLE datastores (
          name      TEXT PRIMARY KEY,
          datastore BLOB NOT NULL   -- drover.v1.Datastore
        ) WITHOUT ROWID;
      )sql",
      // 5: what administrators set on nodes (cordon, drain) and the pause of node-loss
      // handling, with every node it counts.
      R"sql(
        CREATE TABLE node_admin (
          name        TEXT PRIMARY KEY,
          draining    INTEGER NOT NULL,   -- 0: cordoned, 1: draining
          reason      TEXT NOT NULL,
          set_time_us INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE node_loss_pause (
          id              INTEGER PRIMARY KEY CHECK (id = 1),  -- one row while paused
          paused_since_us INTEGER NOT NULL
        );
        CREATE TABLE node_loss_pause_nodes (
          name         TEXT PRIMARY KEY,
          role         INTEGER NOT NULL,  -- 0 counted, 1 waiting, 2 declared lost
          listed       INTEGER NOT NULL,
          last_seen_us INTEGER NOT NULL,
          lost_at_us   INTEGER NOT NULL,
          node         BLOB NOT NULL      -- drover.v1.Node
        ) WITHOUT ROWID;
      )sql",
      // 6: users with their token's hash, job owners, who uploaded which blob.
      R"sql(
        CREATE TABLE users (
          name         TEXT PRIMARY KEY,
          token_sha256 TEXT UNIQUE,        -- NULL once revoked
          user         BLOB NOT NULL       -- drover.v1.User
        ) WITHOUT ROWID;
        ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
        CREATE INDEX jobs_by_owner ON jobs (owner, seq);
        CREATE TABLE blob_uploaders (
          digest TEXT NOT NULL,
          user   TEXT NOT NULL,
          PRIMARY KEY (digest, user)
        ) WITHOUT ROWID;
      )sql",
      // 7: node identity: join tokens (only their SHA-256) and the node certificates droverd
      // issued or saw, with their revocation.
      R"sql(
        CREATE TABLE join_tokens (
          hash          TEXT PRIMARY KEY,  -- SHA-256 of the token, hex
          node          TEXT NOT NULL,     -- the name it is bound to; '' for any
          create_us     INTEGER NOT NULL,
          expire_us     INTEGER NOT NULL,
          used_us       INTEGER NOT NULL,  -- 0: unused
          used_by       TEXT NOT NULL,
          revoked       INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE node_certificates (
          fingerprint   TEXT PRIMARY KEY,  -- SHA-256 of the DER certificate, hex
          node          TEXT NOT NULL,
          not_after_us  INTEGER NOT NULL,
          recorded_us   INTEGER NOT NULL,
          revoked_us    INTEGER NOT NULL   -- 0: not revoked
        ) WITHOUT ROWID;
        CREATE INDEX node_certificates_by_node ON node_certificates (node);
      )sql",
      // 8: the audit of changing calls (docs/security.md): who, from where, what, result.
      R"sql(
        CREATE TABLE audit (
          id        INTEGER PRIMARY KEY AUTOINCREMENT,
          time_us   INTEGER NOT NULL,
          who       TEXT NOT NULL,     -- user or node name; '' for anonymous
          who_kind  TEXT NOT NULL,     -- user, node, local, anonymous
          peer      TEXT NOT NULL,
          method    TEXT NOT NULL,     -- /drover.v1.JobService/SubmitJob
          target    TEXT NOT NULL,
          code      INTEGER NOT NULL,  -- gRPC status code
          message   TEXT NOT NULL
        );
        CREATE INDEX audit_by_time ON audit (time_us);
        CREATE INDEX audit_by_who ON audit (who, id);
      )sql",
      // 9: blob quotas: each blob a user holds (uploaded, or their job's outputs) with its
      // size, -1 where an older droverd did not record it.
      R"sql(
        ALTER TABLE blob_uploaders ADD COLUMN size INTEGER NOT NULL DEFAULT -1;
        CREATE INDEX blob_uploaders_by_user ON blob_uploaders (user);
      )sql",
      // 10: the leader lease (Store::AcquireLeaderLease): one row while someone holds it or
      // held it, its fencing token never going back.
      R"sql(
        CREATE TABLE leader_lease (
          id        INTEGER PRIMARY KEY CHECK (id = 1),
          holder    TEXT NOT NULL,
          address   TEXT NOT NULL,
          token     INTEGER NOT NULL,   -- larger on every takeover
          expire_us INTEGER NOT NULL
        );
      )sql",
      // 11: sweeps (sweep.proto) and their trials, a trial row written with its job in one
      // write; (sweep_seq, idx) keeps any trial index from being started twice.
      R"sql(
        CREATE TABLE sweeps (
          seq             INTEGER PRIMARY KEY AUTOINCREMENT,
          id              TEXT NOT NULL UNIQUE,   -- "s-" and 16 hex digits
          owner           TEXT NOT NULL,
          idempotency_key TEXT,                   -- NULL: none
          state           INTEGER NOT NULL,       -- drover.v1.SweepStatus.State
          create_time_us  INTEGER NOT NULL,
          sweep           BLOB NOT NULL,          -- drover.v1.Sweep without trials
          UNIQUE (owner, idempotency_key)
        );
        CREATE INDEX sweeps_by_state ON sweeps (state, seq);
        CREATE INDEX sweeps_by_owner ON sweeps (owner, seq);
        CREATE TABLE sweep_trials (
          sweep_seq INTEGER NOT NULL REFERENCES sweeps (seq),
          idx       INTEGER NOT NULL,
          job_seq   INTEGER NOT NULL REFERENCES jobs (seq),
          trial     BLOB NOT NULL,                -- drover.v1.SweepTrial
          PRIMARY KEY (sweep_seq, idx)
        ) WITHOUT ROWID;
      )sql",
  };
  return migrations;
}

}  // namespace

int LatestSchemaVersion() { return static_cast<int>(Migrations().size()); }

absl::StatusOr<int> MigrateSchema(Db& db) {
  if (absl::Status s = db.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  auto fail = [&db](absl::Status status) {
    (void)db.Exec("ROLLBACK");
    return status;
  };
  absl::StatusOr<std::unique_ptr<Statement>> read = db.Prepare("PRAGMA user_version");
  if (!read.ok()) return fail(read.status());
  absl::StatusOr<bool> row = (*read)->Step();
  if (!row.ok()) return fail(row.status());
  int found = static_cast<int>((*read)->ColumnInt(0));
  read->reset();
  if (found > LatestSchemaVersion()) {
    return fail(absl::FailedPreconditionError(absl::StrCat(
        "the state database has schema version ", found, " but this droverd knows only up to ",
        LatestSchemaVersion(), "; run a droverd at least as new as the one that wrote it")));
  }
  for (int version = found + 1; version <= LatestSchemaVersion(); ++version) {
    if (absl::Status s = db.Exec(Migrations()[version - 1]); !s.ok()) {
      return fail(absl::InternalError(
          absl::StrCat("schema migration ", version, " failed: ", s.message())));
    }
  }
  // Only when something changed: an unchanged database is not written at start, so that
  // droverd starts on a full disk too.
  if (found < LatestSchemaVersion()) {
    if (absl::Status s = db.Exec(absl::StrCat("PRAGMA user_version = ", LatestSchemaVersion()));
        !s.ok()) {
      return fail(s);
    }
  }
  if (absl::Status s = db.Exec("COMMIT"); !s.ok()) return fail(s);
  return found;
}

}  // namespace drover::storage
