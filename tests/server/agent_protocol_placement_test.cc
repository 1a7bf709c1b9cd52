// droverd's agent protocol: which node gets work (sizes, cordons and drains, compute
// targets, gang reservations) and the admin calls on nodes.
#include <functional>
#include <string>
#include <vector>

#include "tests/server/agent_protocol_fixture.h"

namespace drover::server::agent_protocol {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(AgentProtocolTest, TooLargeJobWaitsWithAReasonAndUnknownTargetsAreRefused) {
  ScriptedAgent agent(NodeChannel("n1"), "n1", /*cpus=*/2);
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit(/*cpus=*/8);
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline &&
         Get(id).status().reason().rfind("NO_NODE_LARGE_ENOUGH", 0) != 0) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_THAT(Get(id).status().reason(), HasSubstr("NO_NODE_LARGE_ENOUGH need=1"));

  grpc::ClientContext context;
  v1::SubmitJobRequest request;
  request.mutable_spec()->set_entry_script("train.py");
  request.mutable_spec()->set_compute_target("gpu-pool");
  v1::SubmitJobResponse response;
  grpc::Status status = jobs_->SubmitJob(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("spec.compute_target: 'gpu-pool' does not exist"));
}

TEST_F(AgentProtocolTest, CordonedNodeGetsNoWorkUntilUncordoned) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  {
    grpc::ClientContext context;
    v1::NodeRequest request;
    request.set_name("n1");
    request.set_reason("disk check");
    v1::Node node;
    ASSERT_TRUE(admin_->CordonNode(&context, request, &node).ok());
    EXPECT_EQ(node.state(), v1::Node::CORDONED);
  }
  std::string id = Submit();
  // The placement round the submit asked for has run before the nodes are listed: n1 got
  // nothing.
  std::vector<v1::Node> nodes = Nodes();
  ASSERT_NE(FindNode(nodes, "n1"), nullptr);
  EXPECT_TRUE(FindNode(nodes, "n1")->running_jobs().empty());
  EXPECT_EQ(Get(id).status().state(), v1::JobStatus::QUEUED);
  {
    grpc::ClientContext context;
    v1::NodeRequest request;
    request.set_name("n1");
    v1::Node node;
    ASSERT_TRUE(admin_->UncordonNode(&context, request, &node).ok());
  }
  EXPECT_EQ(agent.Next(v1::SchedulerMessage::kAssign).assign().attempt().job_id(), id);
}

