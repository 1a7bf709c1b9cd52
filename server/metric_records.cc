#include "server/metric_records.h"

#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/charconv.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/json.h"
#include "common/utf8.h"

namespace drover::server {
namespace {

// Nesting allowed in a record line: the record is one flat object, but values under keys it
// does not know may nest, up to here.
constexpr int kMaxRecordDepth = 32;

// Reads one record from the JSON events of its line, keeping only what a record holds:
// values under unknown keys are passed over without being stored, so a long line costs no
// more memory than a short one.
class RecordReader : public nlohmann::json_sax<Json> {
 public:
  explicit RecordReader(MetricRecord* record) : record_(record) {}

  bool null() override { return Scalar(); }
  bool boolean(bool /*value*/) override { return Scalar(); }
  bool number_integer(number_integer_t value) override {
    return Number(static_cast<double>(value));
  }
  bool number_unsigned(number_unsigned_t value) override {
    return Number(static_cast<double>(value));
  }
  bool number_float(number_float_t value, const string_t& /*text*/) override {
    return Number(value);
  }
  bool string(string_t& value) override;
  bool binary(binary_t& /*value*/) override { return false; }
  bool start_object(std::size_t /*elements*/) override;
  bool key(string_t& value) override {
    if (depth_ == 1) key_ = std::move(value);
    if (depth_ == 2 && in_tags_) tag_ = std::move(value);
    return true;
  }
  bool end_object() override { return End(); }
  bool start_array(std::size_t /*elements*/) override {
    // Arrays are allowed only where they are passed over: under an unknown key.
    if (depth_ == 0 || (depth_ == 1 && Known()) || in_tags_) return false;
    ++depth_;
    return true;
  }
  bool end_array() override { return End(); }
  bool parse_error(std::size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::json::exception& /*e*/) override {
    return false;
  }

  bool has_name = false, has_step = false, has_value = false;

 private:
  bool Known() const { return key_ == "n" || key_ == "s" || key_ == "t" || key_ == "v" ||
                              key_ == "tags"; }
  // null or a boolean: fine only under an unknown key.
  bool Scalar() const { return depth_ > 1 ? !in_tags_ : depth_ == 1 && !Known(); }
  bool Number(double value);
  bool End() {
    --depth_;
    if (depth_ == 1) in_tags_ = false;
    return true;
  }

