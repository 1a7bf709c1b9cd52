#include "scheduler/placement.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/node_registry.h"
#include "tests/scheduler/placement_test_util.h"

namespace drover::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using placement_testing::kT0;
using placement_testing::NodeWith;
using placement_testing::QueuedJob;
using placement_testing::StartRunning;
using placement_testing::WithLimit;

TEST(NodeRegistryTest, NewNodesAreReadyAndMissedLeasesMakeThemDown) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  EXPECT_TRUE(nodes.TakesWork("n1"));
  EXPECT_THAT(nodes.CheckLeases(kT0 + absl::Seconds(5), absl::Seconds(10)).down, IsEmpty());
  EXPECT_THAT(nodes.CheckLeases(kT0 + absl::Seconds(11), absl::Seconds(10)).down,
              ElementsAre("n1"));
  EXPECT_EQ(nodes.Find("n1")->state(), v1::Node::DOWN);
  EXPECT_THAT(nodes.Find("n1")->reason(), HasSubstr("MISSED_LEASE"));
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0 + absl::Seconds(20)).ok());
  EXPECT_EQ(nodes.Find("n1")->state(), v1::Node::READY);
}

TEST(NodeRegistryTest, CordonSurvivesReconnectAndDrainEndsCordonedWhenEmpty) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  ASSERT_TRUE(nodes.Cordon("n1", "disk check").ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  EXPECT_EQ(nodes.Find("n1")->state(), v1::Node::CORDONED);
  ASSERT_TRUE(nodes.Uncordon("n1").ok());
  nodes.Allocate("n1", "j-1", PerNodeDemand(QueuedJob("j-1", 1, 100).spec()));
  ASSERT_TRUE(nodes.Drain("n1", "").ok());
  EXPECT_EQ(nodes.Find("n1")->state(), v1::Node::DRAINING);
  EXPECT_FALSE(nodes.TakesWork("n1"));
  EXPECT_THAT(nodes.Find("n1")->running_jobs(), ElementsAre("j-1"));
  nodes.Release("n1", "j-1");
  EXPECT_EQ(nodes.Find("n1")->state(), v1::Node::CORDONED);
  EXPECT_EQ(nodes.Cordon("nope", "").status().code(), absl::StatusCode::kNotFound);
}

