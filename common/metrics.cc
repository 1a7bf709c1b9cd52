#include "common/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace drover {
namespace {

bool ValidName(const std::string& name, bool colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Shortest decimal form that reads back as the same double; Prometheus' spellings of the
// special values.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  for (int precision : {15, 17}) {
    std::string s = absl::StrFormat("%.*g", precision, v);
    if (precision == 17 || std::strtod(s.c_str(), nullptr) == v) return s;
  }
  return "";  // unreachable
}

void AppendEscaped(std::string* out, const std::string& s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (quote && c == '"') {
      out->append("\\\"");
    } else {
      out->push_back(c);
    }
  }
}

// `{a="x",b="y"}` (plus `extra`, such as le="0.5"), or nothing without labels.
std::string LabelSet(const std::vector<std::string>& names, const LabelValues& values,
                     const std::string& extra = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "" : ",", names[i], "=\"");
    AppendEscaped(&out, i < values.size() ? values[i] : "", /*quote=*/true);
    out.push_back('"');
  }
  if (!extra.empty()) absl::StrAppend(&out, out.empty() ? "" : ",", extra);
  return out.empty() ? out : absl::StrCat("{", out, "}");
}

void AppendHeader(std::string* out, const std::string& name, const std::string& help,
                  const char* type) {
  absl::StrAppend(out, "# HELP ", name, " ");
  AppendEscaped(out, help, /*quote=*/false);
  absl::StrAppend(out, "\n# TYPE ", name, " ", type, "\n");
}

}  // namespace

void Counter::Increment(double amount) {
  if (amount > 0) value_.fetch_add(amount, std::memory_order_relaxed);
}

Histogram::Histogram(const std::vector<double>& bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::cumulative_counts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

template <typename Series>
Series& Family<Series>::With(const LabelValues& values) {
  LabelValues key = values;
  key.resize(labels_.size());
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Series>& series = series_[key];
  if (series == nullptr) series = make_();
  return *series;
}

template <typename Series>
std::vector<std::pair<LabelValues, const Series*>> Family<Series>::Snapshot() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<LabelValues, const Series*>> out;
  out.reserve(series_.size());
  for (const auto& [values, series] : series_) out.emplace_back(values, series.get());
  return out;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,   1,      2.5,   5,    10,    30,    60};
}

using GaugeCallback = std::function<std::vector<std::pair<LabelValues, double>>()>;

struct MetricsRegistry::Entry {
  std::string name;
  std::variant<std::unique_ptr<CounterFamily>, std::unique_ptr<GaugeFamily>,
               std::unique_ptr<HistogramFamily>, GaugeCallback>
      metric;
  std::string help;
  std::vector<std::string> labels;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::CheckNew(const std::string& name, const std::vector<std::string>& labels) {
  bool ok = ValidName(name, /*colon=*/true);
  for (const std::string& label : labels) ok = ok && ValidName(label, /*colon=*/false);
  for (const auto& entry : entries_) ok = ok && entry->name != name;
  if (!ok) {
    std::fprintf(stderr, "metrics: bad or duplicate metric '%s'\n", name.c_str());
    std::abort();
  }
}

CounterFamily& MetricsRegistry::AddCounter(const std::string& name, const std::string& help,
                                           std::vector<std::string> labels) {
  absl::MutexLock lock(&mu_);
  CheckNew(name, labels);
  auto family = std::unique_ptr<CounterFamily>(
      new CounterFamily(name, help, labels, [] { return std::make_unique<Counter>(); }));
  CounterFamily& ref = *family;
  entries_.push_back(std::unique_ptr<Entry>(new Entry{name, std::move(family), help, labels}));
  return ref;
}

GaugeFamily& MetricsRegistry::AddGauge(const std::string& name, const std::string& help,
                                       std::vector<std::string> labels) {
  absl::MutexLock lock(&mu_);
  CheckNew(name, labels);
  auto family = std::unique_ptr<GaugeFamily>(
      new GaugeFamily(name, help, labels, [] { return std::make_unique<Gauge>(); }));
  GaugeFamily& ref = *family;
  entries_.push_back(std::unique_ptr<Entry>(new Entry{name, std::move(family), help, labels}));
  return ref;
}

HistogramFamily& MetricsRegistry::AddHistogram(const std::string& name, const std::string& help,
                                               std::vector<double> bounds,
                                               std::vector<std::string> labels) {
  absl::MutexLock lock(&mu_);
  CheckNew(name, labels);
  auto family = std::unique_ptr<HistogramFamily>(new HistogramFamily(
      name, help, labels, [bounds] { return std::make_unique<Histogram>(bounds); }));
  HistogramFamily& ref = *family;
  entries_.push_back(std::unique_ptr<Entry>(new Entry{name, std::move(family), help, labels}));
  return ref;
}

void MetricsRegistry::AddGaugeCallback(const std::string& name, const std::string& help,
                                       std::vector<std::string> labels, GaugeCallback collect) {
  absl::MutexLock lock(&mu_);
  CheckNew(name, labels);
  entries_.push_back(std::unique_ptr<Entry>(new Entry{name, std::move(collect), help, labels}));
}

std::string MetricsRegistry::Render() const {
  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& entry : entries_) {
    const std::string& name = entry->name;
    const std::vector<std::string>& labels = entry->labels;
    if (auto* counters = std::get_if<std::unique_ptr<CounterFamily>>(&entry->metric)) {
      AppendHeader(&out, name, entry->help, "counter");
      for (const auto& [values, counter] : (*counters)->Snapshot()) {
        absl::StrAppend(&out, name, LabelSet(labels, values), " ", FormatValue(counter->value()),
                        "\n");
      }
    } else if (auto* gauges = std::get_if<std::unique_ptr<GaugeFamily>>(&entry->metric)) {
      AppendHeader(&out, name, entry->help, "gauge");
      for (const auto& [values, gauge] : (*gauges)->Snapshot()) {
        absl::StrAppend(&out, name, LabelSet(labels, values), " ", FormatValue(gauge->value()),
                        "\n");
      }
    } else if (auto* histograms = std::get_if<std::unique_ptr<HistogramFamily>>(&entry->metric)) {
      AppendHeader(&out, name, entry->help, "histogram");
      for (const auto& [values, histogram] : (*histograms)->Snapshot()) {
        std::vector<uint64_t> counts = histogram->cumulative_counts();
        const std::vector<double>& bounds = histogram->bounds();
        for (size_t i = 0; i < counts.size(); ++i) {
          std::string le = i < bounds.size() ? FormatValue(bounds[i]) : "+Inf";
          absl::StrAppend(&out, name, "_bucket", LabelSet(labels, values, "le=\"" + le + "\""),
                          " ", counts[i], "\n");
        }
        // The count is the +Inf bucket's, read once, so the page is consistent.
        absl::StrAppend(&out, name, "_sum", LabelSet(labels, values), " ",
                        FormatValue(histogram->sum()), "\n", name, "_count",
                        LabelSet(labels, values), " ", counts.back(), "\n");
      }
    } else {
      AppendHeader(&out, name, entry->help, "gauge");
      for (const auto& [values, value] : std::get<GaugeCallback>(entry->metric)()) {
        absl::StrAppend(&out, name, LabelSet(labels, values), " ", FormatValue(value), "\n");
      }
    }
  }
  return out;
}

}  // namespace drover
