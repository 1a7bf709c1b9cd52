// Daemon metrics in the Prometheus text exposition format (version 0.0.4): counters,
// gauges and histograms, each a family of series told apart by label values.
//
//   MetricsRegistry registry;
//   CounterFamily& submits = registry.AddCounter(
//       "drover_jobs_submitted_total", "Jobs accepted by SubmitJob.", {"experiment"});
//   submits.With({"mnist"}).Increment();
//   std::string page = registry.Render();   // what GET /metrics answers
//
// Families are created at start-up by the component that owns them and live as long as the
// registry; a series (`With`) is created on first use and lives as long as its family, so
// callers may keep the reference. Every method is thread-safe. Updating a series is a
// lock-free atomic operation; `With` takes the family's lock, so hot paths keep the series.
#ifndef DROVER_COMMON_METRICS_H_
#define DROVER_COMMON_METRICS_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace drover {

using LabelValues = std::vector<std::string>;

class Counter {
 public:
  // `amount` must be >= 0 (a negative one is ignored: counters only go up).
  void Increment(double amount = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double amount) { value_.fetch_add(amount, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(const std::vector<double>& bounds);
  void Observe(double value);
  // Cumulative counts per upper bound (the last one is +Inf), the sum and the count.
  std::vector<uint64_t> cumulative_counts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1 (+Inf)
  std::atomic<double> sum_{0};
  std::atomic<uint64_t> count_{0};
};

// A metric name with its help text, label names and series.
template <typename Series>
class Family {
 public:
  // The series for these label values (as many as the family has label names; missing ones
  // are empty, extra ones ignored). Created on first use; the reference stays valid.
  Series& With(const LabelValues& values);
  // Every series, for rendering.
  std::vector<std::pair<LabelValues, const Series*>> Snapshot() const;

 private:
  friend class MetricsRegistry;
  Family(std::string name, std::string help, std::vector<std::string> labels,
         std::function<std::unique_ptr<Series>()> make)
      : name_(std::move(name)),
        help_(std::move(help)),
        labels_(std::move(labels)),
        make_(std::move(make)) {}

  const std::string name_;
  const std::string help_;
  const std::vector<std::string> labels_;
  const std::function<std::unique_ptr<Series>()> make_;
  mutable absl::Mutex mu_;
  std::map<LabelValues, std::unique_ptr<Series>> series_ ABSL_GUARDED_BY(mu_);
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

// Bucket bounds in seconds for request and operation latencies: 0.5 ms to 60 s.
std::vector<double> LatencyBuckets();

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Names follow Prometheus conventions ([a-zA-Z_:][a-zA-Z0-9_:]*, counters end in
  // `_total`, durations in `_seconds`); label names [a-zA-Z_][a-zA-Z0-9_]*. Adding a name
  // twice, or a bad name, is a programming error and aborts.
  CounterFamily& AddCounter(const std::string& name, const std::string& help,
                            std::vector<std::string> labels = {});
  GaugeFamily& AddGauge(const std::string& name, const std::string& help,
                        std::vector<std::string> labels = {});
  HistogramFamily& AddHistogram(const std::string& name, const std::string& help,
                                std::vector<double> bounds, std::vector<std::string> labels = {});
  // A gauge family whose series are computed when the page is rendered (on the thread that
  // renders it, so `collect` must be thread-safe): for values another component owns, such
  // as jobs by state.
  void AddGaugeCallback(const std::string& name, const std::string& help,
                        std::vector<std::string> labels,
                        std::function<std::vector<std::pair<LabelValues, double>>()> collect);

  // The whole page in the text exposition format, families in the order they were added.
  std::string Render() const;

 private:
  struct Entry;
  void CheckNew(const std::string& name, const std::vector<std::string>& labels)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace drover

#endif  // DROVER_COMMON_METRICS_H_