TEST(NodeRegistryTest, RefusesBadNamesAndEmptyCapacity) {
  NodeRegistry nodes;
  EXPECT_EQ(nodes.Register(NodeWith("Bad_Name", 4, 1024), kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(nodes.Register(NodeWith("n1", 0, 1024), kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(NodeRegistryTest, TakesTheGpusTheAgentListsAndRefusesACountThatDisagrees) {
  NodeRegistry nodes;
  v1::NodeInfo info = NodeWith("gpu-01", 16, 65536, 2);
  for (int i = 0; i < 2; ++i) {
    v1::Gpu* gpu = info.add_gpus();
    gpu->set_index(i);
    gpu->set_uuid(absl::StrCat("GPU-", i));
  }
  absl::StatusOr<v1::Node> node = nodes.Register(info, kT0);
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(node->capacity().gpus(), 2);
  ASSERT_EQ(node->gpus_size(), 2);
  EXPECT_EQ(node->gpus(1).uuid(), "GPU-1");

  info.mutable_capacity()->set_gpus(4);
  absl::StatusOr<v1::Node> wrong = nodes.Register(info, kT0);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(std::string(wrong.status().message()),
            "node 'gpu-01': capacity.gpus 4 but 2 GPUs listed");
}

TEST(NodeRegistryTest, DefaultTargetCannotBeChangedOrDeleted) {
  NodeRegistry nodes;
  v1::ComputeTarget t;
  t.set_name("default");
  (*t.mutable_selector())["gpu"] = "yes";
  EXPECT_FALSE(nodes.PutTarget(t).ok());
  EXPECT_FALSE(nodes.DeleteTarget("default").ok());
  EXPECT_EQ(nodes.DeleteTarget("other").code(), absl::StatusCode::kNotFound);
}

TEST(PlacementTest, PlacesInPriorityOrderOnNodesWithEnoughFree) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 3, 1024));
  queue.Update(QueuedJob("j-2", 3, 1024, 1, /*priority=*/5));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-2");
  EXPECT_THAT(round.placed[0].nodes, ElementsAre("n1"));
  // n1 will fit j-1 once j-2 ends: it is held for j-1.
  EXPECT_EQ(round.waiting["j-1"], "WAITING_FOR_NODES need=1 free=0 reserved=n1");
}

v1::Job GpuJob(const std::string& id, int gpus) {
  v1::Job job = QueuedJob(id, 1, 1024);
  job.mutable_spec()->mutable_environment()->set_use_gpu(true);
  job.mutable_spec()->mutable_resources()->set_gpus(gpus);
  return job;
}

TEST(PlacementTest, GpuJobsGoOnlyWhereEnoughGpusAreFree) {
  NodeRegistry nodes;
  // Plenty of cpus and memory, no GPU: never a place for a GPU job.
  ASSERT_TRUE(nodes.Register(NodeWith("big-cpu", 64, 262144), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("gpu-01", 8, 65536, 2), kT0).ok());
  JobQueue queue;
  for (const char* id : {"j-1", "j-2", "j-3"}) queue.Update(GpuJob(id, 1));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  ASSERT_EQ(round.placed.size(), 2u);
  for (const Placement& placed : round.placed) {
    EXPECT_THAT(placed.nodes, ElementsAre("gpu-01")) << placed.job_id;
    EXPECT_EQ(placed.per_node.gpus(), 1);
    nodes.Allocate("gpu-01", placed.job_id, placed.per_node);
    v1::Job job = *queue.Find(placed.job_id);
    job.mutable_status()->set_state(v1::JobStatus::PREPARING);
    job.mutable_status()->set_version(2);
    queue.Update(job);
  }
  // Both GPUs are held: the third waits for gpu-01, though big-cpu has room for the rest.
  EXPECT_EQ(round.waiting["j-3"], "WAITING_FOR_NODES need=1 free=0 reserved=gpu-01");
  round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  EXPECT_THAT(round.placed, IsEmpty());
  EXPECT_EQ(nodes.Free("gpu-01").gpus(), 0);

  // One ends: the third starts there.
  nodes.Release("gpu-01", "j-1");
  round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-3");
  EXPECT_THAT(round.placed[0].nodes, ElementsAre("gpu-01"));
}

TEST(PlacementTest, AJobNeedingMoreGpusThanAnyNodeHasWaitsWithItsReasonAndBlocksNobody) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("gpu-01", 8, 65536, 2), kT0).ok());
  JobQueue queue;
  queue.Update(GpuJob("j-1", 3));
  queue.Update(GpuJob("j-2", 2));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  EXPECT_EQ(round.waiting["j-1"],
            "NO_NODE_LARGE_ENOUGH need=1 large_enough=0 per_node=cpus=1 memory=1024Mi gpus=3");
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-2");
  EXPECT_FALSE(round.reservation.has_value());
}

TEST(PlacementTest, SmallerJobsUseWhatIsLeftOutsideTheReservation) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n2", 4, 8192), kT0).ok());
  nodes.Allocate("n1", "j-0", PerNodeDemand(QueuedJob("j-0", 3, 1024).spec()));
  nodes.Allocate("n2", "j-9", PerNodeDemand(QueuedJob("j-9", 2, 1024).spec()));
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 3, 1024));
  queue.Update(QueuedJob("j-2", 1, 1024));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  // Neither node's work has a known end, so j-1 holds the one holding the least (n2), and
  // j-2 starts on what is left of the other.
  EXPECT_EQ(round.waiting["j-1"], "WAITING_FOR_NODES need=1 free=0 reserved=n2");
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-2");
  EXPECT_THAT(round.placed[0].nodes, ElementsAre("n1"));
}

TEST(PlacementTest, ExplainsJobsThatCannotRunInTheirTarget) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192, 0, {{"pool", "cpu"}}), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n2", 4, 8192, 0, {{"pool", "gpu"}}), kT0).ok());
  v1::ComputeTarget gpu;
  gpu.set_name("gpu");
  (*gpu.mutable_selector())["pool"] = "gpu";
  gpu.set_max_nodes(1);
  ASSERT_TRUE(nodes.PutTarget(gpu).ok());
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 64, 1024));
  queue.Update(QueuedJob("j-2", 1, 1024, 2, 0, "gpu"));
  queue.Update(QueuedJob("j-3", 1, 1024, 1, 0, "nope"));
  queue.Update(QueuedJob("j-4", 1, 1024, 1, 0, "gpu"));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  EXPECT_THAT(round.waiting["j-1"], HasSubstr("NO_NODE_LARGE_ENOUGH need=1 large_enough=0"));
  EXPECT_EQ(round.waiting["j-2"], "TARGET_TOO_SMALL need=2 max_nodes=1");
  EXPECT_EQ(round.waiting["j-3"], "UNKNOWN_COMPUTE_TARGET target=nope");
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-4");
  EXPECT_THAT(round.placed[0].nodes, ElementsAre("n2"));
}

