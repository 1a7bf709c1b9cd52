// EvaluateEarlyTermination: hand-made tables of metric series whose stops were worked out by
// hand, and random tables checked against a direct reading of sweep.proto's definitions
// written independently here (no prefix arrays, everything recomputed from the raw series).
#include "scheduler/sweep_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "drover/v1/sweep.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/sweep_spec.h"

namespace drover::scheduler {
namespace {

using ::testing::HasSubstr;
using v1::SweepSpec;

// A trial's series from a list of (step, value).
TrialMetrics TrialAt(const std::string& id, bool running,
                     const std::vector<std::pair<int64_t, double>>& points) {
  TrialMetrics t;
  t.trial_id = id;
  t.running = running;
  for (const auto& [step, value] : points) t.series[step] = value;
  return t;
}

// Steps 0, 1, 2, ... as run.log numbers them without step=.
TrialMetrics Trial(const std::string& id, bool running, const std::vector<double>& values) {
  std::vector<std::pair<int64_t, double>> points;
  for (size_t i = 0; i < values.size(); ++i) points.emplace_back(i, values[i]);
  return TrialAt(id, running, points);
}

SweepSpec WithGoal(v1::MetricGoal goal) {
  SweepSpec s;
  s.set_primary_metric_name(goal == v1::MAXIMIZE ? "accuracy" : "loss");
  s.set_primary_metric_goal(goal);
  return s;
}

SweepSpec Bandit(v1::MetricGoal goal, std::optional<double> factor, std::optional<double> amount,
                 int interval, int delay) {
  SweepSpec s = WithGoal(goal);
  v1::BanditPolicy* b = s.mutable_early_termination()->mutable_bandit();
  if (factor) b->set_slack_factor(*factor);
  if (amount) b->set_slack_amount(*amount);
  b->set_evaluation_interval(interval);
  b->set_delay_evaluation(delay);
  return s;
}

SweepSpec Median(v1::MetricGoal goal, int interval, int delay) {
  SweepSpec s = WithGoal(goal);
  v1::MedianStoppingPolicy* m = s.mutable_early_termination()->mutable_median_stopping();
  m->set_evaluation_interval(interval);
  m->set_delay_evaluation(delay);
  return s;
}

SweepSpec Truncation(v1::MetricGoal goal, int percentage, int interval, int delay) {
  SweepSpec s = WithGoal(goal);
  v1::TruncationSelectionPolicy* t = s.mutable_early_termination()->mutable_truncation_selection();
  t->set_truncation_percentage(percentage);
  t->set_evaluation_interval(interval);
  t->set_delay_evaluation(delay);
  return s;
}

// (trial, interval, step) of each stop: what the tables state.
using Stop = std::tuple<std::string, int64_t, int64_t>;

std::vector<Stop> Stops(const SweepSpec& spec, const std::vector<TrialMetrics>& trials) {
  std::vector<Stop> out;
  for (const EarlyStop& s : EvaluateEarlyTermination(spec, trials)) {
    out.emplace_back(s.trial_id, s.interval, s.step);
  }
  return out;
}

TEST(SweepPolicyTest, NoPolicyStopsNothing) {
  SweepSpec s = WithGoal(v1::MAXIMIZE);
  EXPECT_TRUE(Stops(s, {Trial("a", true, {0.9}), Trial("b", true, {0.0})}).empty());
}

TEST(SweepPolicyTest, BestValueIgnoresNanAndInfinity) {
  const MetricSeries series = {{0, 0.5}, {1, NAN}, {2, INFINITY}, {3, 0.7}, {4, -INFINITY}};
  EXPECT_EQ(BestValue(series, v1::MAXIMIZE), 0.7);
  EXPECT_EQ(BestValue(series, v1::MINIMIZE), 0.5);
  EXPECT_EQ(BestValue({{0, NAN}}, v1::MAXIMIZE), std::nullopt);
  EXPECT_EQ(BestValue({}, v1::MINIMIZE), std::nullopt);
}

// HyperDrive's example: best 0.8 at an interval with slack_factor 0.2 stops trials below
// 0.8 / 1.2 = 0.6667.
TEST(SweepPolicyTest, BanditStopsTrialsBeyondTheSlackAtTheRightInterval) {
  const SweepSpec s = Bandit(v1::MAXIMIZE, 0.2, std::nullopt, 1, 2);
  const std::vector<TrialMetrics> trials = {
      // Logged every 10 steps: intervals count logged values, not steps.
      TrialAt("t1", true, {{0, 0.5}, {10, 0.7}, {20, 0.8}, {30, 0.85}}),
      // Interval 2: best 0.7, threshold 0.5833; 0.6 stays. Interval 3: best 0.8, threshold
      // 0.6667; its best 0.62 is below.
      Trial("t2", true, {0.4, 0.6, 0.62, 0.7}),
      // Interval 1 would stop it (0.3 < 0.5 / 1.2) but the delay is 2; interval 2: 0.45.
      Trial("t3", true, {0.3, 0.45, 0.5}),
      // A NaN is no value: its 2nd value is 0.59 at step 2, above 0.5833.
      Trial("t4", true, {0.2, NAN, 0.59}),
  };
  EXPECT_THAT(Stops(s, trials), ::testing::ElementsAre(Stop{"t2", 3, 2}, Stop{"t3", 2, 1}));
  const std::vector<EarlyStop> stops = EvaluateEarlyTermination(s, trials);
  EXPECT_EQ(stops[0].rule, "bandit");
  EXPECT_EQ(stops[0].best_trial, "t1");
  EXPECT_DOUBLE_EQ(stops[0].reference, 0.8);
  EXPECT_DOUBLE_EQ(stops[0].threshold, 0.8 / 1.2);
  EXPECT_EQ(stops[0].compared, 3);  // t4 has two values: not at interval 3
  EXPECT_THAT(stops[0].message,
              HasSubstr("bandit policy at interval 3 (step 2): best accuracy 0.62 is worse than "
                        "0.6666666666666667, the best trial 't1' at 0.8 less slack_factor 0.2"));
}

TEST(SweepPolicyTest, BanditComparesWithEndedTrialsAndNeverStopsThem) {
  const SweepSpec s = Bandit(v1::MAXIMIZE, 0.2, std::nullopt, 1, 0);
  const std::vector<TrialMetrics> trials = {
      Trial("done", false, {0.9, 0.95}),  // ended: sets the bar, is not stopped
      Trial("bad-done", false, {0.1}),    // ended below the bar: nothing to stop
      Trial("t1", true, {0.8, 0.7}),      // 0.8 >= 0.9 / 1.2 = 0.75; then 0.8 >= 0.7917
      Trial("t2", true, {0.76, 0.78}),    // 0.76 >= 0.75; then 0.78 < 0.7917
  };
  EXPECT_THAT(Stops(s, trials), ::testing::ElementsAre(Stop{"t2", 2, 1}));
}

TEST(SweepPolicyTest, BanditMinimizingWithSlackAmountAndInterval) {
  // Evaluated at intervals 3 and 6 (multiples of 3, at least the delay 3).
  const SweepSpec s = Bandit(v1::MINIMIZE, std::nullopt, 0.5, 3, 3);
  const std::vector<TrialMetrics> trials = {
      Trial("best", true, {3.0, 2.0, 1.0, 0.9, 0.8, 0.5}),
      // Interval 3: best 1.0 + 0.5 = 1.5; its best 1.4 stays. Interval 6: 0.5 + 0.5 = 1.0;
      // 1.2 > 1.0.
      Trial("slow", true, {2.5, 1.8, 1.4, 1.3, 1.25, 1.2}),
      // Far worse at intervals 1 and 2, which are not evaluated; interval 3: 1.6 > 1.5.
      Trial("bad", true, {9.0, 9.0, 1.6, 0.1}),
  };
  EXPECT_THAT(Stops(s, trials), ::testing::ElementsAre(Stop{"slow", 6, 5}, Stop{"bad", 3, 2}));
}

TEST(SweepPolicyTest, BanditSlackFactorWithNegativeMetricsKeepsTheBest) {
  // Maximizing a negative reward: best -1.0, slack_factor 0.25: threshold
  // -1 - 1 * 0.25 / 1.25 = -1.2. Minimizing a log-likelihood loss: best -10, factor 0.1:
  // -10 + 10 * 0.1 = -9.
  EXPECT_THAT(Stops(Bandit(v1::MAXIMIZE, 0.25, std::nullopt, 1, 0),
                    {Trial("a", true, {-1.0}), Trial("b", true, {-1.19}),
                     Trial("c", true, {-1.21})}),
              ::testing::ElementsAre(Stop{"c", 1, 0}));
  EXPECT_THAT(Stops(Bandit(v1::MINIMIZE, 0.1, std::nullopt, 1, 0),
                    {Trial("a", true, {-10.0}), Trial("b", true, {-9.1}),
                     Trial("c", true, {-8.9})}),
              ::testing::ElementsAre(Stop{"c", 1, 0}));
}

TEST(SweepPolicyTest, MedianStoppingStopsTrialsWorseThanTheMedianOfRunningAverages) {
  const SweepSpec s = Median(v1::MINIMIZE, 1, 1);
  const std::vector<TrialMetrics> trials = {
      Trial("t1", true, {1.0, 0.8, 0.6}),
      // Interval 1: running averages 1.0, 1.2, 0.9, 1.0: median 1.0; 1.2 is worse.
      Trial("t2", true, {1.2, 1.1, 1.0}),
      Trial("t3", true, {0.9, 0.7, 0.5}),
      // Interval 1: 1.0 is not worse than 1.0. Interval 2: averages 0.9, 1.15, 0.8, 1.0:
      // median 0.95; its best 1.0 is worse.
      Trial("t4", true, {1.0, 1.0, 0.95}),
  };
  EXPECT_THAT(Stops(s, trials), ::testing::ElementsAre(Stop{"t2", 1, 0}, Stop{"t4", 2, 1}));
  const std::vector<EarlyStop> stops = EvaluateEarlyTermination(s, trials);
  EXPECT_EQ(stops[1].rule, "median_stopping");
  EXPECT_DOUBLE_EQ(stops[1].threshold, 0.95);
  EXPECT_THAT(stops[1].message,
              HasSubstr("median stopping policy at interval 2 (step 1): best loss 1 is worse than "
                        "0.95, the median of the running averages of 4 trials"));
}

// Found by sweep_e2e_test: ten values of -0.01 sum to a mean of -0.009999999999999998, and
// a trial compared with itself (or with others logging the same) was stopped as worse than
// the median of the running averages. A mean never exceeds the values it is the mean of.
TEST(SweepPolicyTest, MedianStoppingNeverStopsATrialForItsOwnRoundedMean) {
  SweepSpec s = WithGoal(v1::MAXIMIZE);
  s.mutable_early_termination()->mutable_median_stopping()->set_evaluation_interval(1);
  const std::vector<double> constant(20, -0.01);
  EXPECT_TRUE(EvaluateEarlyTermination(s, {Trial("alone", true, constant)}).empty());
  EXPECT_TRUE(EvaluateEarlyTermination(
                  s, {Trial("a", true, constant), Trial("b", true, constant)})
                  .empty());
  SweepSpec low = WithGoal(v1::MINIMIZE);
  low.mutable_early_termination()->mutable_median_stopping()->set_evaluation_interval(1);
  const std::vector<double> tenths(20, 0.1);
  EXPECT_TRUE(EvaluateEarlyTermination(low, {Trial("alone", true, tenths)}).empty());
}

TEST(SweepPolicyTest, TruncationCutsTheLowestPercentageKeepingTiesAtTheBoundary) {
  const SweepSpec s = Truncation(v1::MAXIMIZE, 25, 1, 0);
  // Eight trials: 25% is 2 at each interval.
  std::vector<TrialMetrics> trials = {
      Trial("a", true, {0.1, 0.9}),    // interval 1: lowest, cut
      Trial("b", true, {0.2, 0.15}),   // interval 1: 0.2 ties with c: 3 no better > 2, kept;
      Trial("c", true, {0.2, 0.2}),    //   interval 2: b 0.2, c 0.2 (a is gone, see below)
      Trial("d", true, {0.5, 0.5}),
      Trial("e", true, {0.6, 0.6}),
      Trial("f", true, {0.7, 0.7}),
      Trial("g", true, {0.8, 0.8}),
      Trial("h", false, {0.9, 0.9}),
  };
  EXPECT_THAT(Stops(s, trials), ::testing::ElementsAre(Stop{"a", 1, 0}, Stop{"b", 2, 1},
                                                       Stop{"c", 2, 1}));
  // Interval 2 with a's 0.9: the bests are b 0.2, c 0.2, d 0.5, ...: b and c are the two
  // lowest (both tied at 0.2, 2 <= 2).
  const std::vector<EarlyStop> stops = EvaluateEarlyTermination(s, trials);
  EXPECT_EQ(stops[1].rule, "truncation_selection");
  EXPECT_DOUBLE_EQ(stops[1].threshold, 0.5);
  EXPECT_THAT(stops[1].message, HasSubstr("is among the lowest 25% of 8 trials (2 cut; the "
                                          "lowest kept is 0.5)"));

  // With three tied at the boundary none of them is cut.
  trials[3] = Trial("d", true, {0.2, 0.2});
  EXPECT_THAT(Stops(s, trials), ::testing::ElementsAre(Stop{"a", 1, 0}));
  // Fewer than 4 trials at 25%: floor(N / 4) = 0, nothing is cut.
  EXPECT_TRUE(Stops(s, {Trial("x", true, {0.1}), Trial("y", true, {0.9}),
                        Trial("z", true, {0.5})})
                  .empty());
}

TEST(SweepPolicyTest, TrialsThatReachAnIntervalLaterStillCountThere) {
  // t-fast is alone at interval 3 first, and nothing stops it.
  const SweepSpec s = Bandit(v1::MAXIMIZE, 0.1, std::nullopt, 3, 0);
  std::vector<TrialMetrics> trials = {Trial("fast", true, {0.3, 0.4, 0.5, 0.55, 0.6}),
                                      Trial("slow", true, {0.6, 0.7})};
  EXPECT_TRUE(Stops(s, trials).empty());
  // The slow trial reaches interval 3 with 0.8: the fast one is stopped at interval 3 (its
  // step 2), judged by what both had logged by their third value.
  trials[1] = Trial("slow", true, {0.6, 0.7, 0.8});
  EXPECT_THAT(Stops(s, trials), ::testing::ElementsAre(Stop{"fast", 3, 2}));
  // Called again with the same history: the same answer (the caller ignores stops of trials
  // no longer running).
  EXPECT_THAT(Stops(s, trials), ::testing::ElementsAre(Stop{"fast", 3, 2}));
}

// --- The same rules read directly from sweep.proto, for random tables ---

struct Naive {
  const SweepSpec& spec;
  bool maximize() const { return spec.primary_metric_goal() == v1::MAXIMIZE; }
  // The first n finite values of a trial, in step order, or nullopt when it has fewer.
  std::optional<std::vector<double>> FirstValues(const TrialMetrics& t, int64_t n) const {
    std::vector<double> values;
    for (const auto& [step, value] : t.series) {
      if (static_cast<int64_t>(values.size()) == n) break;
      if (std::isfinite(value)) values.push_back(value);
    }
    if (static_cast<int64_t>(values.size()) < n) return std::nullopt;
    return values;
  }
  double BestOf(const std::vector<double>& v) const {
    return maximize() ? *std::max_element(v.begin(), v.end())
                      : *std::min_element(v.begin(), v.end());
  }
  bool Better(double a, double b) const { return maximize() ? a > b : a < b; }

