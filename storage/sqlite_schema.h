// The SQLite schema of droverd's state, as an ordered list of migrations. Version N of the
// schema is the result of applying migrations 1..N; the applied version is kept in
// `PRAGMA user_version`. Called only while opening the store, before any other use.
#ifndef DROVER_STORAGE_SQLITE_SCHEMA_H_
#define DROVER_STORAGE_SQLITE_SCHEMA_H_

#include "absl/status/statusor.h"
#include "storage/sqlite_db.h"

namespace drover::storage {

// The schema version this build writes.
int LatestSchemaVersion();

// Brings the database to LatestSchemaVersion() inside one transaction: either every
// pending migration is applied or none. Returns the version found before. A database
// written by a newer droverd (higher version) is refused with FAILED_PRECONDITION.
absl::StatusOr<int> MigrateSchema(Db& db);

}  // namespace drover::storage

#endif  // DROVER_STORAGE_SQLITE_SCHEMA_H_
