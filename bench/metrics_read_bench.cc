#include "bench/metrics_read_bench.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "bench/latency.h"
#include "drover/v1/job_service.pb.h"
#include "server/job_streams.h"
#include "server/metric_records.h"
#include "storage/log_store.h"

namespace drover::bench {
namespace {

constexpr char kJob[] = "j-metrics-read-bench";

// A double as Python's repr writes it (the shortest text that reads back the same).
void AppendDouble(std::string* out, double v) {
  char text[32];
  std::to_chars_result r = std::to_chars(text, text + sizeof(text), v);
  out->append(text, r.ptr);
}

absl::Status WriteRank(storage::LogStore& logs, int32_t rank, int64_t points) {
  storage::LogStreamKey key{kJob, 1, rank, v1::METRICS};
  int64_t offset = 0;
  std::string chunk;
  const double n = static_cast<double>(points);
  for (int64_t i = 0; i < points; ++i) {
    const double x = static_cast<double>(i);
    absl::StrAppend(&chunk, "{\"n\":\"loss\",\"s\":", i, ",\"t\":");
    AppendDouble(&chunk, 1764170000.123 + x * 1e-4);
    chunk += ",\"v\":";
    AppendDouble(&chunk, std::exp(-x / (n / 5)) + 0.05 * std::sin(x / 50) + 0.01 * rank);
    chunk += "}\n";
    if (chunk.size() >= (1 << 20) || i + 1 == points) {
      absl::Notification done;
      absl::Status status;
      logs.Append(key, offset, chunk, [&](absl::StatusOr<int64_t> size) {
        if (!size.ok()) status = size.status();
        done.Notify();
      });
      done.WaitForNotification();
      if (!status.ok()) return status;
      offset += static_cast<int64_t>(chunk.size());
      chunk.clear();
    }
  }
  return absl::OkStatus();
}

// The median time of `repeats` runs of `step`.
absl::Duration Median(int64_t repeats, const std::function<absl::Status()>& step,
                      absl::Status* failed) {
  std::vector<absl::Duration> times;
  for (int64_t i = 0; i < repeats && failed->ok(); ++i) {
    absl::Time start = absl::Now();
    *failed = step();
    times.push_back(absl::Now() - start);
  }
  std::sort(times.begin(), times.end());
  return times.empty() ? absl::ZeroDuration() : times[(times.size() - 1) / 2];
}

}  // namespace

absl::StatusOr<MetricsReadResult> RunMetricsReadBench(const MetricsReadOptions& options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("--dir is required");
  if (options.points < 1 || options.ranks < 1 || options.ranks > 256 || options.repeats < 1 ||
      options.max_points < 4 || options.max_points > server::kMaxThinnedPoints) {
    return absl::InvalidArgumentError(
        "--points and --repeats must be at least 1, --ranks 1 to 256, --max-points 4 to "
        "100000");
  }
  const std::string root = options.dir + "/metrics-read-bench-logs";
  std::error_code ignored;
  std::filesystem::remove_all(root, ignored);
  absl::StatusOr<std::unique_ptr<storage::LogStore>> opened = storage::LogStore::Open(root);
  if (!opened.ok()) return opened.status();
  storage::LogStore& logs = **opened;
  MetricsReadResult result;
  for (int32_t rank = 0; rank < options.ranks; ++rank) {
    if (absl::Status s = WriteRank(logs, rank, options.points); !s.ok()) return s;
  }
  logs.EndAttempt(kJob, 1);
  for (const storage::LogStreamInfo& stream : logs.Streams(kJob, 1)) {
    result.stored_bytes += stream.size;
  }
  result.points = options.points * options.ranks;

  absl::Status failed;
  std::vector<std::string> bytes;  // per rank, read once for the parse steps
  result.read = Median(options.repeats, [&]() -> absl::Status {
    bytes.clear();
    for (const storage::LogStreamInfo& stream : logs.Streams(kJob, 1)) {
      storage::LogStreamKey key{kJob, 1, stream.rank, stream.stream};
      std::string all;
      all.reserve(static_cast<size_t>(stream.size));
      for (int64_t offset = 0; offset < stream.size;) {
        absl::StatusOr<std::string> piece = logs.Read(key, offset, 1 << 20);
        if (!piece.ok()) return piece.status();
        if (piece->empty()) break;
        offset += static_cast<int64_t>(piece->size());
        all += *piece;
      }
      bytes.push_back(std::move(all));
    }
    return absl::OkStatus();
  }, &failed);
  auto parse_all = [&](auto parse) -> absl::Status {
    int64_t parsed = 0;
    for (const std::string& all : bytes) {
      for (size_t at = 0; at < all.size();) {
        size_t end = all.find('\n', at);
        if (end == std::string::npos) end = all.size();
        if (parse(absl::string_view(all).substr(at, end - at)).has_value()) ++parsed;
        at = end + 1;
      }
    }
    return parsed == result.points ? absl::OkStatus()
                                   : absl::InternalError(absl::StrCat(
                                         "parsed ", parsed, " of ", result.points, " points"));
  };
  result.parse_json_reader = Median(options.repeats, [&] {
    return parse_all(server::ParseMetricRecordWithJsonReader);
  }, &failed);
  result.parse_fast = Median(options.repeats, [&] {
    return parse_all(server::ParseMetricRecord);
  }, &failed);
  bytes.clear();

  // The old answer: every point, in GetMetrics pages of 16 MiB of records.
  std::vector<v1::GetMetricsResponse> pages;
  result.old_collect = Median(options.repeats, [&]() -> absl::Status {
    pages.clear();
    v1::GetMetricsRequest request;
    std::map<std::pair<int32_t, int>, int64_t> read;
    std::optional<server::MetricsCursor> from;
    for (;;) {
      pages.emplace_back();
      server::MetricsCollector collector(request, &pages.back());
      absl::StatusOr<std::optional<server::MetricsCursor>> next = server::ReadMetrics(
          logs, kJob, 1, /*ended=*/true, 16 << 20, &collector, &read, from ? &*from : nullptr);
      if (!next.ok()) return next.status();
      if (!next->has_value()) return absl::OkStatus();
      from = **next;
    }
  }, &failed);
  result.old_answer_pages = static_cast<int64_t>(pages.size());
  result.old_wire = Median(options.repeats, [&]() -> absl::Status {
    for (const v1::GetMetricsResponse& page : pages) {
      std::string wire;
      v1::GetMetricsResponse back;
      if (!page.SerializeToString(&wire) || !back.ParseFromString(wire)) {
        return absl::InternalError("a GetMetrics page did not serialize and parse back");
      }
    }
    return absl::OkStatus();
  }, &failed);
  pages.clear();

  // The new answer: thinned while read.
  v1::GetMetricsResponse thinned;
  result.thinned_read = Median(options.repeats, [&]() -> absl::Status {
    thinned.Clear();
    v1::GetMetricsRequest request;
    request.set_max_points(static_cast<int32_t>(options.max_points));
    std::map<std::pair<int32_t, int>, int64_t> read;
    server::MetricsCollector collector(request, &thinned);
    absl::StatusOr<std::optional<server::MetricsCursor>> next =
        server::ReadMetrics(logs, kJob, 1, /*ended=*/true, -1, &collector, &read);
    if (!next.ok()) return next.status();
    collector.Finish();
    return absl::OkStatus();
  }, &failed);
  for (const v1::MetricSeries& series : thinned.series()) {
    result.thinned_points += series.steps_size();
  }
  result.thinned_json = Median(options.repeats, [&]() -> absl::Status {
    std::string json;
    if (!google::protobuf::util::MessageToJsonString(thinned, &json).ok()) {
      return absl::InternalError("the thinned answer did not print as JSON");
    }
    result.thinned_json_bytes = static_cast<int64_t>(json.size());
    return absl::OkStatus();
  }, &failed);
  opened->reset();
  std::filesystem::remove_all(root, ignored);
  if (!failed.ok()) return failed;
  return result;
}

std::string MetricsReadResultText(const MetricsReadOptions& options, const MetricsReadResult& r) {
  auto ms = [](absl::Duration d) { return absl::StrFormat("%9.1f ms", absl::ToDoubleMilliseconds(d)); };
  return absl::StrCat(
      absl::StrFormat("metrics-read: %d rank(s) x %d points (%.1f MB stored), max_points %d, "
                      "median of %d\n",
                      options.ranks, options.points, r.stored_bytes / 1e6, options.max_points,
                      options.repeats),
      "  read the stored bytes          ", ms(r.read), "\n",
      "  parse, general JSON reader     ", ms(r.parse_json_reader), "\n",
      "  parse, fast path               ", ms(r.parse_fast), "\n",
      "  old: collect every point       ", ms(r.old_collect),
      absl::StrFormat(" (%d pages)\n", r.old_answer_pages),
      "  old: pages to wire and back    ", ms(r.old_wire), "\n",
      "  new: thinned read              ", ms(r.thinned_read),
      absl::StrFormat(" (%d points kept)\n", r.thinned_points),
      "  new: thinned answer as JSON    ", ms(r.thinned_json),
      absl::StrFormat(" (%d bytes)\n", r.thinned_json_bytes));
}

std::string MetricsReadResultJson(const MetricsReadOptions& options, const MetricsReadResult& r) {
  auto ms = [](absl::Duration d) { return absl::StrFormat("%.2f", absl::ToDoubleMilliseconds(d)); };
  return absl::StrCat(
      "{\"benchmark\":\"metrics-read\",\"ranks\":", options.ranks, ",\"points_per_rank\":",
      options.points, ",\"stored_bytes\":", r.stored_bytes, ",\"max_points\":",
      options.max_points, ",\"thinned_points\":", r.thinned_points, ",\"read_ms\":", ms(r.read),
      ",\"parse_json_reader_ms\":", ms(r.parse_json_reader), ",\"parse_fast_ms\":",
      ms(r.parse_fast), ",\"old_collect_ms\":", ms(r.old_collect), ",\"old_pages\":",
      r.old_answer_pages, ",\"old_wire_ms\":", ms(r.old_wire), ",\"thinned_read_ms\":",
      ms(r.thinned_read), ",\"thinned_json_ms\":", ms(r.thinned_json), "}");
}

}  // namespace drover::bench
