// Thinning of a metric series for a chart: a series of a million points is drawn on a few
// thousand pixels, so the HTTP gateway sends per bucket of consecutive points only the ones
// a line chart shows: the first, the lowest, the highest and the last ("minmax"). Spikes
// stay visible, the points keep their order (so steps logged in order stay sorted), and a
// series that fits is sent whole and exactly. Pure functions; any thread.
#ifndef DROVER_SERVER_HTTP_METRIC_THINNING_H_
#define DROVER_SERVER_HTTP_METRIC_THINNING_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/types/span.h"
#include "drover/v1/job_service.pb.h"

namespace drover::server::http {

// The name the answer gives the method ("method": "minmax").
inline constexpr char kThinningMethod[] = "minmax";

// Which points of `values` to keep so that at most `max_points` remain (`max_points` below 4
// counts as 4): every index when there are at most `max_points`; otherwise the points are cut
// into max_points / 4 buckets of consecutive points and each bucket keeps its first, lowest,
// highest and last point (each once). The first and last index are always kept, NaN is never
// taken for the lowest or highest, and the indexes are ascending.
std::vector<size_t> MinMaxIndexes(absl::Span<const double> values, size_t max_points);

// A series cut to the steps in [from_step, to_step] and thinned to `max_points`.
struct ThinnedSeries {
  v1::MetricSeries series;  // name, source and rank as given; the kept points
  int64_t total_points = 0;  // points of the series in [from_step, to_step]
  bool thinned = false;      // fewer points than `total_points` were kept
};

// `series` with only its points whose step is in [from_step, to_step], thinned by
// MinMaxIndexes when more than `max_points` are left. A malformed series (columns of
// different lengths) is cut to its shortest column.
ThinnedSeries ThinSeries(const v1::MetricSeries& series, size_t max_points,
                         int64_t from_step = std::numeric_limits<int64_t>::min(),
                         int64_t to_step = std::numeric_limits<int64_t>::max());

}  // namespace drover::server::http

#endif  // DROVER_SERVER_HTTP_METRIC_THINNING_H_