  // Whether trial `t` is stopped at interval n.
  bool StopsAt(const std::vector<TrialMetrics>& trials, size_t t, int64_t n) const {
    const std::vector<double> mine = *FirstValues(trials[t], n);
    const double my_best = BestOf(mine);
    std::vector<double> bests, averages;
    for (const TrialMetrics& other : trials) {
      std::optional<std::vector<double>> v = FirstValues(other, n);
      if (!v) continue;
      bests.push_back(BestOf(*v));
      double sum = 0;
      for (double x : *v) sum += x;
      averages.push_back(sum / static_cast<double>(v->size()));
    }
    const v1::EarlyTermination& et = spec.early_termination();
    if (et.has_bandit()) {
      double best = bests[0];
      for (double b : bests) {
        if (Better(b, best)) best = b;
      }
      double allowed;
      if (et.bandit().has_slack_amount()) {
        allowed = et.bandit().slack_amount();
      } else {
        const double f = et.bandit().slack_factor();
        // sweep.proto: b / (1 + f) and b * (1 + f) for b > 0, else b -+ |b| f / (1 + f)
        // and b + |b| f.
        if (best > 0) return maximize() ? my_best < best / (1 + f) : my_best > best * (1 + f);
        allowed = maximize() ? -best * f / (1 + f) : -best * f;
      }
      // Worse than the best by more than the allowance.
      return maximize() ? best - allowed > my_best : best + allowed < my_best;
    }
    if (et.has_median_stopping()) {
      std::sort(averages.begin(), averages.end());
      const size_t k = averages.size();
      const double median =
          k % 2 ? averages[k / 2] : (averages[k / 2 - 1] + averages[k / 2]) / 2;
      return Better(median, my_best);
    }
    // Truncation: count the trials no better than this one.
    const int64_t allowed = static_cast<int64_t>(bests.size()) *
                            et.truncation_selection().truncation_percentage() / 100;
    int64_t no_better = 0;
    for (double b : bests) no_better += !Better(b, my_best);
    return no_better <= allowed && allowed > 0;
  }