TEST_F(AgentProtocolTest, CordonAndDrainSurviveARestartAndTheNodesGetNoNewWork) {
  std::string running;
  {
    ScriptedAgent n1(NodeChannel("n1"), "n1"), n2(NodeChannel("n2"), "n2");
    for (ScriptedAgent* agent : {&n1, &n2}) agent->Next(v1::SchedulerMessage::kWelcome);
    ASSERT_TRUE(AdminCall(*admin_, &v1::AdminService::Stub::CordonNode, "n1", "disk check").ok());
    running = Submit(4);
    EXPECT_EQ(n2.Next(v1::SchedulerMessage::kAssign).assign().attempt().job_id(), running);
    n2.Report(running, 1, v1::AttemptReport::READY);
    n2.Report(running, 1, v1::AttemptReport::RUNNING);
    WaitFor(running, v1::JobStatus::RUNNING);
    v1::Node drained;
    ASSERT_TRUE(
        AdminCall(*admin_, &v1::AdminService::Stub::DrainNode, "n2", "reboot", &drained).ok());
    EXPECT_EQ(drained.state(), v1::Node::DRAINING);
    droverd_->Shutdown();
    droverd_.reset();
  }
  Start();
  v1::AttemptReport held;
  held.mutable_attempt()->set_job_id(running);
  held.mutable_attempt()->set_epoch(1);
  held.set_phase(v1::AttemptReport::RUNNING);
  ScriptedAgent n1(NodeChannel("n1"), "n1"), n2(NodeChannel("n2"), "n2", 4, {held});
  for (ScriptedAgent* agent : {&n1, &n2}) agent->Next(v1::SchedulerMessage::kWelcome);
  std::vector<v1::Node> nodes = Nodes();
  ASSERT_NE(FindNode(nodes, "n1"), nullptr);
  ASSERT_NE(FindNode(nodes, "n2"), nullptr);
  EXPECT_EQ(FindNode(nodes, "n1")->state(), v1::Node::CORDONED);
  EXPECT_EQ(FindNode(nodes, "n1")->reason(), "CORDONED disk check");
  EXPECT_EQ(FindNode(nodes, "n2")->state(), v1::Node::DRAINING);
  EXPECT_EQ(FindNode(nodes, "n2")->reason(), "DRAINING reboot");

  std::string queued = Submit(1);
  // The placement round the submit asked for has run before the nodes are listed: neither
  // node got the job.
  for (const v1::Node& node : Nodes()) {
    ASSERT_THAT(node.running_jobs(), Not(Contains(queued))) << node.name();
  }
  EXPECT_EQ(Get(queued).status().state(), v1::JobStatus::QUEUED);
  n2.Report(running, 1, v1::AttemptReport::ENDED, {Exit(0, 0)});
  WaitFor(running, v1::JobStatus::COMPLETED);
  EXPECT_EQ(FindNode(Nodes(), "n2")->state(), v1::Node::CORDONED) << "drained";
  EXPECT_EQ(Get(queued).status().state(), v1::JobStatus::QUEUED);

  // An uncordon is stored as well: after the next restart n1 is READY, n2 still CORDONED.
  ASSERT_TRUE(AdminCall(*admin_, &v1::AdminService::Stub::UncordonNode, "n1").ok());
  EXPECT_EQ(n1.Next(v1::SchedulerMessage::kAssign).assign().attempt().job_id(), queued);
  droverd_->Shutdown();
  droverd_.reset();
  Start();
  ScriptedAgent again1(NodeChannel("n1"), "n1"), again2(NodeChannel("n2"), "n2");
  for (ScriptedAgent* agent : {&again1, &again2}) agent->Next(v1::SchedulerMessage::kWelcome);
  nodes = Nodes();
  EXPECT_EQ(FindNode(nodes, "n1")->state(), v1::Node::READY);
  EXPECT_EQ(FindNode(nodes, "n2")->state(), v1::Node::CORDONED);
}

