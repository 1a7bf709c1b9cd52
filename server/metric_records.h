// Metric records: the JSON lines the `drover` Python module (USER) and the agents' samplers
// (SYSTEM) write, one per point or tag set, as stored in the log store's METRICS and
// SYSTEM_METRICS streams (format: python/drover/run.py). MetricsCollector turns them into the
// series of a GetMetricsResponse. Used by the threads serving GetMetrics/WatchMetrics; not
// thread-safe.
#ifndef DROVER_SERVER_METRIC_RECORDS_H_
#define DROVER_SERVER_METRIC_RECORDS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>

#include "absl/strings/string_view.h"
#include "drover/v1/agent.pb.h"
#include "drover/v1/job_service.pb.h"

namespace drover::server {

// One parsed line: a point (`name` set) or tags (`tags` non-empty).
struct MetricRecord {
  std::string name;
  int64_t step = 0;
  double time = 0;
  double value = 0;
  std::map<std::string, std::string> tags;
};

// Parses one line (without its line end). nullopt when it is not a valid record: not a JSON
// object, a point without `n`, `s` >= 0, or a numeric `v`, a tag value that is not a string,
// a name or tag that is not valid UTF-8.
std::optional<MetricRecord> ParseMetricRecord(absl::string_view line);

// The records of a node's last system sample, from its attempt's ENDED report
// (AttemptReport.usage): `memory_peak_bytes` and `cpu_cores` at the usage's time, sample
// number `usage.sample`, in the lines the agents' sampler writes (agent/system_sampler.h),
// to append to the node's SYSTEM_METRICS stream. A value that is not finite or is below zero
// is left out (an agent's report is not trusted to be sane); empty when none is left.
std::string EndSampleRecords(const v1::AttemptUsage& usage);

class MetricsCollector {
 public:
  // Collects the records `request` selects (names, ranks, sources) into `out`.
  MetricsCollector(const v1::GetMetricsRequest& request, v1::GetMetricsResponse* out)
      : request_(request), out_(out) {}

  // Whether the request wants this stream at all.
  bool Wants(v1::MetricSeries::Source source, int32_t rank) const;
  // Adds the whole lines of `data`, bytes of one stream; returns how many bytes it used (up
  // to and with the last line end; everything when `final`: the stream no longer grows).
  size_t Add(v1::MetricSeries::Source source, int32_t rank, absl::string_view data, bool final);

 private:
  void AddLine(v1::MetricSeries::Source source, int32_t rank, absl::string_view line);

  const v1::GetMetricsRequest& request_;
  v1::GetMetricsResponse* out_;
  // (source, rank, name) -> index in out_->series().
  std::map<std::tuple<int, int32_t, std::string>, int> index_;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_METRIC_RECORDS_H_