  std::vector<Stop> Run(const std::vector<TrialMetrics>& trials) const {
    const v1::EarlyTermination& et = spec.early_termination();
    int64_t interval, delay;
    if (et.has_bandit()) {
      interval = et.bandit().evaluation_interval();
      delay = et.bandit().delay_evaluation();
    } else if (et.has_median_stopping()) {
      interval = et.median_stopping().evaluation_interval();
      delay = et.median_stopping().delay_evaluation();
    } else {
      interval = et.truncation_selection().evaluation_interval();
      delay = et.truncation_selection().delay_evaluation();
    }
    std::vector<Stop> stops;
    for (size_t t = 0; t < trials.size(); ++t) {
      if (!trials[t].running) continue;
      for (int64_t n = 1; FirstValues(trials[t], n); ++n) {
        if (n % interval != 0 || n < delay) continue;
        if (StopsAt(trials, t, n)) {
          // The step of its n-th finite value.
          int64_t seen = 0, step = -1;
          for (const auto& [st, value] : trials[t].series) {
            if (std::isfinite(value) && ++seen == n) {
              step = st;
              break;
            }
          }
          stops.emplace_back(trials[t].trial_id, n, step);
          break;
        }
      }
    }
    return stops;
  }
};

// A small deterministic generator for the tables (not the one under test).
struct Lcg {
  uint64_t state;
  uint32_t Next(uint32_t n) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 33) % n;
  }
};

