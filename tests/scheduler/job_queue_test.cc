#include "scheduler/job_queue.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

v1::Job MakeJob(const std::string& id, int priority, v1::JobStatus::State state,
                int64_t version = 1) {
  v1::Job job;
  job.set_id(id);
  job.mutable_spec()->set_priority(priority);
  job.mutable_status()->set_state(state);
  job.mutable_status()->set_version(version);
  return job;
}

TEST(JobQueueTest, OrdersByPriorityThenSubmission) {
  JobQueue queue;
  queue.Update(MakeJob("j-1", 0, v1::JobStatus::QUEUED));
  queue.Update(MakeJob("j-2", 10, v1::JobStatus::QUEUED));
  queue.Update(MakeJob("j-3", 0, v1::JobStatus::QUEUED));
  queue.Update(MakeJob("j-10", 10, v1::JobStatus::QUEUED));
  queue.Update(MakeJob("j-4", -5, v1::JobStatus::QUEUED));
  // j-10 sorts after j-2 by number, not as text.
  EXPECT_THAT(queue.QueuedInOrder(), ElementsAre("j-2", "j-10", "j-1", "j-3", "j-4"));
}

TEST(JobQueueTest, ForgetsFinishedJobsAndKeepsPlacedOnesOutOfTheQueue) {
  JobQueue queue;
  queue.Update(MakeJob("j-1", 0, v1::JobStatus::QUEUED));
  queue.Update(MakeJob("j-2", 0, v1::JobStatus::QUEUED));
  queue.Update(MakeJob("j-1", 0, v1::JobStatus::PREPARING, 2));
  queue.Update(MakeJob("j-2", 0, v1::JobStatus::CANCELED, 2));
  EXPECT_THAT(queue.QueuedInOrder(), IsEmpty());
  EXPECT_EQ(queue.unfinished_count(), 1u);
  ASSERT_NE(queue.Find("j-1"), nullptr);
  EXPECT_EQ(queue.Find("j-1")->status().state(), v1::JobStatus::PREPARING);
  EXPECT_EQ(queue.Find("j-2"), nullptr);
}

TEST(JobQueueTest, IgnoresAStatusOlderThanTheOneHeld) {
  JobQueue queue;
  queue.Update(MakeJob("j-1", 0, v1::JobStatus::PREPARING, 3));
  queue.Update(MakeJob("j-1", 0, v1::JobStatus::QUEUED, 2));
  EXPECT_EQ(queue.Find("j-1")->status().state(), v1::JobStatus::PREPARING);
  EXPECT_THAT(queue.QueuedInOrder(), IsEmpty());
}

TEST(JobQueueTest, RequeuedJobKeepsItsPlaceBySubmissionOrder) {
  JobQueue queue;
  queue.Update(MakeJob("j-1", 0, v1::JobStatus::PREPARING, 2));
  queue.Update(MakeJob("j-2", 0, v1::JobStatus::QUEUED));
  queue.Update(MakeJob("j-1", 0, v1::JobStatus::QUEUED, 3));
  EXPECT_THAT(queue.QueuedInOrder(), ElementsAre("j-1", "j-2"));
}

TEST(JobQueueTest, WaitingReasonSaysWhatIsNeededAndFree) {
  v1::JobSpec spec;
  spec.set_node_count(4);
  EXPECT_EQ(JobQueue::WaitingReason(spec, 2), "WAITING_FOR_NODES need=4 free=2");
}

TEST(JobQueueTest, CountsUnfinishedJobsByStateAsTheyChange) {
  using State = v1::JobStatus;
  JobQueue queue;
  queue.Update(MakeJob("j-1", 0, State::QUEUED));
  queue.Update(MakeJob("j-2", 0, State::QUEUED));
  queue.Update(MakeJob("j-3", 0, State::QUEUED));
  queue.Update(MakeJob("j-1", 0, State::RUNNING, 2));
  queue.Update(MakeJob("j-1", 0, State::QUEUED, 1));  // stale: ignored
  queue.Update(MakeJob("j-2", 0, State::FAILED, 2));
  EXPECT_EQ(queue.CountByState(),
            (std::map<State::State, int>{{State::QUEUED, 1}, {State::RUNNING, 1}}));
  queue.Reset(MakeJob("j-1", 0, State::QUEUED, 1));  // back to what the store holds
  queue.Update(MakeJob("j-3", 0, State::CANCELED, 2));
  EXPECT_EQ(queue.CountByState(), (std::map<State::State, int>{{State::QUEUED, 1}}));
  queue.Update(MakeJob("j-1", 0, State::COMPLETED, 2));
  EXPECT_THAT(queue.CountByState(), IsEmpty());
}

}  // namespace
}  // namespace drover::scheduler
