// Hyperparameter sweeps end to end, through the real droverd and drover-agent: every trial
// a job whose script (python3 with the drover module) logs score = -(x - 0.3)^2, a known
// function of its parameter, so the test knows each trial's result and the optimum. A grid
// sweep runs exactly the grid; a random sweep finds a trial near the optimum within its
// budget; max_concurrent_trials holds at every moment (each trial's job from its create to
// its end, from droverd's own times); a hostile spec is refused naming the field (gRPC and
// the CLI); a cancel ends the running trials; and droverd SIGKILLed mid-sweep goes on with
// no trial index started twice and none lost.
#include <grpcpp/client_context.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "drover/v1/sweep_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tests/testing/local_cluster.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using google::protobuf::util::TimeUtil;

constexpr absl::Duration kRpcDeadline = absl::Seconds(30);

void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() +
                       absl::ToChronoMilliseconds(kRpcDeadline));
}

absl::Time TimeOf(const google::protobuf::Timestamp& t) {
  return absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(t));
}

double Score(double x) { return -(x - 0.3) * (x - 0.3); }

// The most intervals [begin, end) open at one moment.
int MaxOverlap(const std::vector<std::pair<absl::Time, absl::Time>>& intervals) {
  std::vector<std::pair<absl::Time, int>> events;
  for (const auto& [begin, end] : intervals) {
    events.emplace_back(begin, +1);
    events.emplace_back(end, -1);
  }
  std::sort(events.begin(), events.end());
  int open = 0, most = 0;
  for (const auto& [time, delta] : events) most = std::max(most, open += delta);
  return most;
}

class SweepE2eTest : public testing::LocalClusterTest {
 protected:
  SweepE2eTest() : LocalClusterTest(testing::ClusterOptions{.agents = 1,
                                                            .job_timeout = absl::Seconds(120)}) {}

  void SetUp() override {
    LocalClusterTest::SetUp();
    if (channel_ != nullptr) sweeps_ = v1::SweepService::NewStub(channel_);
  }

  // A trial: the drover module logs score = -(x - 0.3)^2 at `steps` steps; the sweep
  // appends "--x VALUE", which sh passes on as $0 $1.
  static v1::JobSpec TrialTemplate(int steps = 3, double sleep_seconds = 0) {
    return Shell(absl::StrCat(
        "exec python3 -c \"import drover, sys, time\n"
        "x = float(sys.argv[2])\n"
        "run = drover.Run.get_context()\n"
        "for i in range(",
        steps,
        "):\n"
        "    run.log('score', -(x - 0.3) ** 2)\n"
        "    time.sleep(",
        sleep_seconds, ")\n\" \"$0\" \"$1\""));
  }

  // As TrialTemplate, each step sleeping x * `seconds_per_x` seconds, the score rounded to 9
  // decimals (so that x = 0.2 and x = 0.4 log the very same -0.01).
  static v1::JobSpec SlowTrialTemplate(int steps, double seconds_per_x) {
    return Shell(absl::StrCat(
        "exec python3 -c \"import drover, sys, time\n"
        "x = float(sys.argv[2])\n"
        "run = drover.Run.get_context()\n"
        "for i in range(",
        steps,
        "):\n"
        "    run.log('score', round(-(x - 0.3) ** 2, 9))\n"
        "    time.sleep(x * ",
        seconds_per_x, ")\n\" \"$0\" \"$1\""));
  }

  // x = 0.3 and x = 0.9 (a grid), both at once, `steps` slow steps each, under the bandit
  // rule with slack_amount 0.05: the trial of x = 0.9 is the one behind.
  static v1::SweepSpec BanditPairSpec(int steps) {
    v1::SweepSpec spec = BaseSpec();
    *spec.mutable_trial_template() = SlowTrialTemplate(steps, /*seconds_per_x=*/0.5);
    for (double x : {0.3, 0.9}) {
      (*spec.mutable_search_space())["x"].mutable_choice()->add_values()->set_number(x);
    }
    spec.mutable_sampling()->set_method(v1::Sampling::GRID);
    spec.set_max_concurrent_trials(2);
    spec.mutable_early_termination()->mutable_bandit()->set_slack_amount(0.05);
    return spec;
  }

  static v1::SweepSpec BaseSpec() {
    v1::SweepSpec spec;
    *spec.mutable_trial_template() = TrialTemplate();
    spec.set_primary_metric_name("score");
    spec.set_primary_metric_goal(v1::MAXIMIZE);
    return spec;
  }

