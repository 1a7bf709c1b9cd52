// ValidateSweepSpec, ApplySweepSpecDefaults and the trial's job: the accepted sweeps, the
// defaults a user sees stored, a table of refusals (one row per hostile value, each naming
// its field and saying what to do), and what the script receives.
#include "scheduler/sweep_spec.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <sstream>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "drover/v1/job.pb.h"
#include "drover/v1/sweep.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "scheduler/job_spec.h"

namespace drover::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using v1::ParameterDistribution;
using v1::Sampling;
using v1::SweepSpec;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

ParameterDistribution& Param(SweepSpec& s, const std::string& name) {
  return (*s.mutable_search_space())[name];
}

void SetChoice(SweepSpec& s, const std::string& name, const std::vector<double>& values) {
  v1::Choice* c = Param(s, name).mutable_choice();
  c->clear_values();
  for (double v : values) c->add_values()->set_number(v);
}

// Every kind of distribution, TPE, a bandit policy and both timeouts: a valid sweep that the
// rows below break one field at a time.
SweepSpec FullSweep() {
  SweepSpec s;
  s.set_name("resnet-lr-search");
  v1::JobSpec* t = s.mutable_trial_template();
  t->set_entry_script("train.py");
  t->add_arguments()->set_value("--epochs");
  t->add_arguments()->set_value("10");
  Param(s, "lr").mutable_loguniform()->set_min(std::log(1e-5));
  Param(s, "lr").mutable_loguniform()->set_max(std::log(1e-1));
  SetChoice(s, "batch_size", {16, 32, 64});
  v1::Choice* opt = Param(s, "optimizer").mutable_choice();
  opt->add_values()->set_text("adam");
  opt->add_values()->set_text("sgd");
  Param(s, "dropout").mutable_uniform()->set_min(0);
  Param(s, "dropout").mutable_uniform()->set_max(0.5);
  Param(s, "momentum").mutable_normal()->set_mu(0.9);
  Param(s, "momentum").mutable_normal()->set_sigma(0.02);
  v1::QUniform* units = Param(s, "hidden-units").mutable_quniform();
  units->set_min(32);
  units->set_max(512);
  units->set_q(32);
  Param(s, "seed").mutable_randint()->set_upper(1000);
  s.mutable_sampling()->set_method(Sampling::TPE);
  s.mutable_sampling()->set_seed(42);
  s.set_primary_metric_name("accuracy");
  s.set_primary_metric_goal(v1::MAXIMIZE);
  s.set_max_total_trials(50);
  s.set_max_concurrent_trials(4);
  s.mutable_max_duration()->set_seconds(6 * 3600);
  s.mutable_max_trial_duration()->set_seconds(3600);
  v1::BanditPolicy* bandit = s.mutable_early_termination()->mutable_bandit();
  bandit->set_slack_factor(0.1);
  bandit->set_evaluation_interval(2);
  bandit->set_delay_evaluation(5);
  ApplySweepSpecDefaults(&s);
  return s;
}

SweepSpec GridSweep() {
  SweepSpec s;
  s.mutable_trial_template()->set_entry_script("train.py");
  SetChoice(s, "a", {1, 2, 3});
  SetChoice(s, "b", {10, 20});
  s.mutable_sampling()->set_method(Sampling::GRID);
  s.set_primary_metric_name("loss");
  s.set_primary_metric_goal(v1::MINIMIZE);
  return s;
}

TEST(SweepSpecTest, AcceptsEveryDistributionWithTpeAndBandit) {
  EXPECT_TRUE(ValidateSweepSpec(FullSweep()).ok()) << ValidateSweepSpec(FullSweep());
}

