#include "storage/postgres_db.h"

#include <libpq-fe.h>

#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace drover::storage {
namespace {

// Type OIDs of the binary results we read (pg_type.h, stable since PostgreSQL 7).
constexpr Oid kBoolOid = 16;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;

// A big-endian (network order) integer of `bytes` bytes, as binary results give them.
uint64_t LoadBigEndian(const char* p, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value = (value << 8) | static_cast<unsigned char>(p[i]);
  return value;
}

}  // namespace

absl::Status PgError(const pg_result* result, pg_conn* conn, absl::string_view what) {
  std::string detail;
  const char* sqlstate = nullptr;
  if (result != nullptr) {
    detail = PQresultErrorMessage(result);
    sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  }
  if (detail.empty() && conn != nullptr) detail = PQerrorMessage(conn);
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
  std::string message = absl::StrCat(what, ": ", detail.empty() ? "no answer" : detail);
  if (sqlstate == nullptr || (conn != nullptr && PQstatus(conn) == CONNECTION_BAD)) {
    return absl::UnavailableError(message);  // the connection is gone
  }
  absl::string_view state = sqlstate;
  if (state == "53100") return absl::ResourceExhaustedError(message);
  if (absl::StartsWith(state, "08") || absl::StartsWith(state, "57") ||
      absl::StartsWith(state, "53") || state == "40001" || state == "40P01" ||
      state == "25006") {  // 25006: read-only transaction (a standby server)
    return absl::UnavailableError(message);
  }
  if (absl::StartsWith(state, "23")) return absl::AlreadyExistsError(message);
  return absl::InternalError(message);
}

PgStatement::PgStatement(pg_conn* conn, std::string sql, std::string prepared_name)
    : conn_(conn), sql_(std::move(sql)), prepared_name_(std::move(prepared_name)) {}

PgStatement::~PgStatement() { PQclear(result_); }

namespace {

void Grow(std::vector<std::string>& values, std::vector<bool>& is_null, std::vector<int>& formats,
          int index) {
  if (static_cast<int>(values.size()) < index) {
    values.resize(index);
    is_null.resize(index, true);
    formats.resize(index, 0);
  }
}

}  // namespace

PgStatement& PgStatement::Bind(int index, int64_t value) {
  Grow(values_, is_null_, formats_, index);
  values_[index - 1] = absl::StrCat(value);
  is_null_[index - 1] = false;
  formats_[index - 1] = 0;
  return *this;
}

PgStatement& PgStatement::Bind(int index, absl::string_view text) {
  Grow(values_, is_null_, formats_, index);
  values_[index - 1] = std::string(text);
  is_null_[index - 1] = false;
  formats_[index - 1] = 0;
  return *this;
}

PgStatement& PgStatement::BindBlob(int index, absl::string_view bytes) {
  Grow(values_, is_null_, formats_, index);
  values_[index - 1] = std::string(bytes);
  is_null_[index - 1] = false;
  formats_[index - 1] = 1;
  return *this;
}

PgStatement& PgStatement::BindNull(int index) {
  Grow(values_, is_null_, formats_, index);
  values_[index - 1].clear();
  is_null_[index - 1] = true;
  return *this;
}

absl::Status PgStatement::Execute() {
  const int n = static_cast<int>(values_.size());
  std::vector<const char*> values(n);
  std::vector<int> lengths(n);
  for (int i = 0; i < n; ++i) {
    values[i] = is_null_[i] ? nullptr : values_[i].c_str();
    lengths[i] = static_cast<int>(values_[i].size());
  }
  PQclear(result_);
  if (prepared_name_.empty()) {
    result_ = PQexecParams(conn_, sql_.c_str(), n, nullptr, values.data(), lengths.data(),
                           formats_.data(), /*resultFormat=*/1);
  } else {
    result_ = PQexecPrepared(conn_, prepared_name_.c_str(), n, values.data(), lengths.data(),
                             formats_.data(), /*resultFormat=*/1);
  }
  ExecStatusType status = result_ == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result_);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    absl::Status error = PgError(result_, conn_, absl::StrCat("running '", sql_, "'"));
    PQclear(result_);
    result_ = nullptr;
    return error;
  }
  rows_ = PQntuples(result_);
  const char* affected = PQcmdTuples(result_);
  affected_ = (affected != nullptr && *affected != '\0') ? std::strtoll(affected, nullptr, 10) : 0;
  row_ = -1;
  return absl::OkStatus();
}

absl::StatusOr<bool> PgStatement::Step() {
  if (result_ == nullptr) {
    if (absl::Status s = Execute(); !s.ok()) return s;
  }
  if (row_ + 1 >= rows_) {
    row_ = rows_;
    return false;
  }
  ++row_;
  return true;
}

