#include "scheduler/job_state.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "drover/v1/job.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::scheduler {
namespace {

using ::testing::HasSubstr;
using v1::JobStatus;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

JobStatus StatusIn(State state) {
  JobStatus status;
  status.set_state(state);
  status.set_version(7);
  status.set_attempt(1);
  return status;
}

TEST(JobStateTest, NamesTerminalStates) {
  EXPECT_TRUE(IsTerminal(JobStatus::COMPLETED));
  EXPECT_TRUE(IsTerminal(JobStatus::FAILED));
  EXPECT_TRUE(IsTerminal(JobStatus::CANCELED));
  for (State live : {JobStatus::QUEUED, JobStatus::PREPARING, JobStatus::STARTING,
                     JobStatus::RUNNING, JobStatus::FINALIZING, JobStatus::CANCEL_REQUESTED}) {
    EXPECT_FALSE(IsTerminal(live)) << StateName(live);
  }
}

TEST(JobStateTest, AllowsTheLifecycleInOrder) {
  const std::vector<std::pair<State, State>> allowed = {
      {JobStatus::QUEUED, JobStatus::PREPARING},
      {JobStatus::PREPARING, JobStatus::STARTING},
      {JobStatus::STARTING, JobStatus::RUNNING},
      {JobStatus::RUNNING, JobStatus::FINALIZING},
      {JobStatus::FINALIZING, JobStatus::COMPLETED},
      // retries and requeues
      {JobStatus::PREPARING, JobStatus::QUEUED},
      {JobStatus::RUNNING, JobStatus::QUEUED},
      // cancels and failures
      {JobStatus::QUEUED, JobStatus::CANCELED},
      {JobStatus::RUNNING, JobStatus::CANCEL_REQUESTED},
      {JobStatus::CANCEL_REQUESTED, JobStatus::CANCELED},
      {JobStatus::CANCEL_REQUESTED, JobStatus::FAILED},
      {JobStatus::STARTING, JobStatus::FAILED},
      {JobStatus::RUNNING, JobStatus::FAILED},
      // a reason change in the same state
      {JobStatus::QUEUED, JobStatus::QUEUED},
      {JobStatus::RUNNING, JobStatus::RUNNING},
  };
  for (const auto& [from, to] : allowed) {
    EXPECT_TRUE(CheckTransition(from, to).ok()) << StateName(from) << " -> " << StateName(to);
  }
}

TEST(JobStateTest, RefusesSkippedAndBackwardTransitionsNamingBothStates) {
  const std::vector<std::pair<State, State>> forbidden = {
      {JobStatus::QUEUED, JobStatus::RUNNING},
      {JobStatus::QUEUED, JobStatus::COMPLETED},
      {JobStatus::RUNNING, JobStatus::COMPLETED},
      {JobStatus::RUNNING, JobStatus::PREPARING},
      {JobStatus::QUEUED, JobStatus::CANCEL_REQUESTED},
      {JobStatus::CANCEL_REQUESTED, JobStatus::RUNNING},
      {JobStatus::CANCEL_REQUESTED, JobStatus::COMPLETED},
      {JobStatus::COMPLETED, JobStatus::QUEUED},
      {JobStatus::FAILED, JobStatus::QUEUED},
      {JobStatus::CANCELED, JobStatus::CANCELED},
      {JobStatus::COMPLETED, JobStatus::COMPLETED},
  };
  for (const auto& [from, to] : forbidden) {
    absl::Status s = CheckTransition(from, to);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition)
        << StateName(from) << " -> " << StateName(to);
    EXPECT_THAT(s.message(), HasSubstr(StateName(from)));
    EXPECT_THAT(s.message(), HasSubstr(StateName(to)));
  }
}

TEST(JobStateTest, TransitionBumpsVersionAndStampsTimes) {
  absl::StatusOr<JobStatus> next =
      Transition(StatusIn(JobStatus::QUEUED), JobStatus::PREPARING, "PULLING_IMAGE node=n3", kNow);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->state(), JobStatus::PREPARING);
  EXPECT_EQ(next->reason(), "PULLING_IMAGE node=n3");
  EXPECT_EQ(next->version(), 8);
  EXPECT_EQ(next->update_time().seconds(), absl::ToUnixSeconds(kNow));
  EXPECT_FALSE(next->has_end_time());

  absl::StatusOr<JobStatus> done =
      Transition(StatusIn(JobStatus::FINALIZING), JobStatus::COMPLETED, "", kNow);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->end_time().seconds(), absl::ToUnixSeconds(kNow));
}