TEST(SweepSpecTest, AcceptsEachPolicyAndNone) {
  SweepSpec s = FullSweep();
  s.mutable_early_termination()->mutable_bandit()->set_slack_amount(0.05);
  EXPECT_TRUE(ValidateSweepSpec(s).ok()) << ValidateSweepSpec(s);
  s.mutable_early_termination()->mutable_median_stopping()->set_delay_evaluation(3);
  ApplySweepSpecDefaults(&s);
  EXPECT_TRUE(ValidateSweepSpec(s).ok()) << ValidateSweepSpec(s);
  s.mutable_early_termination()->mutable_truncation_selection()->set_truncation_percentage(20);
  ApplySweepSpecDefaults(&s);
  EXPECT_TRUE(ValidateSweepSpec(s).ok()) << ValidateSweepSpec(s);
  s.clear_early_termination();
  EXPECT_TRUE(ValidateSweepSpec(s).ok()) << ValidateSweepSpec(s);
}

TEST(SweepSpecTest, GridDefaultsItsTrialCountToTheGridSize) {
  SweepSpec s = GridSweep();
  ApplySweepSpecDefaults(&s);
  ASSERT_TRUE(ValidateSweepSpec(s).ok()) << ValidateSweepSpec(s);
  EXPECT_EQ(GridSize(s), 6);
  EXPECT_EQ(s.max_total_trials(), 6);
  EXPECT_EQ(s.max_concurrent_trials(), 6);

  SweepSpec more = GridSweep();
  more.set_max_total_trials(1000);  // more than the grid: cut to it
  ApplySweepSpecDefaults(&more);
  EXPECT_EQ(more.max_total_trials(), 6);

  SweepSpec fewer = GridSweep();
  fewer.set_max_total_trials(4);  // fewer: kept
  fewer.set_max_concurrent_trials(2);
  ApplySweepSpecDefaults(&fewer);
  EXPECT_EQ(fewer.max_total_trials(), 4);
  EXPECT_EQ(fewer.max_concurrent_trials(), 2);
}

TEST(SweepSpecTest, DefaultsAreStoredSoTheSpecShowsWhatRuns) {
  SweepSpec s;
  s.mutable_trial_template()->set_entry_script("train.py");
  Param(s, "lr").mutable_uniform()->set_max(1);
  s.set_primary_metric_name("loss");
  s.set_primary_metric_goal(v1::MINIMIZE);
  s.set_max_total_trials(20);
  s.mutable_early_termination()->mutable_median_stopping();
  ApplySweepSpecDefaults(&s);
  ASSERT_TRUE(ValidateSweepSpec(s).ok()) << ValidateSweepSpec(s);
  EXPECT_EQ(s.sampling().method(), Sampling::RANDOM);
  EXPECT_EQ(s.max_concurrent_trials(), 20);
  EXPECT_EQ(s.early_termination().median_stopping().evaluation_interval(), 1);
  EXPECT_EQ(s.early_termination().median_stopping().delay_evaluation(), 0);
  EXPECT_EQ(s.trial_template().experiment(), "default");  // the template's own defaults
  EXPECT_FALSE(s.sampling().has_tpe());                     // only TPE gets TPE's knobs

  s.mutable_sampling()->set_method(Sampling::TPE);
  ApplySweepSpecDefaults(&s);
  EXPECT_EQ(s.sampling().tpe().n_startup_trials(), 10);
  EXPECT_EQ(s.sampling().tpe().gamma(), 0.25);
  EXPECT_EQ(s.sampling().tpe().n_ei_candidates(), 24);

  SweepSpec empty_policy = s;
  empty_policy.mutable_early_termination()->Clear();
  ApplySweepSpecDefaults(&empty_policy);
  EXPECT_FALSE(empty_policy.has_early_termination());
}

TEST(SweepSpecTest, ParametersReachTheScriptAsFlagsAfterTheTemplatesArguments) {
  SweepSpec s = FullSweep();
  ParameterAssignment p;
  p["lr"].set_number(0.001);
  p["batch_size"].set_number(64);
  p["optimizer"].set_text("adam");
  p["dropout"].set_number(1e-5);
  p["seed"].set_number(1e15);
  p["momentum"].set_number(-2.5);
  p["hidden-units"].set_number(0.1 + 0.2);
  v1::JobSpec trial = MakeTrialSpec(s, p);
  std::vector<std::string> args;
  for (const v1::Argument& a : trial.arguments()) args.push_back(a.value());
  EXPECT_THAT(args, ElementsAre("--epochs", "10", "--batch_size", "64", "--dropout", "1e-05",
                                "--hidden-units", "0.30000000000000004", "--lr", "0.001",
                                "--momentum", "-2.5", "--optimizer", "adam", "--seed",
                                "1000000000000000"));
  EXPECT_TRUE(ValidateJobSpec(trial).ok()) << ValidateJobSpec(trial);
}

