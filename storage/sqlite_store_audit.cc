#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "storage/sqlite_store_internal.h"
#include "storage/store_rules.h"

namespace drover::storage {

using sqlite_store_internal::FunctionOp;

namespace {

constexpr char kAuditColumns[] = "id, time_us, who, who_kind, peer, method, target, code, message";

using rules::EscapeLike;

}  // namespace

void SqliteStore::AppendAudit(AuditRecord record, DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [record = std::move(record)](Writer& w) -> absl::Status {
        DROVER_ASSIGN_OR_RETURN(
            auto put, w.db->Prepare("INSERT INTO audit (time_us, who, who_kind, peer, method, "
                                    "target, code, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
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

absl::StatusOr<AuditPage> SqliteStore::ListAudit(const AuditQuery& query) {
  std::string sql = absl::StrCat("SELECT ", kAuditColumns, " FROM audit WHERE 1");
  if (query.before_id > 0) absl::StrAppend(&sql, " AND id < ?");
  if (query.since != absl::InfinitePast()) absl::StrAppend(&sql, " AND time_us >= ?");
  if (query.who.has_value()) absl::StrAppend(&sql, " AND who = ?");
  if (!query.method.empty()) {
    absl::StrAppend(&sql,
                    " AND (method = ? OR method LIKE ? ESCAPE '\\' OR method LIKE ? ESCAPE '\\')");
  }
  absl::StrAppend(&sql, " ORDER BY id DESC LIMIT ?");
  const int limit = std::clamp(query.limit, 1, 1000);
  return WithReader([&](Db& db) -> absl::StatusOr<AuditPage> {
    DROVER_ASSIGN_OR_RETURN(auto select, db.Prepare(sql));
    int index = 1;
    if (query.before_id > 0) select->Bind(index++, query.before_id);
    if (query.since != absl::InfinitePast()) {
      // Far past or future times are clamped rather than overflowing the microseconds.
      select->Bind(index++, query.since < absl::UnixEpoch() ? int64_t{0}
                                                            : absl::ToUnixMicros(query.since));
    }
    if (query.who.has_value()) select->Bind(index++, *query.who);
    if (!query.method.empty()) {
      select->Bind(index++, query.method);
      // "SubmitJob" ends "/drover.v1.JobService/SubmitJob"; "JobService/SubmitJob" too.
      select->Bind(index++, absl::StrCat("%/", EscapeLike(query.method)));
      select->Bind(index++, absl::StrCat("%.", EscapeLike(query.method)));
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

void SqliteStore::PruneAudit(absl::Time before, int64_t keep_newest, int64_t max_removed,
                             DoneCallback done) {
  Enqueue(std::make_unique<FunctionOp>(
      [before, keep_newest, max_removed](Writer& w) -> absl::Status {
        // The oldest id to keep: the newest `keep_newest` records, of those only the ones at
        // or after `before`.
        DROVER_ASSIGN_OR_RETURN(
            auto bound, w.db->Prepare("SELECT COALESCE(("
                                      "  SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?"
                                      "), 0)"));
        bound->Bind(1, std::max<int64_t>(keep_newest, 0));
        DROVER_ASSIGN_OR_RETURN(bool found, bound->Step());
        const int64_t last_over_count = found ? bound->ColumnInt(0) : 0;
        DROVER_ASSIGN_OR_RETURN(
            auto remove, w.db->Prepare("DELETE FROM audit WHERE id IN ("
                                       "  SELECT id FROM audit WHERE id <= ? OR time_us < ? "
                                       "  ORDER BY id LIMIT ?)"));
        remove->Bind(1, last_over_count)
            .Bind(2, before < absl::UnixEpoch() ? int64_t{0} : absl::ToUnixMicros(before))
            .Bind(3, std::max<int64_t>(max_removed, 0));
        return remove->Run();
      },
      std::move(done)));
}

}  // namespace drover::storage
