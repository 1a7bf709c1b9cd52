// Thin RAII wrappers over the SQLite C API: a connection and a prepared statement, with
// SQLite result codes turned into absl::Status codes that say what the caller should do.
// A Db and its Statements belong to one thread at a time.
#ifndef DROVER_STORAGE_SQLITE_DB_H_
#define DROVER_STORAGE_SQLITE_DB_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace drover::storage {

// Maps a SQLite result code to a status: SQLITE_FULL -> RESOURCE_EXHAUSTED (the state disk
// is full), SQLITE_IOERR/BUSY/LOCKED/CANTOPEN -> UNAVAILABLE, SQLITE_CONSTRAINT ->
// ALREADY_EXISTS, others INTERNAL. `what` says what was being done.
absl::Status SqliteError(int code, absl::string_view what, sqlite3* db = nullptr);

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in SQLite. Text and blobs are copied.
  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, absl::string_view text);
  Statement& BindBlob(int index, absl::string_view bytes);
  Statement& BindNull(int index);

  // Runs one step: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps until done (for statements without results).
  absl::Status Run();
  // Resets for reuse and clears bindings.
  void Reset();
  // Rows the last run of this statement inserted, updated or deleted (0 for a statement
  // that writes nothing), as PgStatement::Affected.
  int64_t Affected() const { return affected_; }

  int64_t ColumnInt(int column) const { return sqlite3_column_int64(stmt_, column); }
  bool ColumnIsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string ColumnText(int column) const;
  absl::string_view ColumnBlob(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  int64_t affected_ = 0;
};

class Db {
 public:
  // Opens (creating if needed) the database at `path`. UNAVAILABLE when it cannot.
  static absl::StatusOr<std::unique_ptr<Db>> Open(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs one or more statements without results.
  absl::Status Exec(absl::string_view sql);
  // Prepares a statement meant to be kept and reused.
  absl::StatusOr<std::unique_ptr<Statement>> Prepare(absl::string_view sql);
  sqlite3* raw() const { return db_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

}  // namespace drover::storage

#endif  // DROVER_STORAGE_SQLITE_DB_H_