  grpc::Status SubmitSweep(const v1::SweepSpec& spec, v1::SubmitSweepResponse* response) {
    v1::SubmitSweepRequest request;
    *request.mutable_spec() = spec;
    grpc::ClientContext context;
    SetDeadline(context);
    return sweeps_->SubmitSweep(&context, request, response);
  }

  v1::Sweep GetSweep(const std::string& id) {
    v1::GetSweepRequest request;
    request.set_sweep_id(id);
    v1::Sweep sweep;
    for (int attempt = 0; attempt < 20; ++attempt) {  // droverd may be restarting
      grpc::ClientContext context;
      SetDeadline(context);
      grpc::Status status = sweeps_->GetSweep(&context, request, &sweep);
      if (status.ok()) return sweep;
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) {
        ADD_FAILURE() << status.error_message();
        return sweep;
      }
      absl::SleepFor(absl::Milliseconds(500));
    }
    ADD_FAILURE() << "droverd did not answer GetSweep";
    return sweep;
  }

  // Polls until the sweep is in `state`; fails the test with the sweep and the logs.
  v1::Sweep WaitForSweep(const std::string& id, v1::SweepStatus::State state,
                         absl::Duration timeout = absl::Seconds(240)) {
    const absl::Time deadline = absl::Now() + timeout;
    v1::Sweep sweep;
    while (absl::Now() < deadline) {
      sweep = GetSweep(id);
      if (sweep.status().state() == state) return sweep;
      absl::SleepFor(absl::Milliseconds(250));
    }
    ADD_FAILURE() << "sweep " << id << " not " << v1::SweepStatus::State_Name(state)
                  << " after " << timeout << ":\n"
                  << sweep.DebugString() << AgentLogs();
    return sweep;
  }

  // Every trial job's [create_time, end_time): what max_concurrent_trials bounds.
  std::vector<std::pair<absl::Time, absl::Time>> TrialIntervals(const v1::Sweep& sweep) {
    std::vector<std::pair<absl::Time, absl::Time>> intervals;
    for (const v1::SweepTrial& trial : sweep.trials()) {
      v1::Job job = Get(trial.job_id());
      EXPECT_TRUE(job.status().has_end_time()) << trial.job_id();
      intervals.emplace_back(TimeOf(job.create_time()), TimeOf(job.status().end_time()));
    }
    return intervals;
  }

  // Every job carrying the sweep's tag, from the store: no trial job outside the sweep.
  std::vector<v1::Job> JobsOfSweep(const std::string& id) {
    v1::ListJobsRequest request;
    request.set_tag(absl::StrCat("drover.sweep=", id));
    request.set_page_size(1000);
    v1::ListJobsResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = jobs_->stub().ListJobs(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return std::vector<v1::Job>(response.jobs().begin(), response.jobs().end());
  }

  std::unique_ptr<v1::SweepService::Stub> sweeps_;
};