TEST(PlacementTest, GangGetsAllNodesOrNone) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n2", 4, 8192), kT0).ok());
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 2, 1024, 3));
  queue.Update(QueuedJob("j-2", 2, 1024, 2));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  // Only two nodes exist: more may join, so it waits rather than being called impossible.
  EXPECT_EQ(round.waiting["j-1"], "WAITING_FOR_NODES need=3 free=2");
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_THAT(round.placed[0].nodes, ::testing::UnorderedElementsAre("n1", "n2"));
}

TEST(PlacementTest, CordonedAndDownNodesTakeNoWork) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n2", 4, 8192), kT0 + absl::Seconds(30)).ok());
  ASSERT_TRUE(nodes.Cordon("n2", "").ok());
  nodes.CheckLeases(kT0 + absl::Seconds(20), absl::Seconds(10));
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 1, 1024));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  EXPECT_THAT(round.placed, IsEmpty());
  // Nothing can start anywhere, so the round does not even look at the queue.
  EXPECT_THAT(round.waiting, IsEmpty());
  ASSERT_TRUE(nodes.Uncordon("n2").ok());
  round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_THAT(round.placed[0].nodes, ElementsAre("n2"));
}

TEST(PlacementTest, HoldsReservationForHeadJobAgainstAStreamOfSmallJobs) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n2", 4, 8192), kT0).ok());
  std::map<std::string, RunningAttempt> running;
  StartRunning(nodes, running, "j-0", {"n1"}, 2, kT0, absl::Hours(1));
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 4, 1024, /*nodes=*/2));
  // Without the reservation each of these would take n2 (or the rest of n1) and j-1 would
  // wait for ever.
  for (int k = 2; k <= 6; ++k) {
    std::string small = absl::StrCat("j-", k);
    queue.Update(QueuedJob(small, 1, 1024));
    PlacementRound round = PlaceQueuedJobs(queue, nodes, running, kT0 + absl::Minutes(k));
    EXPECT_THAT(round.placed, IsEmpty());
    EXPECT_EQ(round.waiting["j-1"], "WAITING_FOR_NODES need=2 free=1 reserved=n1,n2");
    EXPECT_EQ(round.waiting[small], "WAITING_FOR_NODES need=1 free=2 reserved_for=j-1");
    ASSERT_TRUE(round.reservation.has_value());
    EXPECT_EQ(round.reservation->job_id, "j-1");
    EXPECT_THAT(round.reservation->nodes, ElementsAre("n1", "n2"));
    EXPECT_EQ(round.reservation->start, kT0 + absl::Hours(1));
  }
  nodes.Release("n1", "j-0");
  running.erase("j-0");
  PlacementRound round = PlaceQueuedJobs(queue, nodes, running, kT0 + absl::Minutes(30));
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-1");
  EXPECT_THAT(round.placed[0].nodes, ::testing::UnorderedElementsAre("n1", "n2"));
  // Now the first small job is at the head, and holds the next node to come free.
  EXPECT_EQ(round.waiting["j-2"], "WAITING_FOR_NODES need=1 free=0 reserved=n1");
  EXPECT_EQ(round.waiting["j-3"], "WAITING_FOR_NODES need=1 free=0");
}

TEST(PlacementTest, SmallJobBackfillsOntoFreeNodesOutsideTheReservation) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n2", 4, 8192), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n3", 4, 8192), kT0).ok());
  std::map<std::string, RunningAttempt> running;
  StartRunning(nodes, running, "j-0", {"n1"}, 3, kT0, absl::Minutes(30));
  StartRunning(nodes, running, "j-8", {"n2"}, 3, kT0, absl::Hours(1));
  StartRunning(nodes, running, "j-9", {"n3"}, 3, kT0, absl::ZeroDuration());
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 4, 1024, /*nodes=*/2));
  queue.Update(QueuedJob("j-2", 1, 1024));  // no max_run_duration
  PlacementRound round = PlaceQueuedJobs(queue, nodes, running, kT0);
  // n1 and n2 come free at known times, n3 never (as far as anyone knows).
  EXPECT_EQ(round.waiting["j-1"], "WAITING_FOR_NODES need=2 free=0 reserved=n1,n2");
  ASSERT_TRUE(round.reservation.has_value());
  EXPECT_EQ(round.reservation->start, kT0 + absl::Hours(1));
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-2");
  EXPECT_THAT(round.placed[0].nodes, ElementsAre("n3"));
}