TEST(SweepSpecTest, TrialTimeoutIsTheSmallerOfTheSweepsAndTheTemplates) {
  SweepSpec s = FullSweep();  // max_trial_duration 1 h
  EXPECT_EQ(MakeTrialSpec(s, {}).max_run_duration().seconds(), 3600);
  s.mutable_trial_template()->mutable_max_run_duration()->set_seconds(600);
  EXPECT_EQ(MakeTrialSpec(s, {}).max_run_duration().seconds(), 600);
  s.mutable_trial_template()->mutable_max_run_duration()->set_seconds(7200);
  EXPECT_EQ(MakeTrialSpec(s, {}).max_run_duration().seconds(), 3600);
  s.clear_max_trial_duration();
  EXPECT_EQ(MakeTrialSpec(s, {}).max_run_duration().seconds(), 7200);
}

TEST(SweepSpecTest, TemplateProblemsAreNamedUnderTheTemplate) {
  SweepSpec s = FullSweep();
  s.mutable_trial_template()->set_node_count(0);
  absl::Status st = ValidateSweepSpec(s);
  EXPECT_THAT(Message(st), StartsWith("sweep.trial_template.node_count: 0 is out of range"));
}

TEST(SweepSpecTest, TheDocsExampleIsValid) {
  std::ifstream in(absl::StrCat(DROVER_SOURCE_DIR, "/docs/sweeps.md"));
  ASSERT_TRUE(in) << "docs/sweeps.md";
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const size_t begin = doc.find("```json\n");
  ASSERT_NE(begin, std::string::npos);
  const size_t end = doc.find("\n```", begin + 8);
  ASSERT_NE(end, std::string::npos);
  SweepSpec s;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(doc.substr(begin + 8, end - begin - 8), &s).ok());
  ApplySweepSpecDefaults(&s);
  EXPECT_TRUE(ValidateSweepSpec(s).ok()) << ValidateSweepSpec(s);
  EXPECT_EQ(s.sampling().method(), Sampling::TPE);
  EXPECT_EQ(s.search_space().size(), 6);
  EXPECT_TRUE(s.early_termination().has_bandit());
}

// One row: how to break a valid sweep, and the field path the message must start with.
struct BadSweep {
  const char* test_name;
  std::function<void(SweepSpec&)> mutate;
  std::string field;
  // A word the message must hold besides the path, to show it says the right thing.
  std::string says;
};

void PrintTo(const BadSweep& row, std::ostream* os) { *os << row.test_name; }

