// ProposeTrial: GRID enumerates exactly the grid, RANDOM repeats with its seed and follows
// each distribution, TPE is deterministic and finds a known optimum with fewer trials than
// RANDOM.
#include "scheduler/sweep_sampling.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "drover/v1/sweep.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/sweep_spec.h"

namespace drover::scheduler {
namespace {

using v1::ParameterDistribution;
using v1::Sampling;
using v1::SweepSpec;

ParameterDistribution& Param(SweepSpec& s, const std::string& name) {
  return (*s.mutable_search_space())[name];
}

SweepSpec Base(Sampling::Method method, uint64_t seed) {
  SweepSpec s;
  s.mutable_trial_template()->set_entry_script("train.py");
  s.mutable_sampling()->set_method(method);
  s.mutable_sampling()->set_seed(seed);
  s.set_primary_metric_name("loss");
  s.set_primary_metric_goal(v1::MINIMIZE);
  return s;
}

// Validated with defaults applied, as droverd stores it.
SweepSpec Ready(SweepSpec s) {
  ApplySweepSpecDefaults(&s);
  absl::Status st = ValidateSweepSpec(s);
  EXPECT_TRUE(st.ok()) << st;
  return s;
}

ParameterAssignment Propose(const SweepSpec& s, int64_t index,
                            const std::vector<FinishedTrial>& finished = {}) {
  absl::StatusOr<TrialProposal> p = ProposeTrial(s, index, finished);
  EXPECT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->exhausted) << "trial " << index;
  return p->parameters;
}

// The arguments a trial's script gets, as one string: what a user compares.
std::string Shown(const ParameterAssignment& p) {
  std::string out;
  for (const std::string& a : TrialArguments(p)) absl::StrAppend(&out, a, " ");
  return out;
}

double Num(const ParameterAssignment& p, const std::string& name) {
  return p.at(name).number();
}

// --- GRID ---

TEST(SweepSamplingTest, GridProposesEveryCombinationOnceInOdometerOrder) {
  SweepSpec s = Base(Sampling::GRID, 0);
  for (double v : {1, 2, 3}) Param(s, "a").mutable_choice()->add_values()->set_number(v);
  for (double v : {10, 20}) Param(s, "b").mutable_choice()->add_values()->set_number(v);
  for (const char* v : {"x", "y"}) Param(s, "c").mutable_choice()->add_values()->set_text(v);
  s = Ready(s);
  ASSERT_EQ(s.max_total_trials(), 12);

  // The cartesian product, computed independently.
  std::set<std::string> expected;
  for (const char* a : {"1", "2", "3"}) {
    for (const char* b : {"10", "20"}) {
      for (const char* c : {"x", "y"}) {
        expected.insert(absl::StrCat("--a ", a, " --b ", b, " --c ", c, " "));
      }
    }
  }
  std::vector<std::string> proposed;
  for (int i = 0; i < 12; ++i) proposed.push_back(Shown(Propose(s, i)));
  EXPECT_EQ(std::set<std::string>(proposed.begin(), proposed.end()), expected);
  EXPECT_EQ(proposed.size(), expected.size()) << "no combination twice";
  // The last name changes fastest, values in the order listed.
  EXPECT_EQ(proposed[0], "--a 1 --b 10 --c x ");
  EXPECT_EQ(proposed[1], "--a 1 --b 10 --c y ");
  EXPECT_EQ(proposed[2], "--a 1 --b 20 --c x ");
  EXPECT_EQ(proposed[4], "--a 2 --b 10 --c x ");
  EXPECT_EQ(proposed[11], "--a 3 --b 20 --c y ");

  absl::StatusOr<TrialProposal> after = ProposeTrial(s, 12, {});
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(after->exhausted);
  EXPECT_TRUE(after->parameters.empty());
}

TEST(SweepSamplingTest, GridStopsAtMaxTotalTrials) {
  SweepSpec s = Base(Sampling::GRID, 0);
  for (double v : {1, 2, 3, 4}) Param(s, "a").mutable_choice()->add_values()->set_number(v);
  s.set_max_total_trials(3);
  s = Ready(s);
  EXPECT_EQ(Shown(Propose(s, 2)), "--a 3 ");
  EXPECT_TRUE(ProposeTrial(s, 3, {})->exhausted);
}

TEST(SweepSamplingTest, RefusesANegativeIndex) {
  SweepSpec s = Base(Sampling::RANDOM, 0);
  Param(s, "a").mutable_uniform()->set_max(1);
  s.set_max_total_trials(5);
  s = Ready(s);
  EXPECT_EQ(ProposeTrial(s, -1, {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ProposeTrial(s, 5, {})->exhausted);
}

// The core only proposes for validated specs; a broken one still answers without crashing.
TEST(SweepSamplingTest, AnUnvalidatedSpecDoesNotCrash) {
  for (Sampling::Method method : {Sampling::GRID, Sampling::RANDOM, Sampling::TPE}) {
    SweepSpec s = Base(method, 0);
    Param(s, "empty").mutable_choice();
    Param(s, "none");
    Param(s, "bad").mutable_randint()->set_upper(-3);
    s.set_max_total_trials(30);
    s.mutable_sampling()->mutable_tpe()->set_n_startup_trials(2);
    s.mutable_sampling()->mutable_tpe()->set_gamma(0.5);
    s.mutable_sampling()->mutable_tpe()->set_n_ei_candidates(3);
    std::vector<FinishedTrial> finished;
    for (int i = 0; i < 5; ++i) {
      absl::StatusOr<TrialProposal> p = ProposeTrial(s, i, finished);
      ASSERT_TRUE(p.ok());
      finished.push_back({i, p->parameters, static_cast<double>(i)});
    }
  }
}

// --- RANDOM ---

SweepSpec EveryDistribution(Sampling::Method method, uint64_t seed, int trials) {
  SweepSpec s = Base(method, seed);
  Param(s, "u").mutable_uniform()->set_min(2);
  Param(s, "u").mutable_uniform()->set_max(5);
  Param(s, "lg").mutable_loguniform()->set_min(std::log(1e-4));
  Param(s, "lg").mutable_loguniform()->set_max(std::log(1e-1));
  Param(s, "n").mutable_normal()->set_mu(1);
  Param(s, "n").mutable_normal()->set_sigma(0.5);
  Param(s, "q").mutable_quniform()->set_min(0);
  Param(s, "q").mutable_quniform()->set_max(10);
  Param(s, "q").mutable_quniform()->set_q(2.5);
  Param(s, "r").mutable_randint()->set_upper(5);
  for (const char* v : {"a", "b", "c", "d"}) {
    Param(s, "c").mutable_choice()->add_values()->set_text(v);
  }
  s.set_max_total_trials(trials);
  return Ready(s);
}

TEST(SweepSamplingTest, RandomRepeatsWithItsSeedInAnyCallOrder) {
  const SweepSpec s = EveryDistribution(Sampling::RANDOM, 7, 100);
  std::vector<std::string> first, again;
  for (int i = 0; i < 20; ++i) first.push_back(Shown(Propose(s, i)));
  for (int i = 19; i >= 0; --i) again.insert(again.begin(), Shown(Propose(s, i)));
  EXPECT_EQ(first, again);
  EXPECT_EQ(std::set<std::string>(first.begin(), first.end()).size(), 20u) << "trials differ";

  const SweepSpec other = EveryDistribution(Sampling::RANDOM, 8, 100);
  int same = 0;
  for (int i = 0; i < 20; ++i) same += Shown(Propose(other, i)) == first[i];
  EXPECT_EQ(same, 0) << "another seed draws other trials";
}

// The draws of seed 1 as every platform must make them: integers from SplitMix64 and
// doubles by exact arithmetic (no libm on this path).
TEST(SweepSamplingTest, RandomDrawsAreTheSameBitsEverywhere) {
  SweepSpec s = Base(Sampling::RANDOM, 1);
  Param(s, "u").mutable_uniform()->set_max(1);
  Param(s, "r").mutable_randint()->set_upper(1000000);
  for (const char* v : {"a", "b", "c"}) Param(s, "c").mutable_choice()->add_values()->set_text(v);
  s.set_max_total_trials(10);
  s = Ready(s);
  EXPECT_EQ(Shown(Propose(s, 0)), "--c c --r 752162 --u 0.29049544614575296 ");
  EXPECT_EQ(Shown(Propose(s, 1)), "--c c --r 545516 --u 0.7828699535750906 ");
  EXPECT_EQ(Shown(Propose(s, 9)), "--c b --r 358997 --u 0.43659771798050406 ");
}

TEST(SweepSamplingTest, RandomValuesStayInBoundsAndFollowTheirDistributions) {
  constexpr int kN = 4000;
  const SweepSpec s = EveryDistribution(Sampling::RANDOM, 2024, kN);
  std::vector<int> u_tenths(10), lg_tenths(10), q_counts(5), r_counts(5);
  std::map<std::string, int> c_counts;
  double n_sum = 0, n_sq = 0, u_sum = 0;
  int n_within_sigma = 0;
  for (int i = 0; i < kN; ++i) {
    const ParameterAssignment p = Propose(s, i);
    ASSERT_EQ(p.size(), 6u);
    const double u = Num(p, "u");
    ASSERT_GE(u, 2);
    ASSERT_LE(u, 5);
    u_sum += u;
    u_tenths[std::min(9, static_cast<int>((u - 2) / 3 * 10))]++;
    const double lg = Num(p, "lg");
    ASSERT_GE(lg, 1e-4 * (1 - 1e-12));
    ASSERT_LE(lg, 1e-1 * (1 + 1e-12));
    // log10(lg) is uniform on [-4, -1].
    lg_tenths[std::clamp(static_cast<int>((std::log10(lg) + 4) / 3 * 10), 0, 9)]++;
    const double n = Num(p, "n");
    n_sum += n;
    n_sq += n * n;
    n_within_sigma += std::abs(n - 1) <= 0.5;
    const double q = Num(p, "q");
    ASSERT_EQ(q / 2.5, std::round(q / 2.5)) << q << " is not a multiple of 2.5";
    ASSERT_GE(q, 0);
    ASSERT_LE(q, 10);
    q_counts[static_cast<int>(q / 2.5)]++;
    const double r = Num(p, "r");
    ASSERT_EQ(r, std::round(r));
    ASSERT_GE(r, 0);
    ASSERT_LE(r, 4);
    r_counts[static_cast<int>(r)]++;
    c_counts[p.at("c").text()]++;
  }
  // Uniform: each tenth of the range holds 400 +- 5 standard deviations (about 19 each).
  for (int k = 0; k < 10; ++k) {
    EXPECT_NEAR(u_tenths[k], kN / 10, 95) << "uniform tenth " << k;
    EXPECT_NEAR(lg_tenths[k], kN / 10, 95) << "loguniform: tenth " << k << " of the log range";
  }
  EXPECT_NEAR(u_sum / kN, 3.5, 0.07);
  // Normal(1, 0.5): mean, standard deviation, and the 68% within one sigma.
  const double mean = n_sum / kN;
  EXPECT_NEAR(mean, 1, 0.04);
  EXPECT_NEAR(std::sqrt(n_sq / kN - mean * mean), 0.5, 0.03);
  EXPECT_NEAR(static_cast<double>(n_within_sigma) / kN, 0.6827, 0.04);
  // quniform(0, 10, 2.5): 0 and 10 take half a step each (1/8), the others a full one (1/4).
  EXPECT_NEAR(q_counts[0], kN / 8, 110);
  EXPECT_NEAR(q_counts[4], kN / 8, 110);
  for (int k = 1; k <= 3; ++k) EXPECT_NEAR(q_counts[k], kN / 4, 140) << "quniform " << k * 2.5;
  for (int k = 0; k < 5; ++k) EXPECT_NEAR(r_counts[k], kN / 5, 130) << "randint " << k;
  ASSERT_EQ(c_counts.size(), 4u);
  for (const auto& [value, count] : c_counts) EXPECT_NEAR(count, kN / 4, 140) << value;
}

// --- TPE ---

// The synthetic objective: its minimum 0 is at x = 0.3, lr = 1e-2.
double Objective(const ParameterAssignment& p) {
  const double x = Num(p, "x");
  const double e = std::log10(Num(p, "lr")) + 2;
  return (x - 0.3) * (x - 0.3) + e * e;
}

SweepSpec Synthetic(Sampling::Method method, uint64_t seed, int trials) {
  SweepSpec s = Base(method, seed);
  Param(s, "x").mutable_uniform()->set_max(1);
  Param(s, "lr").mutable_loguniform()->set_min(std::log(1e-5));
  Param(s, "lr").mutable_loguniform()->set_max(std::log(1.0));
  s.set_max_total_trials(trials);
  return Ready(s);
}

// Runs a sweep one trial at a time, each trial's result known before the next is proposed.
// Returns the best result.
double RunSequentially(const SweepSpec& s, std::vector<FinishedTrial>* history = nullptr) {
  std::vector<FinishedTrial> finished;
  double best = INFINITY;
  for (int i = 0; i < s.max_total_trials(); ++i) {
    FinishedTrial t;
    t.index = i;
    t.parameters = Propose(s, i, finished);
    t.result = Objective(t.parameters);
    best = std::min(best, t.result);
    finished.push_back(std::move(t));
  }
  if (history != nullptr) *history = std::move(finished);
  return best;
}

TEST(SweepSamplingTest, TpeFindsTheOptimumClearlyBetterThanRandomWithTheSameBudget) {
  // 10 random start-up trials, then 50 from the model. (With 40 trials in all TPE is about
  // 3 times closer on average; with 100, 25 times.)
  constexpr int kBudget = 60;
  double tpe_total = 0, random_total = 0;
  int tpe_wins = 0;
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    const double tpe = RunSequentially(Synthetic(Sampling::TPE, seed, kBudget));
    const double random = RunSequentially(Synthetic(Sampling::RANDOM, seed, kBudget));
    tpe_total += tpe;
    random_total += random;
    tpe_wins += tpe < random;
    EXPECT_LT(tpe, 0.02) << "seed " << seed << ": TPE's best trial is not near the optimum";
  }
  EXPECT_GE(tpe_wins, 7) << "TPE beats RANDOM for most seeds";
  EXPECT_LT(tpe_total, random_total / 5) << "TPE " << tpe_total / 8 << ", RANDOM "
                                         << random_total / 8 << " on average";
}

TEST(SweepSamplingTest, TpeIsDeterministicGivenSeedAndHistory) {
  const SweepSpec s = Synthetic(Sampling::TPE, 5, 30);
  std::vector<FinishedTrial> history;
  RunSequentially(s, &history);
  const std::vector<FinishedTrial> first_20(history.begin(), history.begin() + 20);
  const std::string proposal = Shown(Propose(s, 20, first_20));
  EXPECT_EQ(proposal, Shown(history[20].parameters)) << "the same as in the run";
  // The order the history comes in does not matter.
  std::vector<FinishedTrial> reversed(first_20.rbegin(), first_20.rend());
  EXPECT_EQ(Shown(Propose(s, 20, reversed)), proposal);
  // Another trial index draws other candidates; the whole run repeats.
  EXPECT_NE(Shown(Propose(s, 21, first_20)), proposal);
  std::vector<FinishedTrial> again;
  RunSequentially(s, &again);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(Shown(again[i].parameters), Shown(history[i].parameters));
}

TEST(SweepSamplingTest, TpeStartsWithRandomDraws) {
  const SweepSpec tpe = Synthetic(Sampling::TPE, 11, 30);
  const SweepSpec random = Synthetic(Sampling::RANDOM, 11, 30);
  std::vector<FinishedTrial> history;
  RunSequentially(tpe, &history);
  // n_startup_trials (10) trials are drawn as RANDOM draws them.
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(Shown(history[i].parameters), Shown(Propose(random, i))) << "trial " << i;
  }
  // Then the model: trial 10 differs from the random draw.
  EXPECT_NE(Shown(history[10].parameters), Shown(Propose(random, 10)));
}

TEST(SweepSamplingTest, TpeMaximizingTheNegatedObjectiveProposesTheSame) {
  const SweepSpec minimize = Synthetic(Sampling::TPE, 3, 25);
  SweepSpec maximize = minimize;
  maximize.set_primary_metric_goal(v1::MAXIMIZE);
  std::vector<FinishedTrial> history;
  RunSequentially(minimize, &history);
  std::vector<FinishedTrial> negated = history;
  for (FinishedTrial& t : negated) t.result = -t.result;
  for (int i = 10; i < 25; ++i) {
    const std::vector<FinishedTrial> before(history.begin(), history.begin() + i);
    const std::vector<FinishedTrial> before_negated(negated.begin(), negated.begin() + i);
    EXPECT_EQ(Shown(Propose(minimize, i, before)), Shown(Propose(maximize, i, before_negated)));
  }
}

TEST(SweepSamplingTest, TpePrefersTheChoiceThatWorks) {
  SweepSpec s = Base(Sampling::TPE, 9);
  for (const char* v : {"adam", "sgd", "rmsprop", "adagrad"}) {
    Param(s, "optimizer").mutable_choice()->add_values()->set_text(v);
  }
  Param(s, "width").mutable_quniform()->set_min(16);
  Param(s, "width").mutable_quniform()->set_max(512);
  Param(s, "width").mutable_quniform()->set_q(16);
  Param(s, "layers").mutable_randint()->set_upper(8);
  Param(s, "init").mutable_normal()->set_mu(0);
  Param(s, "init").mutable_normal()->set_sigma(1);
  s.set_max_total_trials(60);
  s = Ready(s);
  std::vector<FinishedTrial> finished;
  int rmsprop_after_startup = 0;
  for (int i = 0; i < 60; ++i) {
    FinishedTrial t;
    t.index = i;
    t.parameters = Propose(s, i, finished);
    const double width = Num(t.parameters, "width");
    const double layers = Num(t.parameters, "layers");
    ASSERT_EQ(std::fmod(width, 16), 0) << width;
    ASSERT_GE(width, 16);
    ASSERT_LE(width, 512);
    ASSERT_EQ(layers, std::round(layers));
    ASSERT_GE(layers, 0);
    ASSERT_LE(layers, 7);
    const bool rmsprop = t.parameters.at("optimizer").text() == "rmsprop";
    if (i >= 10) rmsprop_after_startup += rmsprop;
    t.result = (rmsprop ? 0 : 1) + std::abs(width - 256) / 512 + std::abs(layers - 3) / 8 +
               std::abs(Num(t.parameters, "init") - 0.5) / 4;
    finished.push_back(std::move(t));
  }
  // At random, a quarter of the 50 model-based trials would be rmsprop.
  EXPECT_GE(rmsprop_after_startup, 30);
}

TEST(SweepSamplingTest, TpeIgnoresHistoryThatDoesNotFitTheSpace) {
  const SweepSpec s = Synthetic(Sampling::TPE, 4, 30);
  std::vector<FinishedTrial> odd;
  for (int i = 0; i < 15; ++i) {
    FinishedTrial t;
    t.index = i;
    t.parameters["x"].set_text("not a number");  // a spec changed under the sweep
    if (i % 2 == 0) t.parameters["lr"].set_number(-1);  // no logarithm
    t.result = i % 3 == 0 ? NAN : i;
    odd.push_back(std::move(t));
  }
  const ParameterAssignment p = Propose(s, 15, odd);
  EXPECT_GE(Num(p, "x"), 0);
  EXPECT_LE(Num(p, "x"), 1);
  EXPECT_GT(Num(p, "lr"), 0);
}

}  // namespace
}  // namespace drover::scheduler