TEST_F(AgentProtocolTest, NodeCallsRefuseBadNamesAndReasonsNamingTheField) {
  ScriptedAgent n1(NodeChannel("n1"), "n1");
  n1.Next(v1::SchedulerMessage::kWelcome);
  const std::vector<NodeCall> calls = {
      &v1::AdminService::Stub::CordonNode, &v1::AdminService::Stub::DrainNode,
      &v1::AdminService::Stub::UncordonNode, &v1::AdminService::Stub::DeclareNodeLost};
  for (NodeCall call : calls) {
    grpc::Status empty = AdminCall(*admin_, call, "");
    EXPECT_EQ(empty.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(empty.error_message(), HasSubstr("name: required"));
    grpc::Status bad = AdminCall(*admin_, call, "N1/../x\n");
    EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(bad.error_message(), HasSubstr("is not a valid node name"));
    grpc::Status huge_name = AdminCall(*admin_, call, std::string(100000, 'a'));
    EXPECT_EQ(huge_name.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(huge_name.error_message(),
              "name: 100000 characters is too long for a node name; use 1-63 characters of "
              "[a-z0-9-], starting with a letter or digit");
    EXPECT_EQ(AdminCall(*admin_, call, "n9").error_code(), grpc::StatusCode::NOT_FOUND);
  }
  for (NodeCall call : {calls[0], calls[1], calls[3]}) {
    grpc::Status huge = AdminCall(*admin_, call, "n1", std::string(2 << 20, 'x'));
    EXPECT_EQ(huge.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(huge.error_message(),
              "reason: 2097152 bytes is more than the 1024 allowed; give a shorter reason");
    grpc::Status lines = AdminCall(*admin_, call, "n1", "one\nFAKE n2 READY");
    EXPECT_EQ(lines.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(lines.error_message(), HasSubstr("reason: has a control character"));
  }
  // Nothing was changed by the refused calls.
  EXPECT_EQ(Nodes()[0].state(), v1::Node::READY);
  ASSERT_TRUE(
      AdminCall(*admin_, &v1::AdminService::Stub::CordonNode, "n1", std::string(1024, 'x')).ok());
}

TEST_F(AgentProtocolTest, ComputeTargetsSelectNodesAndSurviveARestart) {
  {
    grpc::ClientContext context;
    v1::PutComputeTargetRequest request;
    request.mutable_target()->set_name("cpu-pool");
    (*request.mutable_target()->mutable_selector())["pool"] = "cpu";
    v1::ComputeTarget target;
    ASSERT_TRUE(admin_->PutComputeTarget(&context, request, &target).ok());
  }
  droverd_->Shutdown();
  droverd_.reset();
  Start();
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit(1, "cpu-pool");
  EXPECT_EQ(agent.Next(v1::SchedulerMessage::kAssign).assign().attempt().job_id(), id);
  grpc::ClientContext context;
  v1::DeleteComputeTargetRequest request;
  request.set_name("default");
  v1::DeleteComputeTargetResponse response;
  EXPECT_EQ(admin_->DeleteComputeTarget(&context, request, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// Polls until the job's reason is `reason`, heartbeating for `agents` meanwhile.
void WaitForReason(const std::function<v1::Job()>& get, const std::string& reason,
                   std::vector<ScriptedAgent*> agents) {
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline && get().status().reason() != reason) {
    for (ScriptedAgent* agent : agents) agent->Heartbeat();
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(get().status().reason(), reason);
}

TEST_F(AgentProtocolTest, GangJobHoldsReservedNodesThatLaterSmallJobsDoNotTake) {
  ScriptedAgent a(NodeChannel("n1"), "n1");
  a.Next(v1::SchedulerMessage::kWelcome);
  ScriptedAgent b(NodeChannel("n2"), "n2");
  b.Next(v1::SchedulerMessage::kWelcome);
  std::string whole_node = Submit(/*cpus=*/4);
  EXPECT_EQ(a.Next(v1::SchedulerMessage::kAssign).assign().attempt().job_id(), whole_node);
  std::string gang = Submit(/*cpus=*/4, "", /*node_count=*/2);
  WaitForReason([&] { return Get(gang); }, "WAITING_FOR_NODES need=2 free=1 reserved=n1,n2",
                {&a, &b});
  // n2 is free, but held for the gang job: the small job waits and says for whom.
  std::string small = Submit(/*cpus=*/1);
  WaitForReason([&] { return Get(small); },
                absl::StrCat("WAITING_FOR_NODES need=1 free=1 reserved_for=", gang), {&a, &b});

  a.Report(whole_node, 1, v1::AttemptReport::READY);
  WaitFor(whole_node, v1::JobStatus::STARTING);
  a.Report(whole_node, 1, v1::AttemptReport::RUNNING);
  a.Report(whole_node, 1, v1::AttemptReport::ENDED, {Exit(0, 0)});
  EXPECT_EQ(a.Next(v1::SchedulerMessage::kAssign).assign().attempt().job_id(), gang);
  EXPECT_EQ(b.Next(v1::SchedulerMessage::kAssign).assign().attempt().job_id(), gang);
  EXPECT_EQ(Get(small).status().state(), v1::JobStatus::QUEUED);
}

}  // namespace
}  // namespace drover::server::agent_protocol