TEST_F(SweepE2eTest, AGridSweepRunsExactlyTheGridTwoAtATimeAndRanksTheOptimumFirst) {
  ASSERT_FALSE(HasFatalFailure());
  v1::SweepSpec spec = BaseSpec();
  spec.set_name("grid-x");
  for (double x : {0.1, 0.2, 0.3, 0.4, 0.5}) {
    (*spec.mutable_search_space())["x"].mutable_choice()->add_values()->set_number(x);
  }
  spec.mutable_sampling()->set_method(v1::Sampling::GRID);
  spec.set_max_concurrent_trials(2);
  v1::SubmitSweepResponse submitted;
  grpc::Status status = SubmitSweep(spec, &submitted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(absl::StartsWith(submitted.sweep().id(), "s-")) << submitted.DebugString();
  EXPECT_EQ(submitted.sweep().spec().max_total_trials(), 5);  // the grid's size

  v1::Sweep done = WaitForSweep(submitted.sweep().id(), v1::SweepStatus::COMPLETED);
  EXPECT_EQ(done.status().reason(), "GRID_DONE trials=5");
  ASSERT_EQ(done.trials_size(), 5);
  std::multiset<double> xs;
  for (int i = 0; i < done.trials_size(); ++i) {
    const v1::SweepTrial& trial = done.trials(i);
    EXPECT_EQ(trial.index(), i);
    EXPECT_EQ(trial.job_state(), v1::JobStatus::COMPLETED) << trial.job_id();
    const double x = trial.parameters().at("x").number();
    xs.insert(x);
    ASSERT_TRUE(trial.has_result()) << trial.DebugString();
    EXPECT_DOUBLE_EQ(trial.result(), Score(x));
    EXPECT_EQ(trial.intervals(), 3);
    // The job ran the template with the trial's parameter appended.
    v1::Job job = Get(trial.job_id());
    ASSERT_GE(job.spec().arguments_size(), 2);
    EXPECT_EQ(job.spec().arguments(job.spec().arguments_size() - 2).value(), "--x");
    EXPECT_EQ(job.spec().sweep_trial().sweep_id(), done.id());
    EXPECT_EQ(job.spec().sweep_trial().index(), i);
  }
  EXPECT_EQ(xs, (std::multiset<double>{0.1, 0.2, 0.3, 0.4, 0.5}));
  ASSERT_TRUE(done.has_best_trial_index());
  EXPECT_EQ(done.trials(static_cast<int>(done.best_trial_index())).parameters().at("x").number(),
            0.3);
  EXPECT_LE(MaxOverlap(TrialIntervals(done)), 2) << "more than 2 trials at once";
  EXPECT_EQ(JobsOfSweep(done.id()).size(), 5u);

  // The CLI: trials ranked best first (x=0.3, then 0.2 and 0.4 tied by index, ...).
  testing::CommandResult show = RunCli({"sweep", "show", done.id()});
  EXPECT_EQ(show.exit_code, 0) << show.err;
  EXPECT_THAT(show.out, HasSubstr("COMPLETED"));
  const size_t best = show.out.find("x=0.3");
  const size_t worst = show.out.find("x=0.5");
  ASSERT_NE(best, std::string::npos) << show.out;
  EXPECT_LT(best, worst) << show.out;
  testing::CommandResult list = RunCli({"sweep", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr(done.id()));
  EXPECT_THAT(list.out, HasSubstr("5/5"));
}

TEST_F(SweepE2eTest, ARandomSweepFindsATrialNearTheOptimumWithinItsBudget) {
  ASSERT_FALSE(HasFatalFailure());
  v1::SweepSpec spec = BaseSpec();
  (*spec.mutable_search_space())["x"].mutable_uniform()->set_max(1);
  spec.mutable_sampling()->set_method(v1::Sampling::RANDOM);
  spec.mutable_sampling()->set_seed(2024);
  spec.set_max_total_trials(16);
  spec.set_max_concurrent_trials(3);
  // Through the CLI, as a user submits it.
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(spec, &json).ok());
  const std::string path = dir_.path() + "/sweep.json";
  {
    std::ofstream out(path);
    out << json;
  }
  testing::CommandResult submitted = RunCli({"sweep", "submit", "-f", path});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string id(absl::StripAsciiWhitespace(submitted.out));
  ASSERT_TRUE(absl::StartsWith(id, "s-")) << submitted.out;

  v1::Sweep done = WaitForSweep(id, v1::SweepStatus::COMPLETED);
  ASSERT_EQ(done.trials_size(), 16);
  double best = -1e9;
  int64_t best_index = -1;
  for (const v1::SweepTrial& trial : done.trials()) {
    const double x = trial.parameters().at("x").number();
    EXPECT_GE(x, 0);
    EXPECT_LE(x, 1);
    ASSERT_TRUE(trial.has_result()) << trial.DebugString();
    EXPECT_DOUBLE_EQ(trial.result(), Score(x));
    if (Score(x) > best) {
      best = Score(x);
      best_index = trial.index();
    }
  }
  // The best found is the test's own reading of the trials, and near the optimum (x within
  // 0.1 of 0.3).
  EXPECT_EQ(done.best_trial_index(), best_index);
  EXPECT_DOUBLE_EQ(done.best_result(), best);
  EXPECT_GT(best, -0.01) << done.DebugString();
  EXPECT_LE(MaxOverlap(TrialIntervals(done)), 3) << "more than 3 trials at once";
}

// The bandit rule (slack_amount 0.05) with two trials at once: x = 0.3 logs score 0, x = 0.9
// logs -0.36 at every step. Worked out here: at interval 1 the best trial's best is 0, the
// threshold 0 - 0.05 = -0.05, and -0.36 is below it, so trial 1 (x = 0.9, still running: its
// 20 steps take 9 s) is stopped at interval 1 (step 0); trial 0 is the best and never is.
TEST_F(SweepE2eTest, TheBanditStopsExactlyTheTrialBehindAtTheRightIntervalWithItsCause) {
  ASSERT_FALSE(HasFatalFailure());
  v1::SweepSpec spec = BanditPairSpec(/*steps=*/20);
  v1::SubmitSweepResponse submitted;
  grpc::Status status = SubmitSweep(spec, &submitted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::Sweep done = WaitForSweep(submitted.sweep().id(), v1::SweepStatus::COMPLETED);
  ASSERT_EQ(done.trials_size(), 2);
  const v1::SweepTrial& good = done.trials(0);
  const v1::SweepTrial& bad = done.trials(1);
  ASSERT_EQ(good.parameters().at("x").number(), 0.3);
  ASSERT_EQ(bad.parameters().at("x").number(), 0.9);
  EXPECT_FALSE(good.has_stop()) << good.DebugString();
  EXPECT_EQ(good.job_state(), v1::JobStatus::COMPLETED);
  EXPECT_EQ(good.intervals(), 20);
  ASSERT_TRUE(bad.has_stop()) << bad.DebugString();
  EXPECT_EQ(bad.stop().rule(), "bandit");
  EXPECT_EQ(bad.stop().interval(), 1);
  EXPECT_EQ(bad.stop().step(), 0);
  EXPECT_DOUBLE_EQ(bad.stop().value(), std::round(Score(0.9) * 1e9) / 1e9);
  EXPECT_DOUBLE_EQ(bad.stop().threshold(), -0.05);
  EXPECT_EQ(bad.stop().compared(), 2);
  EXPECT_LT(bad.intervals(), 20) << "the trial ran to its end";
  v1::Job job = Get(bad.job_id());
  EXPECT_EQ(job.status().state(), v1::JobStatus::CANCELED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::EARLY_TERMINATED);
  EXPECT_THAT(job.status().message(), HasSubstr("bandit policy at interval 1 (step 0)"));
  EXPECT_EQ(job.status().message(), bad.stop().message());
  testing::CommandResult show = RunCli({"sweep", "show", done.id()});
  EXPECT_THAT(show.out, HasSubstr("CANCELED (stopped: bandit)"));
  testing::CommandResult job_show = RunCli({"show", bad.job_id()});
  EXPECT_THAT(job_show.out, HasSubstr("EARLY_TERMINATED"));
}

// Median stopping over x = 0.2, 0.4, 0.9: constant scores -0.01, -0.01, -0.36 at every step.
// Which trials droverd compares at interval 1 depends on which reached it when it looks, so
// the test computes sweep.proto's rule (stopped when strictly worse than the median of the
// running averages of the trials compared, itself included) over every set of trials that
// may be compared, and checks that the answer is the same for each (x = 0.9 stopped at
// interval 1 as soon as another trial is compared; the two tied at -0.01 never).
// droverd SIGKILLed (failpoint sweep.after_stop_stored) right after it stored the bandit's
// stop of trial 1 and before it canceled the trial's job: the next droverd finds the stop
// stored and the job running, and cancels it with the stored cause and line.
TEST_F(SweepE2eTest, AStopStoredButNotSentIsSentByTheNextDroverd) {
  ASSERT_FALSE(HasFatalFailure());
  setenv("DROVER_FAILPOINTS", "sweep.after_stop_stored", 1);
  RestartDroverd(SIGTERM);
  unsetenv("DROVER_FAILPOINTS");
  sweeps_ = v1::SweepService::NewStub(channel_);
  v1::SweepSpec spec = BanditPairSpec(/*steps=*/60);
  v1::SubmitSweepResponse submitted;
  grpc::Status status = SubmitSweep(spec, &submitted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // droverd kills itself at the stop: its calls fail from then on.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  bool died = false;
  while (!died && absl::Now() < deadline) {
    v1::GetSweepRequest request;
    request.set_sweep_id(submitted.sweep().id());
    v1::Sweep sweep;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    died = sweeps_->GetSweep(&context, request, &sweep).error_code() ==
           grpc::StatusCode::UNAVAILABLE;
    if (!died) absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(died) << "droverd never reached the failpoint" << AgentLogs();
  RestartDroverd(SIGKILL);  // reaps the dead one, starts one without the failpoint
  sweeps_ = v1::SweepService::NewStub(channel_);
  v1::Sweep done = WaitForSweep(submitted.sweep().id(), v1::SweepStatus::COMPLETED);
  ASSERT_EQ(done.trials_size(), 2);
  const v1::SweepTrial& bad = done.trials(1);
  ASSERT_TRUE(bad.has_stop()) << bad.DebugString();
  EXPECT_FALSE(done.trials(0).has_stop());
  v1::Job job = Get(bad.job_id());
  EXPECT_EQ(job.status().state(), v1::JobStatus::CANCELED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::EARLY_TERMINATED);
  EXPECT_EQ(job.status().message(), bad.stop().message());
  EXPECT_LT(bad.intervals(), 60);
  EXPECT_THAT(AgentLogs(), HasSubstr("sweep.after_stop_stored"));
}

TEST_F(SweepE2eTest, MedianStoppingStopsExactlyTheTrialsBelowTheMedian) {
  ASSERT_FALSE(HasFatalFailure());
  const std::vector<double> xs = {0.2, 0.4, 0.9};
  auto score = [](double x) { return std::round(Score(x) * 1e9) / 1e9; };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  };
  std::set<double> stopped_in_some, kept_in_some;
  for (int mask = 1; mask < 8; ++mask) {  // every set of trials compared
    std::vector<double> compared;
    for (size_t i = 0; i < 3; ++i) {
      if (mask & (1 << i)) compared.push_back(score(xs[i]));
    }
    for (size_t i = 0; i < 3; ++i) {
      if (!(mask & (1 << i))) continue;
      // A trial alone is compared with nobody but itself (never stopped); x = 0.9 finishes
      // last, so it is compared with another trial while it runs.
      if (compared.size() == 1) continue;
      (score(xs[i]) < median(compared) ? stopped_in_some : kept_in_some).insert(xs[i]);
    }
  }
  ASSERT_EQ(stopped_in_some, std::set<double>{0.9});
  ASSERT_EQ(kept_in_some.count(0.9), 0u) << "the premise: the same answer in every order";

  v1::SweepSpec spec = BaseSpec();
  *spec.mutable_trial_template() = SlowTrialTemplate(/*steps=*/20, /*seconds_per_x=*/0.5);
  for (double x : xs) {
    (*spec.mutable_search_space())["x"].mutable_choice()->add_values()->set_number(x);
  }
  spec.mutable_sampling()->set_method(v1::Sampling::GRID);
  spec.set_max_concurrent_trials(3);
  spec.mutable_early_termination()->mutable_median_stopping();
  v1::SubmitSweepResponse submitted;
  grpc::Status status = SubmitSweep(spec, &submitted);
  ASSERT_TRUE(status.ok()) << status.error_message();
  v1::Sweep done = WaitForSweep(submitted.sweep().id(), v1::SweepStatus::COMPLETED);
  ASSERT_EQ(done.trials_size(), 3);
  std::set<double> stopped;
  for (const v1::SweepTrial& trial : done.trials()) {
    const double x = trial.parameters().at("x").number();
    v1::Job job = Get(trial.job_id());
    if (!trial.has_stop()) {
      EXPECT_EQ(job.status().state(), v1::JobStatus::COMPLETED) << x;
      EXPECT_EQ(trial.intervals(), 20) << x;
      continue;
    }
    stopped.insert(x);
    EXPECT_EQ(trial.stop().rule(), "median_stopping") << x;
    EXPECT_EQ(trial.stop().interval(), 1) << x;
    EXPECT_EQ(trial.stop().step(), 0) << x;
    EXPECT_DOUBLE_EQ(trial.stop().value(), score(x));
    EXPECT_EQ(job.status().state(), v1::JobStatus::CANCELED) << x;
    EXPECT_EQ(job.status().cause(), v1::JobStatus::EARLY_TERMINATED) << x;
    EXPECT_THAT(job.status().message(), HasSubstr("median stopping policy at interval 1")) << x;
  }
  EXPECT_EQ(stopped, stopped_in_some) << done.DebugString();
}

TEST_F(SweepE2eTest, AHostileSweepIsRefusedNamingTheFieldAndNothingRuns) {
  ASSERT_FALSE(HasFatalFailure());
  struct Case {
    std::function<void(v1::SweepSpec&)> mutate;
    std::string expect;
  };
  for (const Case& c : std::vector<Case>{
           {[](v1::SweepSpec& s) {
              (*s.mutable_search_space())["lr"].mutable_loguniform()->set_min(NAN);
            },
            "sweep.search_space['lr'].loguniform.min"},
           {[](v1::SweepSpec& s) { (*s.mutable_search_space())["--x"].mutable_uniform(); },
            "sweep.search_space['--x']"},
           {[](v1::SweepSpec& s) {
              (*s.mutable_search_space())["x"].mutable_uniform()->set_max(1);
              s.set_max_total_trials(100000);
            },
            "sweep.max_total_trials"},
           {[](v1::SweepSpec& s) {
              (*s.mutable_search_space())["x"].mutable_uniform()->set_max(1);
              s.set_max_total_trials(2);
              s.mutable_trial_template()->mutable_sweep_trial()->set_sweep_id("s-0000000000000001");
            },
            "sweep.trial_template.sweep_trial"},
           {[](v1::SweepSpec& s) {
              (*s.mutable_search_space())["x"].mutable_uniform()->set_max(1);
              s.set_max_total_trials(2);
              s.mutable_trial_template()->set_compute_target("nowhere");
            },
            "sweep.trial_template.compute_target"}}) {
    v1::SweepSpec spec = BaseSpec();
    c.mutate(spec);
    v1::SubmitSweepResponse response;
    grpc::Status status = SubmitSweep(spec, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.expect;
    EXPECT_THAT(status.error_message(), HasSubstr(c.expect));
  }
  // The CLI exits 3 with droverd's message; a file that is no SweepSpec is refused before.
  const std::string path = dir_.path() + "/bad.json";
  {
    std::ofstream out(path);
    out << R"({"trial_template": {"entry_script": "train.py"}, "primary_metric_name": "a",
              "primary_metric_goal": "MAXIMIZE", "max_total_trials": 3,
              "search_space": {"x": {"uniform": {"min": 2, "max": 1}}}})";
  }
  testing::CommandResult refused = RunCli({"sweep", "submit", "-f", path});
  EXPECT_EQ(refused.exit_code, 3) << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("sweep.search_space['x'].uniform"));
  testing::CommandResult junk = RunCli({"sweep", "submit", "-f", "-"}, {}, "{\"nope\": 1}");
  EXPECT_EQ(junk.exit_code, 2) << junk.err;
  testing::CommandResult missing = RunCli({"sweep", "show", "s-00000000000000ff"});
  EXPECT_EQ(missing.exit_code, 4) << missing.err;
  testing::CommandResult malformed = RunCli({"sweep", "show", "nope"});
  EXPECT_EQ(malformed.exit_code, 3) << malformed.err;
  EXPECT_THAT(malformed.err, HasSubstr("sweep_id"));
  // Nothing ran.
  v1::ListJobsRequest request;
  v1::ListJobsResponse jobs;
  grpc::ClientContext context;
  SetDeadline(context);
  ASSERT_TRUE(jobs_->stub().ListJobs(&context, request, &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 0);
}

TEST_F(SweepE2eTest, CancelingASweepCancelsItsRunningTrialsAndStartsNoMore) {
  ASSERT_FALSE(HasFatalFailure());
  v1::SweepSpec spec = BaseSpec();
  *spec.mutable_trial_template() = Shell("sleep 300");
  (*spec.mutable_search_space())["x"].mutable_uniform()->set_max(1);
  spec.set_max_total_trials(10);
  spec.set_max_concurrent_trials(2);
  v1::SubmitSweepResponse submitted;
  ASSERT_TRUE(SubmitSweep(spec, &submitted).ok());
  const std::string id = submitted.sweep().id();
  v1::Sweep running = WaitForSweep(id, v1::SweepStatus::RUNNING);
  ASSERT_GE(running.trials_size(), 1);
  WaitFor(running.trials(0).job_id(), v1::JobStatus::RUNNING);

  testing::CommandResult cancel = RunCli({"sweep", "cancel", id});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_THAT(cancel.out, HasSubstr("CANCELED"));
  v1::Sweep canceled = GetSweep(id);
  EXPECT_EQ(canceled.status().state(), v1::SweepStatus::CANCELED);
  EXPECT_EQ(canceled.status().reason(), "CANCELED_BY_USER");
  for (const v1::SweepTrial& trial : canceled.trials()) {
    WaitFor(trial.job_id(), v1::JobStatus::CANCELED);
  }
  absl::SleepFor(absl::Seconds(2));  // a few polls of the runner: nothing new starts
  EXPECT_EQ(GetSweep(id).trials_size(), canceled.trials_size());
  EXPECT_EQ(JobsOfSweep(id).size(), static_cast<size_t>(canceled.trials_size()));
  // Again: it ended, nothing changes.
  testing::CommandResult again = RunCli({"sweep", "cancel", id});
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

TEST_F(SweepE2eTest, PastMaxDurationTheRunningTrialsAreCanceledAndTheSweepCompletes) {
  ASSERT_FALSE(HasFatalFailure());
  v1::SweepSpec spec = BaseSpec();
  *spec.mutable_trial_template() = Shell("sleep 300");
  (*spec.mutable_search_space())["x"].mutable_uniform()->set_max(1);
  spec.set_max_total_trials(10);
  spec.set_max_concurrent_trials(2);
  spec.mutable_max_duration()->set_seconds(4);
  v1::SubmitSweepResponse submitted;
  ASSERT_TRUE(SubmitSweep(spec, &submitted).ok());
  const absl::Time submitted_at = absl::Now();
  v1::Sweep done = WaitForSweep(submitted.sweep().id(), v1::SweepStatus::COMPLETED);
  EXPECT_GE(absl::Now() - submitted_at, absl::Seconds(3));
  EXPECT_EQ(done.status().reason(), "MAX_DURATION trials=2");
  ASSERT_EQ(done.trials_size(), 2);
  for (const v1::SweepTrial& trial : done.trials()) {
    v1::Job job = Get(trial.job_id());
    EXPECT_EQ(job.status().state(), v1::JobStatus::CANCELED) << trial.job_id();
    EXPECT_THAT(job.status().message(), HasSubstr("max_duration")) << trial.job_id();
    EXPECT_GE(TimeOf(job.status().end_time()) - TimeOf(done.create_time()), absl::Seconds(4));
  }
}

TEST_F(SweepE2eTest, DroverdKilledMidSweepGoesOnWithNoTrialStartedTwiceAndNoneLost) {
  ASSERT_FALSE(HasFatalFailure());
  v1::SweepSpec spec = BaseSpec();
  *spec.mutable_trial_template() = TrialTemplate(/*steps=*/3, /*sleep_seconds=*/0.5);
  (*spec.mutable_search_space())["x"].mutable_uniform()->set_max(1);
  spec.mutable_sampling()->set_seed(7);
  spec.set_max_total_trials(8);
  spec.set_max_concurrent_trials(2);
  v1::SubmitSweepResponse submitted;
  ASSERT_TRUE(SubmitSweep(spec, &submitted).ok());
  const std::string id = submitted.sweep().id();
  // Kill droverd twice while trials are being started and running.
  for (int kill = 0; kill < 2; ++kill) {
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    while (absl::Now() < deadline && GetSweep(id).trials_size() < 2 + 3 * kill) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    RestartDroverd(SIGKILL);
    sweeps_ = v1::SweepService::NewStub(channel_);
  }
  v1::Sweep done = WaitForSweep(id, v1::SweepStatus::COMPLETED);
  ASSERT_EQ(done.trials_size(), 8) << done.DebugString();
  std::set<std::string> job_ids;
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(done.trials(i).index(), i);
    job_ids.insert(done.trials(i).job_id());
    EXPECT_TRUE(done.trials(i).has_result()) << done.trials(i).DebugString();
  }
  EXPECT_EQ(job_ids.size(), 8u);
  // No job of the sweep outside its trials (a trial's job is stored with the trial, once).
  std::vector<v1::Job> jobs = JobsOfSweep(id);
  EXPECT_EQ(jobs.size(), 8u);
  std::set<int64_t> indices;
  for (const v1::Job& job : jobs) {
    EXPECT_TRUE(job_ids.contains(job.id())) << job.id();
    indices.insert(job.spec().sweep_trial().index());
  }
  EXPECT_EQ(indices.size(), 8u);
  // RANDOM: the same seed draws the same trials, restarts or not.
  for (int i = 0; i < 8; ++i) {
    EXPECT_DOUBLE_EQ(done.trials(i).result(), Score(done.trials(i).parameters().at("x").number()));
  }
  EXPECT_LE(MaxOverlap(TrialIntervals(done)), 2);
}

}  // namespace
}  // namespace drover
