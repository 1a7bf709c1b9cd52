#include "server/metric_records.h"

#include <cmath>
#include <cstdlib>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "common/utf8.h"

namespace drover::server {
namespace {

// A small JSON reader for one record: objects, strings (with escapes), numbers and the
// literals; arrays only to skip them.
class Reader {
 public:
  explicit Reader(absl::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  bool AtEnd() {
    SkipSpace();
    return p_ == end_;
  }
  bool Consume(char c) {
    SkipSpace();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }
  char Peek() {
    SkipSpace();
    return p_ == end_ ? '\0' : *p_;
  }

  bool String(std::string* out) {
    if (!Consume('"')) return false;
    out->clear();
    while (p_ != end_) {
      char c = *p_++;
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (p_ == end_) return false;
      char e = *p_++;
      switch (e) {
        case '"': case '\\': case '/': out->push_back(e); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          if (end_ - p_ < 4) return false;
          unsigned code = 0;
          for (int i = 0; i < 4; ++i) {
            char h = *p_++;
            code <<= 4;
            if (h >= '0' && h <= '9') code |= h - '0';
            else if (h >= 'a' && h <= 'f') code |= h - 'a' + 10;
            else if (h >= 'A' && h <= 'F') code |= h - 'A' + 10;
            else return false;
          }
          // Surrogate pairs.
          if (code >= 0xD800 && code < 0xDC00 && end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
            unsigned low = std::strtoul(std::string(p_ + 2, 4).c_str(), nullptr, 16);
            if (low >= 0xDC00 && low < 0xE000) {
              code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
              p_ += 6;
            }
          }
          AppendUtf8(code, out);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }

  bool Number(double* out) {
    SkipSpace();
    const char* start = p_;
    while (p_ != end_ && (absl::ascii_isdigit(*p_) || *p_ == '-' || *p_ == '+' || *p_ == '.' ||
                          *p_ == 'e' || *p_ == 'E')) {
      ++p_;
    }
    if (p_ == start) return false;
    std::string text(start, p_);
    char* parsed_end = nullptr;
    *out = std::strtod(text.c_str(), &parsed_end);
    return parsed_end == text.c_str() + text.size();
  }

  // Skips any value.
  bool Skip(int depth = 0) {
    if (depth > 32) return false;
    char c = Peek();
    std::string ignored;
    double number;
    switch (c) {
      case '"':
        return String(&ignored);
      case '{':
      case '[': {
        char close = c == '{' ? '}' : ']';
        ++p_;
        if (Consume(close)) return true;
        do {
          if (c == '{' && !(String(&ignored) && Consume(':'))) return false;
          if (!Skip(depth + 1)) return false;
        } while (Consume(','));
        return Consume(close);
      }
      case 't': return Literal("true");
      case 'f': return Literal("false");
      case 'n': return Literal("null");
      default: return Number(&number);
    }
  }

 private:
  void SkipSpace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\r' || *p_ == '\n')) ++p_;
  }
  bool Literal(absl::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || absl::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }
  static void AppendUtf8(unsigned code, std::string* out) {
    if (code < 0x80) {
      out->push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (code >> 6)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (code >> 12)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (code >> 18)));
      out->push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  const char* p_;
  const char* end_;
};

}  // namespace

std::optional<MetricRecord> ParseMetricRecord(absl::string_view line) {
  Reader r(line);
  MetricRecord record;
  bool has_name = false, has_step = false, has_value = false;
  if (!r.Consume('{')) return std::nullopt;
  if (!r.Consume('}')) {
    std::string key;
    do {
      if (!r.String(&key) || !r.Consume(':')) return std::nullopt;
      if (key == "n") {
        if (!r.String(&record.name) || record.name.empty()) return std::nullopt;
        has_name = true;
      } else if (key == "s") {
        double step;
        if (!r.Number(&step) || step < 0 || step != std::floor(step) || step > 9e15) {
          return std::nullopt;
        }
        record.step = static_cast<int64_t>(step);
        has_step = true;
      } else if (key == "t") {
        if (!r.Number(&record.time)) return std::nullopt;
      } else if (key == "v") {
        if (r.Peek() == '"') {
          std::string special;
          r.String(&special);
          if (special == "NaN") {
            record.value = std::numeric_limits<double>::quiet_NaN();
          } else if (special == "Infinity") {
            record.value = std::numeric_limits<double>::infinity();
          } else if (special == "-Infinity") {
            record.value = -std::numeric_limits<double>::infinity();
          } else {
            return std::nullopt;
          }
        } else if (!r.Number(&record.value)) {
          return std::nullopt;
        }
        has_value = true;
      } else if (key == "tags") {
        if (!r.Consume('{')) return std::nullopt;
        if (!r.Consume('}')) {
          std::string name, value;
          do {
            if (!r.String(&name) || !r.Consume(':') || !r.String(&value)) return std::nullopt;
            record.tags[name] = value;
          } while (r.Consume(','));
          if (!r.Consume('}')) return std::nullopt;
        }
      } else if (!r.Skip()) {
        return std::nullopt;
      }
    } while (r.Consume(','));
    if (!r.Consume('}')) return std::nullopt;
  }
  if (!r.AtEnd()) return std::nullopt;
  if (has_name ? !(has_step && has_value) : record.tags.empty()) return std::nullopt;
  // The names and tags go into proto3 strings, which must be UTF-8: one raw byte 0xFF or a
  // lone surrogate ("\ud800") would make every GetMetrics answer of the job unreadable.
  if (!IsValidUtf8(record.name)) return std::nullopt;
  for (const auto& [name, value] : record.tags) {
    if (!IsValidUtf8(name) || !IsValidUtf8(value)) return std::nullopt;
  }
  return record;
}

bool MetricsCollector::Wants(v1::MetricSeries::Source source, int32_t rank) const {
  bool source_ok = request_.sources().empty();
  for (int s : request_.sources()) source_ok = source_ok || s == source;
  bool rank_ok = request_.ranks().empty();
  for (int32_t r : request_.ranks()) rank_ok = rank_ok || r == rank;
  return source_ok && rank_ok;
}

size_t MetricsCollector::Add(v1::MetricSeries::Source source, int32_t rank,
                             absl::string_view data, bool final) {
  size_t used = 0;
  while (used < data.size()) {
    size_t end = data.find('\n', used);
    if (end == absl::string_view::npos) {
      if (!final) break;
      end = data.size();
    }
    AddLine(source, rank, data.substr(used, end - used));
    used = end == data.size() ? end : end + 1;
  }
  return used;
}

void MetricsCollector::AddLine(v1::MetricSeries::Source source, int32_t rank,
                               absl::string_view line) {
  if (absl::StripAsciiWhitespace(line).empty()) return;
  // droverd's own notes where a stream reached its cap (storage/log_store.h LogCapNote).
  if (absl::StartsWith(line, "{\"drover_note\":")) {
    if (absl::StartsWith(line, "{\"drover_note\":\"capped\"")) {
      out_->set_capped_streams(out_->capped_streams() + 1);
    } else if (size_t at = line.find("\"records\":"); at != absl::string_view::npos) {
      absl::string_view digits = line.substr(at + 10);
      digits = digits.substr(0, digits.find_first_not_of("0123456789"));
      int64_t records = 0;
      if (absl::SimpleAtoi(digits, &records)) {
        out_->set_dropped_records(out_->dropped_records() + records);
      }
    }
    return;
  }
  std::optional<MetricRecord> record = ParseMetricRecord(line);
  if (!record.has_value()) {
    out_->set_skipped_lines(out_->skipped_lines() + 1);
    return;
  }
  for (const auto& [name, value] : record->tags) (*out_->mutable_tags())[name] = value;
  if (record->name.empty()) return;
  if (!request_.names().empty()) {
    bool wanted = false;
    for (const std::string& name : request_.names()) wanted = wanted || name == record->name;
    if (!wanted) return;
  }
  auto [it, added] = index_.try_emplace({source, rank, record->name}, out_->series_size());
  if (added) {
    v1::MetricSeries* series = out_->add_series();
    series->set_name(record->name);
    series->set_source(source);
    series->set_rank(rank);
  }
  v1::MetricSeries* series = out_->mutable_series(it->second);
  series->add_steps(record->step);
  series->add_times(record->time);
  series->add_values(record->value);
}

}  // namespace drover::server