TEST(PlacementTest, BackfillsOntoReservedNodesOnlyWhenMaxRunDurationEndsBeforeTheReservation) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n2", 4, 8192), kT0).ok());
  std::map<std::string, RunningAttempt> running;
  StartRunning(nodes, running, "j-0", {"n1"}, 4, kT0, absl::Hours(1));
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 4, 1024, /*nodes=*/2));
  queue.Update(WithLimit(QueuedJob("j-2", 1, 1024), absl::Hours(2)));     // ends too late
  queue.Update(QueuedJob("j-3", 1, 1024));                                // may never end
  queue.Update(WithLimit(QueuedJob("j-4", 1, 1024), absl::Minutes(30)));  // ends in time
  const absl::Time now = kT0 + absl::Minutes(10);
  PlacementRound round = PlaceQueuedJobs(queue, nodes, running, now);
  EXPECT_EQ(round.waiting["j-1"], "WAITING_FOR_NODES need=2 free=1 reserved=n1,n2");
  EXPECT_EQ(round.waiting["j-2"], "WAITING_FOR_NODES need=1 free=1 reserved_for=j-1");
  EXPECT_EQ(round.waiting["j-3"], "WAITING_FOR_NODES need=1 free=1 reserved_for=j-1");
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-4");
  EXPECT_THAT(round.placed[0].nodes, ElementsAre("n2"));

  // When an attempt on a reserved node has no limit, the reservation's start is unknown and
  // nothing backfills onto it.
  running["j-0"].max_run_duration = absl::ZeroDuration();
  round = PlaceQueuedJobs(queue, nodes, running, now);
  ASSERT_TRUE(round.reservation.has_value());
  EXPECT_EQ(round.reservation->start, absl::InfiniteFuture());
  EXPECT_THAT(round.placed, IsEmpty());
  EXPECT_EQ(round.waiting["j-4"], "WAITING_FOR_NODES need=1 free=1 reserved_for=j-1");
}

TEST(PlacementTest, ReservesTheNodesThatComeFreeSoonest) {
  NodeRegistry nodes;
  for (const char* name : {"n1", "n2", "n3", "n4"}) {
    ASSERT_TRUE(nodes.Register(NodeWith(name, 4, 8192), kT0).ok());
  }
  std::map<std::string, RunningAttempt> running;
  StartRunning(nodes, running, "j-0", {"n1"}, 4, kT0, absl::Hours(3));
  StartRunning(nodes, running, "j-7", {"n2"}, 4, kT0, absl::Minutes(20));
  StartRunning(nodes, running, "j-8", {"n3"}, 4, kT0, absl::ZeroDuration());
  // n4 holds two attempts; the one that ends first frees enough for the job.
  StartRunning(nodes, running, "j-9", {"n4"}, 2, kT0, absl::Minutes(40));
  StartRunning(nodes, running, "j-10", {"n4"}, 2, kT0, absl::Hours(5));
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 2, 1024, /*nodes=*/2));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, running, kT0);
  EXPECT_EQ(round.waiting["j-1"], "WAITING_FOR_NODES need=2 free=0 reserved=n2,n4");
  ASSERT_TRUE(round.reservation.has_value());
  EXPECT_EQ(round.reservation->start, kT0 + absl::Minutes(40));
}

TEST(PlacementTest, JobsThatCanNeverFitHoldNoReservationAndBlockNobody) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n2", 4, 8192), kT0).ok());
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 1, 1024, /*nodes=*/3, /*priority=*/10));  // 2 nodes exist
  queue.Update(QueuedJob("j-2", 64, 1024, /*nodes=*/1, /*priority=*/10));  // no node so large
  queue.Update(QueuedJob("j-3", 4, 1024, /*nodes=*/2));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  EXPECT_EQ(round.waiting["j-1"], "WAITING_FOR_NODES need=3 free=2");
  EXPECT_THAT(round.waiting["j-2"], HasSubstr("NO_NODE_LARGE_ENOUGH need=1 large_enough=0"));
  EXPECT_FALSE(round.reservation.has_value());
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-3");
}

TEST(PlacementTest, TwoGangJobsOnThreeNodesPlaceOneAndTheOtherWaitsWithAReason) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n2", 4, 8192), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n3", 4, 8192), kT0).ok());
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 4, 1024, /*nodes=*/2));
  queue.Update(QueuedJob("j-2", 4, 1024, /*nodes=*/2));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-1");
  EXPECT_THAT(round.placed[0].nodes, ElementsAre("n1", "n2"));
  // j-2 holds nothing yet: the free n3 and one of j-1's nodes are only reserved for it.
  EXPECT_EQ(round.waiting["j-2"], "WAITING_FOR_NODES need=2 free=1 reserved=n1,n3");
  EXPECT_EQ(round.reservation->job_id, "j-2");
}

