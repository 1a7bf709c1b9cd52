// StoredEnds: when droverd tells a node it may forget an end it reported.
#include "scheduler/stored_ends.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace drover::scheduler {
namespace {

using ::testing::IsEmpty;
using ::testing::SizeIs;

v1::AttemptRef Ref(const std::string& job, int64_t epoch) {
  v1::AttemptRef ref;
  ref.set_job_id(job);
  ref.set_epoch(epoch);
  return ref;
}

v1::Job Job(const std::string& id, v1::JobStatus::State state, int32_t attempt) {
  v1::Job job;
  job.set_id(id);
  job.mutable_status()->set_state(state);
  job.mutable_status()->set_attempt(attempt);
  return job;
}

std::vector<std::string> Jobs(const SettledEnds& settled, const std::string& node) {
  std::vector<std::string> out;
  auto it = settled.find(node);
  if (it == settled.end()) return out;
  for (const v1::AttemptRef& ref : it->second) {
    out.push_back(ref.job_id() + "/" + std::to_string(ref.epoch()));
  }
  return out;
}

TEST(StoredEndsTest, AnEndOfARunningAttemptWaitsForTheWriteThatSettlesIt) {
  StoredEnds ends;
  v1::Job live = Job("j", v1::JobStatus::RUNNING, 1);
  EXPECT_FALSE(ends.Reported("n1", Ref("j", 1), &live)) << "no store read: a write is to come";
  // Multi-node: another node still runs; a status write that is not the end settles nothing.
  EXPECT_THAT(ends.Committed(Job("j", v1::JobStatus::RUNNING, 1)), IsEmpty());
  EXPECT_THAT(ends.Committed(Job("j", v1::JobStatus::FINALIZING, 1)), IsEmpty());
  EXPECT_EQ(ends.pending(), 1u);
  SettledEnds settled = ends.Committed(Job("j", v1::JobStatus::COMPLETED, 1));
  EXPECT_EQ(Jobs(settled, "n1"), std::vector<std::string>{"j/1"});
  EXPECT_EQ(ends.pending(), 0u);
  EXPECT_THAT(ends.Committed(Job("j", v1::JobStatus::COMPLETED, 1)), IsEmpty()) << "told once";
}

TEST(StoredEndsTest, EveryNodeOfTheAttemptIsToldAndOnlyOfItsOwnEnds) {
  StoredEnds ends;
  v1::Job live = Job("j", v1::JobStatus::RUNNING, 2);
  ends.Reported("n1", Ref("j", 2), &live);
  ends.Reported("n2", Ref("j", 2), &live);
  v1::Job other = Job("k", v1::JobStatus::RUNNING, 1);
  ends.Reported("n2", Ref("k", 1), &other);
  SettledEnds settled = ends.Committed(Job("j", v1::JobStatus::FAILED, 2));
  EXPECT_THAT(settled, SizeIs(2));
  EXPECT_EQ(Jobs(settled, "n1"), std::vector<std::string>{"j/2"});
  EXPECT_EQ(Jobs(settled, "n2"), std::vector<std::string>{"j/2"});
  EXPECT_EQ(ends.pending(), 1u) << "job k's end is not settled by job j's write";
}

TEST(StoredEndsTest, ARetryOrAReturnToTheQueueSettlesTheEndOfTheEarlierAttempt) {
  StoredEnds ends;
  v1::Job live = Job("j", v1::JobStatus::RUNNING, 1);
  ends.Reported("n1", Ref("j", 1), &live);
  ends.Reported("n2", Ref("j", 1), &live);
  // Queued again (placed later): the store no longer expects attempt 1 anywhere.
  EXPECT_EQ(Jobs(ends.Committed(Job("j", v1::JobStatus::QUEUED, 1)), "n1"),
            std::vector<std::string>{"j/1"});
  EXPECT_EQ(ends.pending(), 0u);
  ends.Reported("n3", Ref("j", 1), &live);
  EXPECT_EQ(Jobs(ends.Committed(Job("j", v1::JobStatus::PREPARING, 2)), "n3"),
            std::vector<std::string>{"j/1"});
}

TEST(StoredEndsTest, AnEndTheCoreNoLongerHoldsIsSettledByTheStoredJob) {
  StoredEnds ends;
  // A hello that reports again an end whose job is over (the core forgets finished jobs).
  EXPECT_TRUE(ends.Reported("n1", Ref("done", 3), nullptr));
  v1::Job stored = Job("done", v1::JobStatus::COMPLETED, 3);
  EXPECT_EQ(Jobs(ends.StoredJob("done", &stored), "n1"), std::vector<std::string>{"done/3"});
  EXPECT_EQ(ends.pending(), 0u);
}

TEST(StoredEndsTest, AJobTheStoreDoesNotHaveSettlesTheEnd) {
  StoredEnds ends;
  EXPECT_TRUE(ends.Reported("n1", Ref("deleted", 1), nullptr));
  EXPECT_EQ(Jobs(ends.StoredJob("deleted", nullptr), "n1"),
            std::vector<std::string>{"deleted/1"});
}

TEST(StoredEndsTest, AStoreReadThatPredatesTheEndsWriteLeavesItToTheCommit) {
  StoredEnds ends;
  EXPECT_TRUE(ends.Reported("n1", Ref("j", 1), nullptr));
  v1::Job stale = Job("j", v1::JobStatus::RUNNING, 1);
  EXPECT_THAT(ends.StoredJob("j", &stale), IsEmpty());
  EXPECT_EQ(ends.pending(), 1u);
  EXPECT_EQ(Jobs(ends.Committed(Job("j", v1::JobStatus::COMPLETED, 1)), "n1"),
            std::vector<std::string>{"j/1"});
}

TEST(StoredEndsTest, AnEndTheCoreHoldsAsSettledAsksTheStore) {
  StoredEnds ends;
  v1::Job requeued = Job("j", v1::JobStatus::QUEUED, 1);
  EXPECT_TRUE(ends.Reported("n1", Ref("j", 1), &requeued));
  v1::Job later = Job("j", v1::JobStatus::RUNNING, 2);
  EXPECT_TRUE(ends.Reported("n2", Ref("j", 1), &later));
  v1::Job stored = Job("j", v1::JobStatus::RUNNING, 2);
  SettledEnds settled = ends.StoredJob("j", &stored);
  EXPECT_EQ(Jobs(settled, "n1"), std::vector<std::string>{"j/1"});
  EXPECT_EQ(Jobs(settled, "n2"), std::vector<std::string>{"j/1"});
}

TEST(StoredEndsTest, AnEndOfAnAttemptTheJobNeverHadIsNotKept) {
  // A confused or hostile node cannot make droverd hold ends that nothing settles.
  StoredEnds ends;
  v1::Job live = Job("j", v1::JobStatus::RUNNING, 1);
  for (int epoch = 2; epoch < 1000; ++epoch) {
    EXPECT_FALSE(ends.Reported("n1", Ref("j", epoch), &live));
  }
  EXPECT_EQ(ends.pending(), 0u);
}

}  // namespace
}  // namespace drover::scheduler