absl::Status PgStatement::Run() {
  PQclear(result_);
  result_ = nullptr;
  return Execute();
}

void PgStatement::Reset() {
  PQclear(result_);
  result_ = nullptr;
  row_ = -1;
  rows_ = 0;
  values_.clear();
  is_null_.clear();
  formats_.clear();
}

int64_t PgStatement::ColumnInt(int column) const {
  if (result_ == nullptr || row_ < 0 || row_ >= rows_ || PQgetisnull(result_, row_, column)) {
    return 0;
  }
  const char* value = PQgetvalue(result_, row_, column);
  switch (PQftype(result_, column)) {
    case kInt8Oid:
      return static_cast<int64_t>(LoadBigEndian(value, 8));
    case kInt4Oid:
      return static_cast<int32_t>(LoadBigEndian(value, 4));
    case kInt2Oid:
      return static_cast<int16_t>(LoadBigEndian(value, 2));
    case kBoolOid:
      return value[0] != 0 ? 1 : 0;
    default:
      return 0;  // not an integer column: a mistake in the query, caught by the tests
  }
}

bool PgStatement::ColumnIsNull(int column) const {
  return result_ == nullptr || row_ < 0 || row_ >= rows_ || PQgetisnull(result_, row_, column);
}

std::string PgStatement::ColumnText(int column) const { return std::string(ColumnBlob(column)); }

absl::string_view PgStatement::ColumnBlob(int column) const {
  if (ColumnIsNull(column)) return absl::string_view();
  return absl::string_view(PQgetvalue(result_, row_, column),
                           static_cast<size_t>(PQgetlength(result_, row_, column)));
}

absl::StatusOr<std::unique_ptr<PgDb>> PgDb::Open(const std::string& conninfo) {
  pg_conn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr) {
    return absl::UnavailableError("connecting to PostgreSQL: out of memory");
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string detail = PQerrorMessage(conn);
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
    PQfinish(conn);
    return absl::UnavailableError(
        absl::StrCat("cannot connect to PostgreSQL at '", RedactConninfo(conninfo), "': ", detail,
                     "; check that the server runs and that --store names it"));
  }
  // Notices (e.g. "relation already exists, skipping") are not droverd's business.
  PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<PgDb>(new PgDb(conn));
}

PgDb::~PgDb() { PQfinish(conn_); }

absl::Status PgDb::Exec(absl::string_view sql) {
  std::string text(sql);
  pg_result* result = PQexec(conn_, text.c_str());
  ExecStatusType status = result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result);
  absl::Status out = absl::OkStatus();
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    out = PgError(result, conn_, absl::StrCat("running '", text.substr(0, 60), "'"));
  }
  PQclear(result);
  return out;
}

absl::StatusOr<std::unique_ptr<PgStatement>> PgDb::Prepare(absl::string_view sql) {
  return std::make_unique<PgStatement>(conn_, std::string(sql), std::string());
}

absl::StatusOr<std::unique_ptr<PgStatement>> PgDb::PrepareKept(absl::string_view sql) {
  std::string name = absl::StrCat("drover_", ++kept_);
  std::string text(sql);
  pg_result* result = PQprepare(conn_, name.c_str(), text.c_str(), 0, nullptr);
  ExecStatusType status = result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result);
  if (status != PGRES_COMMAND_OK) {
    absl::Status error = PgError(result, conn_, absl::StrCat("preparing '", text, "'"));
    PQclear(result);
    return error;
  }
  PQclear(result);
  return std::make_unique<PgStatement>(conn_, std::move(text), std::move(name));
}

bool PgDb::broken() const { return PQstatus(conn_) != CONNECTION_OK; }

std::string RedactConninfo(absl::string_view conninfo) {
  std::string out(conninfo);
  // URI: scheme://user:password@host/...
  if (size_t scheme = out.find("://"); scheme != std::string::npos) {
    size_t at = out.find('@', scheme + 3);
    size_t slash = out.find('/', scheme + 3);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      size_t colon = out.find(':', scheme + 3);
      if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  // key=value form, and a URI's ?password=... parameter.
  {
    const std::string key = "password=";
    size_t pos = 0;
    while ((pos = out.find(key, pos)) != std::string::npos) {
      size_t start = pos + key.size();
      size_t end = out.find_first_of(" &", start);
      if (end == std::string::npos) end = out.size();
      out.replace(start, end - start, "***");
      pos = start + 3;
    }
  }
  return out;
}

}  // namespace drover::storage