  MetricRecord* const record_;
  int depth_ = 0;  // objects and arrays open; the record itself is 1
  std::string key_;  // the record's member being read
  std::string tag_;  // the tag being read
  bool in_tags_ = false;
};

bool RecordReader::string(string_t& value) {
  if (depth_ == 2 && in_tags_) {
    record_->tags[tag_] = std::move(value);
    return true;
  }
  if (depth_ != 1) return depth_ > 1 && !in_tags_;
  if (key_ == "n") {
    if (value.empty()) return false;
    record_->name = std::move(value);
    has_name = true;
    return true;
  }
  if (key_ == "v") {
    // JSON has no NaN or infinity: run.py writes them as these strings.
    if (value == "NaN") {
      record_->value = std::numeric_limits<double>::quiet_NaN();
    } else if (value == "Infinity") {
      record_->value = std::numeric_limits<double>::infinity();
    } else if (value == "-Infinity") {
      record_->value = -std::numeric_limits<double>::infinity();
    } else {
      return false;
    }
    has_value = true;
    return true;
  }
  return !Known();
}

bool RecordReader::start_object(std::size_t /*elements*/) {
  if (depth_ == 1 && key_ == "tags") {
    in_tags_ = true;
  } else if ((depth_ == 1 && Known()) || in_tags_) {
    return false;
  }
  ++depth_;
  return true;
}

bool RecordReader::Number(double value) {
  if (depth_ != 1) return depth_ > 1 && !in_tags_;
  if (key_ == "s") {
    if (value < 0 || value != std::floor(value) || value > 9e15) return false;
    record_->step = static_cast<int64_t>(value);
    has_step = true;
  } else if (key_ == "t") {
    record_->time = value;
  } else if (key_ == "v") {
    record_->value = value;
    has_value = true;
  } else if (key_ == "n" || key_ == "tags") {
    return false;
  }
  return true;
}

// Takes `prefix` off the front of `text`.
bool Take(absl::string_view& text, absl::string_view prefix) {
  if (!absl::StartsWith(text, prefix)) return false;
  text.remove_prefix(prefix.size());
  return true;
}

// Takes a JSON number off the front of `text` (RFC 8259's grammar, nothing more) and reads
// it as the JSON reader would: a number without fraction or exponent as an integer made a
// double (so "-0" is 0), others rounded to the nearest double. false when it is not one or
// is out of range (the JSON reader then decides).
bool TakeNumber(absl::string_view& text, double* value, bool* integral) {
  size_t i = 0;
  const size_t n = text.size();
  auto digits = [&] {
    size_t start = i;
    while (i < n && absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) ++i;
    return i - start;
  };
  if (i < n && text[i] == '-') ++i;
  if (i < n && text[i] == '0') {
    ++i;
  } else if (digits() == 0) {
    return false;
  }
  *integral = true;
  if (i < n && text[i] == '.') {
    ++i;
    if (digits() == 0) return false;
    *integral = false;
  }
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '+' || text[i] == '-')) ++i;
    if (digits() == 0) return false;
    *integral = false;
  }
  absl::string_view token = text.substr(0, i);
  if (*integral) {
    int64_t whole = 0;
    if (!absl::SimpleAtoi(token, &whole)) return false;  // beyond int64: the reader decides
    *value = static_cast<double>(whole);
  } else {
    absl::from_chars_result r = absl::from_chars(token.data(), token.data() + token.size(), *value);
    if (r.ec != std::errc() || r.ptr != token.data() + token.size()) return false;
  }
  text.remove_prefix(i);
  return true;
}

// A point exactly as run.py writes it: {"n":"NAME","s":STEP,"t":TIME,"v":VALUE}, the name
// without escapes or control characters, VALUE a number or "NaN", "Infinity", "-Infinity".
// true with `record` filled when `line` is one and valid; false for anything else, which
// the JSON reader then reads (and may still accept).
bool ParseCanonicalPoint(absl::string_view line, MetricRecord* record) {
  if (!Take(line, "{\"n\":\"")) return false;
  size_t quote = line.find('"');
  if (quote == 0 || quote == absl::string_view::npos) return false;
  absl::string_view name = line.substr(0, quote);
  for (char c : name) {
    if (c == '\\' || static_cast<unsigned char>(c) < 0x20) return false;
  }
  if (!IsValidUtf8(name)) return false;
  line.remove_prefix(quote);
  if (!Take(line, "\",\"s\":")) return false;
  double step = 0, time = 0, value = 0;
  bool integral = false;
  if (!TakeNumber(line, &step, &integral) || !integral || step < 0 || step > 9e15) return false;
  if (!Take(line, ",\"t\":") || !TakeNumber(line, &time, &integral)) return false;
  if (!Take(line, ",\"v\":")) return false;
  if (Take(line, "\"NaN\"")) {
    value = std::numeric_limits<double>::quiet_NaN();
  } else if (Take(line, "\"Infinity\"")) {
    value = std::numeric_limits<double>::infinity();
  } else if (Take(line, "\"-Infinity\"")) {
    value = -std::numeric_limits<double>::infinity();
  } else if (!TakeNumber(line, &value, &integral)) {
    return false;
  }
  if (line != "}") return false;
  record->name.assign(name.data(), name.size());
  record->step = static_cast<int64_t>(step);
  record->time = time;
  record->value = value;
  return true;
}

}  // namespace

