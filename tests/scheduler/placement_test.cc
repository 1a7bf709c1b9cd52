#include "scheduler/placement.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/node_registry.h"

namespace drover::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

v1::NodeInfo NodeWith(const std::string& name, double cpus, int64_t memory_mib, int gpus = 0,
                      std::map<std::string, std::string> labels = {}) {
  v1::NodeInfo info;
  info.set_name(name);
  info.add_addresses("10.0.0.1");
  info.mutable_capacity()->set_cpus(cpus);
  info.mutable_capacity()->set_memory_mib(memory_mib);
  info.mutable_capacity()->set_gpus(gpus);
  for (auto& [k, v] : labels) (*info.mutable_labels())[k] = v;
  return info;
}

v1::Job QueuedJob(const std::string& id, double cpus, int64_t memory_mib, int nodes = 1,
                  int priority = 0, const std::string& target = "default") {
  v1::Job job;
  job.set_id(id);
  job.mutable_spec()->set_node_count(nodes);
  job.mutable_spec()->set_priority(priority);
  job.mutable_spec()->set_compute_target(target);
  job.mutable_spec()->mutable_resources()->set_cpus(cpus);
  job.mutable_spec()->mutable_resources()->set_memory_mib(memory_mib);
  job.mutable_status()->set_state(v1::JobStatus::QUEUED);
  job.mutable_status()->set_version(1);
  return job;
}

TEST(NodeRegistryTest, NewNodesAreReadyAndMissedLeasesMakeThemDown) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  EXPECT_TRUE(nodes.TakesWork("n1"));
  EXPECT_THAT(nodes.ExpireLeases(kT0 + absl::Seconds(5), absl::Seconds(10)), IsEmpty());
  EXPECT_THAT(nodes.ExpireLeases(kT0 + absl::Seconds(11), absl::Seconds(10)), ElementsAre("n1"));
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
  PlacementRound round = PlaceQueuedJobs(queue, nodes);
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-2");
  EXPECT_THAT(round.placed[0].nodes, ElementsAre("n1"));
  EXPECT_EQ(round.waiting["j-1"], "WAITING_FOR_NODES need=1 free=0");
}

TEST(PlacementTest, SmallerJobsUseWhatIsLeft) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(NodeWith("n1", 4, 8192), kT0).ok());
  nodes.Allocate("n1", "j-0", PerNodeDemand(QueuedJob("j-0", 3, 1024).spec()));
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 2, 1024));
  queue.Update(QueuedJob("j-2", 1, 1024));
  PlacementRound round = PlaceQueuedJobs(queue, nodes);
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_EQ(round.placed[0].job_id, "j-2");
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
  PlacementRound round = PlaceQueuedJobs(queue, nodes);
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
  PlacementRound round = PlaceQueuedJobs(queue, nodes);
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
  nodes.ExpireLeases(kT0 + absl::Seconds(20), absl::Seconds(10));
  JobQueue queue;
  queue.Update(QueuedJob("j-1", 1, 1024));
  PlacementRound round = PlaceQueuedJobs(queue, nodes);
  EXPECT_THAT(round.placed, IsEmpty());
  // Nothing can start anywhere, so the round does not even look at the queue.
  EXPECT_THAT(round.waiting, IsEmpty());
  ASSERT_TRUE(nodes.Uncordon("n2").ok());
  round = PlaceQueuedJobs(queue, nodes);
  ASSERT_EQ(round.placed.size(), 1u);
  EXPECT_THAT(round.placed[0].nodes, ElementsAre("n2"));
}

}  // namespace
}  // namespace drover::scheduler
