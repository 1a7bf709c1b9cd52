#include "scheduler/job_queue.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace drover::scheduler {
namespace {

using ::google::protobuf::util::MessageDifferencer;
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

// A job with every part a queued job can have: what placement reads, an array task, tags,
// variables, a secret variable, create_time and owner.
v1::Job FullJob(const std::string& id) {
  v1::Job job = MakeJob(id, 7, v1::JobStatus::QUEUED, 4);
  v1::JobSpec& spec = *job.mutable_spec();
  spec.set_name("train");
  spec.set_compute_target("gpu-pool-with-a-long-name");
  spec.set_node_count(2);
  spec.mutable_resources()->set_cpus(3.5);
  spec.mutable_resources()->set_memory_mib(65536);
  spec.mutable_resources()->set_gpus(4);
  spec.mutable_max_run_duration()->set_seconds(7200);
  spec.mutable_max_run_duration()->set_nanos(5);
  (*spec.mutable_tags())["team"] = "nlp";
  (*spec.mutable_environment()->mutable_env())["HF_TOKEN"] = "hf_opened_value";
  spec.mutable_environment()->add_secret_env("HF_TOKEN");
  spec.mutable_array_task()->set_array_id("a-0123456789abcdef");
  spec.mutable_array_task()->set_index(41);
  spec.mutable_array_task()->set_size(100);
  spec.mutable_array_task()->set_max_running(3);
  job.mutable_status()->set_reason("WAITING_FOR_NODES need=2 free=0");
  job.mutable_create_time()->set_seconds(1'700'000'000);
  job.set_owner("alice");
  return job;
}

TEST(JobQueueTest, AQueuedJobHeldPackedIsFoundExactlyAsRecorded) {
  JobQueue queue;
  const v1::Job job = FullJob("j-5");
  queue.Update(job);
  EXPECT_EQ(queue.unpacked_count(), 0u);
  const v1::Job* found = queue.Find("j-5");
  ASSERT_NE(found, nullptr);
  EXPECT_TRUE(MessageDifferencer::Equals(*found, job)) << found->DebugString();
  // The copy stays (the same one) until ReleaseCopies, which leaves the job itself.
  EXPECT_EQ(queue.Find("j-5"), found);
  EXPECT_EQ(queue.unpacked_count(), 1u);
  queue.ReleaseCopies();
  EXPECT_EQ(queue.unpacked_count(), 0u);
  ASSERT_NE(queue.Find("j-5"), nullptr);
  EXPECT_TRUE(MessageDifferencer::Equals(*queue.Find("j-5"), job));
}

TEST(JobQueueTest, PlacementReadsAQueuedJobsSpecFromItsSummary) {
  JobQueue queue;
  queue.Update(FullJob("j-5"));
  int visits = 0;
  queue.VisitQueued([&](const std::string& id, const QueuedJob& summary) {
    ++visits;
    EXPECT_EQ(id, "j-5");
    EXPECT_EQ(summary.compute_target, "gpu-pool-with-a-long-name");
    EXPECT_EQ(summary.node_count, 2);
    EXPECT_EQ(summary.priority, 7);
    EXPECT_EQ(summary.cpus, 3.5);
    EXPECT_EQ(summary.memory_mib, 65536);
    EXPECT_EQ(summary.gpus, 4);
    EXPECT_EQ(summary.max_run_duration, absl::Seconds(7200) + absl::Nanoseconds(5));
    EXPECT_NE(summary.array_id, nullptr);
    if (summary.array_id != nullptr) {
      EXPECT_EQ(*summary.array_id, "a-0123456789abcdef");
    }
    EXPECT_EQ(summary.array_index, 41);
    EXPECT_EQ(summary.array_max_running, 3);
    EXPECT_EQ(summary.PerNode().gpus(), 4);
    return JobQueue::Visit::kNext;
  });
  EXPECT_EQ(visits, 1);
  EXPECT_THAT(queue.TasksOfArray("a-0123456789abcdef"), ElementsAre("j-5"));
}

TEST(JobQueueTest, AJobFoundWhileQueuedKeepsItsPointerAndSaysWhatItSaysNow) {
  // As when every job was a v1::Job: a pointer from Find stays valid over the job's own
  // changes, and reads the job as it now stands.
  JobQueue queue;
  queue.Update(FullJob("j-5"));
  const v1::Job* found = queue.Find("j-5");
  ASSERT_NE(found, nullptr);
  v1::Job placed = *found;
  placed.mutable_status()->set_state(v1::JobStatus::PREPARING);
  placed.mutable_status()->set_version(5);
  placed.mutable_status()->add_nodes("n1");
  queue.Update(placed);
  EXPECT_EQ(queue.Find("j-5"), found);
  EXPECT_EQ(found->status().state(), v1::JobStatus::PREPARING);
  EXPECT_THAT(queue.QueuedInOrder(), IsEmpty());
  EXPECT_EQ(queue.ArrayActive("a-0123456789abcdef"), 1);
  // Back to the queue (a requeue), then its own copy passed back in.
  v1::Job requeued = placed;
  requeued.mutable_status()->set_state(v1::JobStatus::QUEUED);
  requeued.mutable_status()->set_version(6);
  requeued.mutable_status()->clear_nodes();
  queue.Update(requeued);
  EXPECT_EQ(queue.ArrayActive("a-0123456789abcdef"), 0);
  EXPECT_EQ(queue.Find("j-5"), found);
  EXPECT_TRUE(MessageDifferencer::Equals(*found, requeued));
  queue.Update(*queue.Find("j-5"));
  EXPECT_TRUE(MessageDifferencer::Equals(*queue.Find("j-5"), requeued));
  EXPECT_THAT(queue.QueuedInOrder(), ElementsAre("j-5"));
  EXPECT_EQ(queue.ArrayActive("a-0123456789abcdef"), 0);
}

TEST(JobQueueTest, PackedJobsRestoreAsUpdatedOnes) {
  // What droverd's start does with a store's rows: the same queue as Update makes.
  JobQueue restored;
  JobQueue updated;
  std::vector<v1::Job> jobs;
  for (int i = 1; i <= 50; ++i) {
    v1::Job job = FullJob(absl::StrCat("j-", i));
    job.mutable_spec()->set_priority(i % 3);
    if (i % 4 == 0) job.mutable_spec()->clear_array_task();
    if (i % 5 == 0) {
      job.mutable_status()->set_state(v1::JobStatus::RUNNING);
      job.mutable_status()->add_nodes("n1");
    }
    jobs.push_back(job);
  }
  for (const v1::Job& job : jobs) {
    absl::StatusOr<JobQueue::Packed> packed =
        JobQueue::Pack(job.id(), job.spec(), job.status(), job.SerializeAsString());
    ASSERT_TRUE(packed.ok()) << packed.status();
    EXPECT_EQ(packed->state(), job.status().state());
    restored.Restore(*std::move(packed));
    updated.Update(job);
  }
  EXPECT_EQ(restored.QueuedInOrder(), updated.QueuedInOrder());
  EXPECT_EQ(restored.queued_count(), 40u);
  EXPECT_EQ(restored.CountByState(), updated.CountByState());
  EXPECT_EQ(restored.ArrayActive("a-0123456789abcdef"), 8);
  EXPECT_EQ(restored.TasksOfArray("a-0123456789abcdef"),
            updated.TasksOfArray("a-0123456789abcdef"));
  for (const v1::Job& job : jobs) {
    ASSERT_NE(restored.Find(job.id()), nullptr) << job.id();
    EXPECT_TRUE(MessageDifferencer::Equals(*restored.Find(job.id()), job)) << job.id();
  }
}

TEST(JobQueueTest, PackRefusesAnUnreadableJobThatIsNotQueued) {
  v1::JobStatus running;
  running.set_state(v1::JobStatus::RUNNING);
  absl::StatusOr<JobQueue::Packed> packed =
      JobQueue::Pack("j-1", v1::JobSpec(), running, std::string("\xff\xff\xff", 3));
  EXPECT_EQ(packed.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(packed.status().message()), ::testing::HasSubstr("j-1"));
}

TEST(JobQueueTest, VisitingManyQueuedTasksUnpacksNone) {
  // Placement reads summaries: walking the queue builds no v1::Job.
  JobQueue queue;
  for (int i = 1; i <= 20000; ++i) queue.Update(FullJob(absl::StrCat("j-", i)));
  EXPECT_EQ(queue.queued_count(), 20000u);
  EXPECT_EQ(queue.unpacked_count(), 0u);
  EXPECT_EQ(queue.QueuedInOrder(3), (std::vector<std::string>{"j-1", "j-2", "j-3"}));
  EXPECT_EQ(queue.unpacked_count(), 0u);
}

}  // namespace
}  // namespace drover::scheduler