std::string EndSampleRecords(const v1::AttemptUsage& usage) {
  std::string lines;
  const double t = static_cast<double>(usage.time().seconds()) + usage.time().nanos() / 1e9;
  if (!std::isfinite(t) || t < 0 || usage.sample() < 0) return lines;
  auto point = [&](absl::string_view name, double value) {
    if (!std::isfinite(value) || value < 0) return;
    absl::StrAppend(&lines, "{\"n\":\"", name, "\",\"s\":", usage.sample(), ",\"t\":",
                    absl::StrFormat("%.6f", t), ",\"v\":", absl::StrFormat("%.17g", value), "}\n");
  };
  if (usage.has_cpu_cores()) point("cpu_cores", usage.cpu_cores());
  if (usage.has_memory_peak_bytes()) {
    point("memory_peak_bytes", static_cast<double>(usage.memory_peak_bytes()));
  }
  return lines;
}

std::optional<MetricRecord> ParseMetricRecord(absl::string_view line) {
  MetricRecord record;
  if (ParseCanonicalPoint(line, &record)) return record;
  return ParseMetricRecordWithJsonReader(line);
}

std::optional<MetricRecord> ParseMetricRecordWithJsonReader(absl::string_view line) {
  MetricRecord record;
  RecordReader reader(&record);
  if (!ReadJsonEvents(line, {.max_bytes = line.size(), .max_depth = kMaxRecordDepth}, &reader)
           .ok()) {
    return std::nullopt;
  }
  if (reader.has_name ? !(reader.has_step && reader.has_value) : record.tags.empty()) {
    return std::nullopt;
  }
  // The names and tags go into proto3 strings, which must be UTF-8: one raw byte 0xFF or a
  // lone surrogate ("\ud800") would make every GetMetrics answer of the job unreadable.
  // ReadJsonEvents refuses both already; this keeps the promise whatever the reader does.
  if (!IsValidUtf8(record.name)) return std::nullopt;
  for (const auto& [name, value] : record.tags) {
    if (!IsValidUtf8(name) || !IsValidUtf8(value)) return std::nullopt;
  }
  return record;
}

MetricsCollector::MetricsCollector(const v1::GetMetricsRequest& request,
                                   v1::GetMetricsResponse* out)
    : request_(request),
      out_(out),
      range_{.from_step = request.has_from_step() ? request.from_step()
                                                  : std::numeric_limits<int64_t>::min(),
             .to_step = request.has_to_step() ? request.to_step()
                                              : std::numeric_limits<int64_t>::max(),
             .max_points = request.max_points()},
      thin_(request.max_points() > 0) {}

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
  const int index = SeriesIndex(source, rank, record->name);
  if (thin_) {
    thinners_[static_cast<size_t>(index)].Add(record->step, record->time, record->value);
    return;
  }
  if (record->step < range_.from_step || record->step > range_.to_step) return;
  v1::MetricSeries* series = out_->mutable_series(index);
  series->add_steps(record->step);
  series->add_times(record->time);
  series->add_values(record->value);
}

int MetricsCollector::SeriesIndex(v1::MetricSeries::Source source, int32_t rank,
                                  const std::string& name) {
  if (last_index_ >= 0 && std::get<0>(last_key_) == source && std::get<1>(last_key_) == rank &&
      std::get<2>(last_key_) == name) {
    return last_index_;
  }
  auto [it, added] = index_.try_emplace({source, rank, name}, out_->series_size());
  if (added) {
    v1::MetricSeries* series = out_->add_series();
    series->set_name(name);
    series->set_source(source);
    series->set_rank(rank);
    if (thin_) thinners_.emplace_back(range_);
  }
  last_key_ = it->first;
  last_index_ = it->second;
  return last_index_;
}

void MetricsCollector::Finish() {
  for (size_t i = 0; i < thinners_.size(); ++i) {
    thinners_[i].AppendTo(out_->mutable_series(static_cast<int>(i)));
  }
  thinners_.clear();
}

}  // namespace drover::server