TEST(JobStateTest, TransitionRefusesForbiddenChangeWithoutTouchingTheStatus) {
  absl::StatusOr<JobStatus> next =
      Transition(StatusIn(JobStatus::COMPLETED), JobStatus::RUNNING, "", kNow);
  EXPECT_EQ(next.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(PlanCancelTest, CancelsQueuedJobAtOnce) {
  absl::StatusOr<std::optional<JobStatus>> plan =
      PlanCancel("j-1", StatusIn(JobStatus::QUEUED), "wrong data", kNow);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(plan->has_value());
  const JobStatus& next = **plan;
  EXPECT_EQ(next.state(), JobStatus::CANCELED);
  EXPECT_EQ(next.cause(), JobStatus::CANCELED_BY_USER);
  EXPECT_THAT(next.message(), HasSubstr("wrong data"));
  EXPECT_EQ(next.version(), 8);
  EXPECT_TRUE(next.has_end_time());
}

TEST(PlanCancelTest, AsksNodesToStopPlacedJobs) {
  for (State placed :
       {JobStatus::PREPARING, JobStatus::STARTING, JobStatus::RUNNING, JobStatus::FINALIZING}) {
    absl::StatusOr<std::optional<JobStatus>> plan = PlanCancel("j-1", StatusIn(placed), "", kNow);
    ASSERT_TRUE(plan.ok()) << StateName(placed) << ": " << plan.status();
    ASSERT_TRUE(plan->has_value()) << StateName(placed);
    EXPECT_EQ((*plan)->state(), JobStatus::CANCEL_REQUESTED) << StateName(placed);
    EXPECT_EQ((*plan)->message(), "canceled by user");
    EXPECT_FALSE((*plan)->has_end_time());
  }
}

TEST(PlanCancelTest, AnEarlyStopOfASweepsTrialKeepsItsCauseAndMessage) {
  const std::string why = "bandit policy at interval 5 (step 4): best score -0.3 is worse";
  absl::StatusOr<std::optional<JobStatus>> queued =
      PlanCancel("j-1", StatusIn(JobStatus::QUEUED), why, kNow, JobStatus::EARLY_TERMINATED);
  ASSERT_TRUE(queued.ok() && queued->has_value()) << queued.status();
  EXPECT_EQ((*queued)->state(), JobStatus::CANCELED);
  EXPECT_EQ((*queued)->cause(), JobStatus::EARLY_TERMINATED);
  EXPECT_EQ((*queued)->message(), why);
  absl::StatusOr<std::optional<JobStatus>> running =
      PlanCancel("j-1", StatusIn(JobStatus::RUNNING), why, kNow, JobStatus::EARLY_TERMINATED);
  ASSERT_TRUE(running.ok() && running->has_value()) << running.status();
  EXPECT_EQ((*running)->state(), JobStatus::CANCEL_REQUESTED);
  EXPECT_EQ((*running)->cause(), JobStatus::EARLY_TERMINATED);
  EXPECT_EQ((*running)->message(), why);
}

TEST(PlanCancelTest, ChangesNothingForJobsAlreadyBeingOrBeenCanceled) {
  for (State state : {JobStatus::CANCEL_REQUESTED, JobStatus::CANCELED}) {
    absl::StatusOr<std::optional<JobStatus>> plan = PlanCancel("j-1", StatusIn(state), "", kNow);
    ASSERT_TRUE(plan.ok()) << StateName(state) << ": " << plan.status();
    EXPECT_EQ(*plan, std::nullopt) << StateName(state);
  }
}

TEST(PlanCancelTest, RefusesJobsThatAlreadyEndedNamingJobAndState) {
  for (State state : {JobStatus::COMPLETED, JobStatus::FAILED}) {
    absl::StatusOr<std::optional<JobStatus>> plan = PlanCancel("j-42", StatusIn(state), "", kNow);
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition) << StateName(state);
    EXPECT_THAT(plan.status().message(), HasSubstr("j-42"));
    EXPECT_THAT(plan.status().message(), HasSubstr(StateName(state)));
  }
}

TEST(ParseStateNameTest, AcceptsAnyCase) {
  EXPECT_EQ(*ParseStateName("queued"), JobStatus::QUEUED);
  EXPECT_EQ(*ParseStateName("RUNNING"), JobStatus::RUNNING);
  EXPECT_EQ(*ParseStateName("Cancel_Requested"), JobStatus::CANCEL_REQUESTED);
  for (int i = JobStatus::QUEUED; i <= JobStatus::State_MAX; ++i) {
    const State state = static_cast<State>(i);
    EXPECT_EQ(*ParseStateName(StateName(state)), state);
  }
}

TEST(ParseStateNameTest, RefusesUnknownNamesListingTheValidOnes) {
  for (const char* bad : {"", "done", "state_unspecified", "QUEUED "}) {
    absl::StatusOr<State> parsed = ParseStateName(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr("queued"));
    EXPECT_THAT(parsed.status().message(), HasSubstr("cancel_requested"));
    EXPECT_THAT(parsed.status().message(), HasSubstr("canceled"));
  }
  EXPECT_THAT(ParseStateName("done").status().message(), HasSubstr("'done'"));
}

}  // namespace
}  // namespace drover::scheduler
