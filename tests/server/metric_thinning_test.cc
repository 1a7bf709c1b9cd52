#include "server/http/metric_thinning.h"

#include <cmath>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::server::http {
namespace {

using ::testing::ElementsAre;

v1::MetricSeries Series(int64_t points) {
  v1::MetricSeries series;
  series.set_name("loss");
  series.set_source(v1::MetricSeries::USER);
  series.set_rank(3);
  for (int64_t i = 0; i < points; ++i) {
    series.add_steps(i);
    series.add_values(std::sin(static_cast<double>(i) / 100.0));
    series.add_times(1000.0 + static_cast<double>(i));
  }
  return series;
}

TEST(MetricThinningTest, KeepsEveryPointExactlyWhenTheSeriesFits) {
  v1::MetricSeries series = Series(2000);
  ThinnedSeries thinned = ThinSeries(series, 2000);
  EXPECT_FALSE(thinned.thinned);
  EXPECT_EQ(thinned.total_points, 2000);
  EXPECT_EQ(thinned.series.name(), "loss");
  EXPECT_EQ(thinned.series.source(), v1::MetricSeries::USER);
  EXPECT_EQ(thinned.series.rank(), 3);
  ASSERT_EQ(thinned.series.steps_size(), 2000);
  for (int i = 0; i < 2000; ++i) {
    EXPECT_EQ(thinned.series.steps(i), series.steps(i));
    EXPECT_EQ(thinned.series.values(i), series.values(i));
    EXPECT_EQ(thinned.series.times(i), series.times(i));
  }
}

TEST(MetricThinningTest, ThinsAMillionPointsToAtMostMaxPointsWithStepsSorted) {
  v1::MetricSeries series = Series(1'000'000);
  ThinnedSeries thinned = ThinSeries(series, 1000);
  EXPECT_TRUE(thinned.thinned);
  EXPECT_EQ(thinned.total_points, 1'000'000);
  EXPECT_LE(thinned.series.steps_size(), 1000);
  EXPECT_GE(thinned.series.steps_size(), 500);
  EXPECT_EQ(thinned.series.steps(0), 0);
  EXPECT_EQ(thinned.series.steps(thinned.series.steps_size() - 1), 999'999);
  for (int i = 1; i < thinned.series.steps_size(); ++i) {
    ASSERT_LT(thinned.series.steps(i - 1), thinned.series.steps(i));
  }
  ASSERT_EQ(thinned.series.values_size(), thinned.series.steps_size());
  ASSERT_EQ(thinned.series.times_size(), thinned.series.steps_size());
  // Each kept point is the original point of its step.
  for (int i = 0; i < thinned.series.steps_size(); ++i) {
    int64_t step = thinned.series.steps(i);
    ASSERT_EQ(thinned.series.values(i), series.values(static_cast<int>(step)));
    ASSERT_EQ(thinned.series.times(i), series.times(static_cast<int>(step)));
  }
}

TEST(MetricThinningTest, KeepsEverySpike) {
  v1::MetricSeries series = Series(100'000);
  series.set_values(12'345, 1e9);
  series.set_values(77'777, -1e9);
  series.set_values(50'000, std::numeric_limits<double>::infinity());
  ThinnedSeries thinned = ThinSeries(series, 100);
  std::vector<int64_t> steps(thinned.series.steps().begin(), thinned.series.steps().end());
  EXPECT_THAT(steps, ::testing::Contains(12'345));
  EXPECT_THAT(steps, ::testing::Contains(77'777));
  EXPECT_THAT(steps, ::testing::Contains(50'000));
  double max = -1e300, min = 1e300;
  for (double v : thinned.series.values()) {
    max = std::max(max, v);
    min = std::min(min, v);
  }
  EXPECT_EQ(max, std::numeric_limits<double>::infinity());
  EXPECT_EQ(min, -1e9);
}

TEST(MetricThinningTest, KeepsFirstLowestHighestAndLastOfEachBucket) {
  // 8 points into 4 at most: one bucket.
  std::vector<double> values = {5, 9, 1, 7, 3, 8, 2, 6};
  EXPECT_THAT(MinMaxIndexes(values, 4), ElementsAre(0, 1, 2, 7));
  // Two buckets of four.
  EXPECT_THAT(MinMaxIndexes(values, 8), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  EXPECT_THAT(MinMaxIndexes({5, 9, 1, 7, 3, 8, 2, 6, 4}, 8), ElementsAre(0, 1, 2, 3, 4, 5, 6, 8));
}

TEST(MetricThinningTest, NaNIsKeptOnlyAsFirstOrLast) {
  double nan = std::nan("");
  std::vector<double> values = {nan, 1, nan, 9, nan, nan, 0.5, nan};
  EXPECT_THAT(MinMaxIndexes(values, 4), ElementsAre(0, 3, 6, 7));
  std::vector<double> all_nan(10, nan);
  EXPECT_THAT(MinMaxIndexes(all_nan, 4), ElementsAre(0, 9));
}

TEST(MetricThinningTest, CutsToTheStepRangeBeforeThinning) {
  v1::MetricSeries series = Series(10'000);
  ThinnedSeries exact = ThinSeries(series, 2000, 100, 199);
  EXPECT_FALSE(exact.thinned);
  EXPECT_EQ(exact.total_points, 100);
  ASSERT_EQ(exact.series.steps_size(), 100);
  EXPECT_EQ(exact.series.steps(0), 100);
  EXPECT_EQ(exact.series.steps(99), 199);
  ThinnedSeries thinned = ThinSeries(series, 40, 1000, 8999);
  EXPECT_TRUE(thinned.thinned);
  EXPECT_EQ(thinned.total_points, 8000);
  EXPECT_LE(thinned.series.steps_size(), 40);
  EXPECT_EQ(thinned.series.steps(0), 1000);
  EXPECT_EQ(thinned.series.steps(thinned.series.steps_size() - 1), 8999);
}

TEST(MetricThinningTest, EmptyAndMalformedSeriesGiveWhatTheyHave) {
  EXPECT_TRUE(MinMaxIndexes({}, 100).empty());
  v1::MetricSeries ragged = Series(10);
  ragged.mutable_times()->RemoveLast();
  ThinnedSeries thinned = ThinSeries(ragged, 100);
  EXPECT_EQ(thinned.total_points, 9);
  EXPECT_EQ(thinned.series.times_size(), 9);
  EXPECT_EQ(thinned.series.values_size(), 9);
}

TEST(MetricThinningTest, TinyMaxPointsCountsAsFour) {
  std::vector<double> values = {3, 1, 4, 1, 5, 9, 2, 6};
  std::vector<size_t> kept = MinMaxIndexes(values, 1);
  EXPECT_LE(kept.size(), 4u);
  EXPECT_EQ(kept.front(), 0u);
  EXPECT_EQ(kept.back(), 7u);
}

}  // namespace
}  // namespace drover::server::http
