// The PostgreSQL schema of droverd's state, as an ordered list of migrations, like
// sqlite_schema.h. Version N is the result of applying migrations 1..N; the applied version
// is kept in the one-row table `schema_version`. Called only while opening the store.
#ifndef DROVER_STORAGE_POSTGRES_SCHEMA_H_
#define DROVER_STORAGE_POSTGRES_SCHEMA_H_

#include "absl/status/statusor.h"
#include "storage/postgres_db.h"

namespace drover::storage {

// The schema version this build writes.
int LatestPostgresSchemaVersion();

// Brings the database to LatestPostgresSchemaVersion() inside one transaction, holding a
// transaction-scoped advisory lock so that droverds opening one database at once migrate it
// once: either every pending migration is applied or none. Returns the version found
// before. A database written by a newer droverd (higher version) is refused with
// FAILED_PRECONDITION.
absl::StatusOr<int> MigratePostgresSchema(PgDb& db);

}  // namespace drover::storage

#endif  // DROVER_STORAGE_POSTGRES_SCHEMA_H_
