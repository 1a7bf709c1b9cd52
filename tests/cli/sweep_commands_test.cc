// `drover sweep submit|show|list|cancel` against FakeDroverClient: the JSON spec read as
// written (and refused before any call when it is not a SweepSpec), a key of its own on each
// submit, the trials ranked best first, and the usage errors.
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace drover::cli {
namespace {

using ::testing::HasSubstr;

constexpr char kSpec[] = R"({
  "name": "lr-search",
  "trial_template": {"entry_script": "train.py"},
  "search_space": {"lr": {"uniform": {"min": 0, "max": 1}}},
  "sampling": {"method": "random", "seed": 3},
  "primary_metric_name": "accuracy",
  "primary_metric_goal": "MAXIMIZE",
  "max_total_trials": 8
})";

v1::SweepTrial Trial(int64_t index, double lr, std::optional<double> result,
                     v1::JobStatus::State state = v1::JobStatus::COMPLETED) {
  v1::SweepTrial trial;
  trial.set_index(index);
  trial.set_job_id(absl::StrCat("j-", index + 1));
  (*trial.mutable_parameters())["lr"].set_number(lr);
  trial.set_job_state(state);
  if (result.has_value()) {
    trial.set_result(*result);
    trial.set_intervals(3);
  }
  return trial;
}

TEST_F(CliTest, SweepSubmitReadsTheJsonSpecAndSendsAKeyOfItsOwn) {
  const std::string path = WriteTempFile("sweep.json", kSpec);
  ASSERT_EQ(Run({"sweep", "submit", "-f", path}), 0) << err();
  ASSERT_EQ(server_.sweep_submits.size(), 1u);
  const v1::SweepSpec& spec = server_.sweep_submits[0].spec();
  EXPECT_EQ(spec.name(), "lr-search");
  EXPECT_EQ(spec.sampling().method(), v1::Sampling::RANDOM);
  EXPECT_EQ(spec.sampling().seed(), 3u);
  EXPECT_EQ(spec.max_total_trials(), 8);
  EXPECT_EQ(spec.idempotency_key(), "generated-1");
  EXPECT_EQ(out(), "s-1000000000000000\n");
}

TEST_F(CliTest, SweepSubmitRefusesWhatIsNoSweepSpecBeforeAnyCall) {
  const std::string path = WriteTempFile("bad.json", R"({"trial_template": 3})");
  EXPECT_EQ(Run({"sweep", "submit", "-f", path}), kExitUsage);
  ExpectOneErrorLine("sweep spec:");
  EXPECT_EQ(Run({"sweep", "submit", "-f", "/nonexistent/sweep.json"}), kExitUsage);
  ExpectOneErrorLine("cannot read sweep spec file '/nonexistent/sweep.json'");
  EXPECT_EQ(Run({"sweep", "submit"}), kExitUsage);
  ExpectOneErrorLine("missing -f FILE");
  EXPECT_TRUE(server_.sweep_submits.empty());
  // droverd's refusal: exit code 3 with its message.
  server_.errors.push_back(absl::InvalidArgumentError(
      "sweep.search_space['lr'].uniform.max: 1 is not above min 2"));
  EXPECT_EQ(Run({"sweep", "submit", "-f", WriteTempFile("ok.json", kSpec)}), kExitInvalid);
  ExpectOneErrorLine("sweep.search_space['lr'].uniform.max");
}

TEST_F(CliTest, SweepShowRanksTheTrialsBestFirstWithTheirParametersAndStops) {
  v1::Sweep& sweep = server_.sweeps["s-00000000000000a1"];
  sweep.set_id("s-00000000000000a1");
  sweep.set_owner("ada");
  sweep.mutable_spec()->set_primary_metric_name("accuracy");
  sweep.mutable_spec()->set_primary_metric_goal(v1::MAXIMIZE);
  sweep.mutable_spec()->set_max_total_trials(4);
  sweep.mutable_spec()->set_max_concurrent_trials(2);
  sweep.mutable_status()->set_state(v1::SweepStatus::RUNNING);
  *sweep.add_trials() = Trial(0, 0.1, 0.7);
  *sweep.add_trials() = Trial(1, 0.2, std::nullopt, v1::JobStatus::RUNNING);
  *sweep.add_trials() = Trial(2, 0.3, 0.9);
  v1::SweepTrial stopped = Trial(3, 0.4, 0.2, v1::JobStatus::CANCELED);
  stopped.mutable_stop()->set_rule("bandit");
  stopped.mutable_stop()->set_message("bandit policy at interval 1 (step 0): best accuracy 0.2");
  *sweep.add_trials() = stopped;
  sweep.set_trial_count(4);
  sweep.set_best_trial_index(2);
  sweep.set_best_result(0.9);
  ASSERT_EQ(Run({"sweep", "show", "s-00000000000000a1"}), 0) << err();
  const std::string text = out();
  EXPECT_THAT(text, HasSubstr("Best:      trial 2, accuracy 0.9"));
  const size_t first = text.find("lr=0.3");
  const size_t second = text.find("lr=0.1");
  const size_t third = text.find("lr=0.4");
  const size_t last = text.find("lr=0.2");
  ASSERT_NE(first, std::string::npos) << text;
  EXPECT_LT(first, second) << text;
  EXPECT_LT(second, third) << text;
  EXPECT_LT(third, last) << text;
  EXPECT_THAT(text, HasSubstr("CANCELED (stopped: bandit)"));
  EXPECT_THAT(text, HasSubstr("trial 3 stopped: bandit policy at interval 1"));

  EXPECT_EQ(Run({"sweep", "show", "s-00000000000000ff"}), kExitNotFound);
  EXPECT_EQ(Run({"sweep", "show"}), kExitUsage);
  ExpectOneErrorLine("missing SWEEP");
}

TEST_F(CliTest, SweepListAndCancel) {
  v1::Sweep& sweep = server_.sweeps["s-00000000000000a1"];
  sweep.set_id("s-00000000000000a1");
  sweep.mutable_spec()->set_name("lr-search");
  sweep.mutable_spec()->set_max_total_trials(8);
  sweep.set_trial_count(3);
  sweep.set_best_result(0.75);
  sweep.mutable_status()->set_state(v1::SweepStatus::RUNNING);
  ASSERT_EQ(Run({"sweep", "list"}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("s-00000000000000a1"));
  EXPECT_THAT(out(), HasSubstr("lr-search"));
  EXPECT_THAT(out(), HasSubstr("3/8"));
  EXPECT_THAT(out(), HasSubstr("0.75"));
  ASSERT_EQ(Run({"sweep", "cancel", "s-00000000000000a1"}), 0) << err();
  EXPECT_EQ(out(), "s-00000000000000a1 CANCELED\n");
  EXPECT_EQ(Run({"sweep", "cancel", "a", "b"}), kExitUsage);
  EXPECT_EQ(Run({"sweep", "frobnicate"}), kExitUsage);
  ASSERT_EQ(Run({"sweep", "--help"}), 0);
  EXPECT_THAT(out(), HasSubstr("submit"));
  EXPECT_THAT(out(), HasSubstr("cancel"));
}

}  // namespace
}  // namespace drover::cli
