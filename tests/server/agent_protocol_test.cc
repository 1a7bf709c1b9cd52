// droverd's side of the agent protocol (the fixture: agent_protocol_fixture.h): nodes
// registering, an attempt from assignment through the launch barrier to its end, and what
// an end means. Logs, cancels, placement, restarts and lost nodes have files of their own.
#include <signal.h>

#include <string>
#include <vector>

#include "tests/server/agent_protocol_fixture.h"

namespace drover::server::agent_protocol {
namespace {

using ::testing::HasSubstr;

TEST_F(AgentProtocolTest, RegisteredNodeIsListedReadyWithItsCapacity) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::vector<v1::Node> nodes = Nodes();
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].name(), "n1");
  EXPECT_EQ(nodes[0].state(), v1::Node::READY);
  EXPECT_EQ(nodes[0].capacity().cpus(), 4);
  EXPECT_EQ(nodes[0].labels().at("pool"), "cpu");
}

TEST_F(AgentProtocolTest, JobRunsThroughEveryStateAndKeepsItsLogs) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit();
  v1::SchedulerMessage assign = agent.Next(v1::SchedulerMessage::kAssign);
  EXPECT_EQ(assign.assign().attempt().job_id(), id);
  EXPECT_EQ(assign.assign().attempt().epoch(), 1);
  EXPECT_EQ(assign.assign().world_size(), 1);
  EXPECT_EQ(assign.assign().node_addresses(0), "10.77.0.11");
  v1::Job job = WaitFor(id, v1::JobStatus::PREPARING);
  EXPECT_THAT(job.status().nodes(), ::testing::ElementsAre("n1"));
  EXPECT_EQ(job.status().attempt(), 1);
  EXPECT_THAT(Nodes()[0].running_jobs(), ::testing::ElementsAre(id));

  // One node: it starts as soon as it is ready, without a START round trip.
  EXPECT_TRUE(assign.assign().start_when_ready());
  agent.Report(id, 1, v1::AttemptReport::READY);
  WaitFor(id, v1::JobStatus::STARTING);
  agent.Report(id, 1, v1::AttemptReport::RUNNING);
  job = WaitFor(id, v1::JobStatus::RUNNING);
  EXPECT_TRUE(job.status().has_start_time());

  agent.Log(id, 1, 0, 0, "hello\n");
  EXPECT_EQ(agent.Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 6);
  agent.Log(id, 1, 0, 0, "hello\n");  // resent after a reconnect: stored once
  EXPECT_EQ(agent.Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 6);
  agent.Log(id, 1, 0, 100, "gap");  // would leave a hole: refused, told where to resume
  EXPECT_EQ(agent.Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 6);
  agent.Log(id, 1, 0, 3, "lo\nworld\n");  // overlaps what is stored
  EXPECT_EQ(agent.Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 12);
  EXPECT_EQ(Logs(id, false), "hello\nworld\n");

  agent.Report(id, 1, v1::AttemptReport::FINALIZING);
  agent.Report(id, 1, v1::AttemptReport::ENDED, {Exit(0, 0)});
  job = WaitFor(id, v1::JobStatus::COMPLETED);
  ASSERT_EQ(job.status().exits_size(), 1);
  EXPECT_EQ(job.status().exits(0).node(), "n1");
  v1::Job final_job;
  EXPECT_EQ(Logs(id, true, &final_job), "hello\nworld\n");
  EXPECT_EQ(final_job.status().state(), v1::JobStatus::COMPLETED);
  EXPECT_TRUE(Nodes()[0].running_jobs().empty());
}

