// Thin RAII wrappers over libpq, shaped like sqlite_db.h so that the PostgreSQL store reads
// like the SQLite one: a connection (`PgDb`) and a statement (`PgStatement`) whose values are
// always sent as parameters ($1, $2, ...), never spliced into the SQL text. PostgreSQL's
// errors (SQLSTATE) become absl::Status codes that say what the caller should do.
//
// Results come back in binary form: integers (int2/int4/int8/bool), text and bytea are read
// without parsing text. A whole result is fetched at once; `Step` walks its rows.
//
// A PgDb and its statements belong to one thread at a time.
#ifndef DROVER_STORAGE_POSTGRES_DB_H_
#define DROVER_STORAGE_POSTGRES_DB_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// libpq's types, named here so that users of this header need not include <libpq-fe.h>.
struct pg_conn;
struct pg_result;

namespace drover::storage {

// Maps a failed libpq call to a status, from the result's SQLSTATE when there is one:
// 53100 disk_full -> RESOURCE_EXHAUSTED; connection errors (class 08), operator
// intervention (57), lack of resources (53) and a lost connection (no result) ->
// UNAVAILABLE; integrity violations (class 23) -> ALREADY_EXISTS; others INTERNAL. `what`
// says what was being done.
absl::Status PgError(const pg_result* result, pg_conn* conn, absl::string_view what);

class PgStatement {
 public:
  // `prepared_name` non-empty: a statement prepared on the server under that name (kept
  // and reused); empty: `sql` is sent with its parameters each time it runs.
  PgStatement(pg_conn* conn, std::string sql, std::string prepared_name);
  ~PgStatement();
  PgStatement(const PgStatement&) = delete;
  PgStatement& operator=(const PgStatement&) = delete;

  // Parameters are 1-based ($1 is index 1). Values are copied. Integers and text are sent
  // as text (the server casts them to the column's type), blobs as binary.
  PgStatement& Bind(int index, int64_t value);
  PgStatement& Bind(int index, absl::string_view text);
  PgStatement& BindBlob(int index, absl::string_view bytes);
  PgStatement& BindNull(int index);

  // The first call runs the statement; each call moves to the next row of its result:
  // true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Runs the statement, ignoring any rows.
  absl::Status Run();
  // Forgets the result and the parameters, for reuse.
  void Reset();
  // Rows the last run inserted, updated or deleted.
  int64_t Affected() const { return affected_; }

  int64_t ColumnInt(int column) const;
  bool ColumnIsNull(int column) const;
  std::string ColumnText(int column) const;
  absl::string_view ColumnBlob(int column) const;

 private:
  absl::Status Execute();

  pg_conn* conn_;
  std::string sql_;
  std::string prepared_name_;
  std::vector<std::string> values_;
  std::vector<bool> is_null_;
  std::vector<int> formats_;  // 0 text, 1 binary
  pg_result* result_ = nullptr;
  int row_ = -1;
  int rows_ = 0;
  int64_t affected_ = 0;
};

class PgDb {
 public:
  // Connects with a libpq connection string or URI ("postgres://user@host/db",
  // "host=/run/postgresql dbname=drover"). UNAVAILABLE when it cannot connect.
  static absl::StatusOr<std::unique_ptr<PgDb>> Open(const std::string& conninfo);
  ~PgDb();
  PgDb(const PgDb&) = delete;
  PgDb& operator=(const PgDb&) = delete;

  // Runs one or more statements that take no parameters and return no rows (schema,
  // transaction control, SET).
  absl::Status Exec(absl::string_view sql);
  // A statement sent with its parameters each time it runs (never fails: errors come when
  // it runs; a StatusOr so that it reads like Db::Prepare).
  absl::StatusOr<std::unique_ptr<PgStatement>> Prepare(absl::string_view sql);
  // A statement prepared on the server once and reused (the writer's hot statements).
  // Statements kept on a connection must not outlive it.
  absl::StatusOr<std::unique_ptr<PgStatement>> PrepareKept(absl::string_view sql);
  // Whether the connection was lost (the server restarted, the network failed).
  bool broken() const;
  pg_conn* raw() const { return conn_; }

 private:
  explicit PgDb(pg_conn* conn) : conn_(conn) {}
  pg_conn* conn_;
  int kept_ = 0;  // statements prepared so far: names them
};

// A connection string for logs and messages: its password, if any, replaced by "***".
std::string RedactConninfo(absl::string_view conninfo);

}  // namespace drover::storage

#endif  // DROVER_STORAGE_POSTGRES_DB_H_