std::vector<BadSweep> BadSweeps() {
  return {
      // the sweep and its template
      {"NameWithSpace", [](SweepSpec& s) { s.set_name("my sweep"); }, "sweep.name", "outside"},
      {"NoTemplate", [](SweepSpec& s) { s.clear_trial_template(); }, "sweep.trial_template",
       "missing"},
      {"TemplateWithoutScript",
       [](SweepSpec& s) { s.mutable_trial_template()->clear_entry_script(); },
       "sweep.trial_template.entry_script", "empty"},
      {"TemplateWithIdempotencyKey",
       [](SweepSpec& s) { s.mutable_trial_template()->set_idempotency_key("k1"); },
       "sweep.trial_template.idempotency_key", "own job"},
      {"TemplateIsAJobArray",
       [](SweepSpec& s) { s.mutable_trial_template()->mutable_array()->set_indices("0-9"); },
       "sweep.trial_template.array", "one job"},
      {"TemplateIsAnArraysTask",
       [](SweepSpec& s) { s.mutable_trial_template()->mutable_array_task()->set_index(3); },
       "sweep.trial_template.array_task", "one job"},
      {"TemplateIsASweepsTrial",
       [](SweepSpec& s) {
         s.mutable_trial_template()->mutable_sweep_trial()->set_sweep_id("s-0000000000000001");
       },
       "sweep.trial_template.sweep_trial", "drover sweep submit"},
      {"IdempotencyKeyTooLong", [](SweepSpec& s) { s.set_idempotency_key(std::string(129, 'k')); },
       "sweep.idempotency_key", "too long"},
      {"IdempotencyKeyWithNewline", [](SweepSpec& s) { s.set_idempotency_key("k\n1"); },
       "sweep.idempotency_key", "printable ASCII"},
      {"SweepOverOneMebibyte",
       [](SweepSpec& s) {
         s.GetReflection()->MutableUnknownFields(&s)->AddLengthDelimited(999,
                                                                         std::string(1 << 20, 'x'));
       },
       "sweep", "over the limit"},
      // the search space and its names
      {"EmptySearchSpace", [](SweepSpec& s) { s.clear_search_space(); }, "sweep.search_space",
       "at least one"},
      {"TooManyParameters",
       [](SweepSpec& s) {
         for (int i = 0; i < 60; ++i) SetChoice(s, absl::StrCat("p", i), {1});
       },
       "sweep.search_space", "too many"},
      {"NameWithDashes", [](SweepSpec& s) { SetChoice(s, "--lr2", {1}); },
       "sweep.search_space['--lr2']", "'lr2'"},
      {"EmptyName", [](SweepSpec& s) { SetChoice(s, "", {1}); }, "sweep.search_space['']",
       "empty"},
      {"NameWithEquals", [](SweepSpec& s) { SetChoice(s, "a=b", {1}); },
       "sweep.search_space['a=b']", "'='"},
      {"ParameterNameWithSpace", [](SweepSpec& s) { SetChoice(s, "learning rate", {1}); },
       "sweep.search_space['learning rate']", "' '"},
      {"NameStartingWithDigit", [](SweepSpec& s) { SetChoice(s, "1lr", {1}); },
       "sweep.search_space['1lr']", "letter"},
      {"NameTooLong", [](SweepSpec& s) { SetChoice(s, std::string(64, 'a'), {1}); },
       "sweep.search_space['aaaa", "too long"},
      {"NameCollidesWithTemplateFlag",
       [](SweepSpec& s) { s.mutable_trial_template()->add_arguments()->set_value("--lr"); },
       "sweep.search_space['lr']", "arguments[2]"},
      {"NameCollidesWithTemplateFlagWithValue",
       [](SweepSpec& s) { s.mutable_trial_template()->add_arguments()->set_value("--seed=3"); },
       "sweep.search_space['seed']", "'--seed=3'"},
      {"NoDistribution", [](SweepSpec& s) { Param(s, "x"); }, "sweep.search_space['x']",
       "loguniform"},
      // choice
      {"EmptyChoice", [](SweepSpec& s) { Param(s, "batch_size").mutable_choice()->clear_values(); },
       "sweep.search_space['batch_size'].choice.values", "at least one"},
      {"ChoiceValueWithNeitherKind",
       [](SweepSpec& s) { Param(s, "batch_size").mutable_choice()->add_values(); },
       "sweep.search_space['batch_size'].choice.values[3]", "neither"},
      {"ChoiceNan", [](SweepSpec& s) { SetChoice(s, "batch_size", {16, kNan}); },
       "sweep.search_space['batch_size'].choice.values[1].number", "nan"},
      {"ChoiceInfinity", [](SweepSpec& s) { SetChoice(s, "batch_size", {kInf}); },
       "sweep.search_space['batch_size'].choice.values[0].number", "infinite"},
      {"ChoiceDuplicate", [](SweepSpec& s) { SetChoice(s, "batch_size", {16, 32, 16.0}); },
       "sweep.search_space['batch_size'].choice.values[2]", "twice"},
      {"ChoiceNumberAndSameText",
       [](SweepSpec& s) { Param(s, "batch_size").mutable_choice()->add_values()->set_text("32"); },
       "sweep.search_space['batch_size'].choice.values[3]", "twice"},
      {"ChoiceTooManyValues",
       [](SweepSpec& s) {
         std::vector<double> v;
         for (int i = 0; i < 1001; ++i) v.push_back(i);
         SetChoice(s, "batch_size", v);
       },
       "sweep.search_space['batch_size'].choice.values", "too many"},
      {"ChoiceTextStartingWithDash",
       [](SweepSpec& s) { Param(s, "optimizer").mutable_choice()->add_values()->set_text("-rf"); },
       "sweep.search_space['optimizer'].choice.values[2].text", "argparse"},
      {"ChoiceTextWithNul",
       [](SweepSpec& s) {
         Param(s, "optimizer").mutable_choice()->add_values()->set_text(std::string("a\0b", 3));
       },
       "sweep.search_space['optimizer'].choice.values[2].text", "NUL"},
      {"ChoiceTextNotUtf8",
       [](SweepSpec& s) {
         Param(s, "optimizer").mutable_choice()->add_values()->set_text("caf\xC3");
       },
       "sweep.search_space['optimizer'].choice.values[2].text", "UTF-8"},
      {"ChoiceTextTooLong",
       [](SweepSpec& s) {
         Param(s, "optimizer").mutable_choice()->add_values()->set_text(std::string(1025, 'x'));
       },
       "sweep.search_space['optimizer'].choice.values[2].text", "too long"},
      // uniform
      {"UniformNanMin", [](SweepSpec& s) { Param(s, "dropout").mutable_uniform()->set_min(kNan); },
       "sweep.search_space['dropout'].uniform.min", "nan"},
      {"UniformInfiniteMax",
       [](SweepSpec& s) { Param(s, "dropout").mutable_uniform()->set_max(kInf); },
       "sweep.search_space['dropout'].uniform.max", "infinite"},
      {"UniformMinEqualsMax",
       [](SweepSpec& s) { Param(s, "dropout").mutable_uniform()->set_max(0); },
       "sweep.search_space['dropout'].uniform.max", "min < max"},
      {"UniformMinAboveMax",
       [](SweepSpec& s) { Param(s, "dropout").mutable_uniform()->set_min(0.9); },
       "sweep.search_space['dropout'].uniform.max", "not above min 0.9"},
      {"UniformRangeOverflows",
       [](SweepSpec& s) {
         Param(s, "dropout").mutable_uniform()->set_min(-1.7e308);
         Param(s, "dropout").mutable_uniform()->set_max(1.7e308);
       },
       "sweep.search_space['dropout'].uniform", "narrower"},
      // loguniform
      {"LogUniformNanMin", [](SweepSpec& s) { Param(s, "lr").mutable_loguniform()->set_min(kNan); },
       "sweep.search_space['lr'].loguniform.min", "natural logarithm"},
      {"LogUniformMinAboveMax",
       [](SweepSpec& s) { Param(s, "lr").mutable_loguniform()->set_min(0); },
       "sweep.search_space['lr'].loguniform.max", "min < max"},
      {"LogUniformBoundsNotLogarithms",
       [](SweepSpec& s) {
         // Someone wrote the values, not their logarithms: exp(1000) is infinite.
         Param(s, "lr").mutable_loguniform()->set_min(1e-5);
         Param(s, "lr").mutable_loguniform()->set_max(1000);
       },
       "sweep.search_space['lr'].loguniform.max", "natural"},
      // normal
      {"NormalNanMu", [](SweepSpec& s) { Param(s, "momentum").mutable_normal()->set_mu(kNan); },
       "sweep.search_space['momentum'].normal.mu", "nan"},
      {"NormalZeroSigma", [](SweepSpec& s) { Param(s, "momentum").mutable_normal()->set_sigma(0); },
       "sweep.search_space['momentum'].normal.sigma", "not positive"},
      {"NormalNegativeSigma",
       [](SweepSpec& s) { Param(s, "momentum").mutable_normal()->set_sigma(-1); },
       "sweep.search_space['momentum'].normal.sigma", "not positive"},
      {"NormalInfiniteSigma",
       [](SweepSpec& s) { Param(s, "momentum").mutable_normal()->set_sigma(kInf); },
       "sweep.search_space['momentum'].normal.sigma", "infinite"},
      {"NormalHugeMu", [](SweepSpec& s) { Param(s, "momentum").mutable_normal()->set_mu(1e308); },
       "sweep.search_space['momentum'].normal", "magnitude"},
      // quniform
      {"QUniformZeroQ", [](SweepSpec& s) { Param(s, "hidden-units").mutable_quniform()->set_q(0); },
       "sweep.search_space['hidden-units'].quniform.q", "not positive"},
      {"QUniformNegativeQ",
       [](SweepSpec& s) { Param(s, "hidden-units").mutable_quniform()->set_q(-32); },
       "sweep.search_space['hidden-units'].quniform.q", "not positive"},
      {"QUniformNanQ",
       [](SweepSpec& s) { Param(s, "hidden-units").mutable_quniform()->set_q(kNan); },
       "sweep.search_space['hidden-units'].quniform.q", "nan"},
      {"QUniformTinyQ",
       [](SweepSpec& s) { Param(s, "hidden-units").mutable_quniform()->set_q(1e-300); },
       "sweep.search_space['hidden-units'].quniform.q", "too small"},
      {"QUniformMinAboveMax",
       [](SweepSpec& s) { Param(s, "hidden-units").mutable_quniform()->set_min(1024); },
       "sweep.search_space['hidden-units'].quniform.max", "min < max"},
      {"QUniformInfiniteMin",
       [](SweepSpec& s) { Param(s, "hidden-units").mutable_quniform()->set_min(-kInf); },
       "sweep.search_space['hidden-units'].quniform.min", "infinite"},
      // randint
      {"RandIntZero", [](SweepSpec& s) { Param(s, "seed").mutable_randint()->set_upper(0); },
       "sweep.search_space['seed'].randint.upper", "out of range"},
      {"RandIntNegative", [](SweepSpec& s) { Param(s, "seed").mutable_randint()->set_upper(-5); },
       "sweep.search_space['seed'].randint.upper", "out of range"},
      {"RandIntHuge",
       [](SweepSpec& s) { Param(s, "seed").mutable_randint()->set_upper(int64_t{1} << 60); },
       "sweep.search_space['seed'].randint.upper", "out of range"},
      // sampling
      {"UnknownSamplingMethod",
       [](SweepSpec& s) { s.mutable_sampling()->set_method(static_cast<Sampling::Method>(9)); },
       "sweep.sampling.method", "GRID, RANDOM or TPE"},
      {"GridOverAContinuousParameter",
       [](SweepSpec& s) { s.mutable_sampling()->set_method(Sampling::GRID); },
       "sweep.search_space['dropout']", "needs every parameter to be a choice"},
      {"GridTooLarge",
       [](SweepSpec& s) {
         s.clear_search_space();
         std::vector<double> hundred;
         for (int i = 0; i < 100; ++i) hundred.push_back(i);
         SetChoice(s, "a", hundred);
         SetChoice(s, "b", hundred);
         SetChoice(s, "c", {1, 2});
         s.mutable_sampling()->set_method(Sampling::GRID);
         ApplySweepSpecDefaults(&s);
       },
       "sweep.search_space", "more than 10000 combinations"},
      {"GridOverflowingInt64",
       [](SweepSpec& s) {
         s.clear_search_space();
         std::vector<double> thousand;
         for (int i = 0; i < 1000; ++i) thousand.push_back(i);
         for (int p = 0; p < 8; ++p) SetChoice(s, absl::StrCat("p", p), thousand);  // 10^24
         s.mutable_sampling()->set_method(Sampling::GRID);
         ApplySweepSpecDefaults(&s);
       },
       "sweep.search_space", "more than 10000 combinations"},
      {"TpeOneStartupTrial",
       [](SweepSpec& s) { s.mutable_sampling()->mutable_tpe()->set_n_startup_trials(1); },
       "sweep.sampling.tpe.n_startup_trials", "out of range"},
      {"TpeGammaOne", [](SweepSpec& s) { s.mutable_sampling()->mutable_tpe()->set_gamma(1); },
       "sweep.sampling.tpe.gamma", "out of range"},
      {"TpeGammaNan", [](SweepSpec& s) { s.mutable_sampling()->mutable_tpe()->set_gamma(kNan); },
       "sweep.sampling.tpe.gamma", "nan"},
      {"TpeNegativeCandidates",
       [](SweepSpec& s) { s.mutable_sampling()->mutable_tpe()->set_n_ei_candidates(-1); },
       "sweep.sampling.tpe.n_ei_candidates", "out of range"},
      // the metric
      {"NoPrimaryMetric", [](SweepSpec& s) { s.clear_primary_metric_name(); },
       "sweep.primary_metric_name", "run.log"},
      {"PrimaryMetricWithNewline", [](SweepSpec& s) { s.set_primary_metric_name("acc\nx"); },
       "sweep.primary_metric_name", "control character"},
      {"PrimaryMetricTooLong",
       [](SweepSpec& s) { s.set_primary_metric_name(std::string(257, 'm')); },
       "sweep.primary_metric_name", "too long"},
      {"NoGoal", [](SweepSpec& s) { s.clear_primary_metric_goal(); }, "sweep.primary_metric_goal",
       "MAXIMIZE"},
      {"UnknownGoal",
       [](SweepSpec& s) { s.set_primary_metric_goal(static_cast<v1::MetricGoal>(7)); },
       "sweep.primary_metric_goal", "7 is not a goal"},
      // counts and time limits
      {"NoTrialCount", [](SweepSpec& s) { s.set_max_total_trials(0); }, "sweep.max_total_trials",
       "how many"},
      {"NegativeTrialCount", [](SweepSpec& s) { s.set_max_total_trials(-3); },
       "sweep.max_total_trials", "out of range"},
      {"HugeTrialCount", [](SweepSpec& s) { s.set_max_total_trials(2000000000); },
       "sweep.max_total_trials", "use 1 to 10000"},
      {"ZeroConcurrency", [](SweepSpec& s) { s.set_max_concurrent_trials(0); },
       "sweep.max_concurrent_trials", "out of range"},
      {"HugeConcurrency", [](SweepSpec& s) { s.set_max_concurrent_trials(1 << 30); },
       "sweep.max_concurrent_trials", "out of range"},
      {"NegativeSweepTimeout", [](SweepSpec& s) { s.mutable_max_duration()->set_seconds(-1); },
       "sweep.max_duration", "negative"},
      {"SweepTimeoutOverAYear",
       [](SweepSpec& s) { s.mutable_max_duration()->set_seconds(int64_t{400} * 24 * 3600); },
       "sweep.max_duration", "over the limit"},
      {"TrialTimeoutMalformed",
       [](SweepSpec& s) {
         s.mutable_max_trial_duration()->set_seconds(5);
         s.mutable_max_trial_duration()->set_nanos(-1);
       },
       "sweep.max_trial_duration", "malformed"},
      // early termination
      {"BanditWithoutSlack",
       [](SweepSpec& s) { s.mutable_early_termination()->mutable_bandit()->clear_slack(); },
       "sweep.early_termination.bandit", "slack_factor"},
      {"BanditNanSlackFactor",
       [](SweepSpec& s) {
         s.mutable_early_termination()->mutable_bandit()->set_slack_factor(kNan);
       },
       "sweep.early_termination.bandit.slack_factor", "nan"},
      {"BanditZeroSlackFactor",
       [](SweepSpec& s) { s.mutable_early_termination()->mutable_bandit()->set_slack_factor(0); },
       "sweep.early_termination.bandit.slack_factor", "out of range"},
      {"BanditNegativeSlackAmount",
       [](SweepSpec& s) {
         s.mutable_early_termination()->mutable_bandit()->set_slack_amount(-0.1);
       },
       "sweep.early_termination.bandit.slack_amount", "out of range"},
      {"BanditInfiniteSlackAmount",
       [](SweepSpec& s) {
         s.mutable_early_termination()->mutable_bandit()->set_slack_amount(kInf);
       },
       "sweep.early_termination.bandit.slack_amount", "infinite"},
      {"BanditNegativeInterval",
       [](SweepSpec& s) {
         s.mutable_early_termination()->mutable_bandit()->set_evaluation_interval(-1);
       },
       "sweep.early_termination.bandit.evaluation_interval", "out of range"},
      {"BanditNegativeDelay",
       [](SweepSpec& s) {
         s.mutable_early_termination()->mutable_bandit()->set_delay_evaluation(-5);
       },
       "sweep.early_termination.bandit.delay_evaluation", "out of range"},
      {"MedianNegativeInterval",
       [](SweepSpec& s) {
         s.mutable_early_termination()->mutable_median_stopping()->set_evaluation_interval(-2);
       },
       "sweep.early_termination.median_stopping.evaluation_interval", "out of range"},
      {"MedianHugeDelay",
       [](SweepSpec& s) {
         v1::MedianStoppingPolicy* m = s.mutable_early_termination()->mutable_median_stopping();
         m->set_evaluation_interval(1);
         m->set_delay_evaluation(2000000000);
       },
       "sweep.early_termination.median_stopping.delay_evaluation", "out of range"},
      {"TruncationWithoutPercentage",
       [](SweepSpec& s) {
         s.mutable_early_termination()->mutable_truncation_selection()->set_evaluation_interval(1);
       },
       "sweep.early_termination.truncation_selection.truncation_percentage", "out of range"},
      {"TruncationHundredPercent",
       [](SweepSpec& s) {
         v1::TruncationSelectionPolicy* t =
             s.mutable_early_termination()->mutable_truncation_selection();
         t->set_truncation_percentage(100);
         t->set_evaluation_interval(1);
       },
       "sweep.early_termination.truncation_selection.truncation_percentage", "use 1 to 99"},
      {"TruncationNegativeDelay",
       [](SweepSpec& s) {
         v1::TruncationSelectionPolicy* t =
             s.mutable_early_termination()->mutable_truncation_selection();
         t->set_truncation_percentage(10);
         t->set_evaluation_interval(1);
         t->set_delay_evaluation(-1);
       },
       "sweep.early_termination.truncation_selection.delay_evaluation", "out of range"},
      // a trial's job with the parameters appended
      {"TrialArgumentsOverTheJobLimit",
       [](SweepSpec& s) {
         for (int i = 0; i < 20; ++i) {
           v1::Choice* c = Param(s, absl::StrCat("text", i)).mutable_choice();
           c->add_values()->set_text(std::string(1000, 'a' + i % 26));
           c->add_values()->set_text("short");
         }
         for (int i = 0; i < 6; ++i) {
           s.mutable_trial_template()->add_arguments()->set_value(std::string(20000, 'x'));
         }
       },
       "sweep.search_space", "would be refused"},
  };
}

class ValidateSweepSpecTableTest : public ::testing::TestWithParam<BadSweep> {};

TEST_P(ValidateSweepSpecTableTest, RefusesNamingTheFieldAndWhatToDo) {
  SweepSpec spec = FullSweep();
  ASSERT_TRUE(ValidateSweepSpec(spec).ok()) << "the base sweep must be valid";
  GetParam().mutate(spec);
  absl::Status s = ValidateSweepSpec(spec);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(Message(s), StartsWith(GetParam().field));
  EXPECT_THAT(Message(s), HasSubstr(GetParam().says));
  EXPECT_FALSE(absl::EndsWith(s.message(), ".")) << s;
  EXPECT_THAT(Message(s), HasSubstr("; ")) << "the message should say what to do: " << s;
  EXPECT_THAT(Message(s), Not(HasSubstr("\n")));
}

INSTANTIATE_TEST_SUITE_P(BadSweeps, ValidateSweepSpecTableTest, ::testing::ValuesIn(BadSweeps()),
                         [](const ::testing::TestParamInfo<BadSweep>& info) {
                           return std::string(info.param.test_name);
                         });

}  // namespace
}  // namespace drover::scheduler