TEST(SweepPolicyTest, EveryRuleStopsExactlyWhatTheDefinitionsSayOnRandomTables) {
  Lcg rng{12345};
  int stops_seen = 0;
  for (int table = 0; table < 3000; ++table) {
    const v1::MetricGoal goal = rng.Next(2) ? v1::MAXIMIZE : v1::MINIMIZE;
    const int interval = 1 + static_cast<int>(rng.Next(3));
    const int delay = static_cast<int>(rng.Next(5));
    SweepSpec spec;
    switch (rng.Next(4)) {
      case 0:
        spec = Bandit(goal, 0.05 * (1 + rng.Next(10)), std::nullopt, interval, delay);
        break;
      case 1:
        spec = Bandit(goal, std::nullopt, 0.5 * (1 + rng.Next(6)), interval, delay);
        break;
      case 2:
        spec = Median(goal, interval, delay);
        break;
      default:
        spec = Truncation(goal, 1 + static_cast<int>(rng.Next(99)), interval, delay);
        break;
    }
    std::vector<TrialMetrics> trials;
    const int count = 1 + static_cast<int>(rng.Next(9));
    for (int i = 0; i < count; ++i) {
      std::vector<std::pair<int64_t, double>> points;
      int64_t step = rng.Next(3);
      const int length = static_cast<int>(rng.Next(10));
      for (int k = 0; k < length; ++k) {
        // Values on a coarse grid, signs mixed, so that ties and negatives happen; a NaN or an
        // infinity now and then.
        const uint32_t kind = rng.Next(20);
        const double value = kind == 0   ? NAN
                             : kind == 1 ? INFINITY
                                         : (static_cast<double>(rng.Next(21)) - 5) / 4;
        points.emplace_back(step, value);
        step += 1 + rng.Next(3);
      }
      trials.push_back(TrialAt(absl::StrCat("t", i), rng.Next(4) != 0, points));
    }
    const std::vector<Stop> expected = Naive{spec}.Run(trials);
    stops_seen += static_cast<int>(expected.size());
    ASSERT_EQ(Stops(spec, trials), expected)
        << "table " << table << ": " << spec.early_termination().ShortDebugString() << " goal "
        << goal;
  }
  EXPECT_GT(stops_seen, 1000) << "the tables should exercise stopping";
}

}  // namespace
}  // namespace drover::scheduler