TEST_F(AgentProtocolTest, NodeListsItsGpusAndTheJobRecordsWhichItGot) {
  std::vector<v1::Gpu> gpus(2);
  for (int i = 0; i < 2; ++i) {
    gpus[i].set_index(i);
    gpus[i].set_uuid(absl::StrCat("GPU-", i));
    gpus[i].set_name("Fake GPU");
  }
  ScriptedAgent agent(NodeChannel("n1"), "n1", 4, {}, gpus);
  agent.Next(v1::SchedulerMessage::kWelcome);
  ASSERT_EQ(Nodes()[0].gpus_size(), 2);
  EXPECT_EQ(Nodes()[0].capacity().gpus(), 2);
  EXPECT_EQ(Nodes()[0].gpus(1).uuid(), "GPU-1");

  grpc::ClientContext context;
  v1::SubmitJobRequest request;
  request.mutable_spec()->set_entry_script("train.py");
  request.mutable_spec()->mutable_environment()->set_use_gpu(true);
  v1::SubmitJobResponse response;
  ASSERT_TRUE(jobs_->SubmitJob(&context, request, &response).ok());
  const std::string id = response.job().id();
  agent.Next(v1::SchedulerMessage::kAssign);
  EXPECT_EQ(Nodes()[0].allocated().gpus(), 1);

  // The agent gave it GPU 1 and says so in its reports.
  v1::AttemptReport ready;
  ready.mutable_attempt()->set_job_id(id);
  ready.mutable_attempt()->set_epoch(1);
  ready.set_phase(v1::AttemptReport::READY);
  *ready.add_gpus() = gpus[1];
  agent.Send(ready);
  v1::Job job = WaitFor(id, v1::JobStatus::STARTING);
  ASSERT_EQ(job.status().gpus_size(), 1);
  EXPECT_EQ(job.status().gpus(0).node(), "n1");
  ASSERT_EQ(job.status().gpus(0).gpus_size(), 1);
  EXPECT_EQ(job.status().gpus(0).gpus(0).uuid(), "GPU-1");

  agent.Report(id, 1, v1::AttemptReport::RUNNING);
  agent.Report(id, 1, v1::AttemptReport::FINALIZING);
  agent.Report(id, 1, v1::AttemptReport::ENDED, {Exit(0, 0)});
  job = WaitFor(id, v1::JobStatus::COMPLETED);
  ASSERT_EQ(job.status().gpus_size(), 1) << "the ended job still says which GPUs it had";
  EXPECT_EQ(job.status().gpus(0).gpus(0).index(), 1);
  EXPECT_EQ(Nodes()[0].allocated().gpus(), 0);
}

TEST_F(AgentProtocolTest, MultiNodeAttemptStartsOnlyOnceEveryNodeIsReady) {
  ScriptedAgent a(NodeChannel("n1"), "n1");
  a.Next(v1::SchedulerMessage::kWelcome);
  ScriptedAgent b(NodeChannel("n2"), "n2");
  b.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit(1, "", /*node_count=*/2);
  v1::AssignAttempt first = a.Next(v1::SchedulerMessage::kAssign).assign();
  v1::AssignAttempt second = b.Next(v1::SchedulerMessage::kAssign).assign();
  EXPECT_FALSE(first.start_when_ready());
  EXPECT_FALSE(second.start_when_ready());
  EXPECT_EQ(first.node_count(), 2);
  EXPECT_EQ(first.world_size(), 2);
  EXPECT_EQ(first.node_rank() + second.node_rank(), 1);  // ranks 0 and 1, one each
  EXPECT_EQ(first.first_rank(), first.node_rank());

  a.Report(id, 1, v1::AttemptReport::READY);
  // droverd has handled n1's READY and stored what it decided then: the attempt waits for n2.
  // (ASSERT: a START sent too early was skipped by AwaitHandled, and none would come later.)
  AwaitHandled(a);
  ASSERT_TRUE(AwaitStored().ok());
  ASSERT_EQ(Get(id).status().state(), v1::JobStatus::PREPARING);
  b.Report(id, 1, v1::AttemptReport::READY);
  EXPECT_EQ(a.Next(v1::SchedulerMessage::kStart).start().attempt().job_id(), id);
  EXPECT_EQ(b.Next(v1::SchedulerMessage::kStart).start().attempt().job_id(), id);
  WaitFor(id, v1::JobStatus::STARTING);
}

TEST_F(AgentProtocolTest, ANodeReadyAgainAfterTheStartIsSentTheStartAgain) {
  ScriptedAgent a(NodeChannel("n1"), "n1");
  a.Next(v1::SchedulerMessage::kWelcome);
  ScriptedAgent b(NodeChannel("n2"), "n2");
  b.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit(1, "", /*node_count=*/2);
  a.Next(v1::SchedulerMessage::kAssign);
  b.Next(v1::SchedulerMessage::kAssign);
  a.Report(id, 1, v1::AttemptReport::READY);
  b.Report(id, 1, v1::AttemptReport::READY);
  a.Next(v1::SchedulerMessage::kStart);
  b.Next(v1::SchedulerMessage::kStart);
  a.Report(id, 1, v1::AttemptReport::RUNNING);
  WaitFor(id, v1::JobStatus::RUNNING);
  // n2's agent restarted before it had the START and prepared the attempt again.
  b.Report(id, 1, v1::AttemptReport::PREPARING);
  b.Report(id, 1, v1::AttemptReport::READY);
  EXPECT_EQ(b.Next(v1::SchedulerMessage::kStart).start().attempt().epoch(), 1);
  EXPECT_EQ(Get(id).status().state(), v1::JobStatus::RUNNING) << "nothing went back";
}

