#include "server/http/event_cursors.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace drover::server::http {

size_t CompleteUtf8Prefix(absl::string_view bytes) {
  const size_t n = bytes.size();
  for (size_t k = 1; k <= std::min<size_t>(3, n); ++k) {
    unsigned char c = static_cast<unsigned char>(bytes[n - k]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > k ? n - k : n;
  }
  return n;
}

absl::StatusOr<LogCursor> LogCursor::Parse(absl::string_view id) {
  LogCursor cursor;
  if (id.empty()) return cursor;
  auto bad = [&id] {
    return absl::InvalidArgumentError(absl::StrCat(
        "resume position '", id.substr(0, 100),
        "' is not an event id of this stream (<attempt>:<rank>:<STREAM>:<offset>,...)"));
  };
  bool first = true;
  for (absl::string_view entry : absl::StrSplit(id, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(entry, ':');
    int64_t attempt = 0;
    if (parts.empty() || !absl::SimpleAtoi(parts[0], &attempt) || attempt < 1) return bad();
    if (!first && attempt != cursor.attempt_) return bad();
    cursor.attempt_ = attempt;
    first = false;
    if (parts.size() == 2 && parts[1].empty()) continue;
    int32_t rank = 0;
    v1::LogStream stream;
    int64_t offset = 0;
    if (parts.size() != 4 || !absl::SimpleAtoi(parts[1], &rank) || rank < 0 ||
        !v1::LogStream_Parse(std::string(parts[2]), &stream) ||
        !absl::SimpleAtoi(parts[3], &offset) || offset < 0) {
      return bad();
    }
    cursor.positions_[{rank, static_cast<int>(stream)}].sent = offset;
  }
  return cursor;
}

std::vector<LogPiece> LogCursor::Take(int64_t attempt, int32_t rank, v1::LogStream stream,
                                      int64_t offset, absl::string_view data) {
  std::vector<LogPiece> pieces;
  if (attempt < attempt_) return pieces;
  if (attempt > attempt_) {
    pieces = Flush();
    StartAttempt(attempt);
  }
  Position& position = positions_[{rank, static_cast<int>(stream)}];
  int64_t consumed = position.sent + static_cast<int64_t>(position.held.size());
  int64_t end = offset + static_cast<int64_t>(data.size());
  if (end <= consumed) return pieces;
  if (offset > consumed) {
    // A gap (droverd dropped bytes past its cap): go on from where the data is.
    if (!position.held.empty()) {
      int64_t at = position.sent;
      position.sent += static_cast<int64_t>(position.held.size());
      pieces.push_back({attempt_, rank, stream, at, std::move(position.held), Id()});
    }
    position.sent = offset;
    position.held.clear();
    consumed = offset;
  }
  std::string bytes = std::move(position.held);
  absl::string_view fresh = data.substr(static_cast<size_t>(consumed - offset));
  bytes.append(fresh.data(), fresh.size());
  size_t complete = CompleteUtf8Prefix(bytes);
  position.held = bytes.substr(complete);
  if (complete > 0) {
    bytes.resize(complete);
    int64_t at = position.sent;
    position.sent += static_cast<int64_t>(complete);
    pieces.push_back({attempt_, rank, stream, at, std::move(bytes), Id()});
  }
  return pieces;
}

std::vector<LogPiece> LogCursor::Flush() {
  std::vector<LogPiece> pieces;
  for (auto& [key, position] : positions_) {
    if (position.held.empty()) continue;
    int64_t at = position.sent;
    position.sent += static_cast<int64_t>(position.held.size());
    pieces.push_back({attempt_, key.first, static_cast<v1::LogStream>(key.second), at,
                      std::move(position.held), ""});
    position.held.clear();
    pieces.back().id = Id();
  }
  return pieces;
}

void LogCursor::StartAttempt(int64_t attempt) {
  attempt_ = attempt;
  positions_.clear();
}

std::string LogCursor::Id() const {
  std::vector<std::string> entries;
  for (const auto& [key, position] : positions_) {
    if (position.sent == 0) continue;
    entries.push_back(absl::StrCat(attempt_, ":", key.first, ":",
                                   v1::LogStream_Name(static_cast<v1::LogStream>(key.second)),
                                   ":", position.sent));
  }
  if (entries.empty()) return attempt_ == 0 ? "" : absl::StrCat(attempt_, ":");
  return absl::StrJoin(entries, ",");
}

absl::StatusOr<MetricsCursor> MetricsCursor::Parse(absl::string_view token) {
  MetricsCursor cursor;
  if (token.empty()) return cursor;
  auto bad = [] {
    return absl::InvalidArgumentError("resume token is not one of this metrics stream's ids");
  };
  std::string text;
  if (!absl::WebSafeBase64Unescape(token, &text)) return bad();
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  if (lines.empty() || !absl::SimpleAtoi(lines[0], &cursor.attempt_) || cursor.attempt_ < 0) {
    return bad();
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<absl::string_view> parts = absl::StrSplit(lines[i], absl::MaxSplits('\t', 3));
    int source = 0;
    int32_t rank = 0;
    int64_t count = 0;
    if (parts.size() != 4 || !absl::SimpleAtoi(parts[0], &source) ||
        !absl::SimpleAtoi(parts[1], &rank) || !absl::SimpleAtoi(parts[2], &count) || count < 0) {
      return bad();
    }
    cursor.counts_[{source, rank, std::string(parts[3])}].sent = count;
  }
  return cursor;
}

bool MetricsCursor::Take(v1::MetricSeries& series) {
  Count& count = counts_[{static_cast<int>(series.source()), series.rank(), series.name()}];
  const int n = std::min({series.steps_size(), series.values_size(), series.times_size()});
  const int64_t skip = std::clamp<int64_t>(count.sent - count.seen, 0, n);
  count.seen += n;
  count.sent = std::max(count.sent, count.seen);
  if (skip > 0 || n != series.steps_size() || n != series.values_size() ||
      n != series.times_size()) {
    auto cut = [skip, n](auto* column) {
      column->Truncate(n);
      column->erase(column->begin(), column->begin() + skip);
    };
    cut(series.mutable_steps());
    cut(series.mutable_values());
    cut(series.mutable_times());
  }
  return n - skip > 0;
}

std::string MetricsCursor::Token() const {
  std::string text = absl::StrCat(attempt_, "\n");
  for (const auto& [key, count] : counts_) {
    if (count.sent == 0) continue;
    absl::StrAppend(&text, std::get<0>(key), "\t", std::get<1>(key), "\t", count.sent, "\t",
                    std::get<2>(key), "\n");
  }
  return absl::WebSafeBase64Escape(text);
}

}  // namespace drover::server::http
