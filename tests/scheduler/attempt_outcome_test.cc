// The rules of an attempt's end on their own: which rank names a failure, which cause
// wins, when a job is retried, what a cancel does.
#include "scheduler/attempt_outcome.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::scheduler {
namespace {

using v1::JobStatus;

v1::RankExit Exit(int rank, int code, int signal = 0, int64_t end_seconds = 0) {
  v1::RankExit e;
  e.set_rank(rank);
  e.set_exit_code(code);
  e.set_signal(signal);
  if (end_seconds > 0) e.mutable_end_time()->set_seconds(end_seconds);
  return e;
}

v1::AttemptReport Ended(std::vector<v1::RankExit> exits) {
  v1::AttemptReport report;
  report.set_phase(v1::AttemptReport::ENDED);
  for (const v1::RankExit& e : exits) *report.add_exits() = e;
  return report;
}

v1::Job Job(int attempt, int max_retries, JobStatus::State state = JobStatus::RUNNING) {
  v1::Job job;
  job.mutable_spec()->set_max_retries(max_retries);
  job.mutable_status()->set_attempt(attempt);
  job.mutable_status()->set_state(state);
  return job;
}

TEST(AttemptOutcomeTest, EveryRankSucceedingCompletesTheJob) {
  AttemptTally tally;
  EXPECT_FALSE(tally.AddEnded("n2", Ended({Exit(2, 0), Exit(3, 0)})));
  EXPECT_FALSE(tally.AddEnded("n1", Ended({Exit(0, 0), Exit(1, 0)})));
  AttemptEnd end = DecideEnd(tally, Job(1, 3));
  EXPECT_EQ(end.state, JobStatus::COMPLETED);
  EXPECT_EQ(end.cause, JobStatus::CAUSE_UNSPECIFIED);
  EXPECT_FALSE(end.retry);
  ASSERT_EQ(tally.exits.size(), 4u);
  for (int rank = 0; rank < 4; ++rank) EXPECT_EQ(tally.exits[rank].rank(), rank) << "by rank";
  EXPECT_EQ(tally.exits[3].node(), "n2");
}

TEST(AttemptOutcomeTest, TheRankThatFailedFirstByTheNodesClocksNamesTheFailure) {
  AttemptTally tally;
  // n1 reports first: rank 0 was killed at t=20, after rank 3 on n2 had failed at t=10.
  EXPECT_TRUE(tally.AddEnded("n1", Ended({Exit(0, 0, 15, 20)})));
  EXPECT_TRUE(tally.AddEnded("n2", Ended({Exit(3, 2, 0, 10)})));
  AttemptEnd end = DecideEnd(tally, Job(1, 0));
  EXPECT_EQ(end.state, JobStatus::FAILED);
  EXPECT_EQ(end.cause, JobStatus::PROCESS_FAILED);
  EXPECT_EQ(end.message, "rank 3 on n2 exited with code 2");
  EXPECT_FALSE(end.retry) << "max_retries 0";
}

TEST(AttemptOutcomeTest, ARankWithoutAnEndTimeWasStoppedAndDoesNotNameTheFailure) {
  AttemptTally tally;
  tally.AddEnded("n1", Ended({Exit(0, 1)}));         // killed by mpirun: no time
  tally.AddEnded("n2", Ended({Exit(1, 1, 0, 50)}));  // the real failure
  EXPECT_EQ(DecideEnd(tally, Job(1, 0)).message, "rank 1 on n2 exited with code 1");
}

TEST(AttemptOutcomeTest, AnOomKilledRankIsOutOfMemoryAndTheFirstCauseWins) {
  AttemptTally tally;
  v1::RankExit oom = Exit(1, 0, 9, 5);
  oom.set_oom_killed(true);
  v1::AttemptReport report = Ended({oom});
  report.set_first_failed_rank(1);
  EXPECT_TRUE(tally.AddEnded("n1", report));
  tally.SetCauseOnce(JobStatus::NODE_LOST, "later: n2 was lost");
  AttemptEnd end = DecideEnd(tally, Job(2, 1));
  EXPECT_EQ(end.state, JobStatus::FAILED);
  EXPECT_EQ(end.cause, JobStatus::OUT_OF_MEMORY);
  EXPECT_EQ(end.message, "rank 1 on n1 ran out of memory");
  EXPECT_FALSE(end.retry) << "attempt 2 of max_retries 1";
}

TEST(AttemptOutcomeTest, ANodesOwnCauseIsKeptAndAFailedAttemptIsRetriedWhileRetriesAreLeft) {
  AttemptTally tally;
  v1::AttemptReport report = Ended({});
  report.set_cause(JobStatus::LAUNCH_FAILED);
  report.set_message("image 'trainer' is not registered with droverd any more");
  EXPECT_TRUE(tally.AddEnded("n1", report));
  AttemptEnd end = DecideEnd(tally, Job(1, 2));
  EXPECT_EQ(end.state, JobStatus::FAILED);
  EXPECT_EQ(end.cause, JobStatus::LAUNCH_FAILED);
  EXPECT_EQ(end.message, "image 'trainer' is not registered with droverd any more");
  EXPECT_TRUE(end.retry);
  EXPECT_TRUE(DecideEnd(tally, Job(2, 2)).retry);
  EXPECT_FALSE(DecideEnd(tally, Job(3, 2)).retry);
}

TEST(AttemptOutcomeTest, ATimeoutWithoutAMessageSaysSo) {
  AttemptTally tally;
  tally.SetCauseOnce(JobStatus::TIMEOUT, "");
  tally.AddEnded("n1", Ended({Exit(0, 0, 15)}));
  AttemptEnd end = DecideEnd(tally, Job(1, 0));
  EXPECT_EQ(end.cause, JobStatus::TIMEOUT);
  // The rank killed by the timeout names it when nothing else does.
  EXPECT_EQ(end.message, "rank 0 on n1 was killed by signal 15");
  AttemptTally quiet;
  quiet.SetCauseOnce(JobStatus::TIMEOUT, "");
  quiet.AddEnded("n1", Ended({Exit(0, 0)}));
  EXPECT_EQ(DecideEnd(quiet, Job(1, 0)).message, "max_run_duration exceeded");
}

TEST(AttemptOutcomeTest, ASweepsEarlyStopEndsTheJobCanceledWithCauseEarlyTerminated) {
  AttemptTally tally;
  tally.AddEnded("n1", Ended({Exit(0, 0, 15)}));
  v1::Job job = Job(1, 5, JobStatus::CANCEL_REQUESTED);
  job.mutable_status()->set_cause(JobStatus::EARLY_TERMINATED);
  job.mutable_status()->set_message("median_stopping policy at interval 3");
  AttemptEnd end = DecideEnd(tally, job);
  EXPECT_EQ(end.state, JobStatus::CANCELED);
  EXPECT_EQ(end.cause, JobStatus::EARLY_TERMINATED);
  EXPECT_EQ(end.message, "median_stopping policy at interval 3");
  EXPECT_FALSE(end.retry);
}

TEST(AttemptOutcomeTest, ACancelEndsTheJobCanceledWithTheUsersWordsWhateverTheRanksDid) {
  AttemptTally tally;
  tally.AddEnded("n1", Ended({Exit(0, 0, 15)}));
  v1::Job job = Job(1, 5, JobStatus::CANCEL_REQUESTED);
  job.mutable_status()->set_message("wrong learning rate");
  AttemptEnd end = DecideEnd(tally, job);
  EXPECT_EQ(end.state, JobStatus::CANCELED);
  EXPECT_EQ(end.cause, JobStatus::CANCELED_BY_USER);
  EXPECT_EQ(end.message, "wrong learning rate");
  EXPECT_FALSE(end.retry);
  AttemptTally restored;  // a cancel droverd restored before the nodes ended
  restored.SetCauseOnce(JobStatus::CANCELED_BY_USER, "");
  EXPECT_EQ(DecideEnd(restored, Job(1, 5)).message, "canceled by user");
}

TEST(AttemptOutcomeTest, TheOutputsOfTheNodeThatUploadedThemAreKept) {
  AttemptTally tally;
  v1::AttemptReport with_outputs = Ended({Exit(0, 0)});
  with_outputs.set_outputs_digest("sha256:abc");
  with_outputs.set_outputs_size(42);
  tally.AddEnded("n1", with_outputs);
  tally.AddEnded("n2", Ended({Exit(1, 0)}));
  EXPECT_EQ(tally.outputs_digest, "sha256:abc");
  EXPECT_EQ(tally.outputs_size, 42);
}

}  // namespace
}  // namespace drover::scheduler
