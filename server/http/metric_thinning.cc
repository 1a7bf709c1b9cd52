#include "server/http/metric_thinning.h"

#include <algorithm>
#include <cmath>

namespace drover::server::http {

std::vector<size_t> MinMaxIndexes(absl::Span<const double> values, size_t max_points) {
  max_points = std::max<size_t>(max_points, 4);
  std::vector<size_t> kept;
  const size_t n = values.size();
  if (n <= max_points) {
    kept.resize(n);
    for (size_t i = 0; i < n; ++i) kept[i] = i;
    return kept;
  }
  const size_t buckets = max_points / 4;
  kept.reserve(buckets * 4);
  for (size_t b = 0; b < buckets; ++b) {
    // Bucket b holds [begin, end): the points spread as evenly as integers allow.
    const size_t begin = b * n / buckets;
    const size_t end = (b + 1) * n / buckets;
    size_t low = end, high = end;
    for (size_t i = begin; i < end; ++i) {
      if (std::isnan(values[i])) continue;
      if (low == end || values[i] < values[low]) low = i;
      if (high == end || values[i] > values[high]) high = i;
    }
    size_t picks[4] = {begin, low, high, end - 1};
    std::sort(picks, picks + 4);
    for (size_t pick : picks) {
      if (pick >= end) continue;  // a bucket of NaN only has no lowest or highest
      if (kept.empty() || kept.back() != pick) kept.push_back(pick);
    }
  }
  return kept;
}

ThinnedSeries ThinSeries(const v1::MetricSeries& series, size_t max_points, int64_t from_step,
                         int64_t to_step) {
  const size_t n = std::min({static_cast<size_t>(series.steps_size()),
                             static_cast<size_t>(series.values_size()),
                             static_cast<size_t>(series.times_size())});
  // The points in range, by index into `series`.
  std::vector<size_t> in_range;
  std::vector<double> values;
  in_range.reserve(n);
  values.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t step = series.steps(static_cast<int>(i));
    if (step < from_step || step > to_step) continue;
    in_range.push_back(i);
    values.push_back(series.values(static_cast<int>(i)));
  }
  ThinnedSeries out;
  out.series.set_name(series.name());
  out.series.set_source(series.source());
  out.series.set_rank(series.rank());
  out.total_points = static_cast<int64_t>(in_range.size());
  std::vector<size_t> kept = MinMaxIndexes(values, max_points);
  out.thinned = kept.size() < in_range.size();
  out.series.mutable_steps()->Reserve(static_cast<int>(kept.size()));
  out.series.mutable_values()->Reserve(static_cast<int>(kept.size()));
  out.series.mutable_times()->Reserve(static_cast<int>(kept.size()));
  for (size_t k : kept) {
    const int i = static_cast<int>(in_range[k]);
    out.series.add_steps(series.steps(i));
    out.series.add_values(series.values(i));
    out.series.add_times(series.times(i));
  }
  return out;
}

}  // namespace drover::server::http
