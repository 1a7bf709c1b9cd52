// `drover audit`: the audit of changing calls droverd keeps (admins; docs/security.md),
// newest first, paged through AdminService.ListAuditRecords.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "cli/format.h"
#include "cli/invocation.h"
#include "google/protobuf/util/time_util.h"

namespace drover::cli {
namespace {

using google::protobuf::util::TimeUtil;

// The largest page droverd gives.
constexpr int64_t kMaxPage = 1000;

// `--since`: a duration back from now ("90m", "1h", "7d") or a time ("2026-05-01T12:00:00Z").
absl::StatusOr<absl::Time> ParseSince(absl::string_view text, absl::Time now) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "--since: '", text.substr(0, 80),
        "' is neither a duration back from now (30m, 1h, 7d) nor a time (2026-05-01T12:00:00Z)"));
  };
  absl::Duration back;
  absl::string_view days = text;
  int64_t count = 0;
  if (absl::ConsumeSuffix(&days, "d") && absl::SimpleAtoi(days, &count)) {
    if (count <= 0 || count > 100'000) return bad();
    return now - absl::Hours(24 * count);
  }
  if (absl::ParseDuration(text, &back)) {
    if (back <= absl::ZeroDuration() || back > absl::Hours(24 * 100'000)) return bad();
    return now - back;
  }
  absl::Time at;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, text, &at, &error) && at > absl::UnixEpoch() &&
      at < absl::FromUnixSeconds(TimeUtil::kTimestampMaxSeconds)) {
    return at;
  }
  return bad();
}

// "JobService/SubmitJob" of "/drover.v1.JobService/SubmitJob".
std::string ShortMethod(const std::string& method) {
  size_t slash = method.rfind('/');
  if (slash == std::string::npos || slash == 0) return method;
  size_t dot = method.rfind('.', slash);
  return dot == std::string::npos ? method.substr(1) : method.substr(dot + 1);
}

std::string CodeName(int code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",  "ALREADY_EXISTS",    "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",       "UNAVAILABLE",       "DATA_LOSS",
      "UNAUTHENTICATED"};
  return code >= 0 && code < 17 ? kNames[code] : absl::StrCat(code);
}

std::string Who(const v1::AuditRecord& record) {
  if (record.who().empty()) return "(" + (record.who_kind().empty() ? "anonymous" : record.who_kind()) + ")";
  if (record.who_kind() == "node") return "node:" + record.who();
  return record.who();
}

}  // namespace

int AuditCommand(Invocation& inv, const std::vector<std::string>& args) {
  std::string since_text;
  std::string user;
  std::string method;
  int64_t limit = 50;
  bool json = false;
  FlagSet flags(
      "drover audit [flags]",
      "Shows the calls that changed something (or tried to), newest first: TIME, WHO (a\n"
      "user, node:NAME, local-socket, or (anonymous)), FROM (the caller's address, unix\n"
      "for the local socket), METHOD, TARGET (job id or name; never a token or secret) and\n"
      "RESULT (OK, or the code and message of a refusal or error). Reads are not recorded.\n"
      "For admins; droverd keeps records for --audit-retention (docs/operations.md).");
  flags.String("since", &since_text,
               "Only calls since this long ago (30m, 1h, 7d) or since this time (RFC 3339)",
               "DURATION|TIME");
  flags.String("user", &user, "Only calls by this user (or node, or local-socket)", "NAME");
  flags.String("method", &method, "Only this method (SubmitJob, JobService/CancelJob, ...)",
               "NAME");
  flags.Int("limit", &limit, "Show at most N records (follows pages up to N)");
  flags.Bool("json", &json, "Print a JSON array of records (as --output json)");
  AddGlobalFlags(&flags, &inv.global());
  std::vector<std::string> positional;
  if (auto done = inv.Parse(flags, args, &positional, /*interspersed=*/true,
                            "  drover audit --since 1h\n"
                            "  drover audit --user alice --method CancelJob --limit 20\n"
                            "  drover audit --since 2026-05-01T00:00:00Z --json | jq .\n")) {
    return *done;
  }
  if (auto done = NoPositionals(inv, "audit", positional)) return *done;
  if (json) inv.global().json = true;
  if (limit < 1) return inv.Fail(kExitUsage, "--limit: must be at least 1");
  v1::ListAuditRecordsRequest request;
  if (!since_text.empty()) {
    absl::StatusOr<absl::Time> since = ParseSince(since_text, inv.ctx().now());
    if (!since.ok()) return inv.Usage(since.status());
    *request.mutable_since() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(*since));
  }
  request.set_who(user);
  request.set_method(method);
  int exit_code = kExitOk;
  std::unique_ptr<DroverClient> client = inv.Connect(&exit_code);
  if (client == nullptr) return exit_code;
  std::vector<v1::AuditRecord> records;
  while (static_cast<int64_t>(records.size()) < limit) {
    request.set_page_size(
        static_cast<int32_t>(std::min(kMaxPage, limit - static_cast<int64_t>(records.size()))));
    absl::StatusOr<v1::ListAuditRecordsResponse> page =
        inv.WithRetry([&] { return client->ListAuditRecords(request); });
    if (!page.ok()) return inv.ServerError(page.status());
    for (const v1::AuditRecord& record : page->records()) {
      if (static_cast<int64_t>(records.size()) == limit) break;
      records.push_back(record);
    }
    if (page->next_page_token().empty() || page->records().empty()) break;
    request.set_page_token(page->next_page_token());
  }
  inv.PrintList(records, [&] {
    std::vector<std::vector<std::string>> rows = {
        {"TIME", "WHO", "FROM", "METHOD", "TARGET", "RESULT"}};
    for (const v1::AuditRecord& record : records) {
      absl::Time time = absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(record.time()));
      std::string result = CodeName(record.code());
      if (!record.message().empty()) absl::StrAppend(&result, ": ", record.message());
      rows.push_back({absl::FormatTime("%Y-%m-%d %H:%M:%S", time, inv.ctx().zone), Who(record),
                      record.peer().empty() ? "-" : record.peer(), ShortMethod(record.method()),
                      record.target().empty() ? "-" : record.target(), result});
    }
    return FormatTable(rows);
  });
  return kExitOk;
}

}  // namespace drover::cli
