// Thinning of a metric series for a chart, while it is read: a series of a million points
// is drawn on a few thousand pixels, so GetMetrics with `max_points` keeps per bucket of
// steps only the points a line chart shows: the first, the lowest, the highest and the last
// ("minmax"). Spikes stay visible, and a series that fits is kept whole and exactly. The
// points come one at a time in the order the rank logged them and are not held: memory grows
// with `max_points`, never with the series. One thinner per series; not thread-safe.
#ifndef DROVER_SERVER_METRIC_THINNING_H_
#define DROVER_SERVER_METRIC_THINNING_H_

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <vector>

#include "drover/v1/job_service.pb.h"

namespace drover::server {

// The name an answer gives the method (MetricSeries.method).
inline constexpr char kThinningMethod[] = "minmax";
// The most points per series a caller may ask for (GetMetricsRequest.max_points).
inline constexpr int64_t kMaxThinnedPoints = 100'000;

// The steps kept and how many points: GetMetricsRequest's `from_step`, `to_step` and
// `max_points`.
struct ThinningRange {
  int64_t from_step = std::numeric_limits<int64_t>::min();
  int64_t to_step = std::numeric_limits<int64_t>::max();
  // Below 4 counts as 4.
  int64_t max_points = 2000;
};

// Keeps at most `max_points` of the points given to Add (those in the step range).
//
// The rule: while at most `max_points` points are in range, every one of them is kept.
// Beyond, the steps are cut into buckets of `bucket_steps` consecutive steps, starting at
// `from_step` (or 0 when unbounded), with at most max_points / 4 buckets holding points;
// each bucket keeps its first, lowest, highest and last point (each once; NaN is never the
// lowest or highest; on a tie, the first logged). When the range is bounded the width is
// set at once (the range over max_points / 4, rounded up); otherwise it starts at one step
// and doubles, merging pairs of buckets, whenever more buckets hold points than allowed, so
// a series ends with between max_points / 8 and max_points / 4 buckets. The kept points
// come out bucket by bucket (ascending steps) and in logged order within a bucket.
class MetricThinner {
 public:
  explicit MetricThinner(const ThinningRange& range);

  // One point, in the order the rank logged it. Points outside the step range are passed
  // over.
  void Add(int64_t step, double time, double value);

  // Points given that are in the step range.
  int64_t total_points() const { return total_; }
  // Whether fewer points than total_points() are kept.
  bool thinned() const { return total_ > max_points_; }
  // The steps one bucket spans (meaningful when thinned()); at most INT64_MAX.
  int64_t bucket_steps() const;

  // Appends the kept points to `series` and sets its total_points and, when thinned, its
  // thinned, method and bucket_steps.
  void AppendTo(v1::MetricSeries* series) const;

 private:
  struct Point {
    int64_t seq = 0;  // the order it was logged in
    int64_t step = 0;
    double time = 0;
    double value = 0;
  };
  struct Bucket {
    Point first, last, low, high;
    bool has_extremes = false;  // low and high are set (a point that is not NaN came)
  };
  // Folds `other` (of the same bucket once wider) into `into`.
  static void Merge(Bucket& into, const Bucket& other);
  // The bucket of a step in range.
  uint64_t Index(int64_t step) const;
  // Doubles the width until at most max_buckets_ buckets hold points (unbounded range).
  void Widen();

  const int64_t from_;
  const int64_t to_;
  const int64_t max_points_;
  const size_t max_buckets_;
  // A bounded range: the width, fixed. 0: unbounded, the width is 2^shift_ (2^64: one
  // bucket for everything).
  uint64_t divisor_ = 0;
  int shift_ = 0;
  int64_t total_ = 0;
  // Every point while total_ <= max_points_; emptied after.
  std::vector<Point> exact_;
  // Bucket index ((step - from_) / width, unsigned) -> bucket.
  std::map<uint64_t, Bucket> buckets_;
  // The bucket the previous point went into (steps logged in order hit it again).
  std::map<uint64_t, Bucket>::iterator last_ = buckets_.end();
};

}  // namespace drover::server

#endif  // DROVER_SERVER_METRIC_THINNING_H_