TEST(PlacementTest, ReservationGoesToTheHighestPriorityJob) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  std::map<std::string, RunningAttempt> running;
  StartRunning(nodes, running, "j-0", {"n1"}, 4, kT0, absl::Hours(1));
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 4, 1024));
  queue.Update(QueuedJob("j-2", 4, 1024, 1, /*priority=*/5));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, running, kT0);
  EXPECT_EQ(round.waiting["j-2"], "WAITING_FOR_NODES need=1 free=0 reserved=n1");
  EXPECT_EQ(round.waiting["j-1"], "WAITING_FOR_NODES need=1 free=0");
  nodes.Release("n1", "j-0");
  running.erase("j-0");
  round = PlaceQueuedJobs(queue, nodes, running, kT0);
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-2");
  EXPECT_EQ(round.waiting["j-1"], "WAITING_FOR_NODES need=1 free=0 reserved=n1");
}

TEST(PlacementTest, JobsOfOneShapeGetTheReasonOfTheRoomLeftWhenTheirTurnComes) {
  // A round answers a job shaped like one that did not fit before without walking the
  // nodes again, but only while nothing was placed in between: j-3 must see the room j-2
  // took, j-4 gets j-3's answer.
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  ASSERT_TRUE(nodes.Register(NodeWith("n2", 4, 8192), kT0).ok());
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 1, 1024, /*nodes=*/3));
  queue.Update(QueuedJob("j-2", 4, 1024));
  queue.Update(QueuedJob("j-3", 1, 1024, /*nodes=*/3));
  queue.Update(QueuedJob("j-4", 1, 1024, /*nodes=*/3));
  queue.Update(QueuedJob("j-5", 8, 1024));
  queue.Update(QueuedJob("j-6", 8, 1024));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-2");
  EXPECT_EQ(round.waiting["j-1"], "WAITING_FOR_NODES need=3 free=2");
  EXPECT_EQ(round.waiting["j-3"], "WAITING_FOR_NODES need=3 free=1");
  EXPECT_EQ(round.waiting["j-4"], "WAITING_FOR_NODES need=3 free=1");
  const std::string eight = FormatResources(PerNodeDemand(QueuedJob("x", 8, 1024).spec()));
  EXPECT_EQ(round.waiting["j-5"], "NO_NODE_LARGE_ENOUGH need=1 large_enough=0 per_node=" + eight);
  EXPECT_EQ(round.waiting["j-6"], round.waiting["j-5"]);
  EXPECT_FALSE(round.reservation.has_value());
}

TEST(PlacementTest, AManyNodeRoundPlacesBestFitInNodeOrderLikeAFullSort) {
  // 300 nodes with free room 1..4 CPUs in a repeating pattern: each one-node job goes to a
  // fullest node with room (the first such in name order), as the full sort placed it.
  NodeRegistry nodes;
  std::map<std::string, RunningAttempt> running;
  for (int i = 0; i < 300; ++i) {
    const std::string name = absl::StrCat("n", 1000 + i);
    ASSERT_TRUE(nodes.Register(NodeWith(name, 4, 1 << 20), kT0).ok());
    const int held = 3 - i % 4;  // free: 1, 2, 3, 4, 1, 2, ...
    if (held > 0) StartRunning(nodes, running, absl::StrCat("r-", i), {name}, held, kT0, {});
  }
  JobQueue queue;
  for (int j = 1; j <= 3; ++j) queue.Update(QueuedJob(absl::StrCat("j-", j), 2, 1024));
  queue.Update(QueuedJob("j-4", 1, 1024, /*nodes=*/3));
  PlacementRound round = PlaceQueuedJobs(queue, nodes, running, kT0);
  ASSERT_EQ(round.placed.size(), 4u);
  EXPECT_THAT(round.placed[0].nodes, ElementsAre("n1001"));  // free 2: the fullest that fits
  EXPECT_THAT(round.placed[1].nodes, ElementsAre("n1005"));
  EXPECT_THAT(round.placed[2].nodes, ElementsAre("n1009"));
  // Free 1: n1000 (then 0), n1004, n1008; the nodes j-1..3 left at 0 are out.
  EXPECT_THAT(round.placed[3].nodes, ElementsAre("n1000", "n1004", "n1008"));
}

}  // namespace
}  // namespace drover::scheduler
