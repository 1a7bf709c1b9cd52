#include "server/metric_thinning.h"

#include <algorithm>
#include <cmath>

namespace drover::server {
namespace {

constexpr uint64_t kUnbounded = 0;


}  // namespace

MetricThinner::MetricThinner(const ThinningRange& range)
    : from_(range.from_step),
      to_(range.to_step),
      max_points_(std::max<int64_t>(range.max_points, 4)),
      max_buckets_(static_cast<size_t>(max_points_ / 4)) {
  // Steps are counted from `from_`: from INT64_MIN when unbounded, which for widths that are
  // powers of two puts the buckets' edges at multiples of the width from 0.
  const bool bounded = from_ != std::numeric_limits<int64_t>::min() &&
                       to_ != std::numeric_limits<int64_t>::max() && from_ <= to_;
  if (bounded) {
    // The steps in range, less one (fits in 64 bits unsigned whatever the range).
    const uint64_t span = static_cast<uint64_t>(to_) - static_cast<uint64_t>(from_);
    divisor_ = span / max_buckets_ + 1;  // ceil((span + 1) / max_buckets_) without overflow
  } else {
    divisor_ = kUnbounded;
  }
}

uint64_t MetricThinner::Index(int64_t step) const {
  const uint64_t d = static_cast<uint64_t>(step) - static_cast<uint64_t>(from_);
  if (divisor_ != kUnbounded) return d / divisor_;
  return shift_ >= 64 ? 0 : d >> shift_;
}

int64_t MetricThinner::bucket_steps() const {
  if (divisor_ != kUnbounded) {
    return static_cast<int64_t>(std::min<uint64_t>(divisor_, std::numeric_limits<int64_t>::max()));
  }
  return shift_ >= 63 ? std::numeric_limits<int64_t>::max() : int64_t{1} << shift_;
}

void MetricThinner::Add(int64_t step, double time, double value) {
  if (step < from_ || step > to_) return;
  const Point p{total_, step, time, value};
  ++total_;
  if (total_ <= max_points_) {
    exact_.push_back(p);
  } else if (!exact_.empty()) {
    std::vector<Point>().swap(exact_);  // thinned from now on: the memory goes back
  }
  const uint64_t index = Index(step);
  if (last_ == buckets_.end() || last_->first != index) {
    auto [it, added] = buckets_.try_emplace(index);
    last_ = it;
    if (added) {
      Bucket& b = it->second;
      b.first = b.last = p;
      if (!std::isnan(value)) {
        b.low = b.high = p;
        b.has_extremes = true;
      }
      if (buckets_.size() > max_buckets_) Widen();
      return;
    }
  }
  Bucket& b = last_->second;
  b.last = p;  // points come in logged order: the newest is the last
  if (std::isnan(value)) return;
  if (!b.has_extremes) {
    b.low = b.high = p;
    b.has_extremes = true;
    return;
  }
  if (value < b.low.value) b.low = p;
  if (value > b.high.value) b.high = p;
}

void MetricThinner::Merge(Bucket& into, const Bucket& other) {
  if (other.first.seq < into.first.seq) into.first = other.first;
  if (other.last.seq > into.last.seq) into.last = other.last;
  if (!other.has_extremes) return;
  if (!into.has_extremes) {
    into.low = other.low;
    into.high = other.high;
    into.has_extremes = true;
    return;
  }
  // On a tie, the point logged first stays.
  if (other.low.value < into.low.value ||
      (other.low.value == into.low.value && other.low.seq < into.low.seq)) {
    into.low = other.low;
  }
  if (other.high.value > into.high.value ||
      (other.high.value == into.high.value && other.high.seq < into.high.seq)) {
    into.high = other.high;
  }
}

void MetricThinner::Widen() {
  // Only an unbounded range widens: a bounded one has at most max_buckets_ indexes.
  while (divisor_ == kUnbounded && buckets_.size() > max_buckets_ && shift_ < 64) {
    ++shift_;
    std::map<uint64_t, Bucket> wider;
    for (const auto& [index, bucket] : buckets_) {
      const uint64_t into = shift_ >= 64 ? 0 : index >> 1;
      auto [it, added] = wider.try_emplace(into, bucket);
      if (!added) Merge(it->second, bucket);
    }
    buckets_.swap(wider);
  }
  last_ = buckets_.end();
}

void MetricThinner::AppendTo(v1::MetricSeries* series) const {
  series->set_total_points(total_);
  auto add = [series](const Point& p) {
    series->add_steps(p.step);
    series->add_times(p.time);
    series->add_values(p.value);
  };
  if (!thinned()) {
    for (const Point& p : exact_) add(p);
    return;
  }
  series->set_thinned(true);
  series->set_method(kThinningMethod);
  series->set_bucket_steps(bucket_steps());
  for (const auto& [index, b] : buckets_) {
    const Point* picks[4] = {&b.first, &b.last, &b.low, &b.high};
    const int n = b.has_extremes ? 4 : 2;
    std::sort(picks, picks + n, [](const Point* x, const Point* y) { return x->seq < y->seq; });
    for (int i = 0; i < n; ++i) {
      if (i > 0 && picks[i]->seq == picks[i - 1]->seq) continue;
      add(*picks[i]);
    }
  }
}

}  // namespace drover::server
