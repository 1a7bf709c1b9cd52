#include "server/metric_thinning.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::server {
namespace {

using ::testing::ElementsAre;

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

double Wave(int64_t i) { return std::sin(static_cast<double>(i) / 100.0); }

// Points 0..n-1 (value Wave(step), time 1000 + step) through a thinner.
v1::MetricSeries Thin(int64_t n, ThinningRange range) {
  MetricThinner thinner(range);
  for (int64_t i = 0; i < n; ++i) thinner.Add(i, 1000.0 + static_cast<double>(i), Wave(i));
  v1::MetricSeries out;
  thinner.AppendTo(&out);
  return out;
}

// The thinned values of `values` logged at steps 0, 1, ... with at most `max_points`.
std::vector<int64_t> KeptSteps(const std::vector<double>& values, int64_t max_points,
                               int64_t from = kMin, int64_t to = kMax) {
  MetricThinner thinner({.from_step = from, .to_step = to, .max_points = max_points});
  for (size_t i = 0; i < values.size(); ++i) {
    thinner.Add(static_cast<int64_t>(i), 0, values[i]);
  }
  v1::MetricSeries out;
  thinner.AppendTo(&out);
  return {out.steps().begin(), out.steps().end()};
}

TEST(MetricThinningTest, KeepsEveryPointExactlyWhenTheSeriesFits) {
  v1::MetricSeries out = Thin(2000, {.max_points = 2000});
  EXPECT_FALSE(out.thinned());
  EXPECT_EQ(out.total_points(), 2000);
  EXPECT_EQ(out.method(), "");
  ASSERT_EQ(out.steps_size(), 2000);
  ASSERT_EQ(out.values_size(), 2000);
  ASSERT_EQ(out.times_size(), 2000);
  for (int i = 0; i < 2000; ++i) {
    EXPECT_EQ(out.steps(i), i);
    EXPECT_EQ(out.values(i), Wave(i));
    EXPECT_EQ(out.times(i), 1000.0 + i);
  }
}

TEST(MetricThinningTest, ThinsAMillionPointsToAtMostMaxPointsWithStepsSorted) {
  v1::MetricSeries out = Thin(1'000'000, {.max_points = 1000});
  EXPECT_TRUE(out.thinned());
  EXPECT_EQ(out.method(), "minmax");
  EXPECT_EQ(out.total_points(), 1'000'000);
  // 250 buckets at most: the width doubles from 1 until they fit, to 4096 steps (245 buckets).
  EXPECT_EQ(out.bucket_steps(), 4096);
  EXPECT_LE(out.steps_size(), 1000);
  EXPECT_GE(out.steps_size(), 500);
  EXPECT_EQ(out.steps(0), 0);
  EXPECT_EQ(out.steps(out.steps_size() - 1), 999'999);
  for (int i = 1; i < out.steps_size(); ++i) ASSERT_LT(out.steps(i - 1), out.steps(i));
  ASSERT_EQ(out.values_size(), out.steps_size());
  ASSERT_EQ(out.times_size(), out.steps_size());
  // Each kept point is the original point of its step.
  for (int i = 0; i < out.steps_size(); ++i) {
    ASSERT_EQ(out.values(i), Wave(out.steps(i)));
    ASSERT_EQ(out.times(i), 1000.0 + static_cast<double>(out.steps(i)));
  }
}

TEST(MetricThinningTest, KeepsEachBucketsFirstLowestHighestAndLastPoint) {
  // Steps 0..15 in [0, 15] with 8 points at most: 2 buckets of 8 steps, [0, 8) and [8, 16).
  //                            0  1  2  3  4  5  6  7 | 8  9 10 11 12 13 14 15
  std::vector<double> values = {5, 9, 1, 7, 3, 8, 2, 6, 4, 4, 0, 3, 9, 9, 1, 2};
  // Bucket 1: first 0, highest 1 (9), lowest 2 (1), last 7. Bucket 2: first 8, lowest 10
  // (0), highest 12 (9, the first of two), last 15.
  EXPECT_THAT(KeptSteps(values, 8, 0, 15), ElementsAre(0, 1, 2, 7, 8, 10, 12, 15));
  // Unbounded: the width doubles from one step until at most 2 buckets hold points.
  MetricThinner thinner({.max_points = 8});
  for (size_t i = 0; i < values.size(); ++i) thinner.Add(static_cast<int64_t>(i), 0, values[i]);
  EXPECT_EQ(thinner.bucket_steps(), 8);
  EXPECT_THAT(KeptSteps(values, 8), ElementsAre(0, 1, 2, 7, 8, 10, 12, 15));
  // 9 points into 8: buckets of 8 steps, the second holding step 8 alone.
  EXPECT_THAT(KeptSteps({5, 9, 1, 7, 3, 8, 2, 6, 4}, 8), ElementsAre(0, 1, 2, 7, 8));
  // Fits: every point.
  EXPECT_THAT(KeptSteps({5, 9, 1, 7, 3, 8, 2, 6}, 8), ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
}

TEST(MetricThinningTest, KeepsEverySpike) {
  MetricThinner thinner({.max_points = 100});
  for (int64_t i = 0; i < 100'000; ++i) {
    double v = Wave(i);
    if (i == 12'345) v = 1e9;
    if (i == 77'777) v = -1e9;
    if (i == 50'000) v = std::numeric_limits<double>::infinity();
    thinner.Add(i, 0, v);
  }
  v1::MetricSeries out;
  thinner.AppendTo(&out);
  std::vector<int64_t> steps(out.steps().begin(), out.steps().end());
  EXPECT_THAT(steps, ::testing::Contains(12'345));
  EXPECT_THAT(steps, ::testing::Contains(77'777));
  EXPECT_THAT(steps, ::testing::Contains(50'000));
  EXPECT_LE(out.steps_size(), 100);
}

TEST(MetricThinningTest, NaNIsKeptOnlyAsFirstOrLast) {
  double nan = std::nan("");
  EXPECT_THAT(KeptSteps({nan, 1, nan, 9, nan, nan, 0.5, nan}, 4), ElementsAre(0, 3, 6, 7));
  EXPECT_THAT(KeptSteps(std::vector<double>(10, nan), 4), ElementsAre(0, 9));
}

TEST(MetricThinningTest, CutsToTheStepRangeAndIsExactWhenTheRangeFits) {
  v1::MetricSeries exact = Thin(10'000, {.from_step = 100, .to_step = 199, .max_points = 2000});
  EXPECT_FALSE(exact.thinned());
  EXPECT_EQ(exact.total_points(), 100);
  ASSERT_EQ(exact.steps_size(), 100);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(exact.steps(i), 100 + i);
    EXPECT_EQ(exact.values(i), Wave(100 + i));
  }
  // A bounded range sets the width at once: 8000 steps in 10 buckets of 800.
  v1::MetricSeries thinned = Thin(10'000, {.from_step = 1000, .to_step = 8999, .max_points = 40});
  EXPECT_TRUE(thinned.thinned());
  EXPECT_EQ(thinned.total_points(), 8000);
  EXPECT_EQ(thinned.bucket_steps(), 800);
  EXPECT_LE(thinned.steps_size(), 40);
  EXPECT_GE(thinned.steps_size(), 30);
  EXPECT_EQ(thinned.steps(0), 1000);
  EXPECT_EQ(thinned.steps(thinned.steps_size() - 1), 8999);
  // Only one end bounded.
  EXPECT_EQ(Thin(10'000, {.from_step = 9990, .max_points = 50}).steps_size(), 10);
  EXPECT_EQ(Thin(10'000, {.to_step = 9, .max_points = 50}).steps_size(), 10);
}

TEST(MetricThinningTest, ExtremeRangesNeitherOverflowNorLosePoints) {
  // The widest bounded range: one bucket of every step, still first, lowest, highest, last.
  v1::MetricSeries wide = Thin(1000, {.from_step = kMin + 1, .to_step = kMax - 1, .max_points = 4});
  EXPECT_TRUE(wide.thinned());
  EXPECT_EQ(wide.total_points(), 1000);
  EXPECT_LE(wide.steps_size(), 4);
  EXPECT_EQ(wide.steps(0), 0);
  EXPECT_EQ(wide.steps(wide.steps_size() - 1), 999);
  // Steps far apart, unbounded, one bucket allowed: the width grows to 2^63.
  MetricThinner far({.max_points = 4});
  far.Add(0, 0, 1);
  far.Add(9'000'000'000'000'000, 0, 2);
  far.Add(3, 0, 3);
  far.Add(4'611'686'018'427'387'904, 0, 0);
  far.Add(kMax, 0, 5);
  v1::MetricSeries out;
  far.AppendTo(&out);
  EXPECT_EQ(out.total_points(), 5);
  EXPECT_EQ(out.bucket_steps(), kMax);  // 2^63 steps, told as the largest int64
  // The first, the lowest (0) and the last, which is also the highest.
  EXPECT_THAT(out.steps(), ElementsAre(0, 4'611'686'018'427'387'904, kMax));
  // A single step.
  EXPECT_EQ(Thin(100, {.from_step = 42, .to_step = 42, .max_points = 4}).steps_size(), 1);
}

TEST(MetricThinningTest, StepsLoggedOutOfOrderStayInTheirBucketsInLoggedOrder) {
  // A rank that restarted: steps 0..9999, then 5000..14999 again.
  MetricThinner thinner({.max_points = 200});
  for (int64_t i = 0; i < 10'000; ++i) thinner.Add(i, 0, Wave(i));
  for (int64_t i = 5000; i < 15'000; ++i) thinner.Add(i, 1, -Wave(i));
  v1::MetricSeries out;
  thinner.AppendTo(&out);
  EXPECT_EQ(out.total_points(), 20'000);
  EXPECT_LE(out.steps_size(), 200);
  EXPECT_EQ(out.steps(0), 0);
  EXPECT_EQ(out.steps(out.steps_size() - 1), 14'999);
  // Bucket by bucket, the steps never go back by a bucket or more.
  for (int i = 1; i < out.steps_size(); ++i) {
    ASSERT_GT(out.steps(i), out.steps(i - 1) - out.bucket_steps());
  }
}

TEST(MetricThinningTest, NothingGivenKeepsNothing) {
  v1::MetricSeries out = Thin(0, {.max_points = 100});
  EXPECT_EQ(out.total_points(), 0);
  EXPECT_EQ(out.steps_size(), 0);
  EXPECT_FALSE(out.thinned());
  EXPECT_EQ(Thin(100, {.from_step = 500, .max_points = 10}).steps_size(), 0);
}

TEST(MetricThinningTest, TinyMaxPointsCountsAsFour) {
  std::vector<int64_t> kept = KeptSteps({3, 1, 4, 1, 5, 9, 2, 6}, 1);
  EXPECT_LE(kept.size(), 4u);
  EXPECT_EQ(kept.front(), 0);
  EXPECT_EQ(kept.back(), 7);
  EXPECT_THAT(kept, ::testing::Contains(5));  // the highest
  EXPECT_THAT(kept, ::testing::Contains(1));  // the lowest (the first of two)
}

}  // namespace
}  // namespace drover::server
