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
#include <vector>

#include "absl/strings/string_view.h"
#include "drover/v1/agent.pb.h"
#include "drover/v1/job_service.pb.h"
#include "server/metric_thinning.h"

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
// a name or tag that is not valid UTF-8. A point written the way run.py writes it
// (`{"n":"loss","s":3,"t":1764170000.5,"v":0.25}`) is read without the JSON reader, with
// the same result; anything else goes through ParseMetricRecordWithJsonReader.
std::optional<MetricRecord> ParseMetricRecord(absl::string_view line);
// The same through the general JSON reader (the reference the fast path is tested against).
std::optional<MetricRecord> ParseMetricRecordWithJsonReader(absl::string_view line);

// The records of a node's last system sample, from its attempt's ENDED report
// (AttemptReport.usage): `memory_peak_bytes` and `cpu_cores` at the usage's time, sample
// number `usage.sample`, in the lines the agents' sampler writes (agent/system_sampler.h),
// to append to the node's SYSTEM_METRICS stream. A value that is not finite or is below zero
// is left out (an agent's report is not trusted to be sane); empty when none is left.
std::string EndSampleRecords(const v1::AttemptUsage& usage);

class MetricsCollector {
 public:
  // Collects the records `request` selects (names, ranks, sources; the steps in
  // [from_step, to_step] when set) into `out`. With `request.max_points() > 0` each series is
  // thinned as it is read (MetricThinner): the points reach `out` only with Finish().
  MetricsCollector(const v1::GetMetricsRequest& request, v1::GetMetricsResponse* out);

  // Whether the request wants this stream at all.
  bool Wants(v1::MetricSeries::Source source, int32_t rank) const;
  // Adds the whole lines of `data`, bytes of one stream; returns how many bytes it used (up
  // to and with the last line end; everything when `final`: the stream no longer grows).
  size_t Add(v1::MetricSeries::Source source, int32_t rank, absl::string_view data, bool final);
  // Puts the thinned series' points into `out` (nothing to do without `max_points`).
  void Finish();

 private:
  void AddLine(v1::MetricSeries::Source source, int32_t rank, absl::string_view line);
  // The index in out_->series() of a series, made when new.
  int SeriesIndex(v1::MetricSeries::Source source, int32_t rank, const std::string& name);

  const v1::GetMetricsRequest& request_;
  v1::GetMetricsResponse* out_;
  const ThinningRange range_;
  const bool thin_;
  // (source, rank, name) -> index in out_->series().
  std::map<std::tuple<int, int32_t, std::string>, int> index_;
  // The series of the previous point (a stream mostly repeats its names).
  std::tuple<int, int32_t, std::string> last_key_;
  int last_index_ = -1;
  // Per series (same index) when thinning.
  std::vector<MetricThinner> thinners_;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_METRIC_RECORDS_H_