TEST_F(AgentProtocolTest, FailingRankFailsTheJobNamingRankNodeAndCode) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit();
  agent.Next(v1::SchedulerMessage::kAssign);
  agent.Report(id, 1, v1::AttemptReport::READY);
  WaitFor(id, v1::JobStatus::STARTING);
  agent.Report(id, 1, v1::AttemptReport::RUNNING);
  agent.Report(id, 1, v1::AttemptReport::ENDED, {Exit(0, 0), Exit(1, 3)});
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::PROCESS_FAILED);
  EXPECT_EQ(job.status().message(), "rank 1 on n1 exited with code 3");
}

TEST_F(AgentProtocolTest, SuccessReportedWithoutFinalizingStillCompletes) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit();
  agent.Next(v1::SchedulerMessage::kAssign);
  agent.Report(id, 1, v1::AttemptReport::READY);
  WaitFor(id, v1::JobStatus::STARTING);
  agent.Report(id, 1, v1::AttemptReport::RUNNING);
  agent.Report(id, 1, v1::AttemptReport::ENDED, {Exit(0, 0)});
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  // QUEUED 1, PREPARING 2, STARTING 3, RUNNING 4, FINALIZING 5, COMPLETED 6.
  EXPECT_EQ(job.status().version(), 6);
}

TEST_F(AgentProtocolTest, ReconnectingAgentIsToldToStopAttemptsDroverdDoesNotKnow) {
  v1::AttemptReport held;
  held.mutable_attempt()->set_job_id("j-99");
  held.mutable_attempt()->set_epoch(3);
  held.set_phase(v1::AttemptReport::RUNNING);
  ScriptedAgent agent(NodeChannel("n1"), "n1", 4, {held});
  v1::SchedulerMessage stop = agent.Next(v1::SchedulerMessage::kStop);
  EXPECT_EQ(stop.stop().attempt().job_id(), "j-99");
  EXPECT_EQ(stop.stop().attempt().epoch(), 3);
}

// droverd with a short launch barrier timeout.
class LaunchTimeoutTest : public AgentProtocolTest {
 protected:
  void SetUp() override {
    launch_timeout_ = absl::Seconds(1);
    Start();
  }
};

TEST_F(LaunchTimeoutTest, AttemptWithANodeNotReadyInTimeFailsNamingTheNodeAndItsLastStep) {
  ScriptedAgent a(NodeChannel("n1"), "n1");
  a.Next(v1::SchedulerMessage::kWelcome);
  ScriptedAgent b(NodeChannel("n2"), "n2");
  b.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit(1, "", /*node_count=*/2);
  a.Next(v1::SchedulerMessage::kAssign);
  b.Next(v1::SchedulerMessage::kAssign);
  a.Report(id, 1, v1::AttemptReport::READY);
  b.ReportPreparing(id, 1, "FETCHING_SNAPSHOT");

  const std::string message = "node n2 not ready within 1s (last: FETCHING_SNAPSHOT)";
  v1::StopAttempt stop_a = a.Next(v1::SchedulerMessage::kStop).stop();
  v1::StopAttempt stop_b = b.Next(v1::SchedulerMessage::kStop).stop();
  EXPECT_EQ(stop_a.attempt().job_id(), id);
  EXPECT_EQ(stop_a.cause(), v1::JobStatus::LAUNCH_FAILED);
  EXPECT_EQ(stop_b.cause(), v1::JobStatus::LAUNCH_FAILED);
  EXPECT_EQ(std::string(stop_b.message()), message);
  a.Report(id, 1, v1::AttemptReport::ENDED);
  b.Report(id, 1, v1::AttemptReport::ENDED);
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::LAUNCH_FAILED);
  EXPECT_EQ(job.status().message(), message);
  EXPECT_TRUE(Nodes()[0].running_jobs().empty());
  EXPECT_TRUE(Nodes()[1].running_jobs().empty());
}

// Across nodes the rank that failed first names the failure, by the times the ranks ended:
// the others were stopped because of it, even when their node reports first; a rank killed
// before it could record its end was stopped, not the cause.
TEST_F(AgentProtocolTest, FirstFailureAcrossNodesIsTheEarliestRankToFail) {
  ScriptedAgent a(NodeChannel("n1"), "n1");
  a.Next(v1::SchedulerMessage::kWelcome);
  ScriptedAgent b(NodeChannel("n2"), "n2");
  b.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit(1, "", /*node_count=*/2);
  v1::AssignAttempt first = a.Next(v1::SchedulerMessage::kAssign).assign();
  b.Next(v1::SchedulerMessage::kAssign);
  ScriptedAgent& rank0 = first.node_rank() == 0 ? a : b;
  ScriptedAgent& rank1 = first.node_rank() == 0 ? b : a;
  std::string node1 = first.node_rank() == 0 ? "n2" : "n1";
  for (ScriptedAgent* agent : {&a, &b}) agent->Report(id, 1, v1::AttemptReport::READY);
  WaitFor(id, v1::JobStatus::STARTING);
  for (ScriptedAgent* agent : {&a, &b}) agent->Report(id, 1, v1::AttemptReport::RUNNING);
  WaitFor(id, v1::JobStatus::RUNNING);

  auto at = [](v1::RankExit e, int64_t seconds) {
    e.mutable_end_time()->set_seconds(seconds);
    return e;
  };
  // Node rank 0 reports first: its rank 0 was SIGTERMed at t=105, and nothing is known of
  // when its killed rank 1 ended.
  rank0.Report(id, 1, v1::AttemptReport::ENDED, {at(Exit(0, -1, SIGTERM), 105), Exit(1, -1, SIGKILL)});
  // Node rank 1: its rank 2 failed at t=100, before anything else.
  rank1.Report(id, 1, v1::AttemptReport::ENDED, {at(Exit(2, 3), 100), at(Exit(3, -1, SIGTERM), 106)});
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().message(), absl::StrCat("rank 2 on ", node1, " exited with code 3"));
  EXPECT_EQ(job.status().exits_size(), 4);
}

// Horovod is installed with pip too: a job that asks only for it gets the pip settings.
TEST_F(AgentProtocolTest, HorovodJobGetsThePipSettings) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  grpc::ClientContext context;
  v1::SubmitJobRequest request;
  request.mutable_spec()->set_entry_script("train.py");
  request.mutable_spec()->set_distributed_backend(v1::JobSpec::MPI);
  request.mutable_spec()->mutable_environment()->set_horovod(true);
  v1::SubmitJobResponse response;
  ASSERT_TRUE(jobs_->SubmitJob(&context, request, &response).ok());
  v1::AssignAttempt assign = agent.Next(v1::SchedulerMessage::kAssign).assign();
  EXPECT_TRUE(assign.spec().environment().horovod());
  EXPECT_THAT(assign.pip().find_links(), ::testing::ElementsAre("/srv/wheels"));
  EXPECT_TRUE(assign.pip().no_index());
}

// A job with pip packages gets the cluster's pip settings; its nodes' preparation logs are a
// stream of their own, stored and shown only when asked for.
TEST_F(AgentProtocolTest, PipJobGetsThePipSettingsAndItsPrepareLogStaysApart) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  Submit();
  EXPECT_FALSE(agent.Next(v1::SchedulerMessage::kAssign).assign().has_pip());

  grpc::ClientContext context;
  v1::SubmitJobRequest request;
  request.mutable_spec()->set_entry_script("train.py");
  request.mutable_spec()->mutable_environment()->add_pip_packages("drovertestpkg==1.0");
  v1::SubmitJobResponse response;
  ASSERT_TRUE(jobs_->SubmitJob(&context, request, &response).ok());
  std::string id = response.job().id();
  v1::AssignAttempt assign = agent.Next(v1::SchedulerMessage::kAssign).assign();
  EXPECT_THAT(assign.pip().find_links(), ::testing::ElementsAre("/srv/wheels"));
  EXPECT_TRUE(assign.pip().no_index());

  agent.ReportPreparing(id, 1, "BUILDING_ENVIRONMENT");
  v1::Job job = WaitFor(id, v1::JobStatus::PREPARING);
  for (absl::Time deadline = absl::Now() + absl::Seconds(10);
       job.status().reason() != "BUILDING_ENVIRONMENT node=n1" && absl::Now() < deadline;
       job = Get(id)) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(job.status().reason(), "BUILDING_ENVIRONMENT node=n1");
  agent.Log(id, 1, 0, 0, "Successfully installed drovertestpkg-1.0\n", v1::PREPARE);
  EXPECT_EQ(agent.Next(v1::SchedulerMessage::kLogAck).log_ack().stream(), v1::PREPARE);
  agent.Log(id, 1, 0, 0, "hello\n");
  EXPECT_EQ(agent.Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 6);

  EXPECT_EQ(Logs(id, false), "hello\n");  // stdout and stderr only
  grpc::ClientContext logs_context;
  v1::StreamLogsRequest logs;
  logs.set_job_id(id);
  logs.add_streams(v1::PREPARE);
  auto reader = jobs_->StreamLogs(&logs_context, logs);
  std::vector<v1::StreamLogsResponse> got;
  for (v1::StreamLogsResponse r; reader->Read(&r);) got.push_back(r);
  EXPECT_TRUE(reader->Finish().ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].stream(), v1::PREPARE);
  EXPECT_EQ(got[0].rank(), 0);
  EXPECT_EQ(got[0].data(), "Successfully installed drovertestpkg-1.0\n");
}

}  // namespace
}  // namespace drover::server::agent_protocol
