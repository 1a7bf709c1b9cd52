// droverd's agent protocol: a cancel reaching the job's nodes, also when they were away.
#include <string>

#include "tests/server/agent_protocol_fixture.h"

namespace drover::server::agent_protocol {
namespace {

using ::testing::HasSubstr;

TEST_F(AgentProtocolTest, CancelOfARunningJobStopsItOnTheNode) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit();
  RunOn(agent, id);
  grpc::ClientContext context;
  v1::CancelJobRequest cancel;
  cancel.set_job_id(id);
  v1::Job job;
  ASSERT_TRUE(jobs_->CancelJob(&context, cancel, &job).ok());
  EXPECT_EQ(job.status().state(), v1::JobStatus::CANCEL_REQUESTED);
  v1::SchedulerMessage stop = agent.Next(v1::SchedulerMessage::kStop);
  EXPECT_EQ(stop.stop().cause(), v1::JobStatus::CANCELED_BY_USER);
  agent.Report(id, 1, v1::AttemptReport::ENDED, {Exit(0, -1, 15)});
  job = WaitFor(id, v1::JobStatus::CANCELED);
  EXPECT_EQ(job.status().exits(0).signal(), 15);
}

// A cancel made while the job's agent is away (its link cut, or droverd restarted after
// storing the cancel) reaches the agent when it says hello again with the attempt.
TEST_F(AgentProtocolTest, ACancelMadeWhileTheAgentIsAwayStopsTheAttemptWhenItIsBack) {
  std::string id;
  v1::AttemptReport held;
  {
    ScriptedAgent agent(NodeChannel("n1"), "n1");
    agent.Next(v1::SchedulerMessage::kWelcome);
    id = Submit();
    *held.mutable_attempt() = agent.Next(v1::SchedulerMessage::kAssign).assign().attempt();
    agent.Report(id, 1, v1::AttemptReport::READY);
    agent.Report(id, 1, v1::AttemptReport::RUNNING);
    WaitFor(id, v1::JobStatus::RUNNING);
  }  // the agent's link is cut
  held.set_phase(v1::AttemptReport::RUNNING);
  for (bool restart_droverd : {false, true}) {
    SCOPED_TRACE(restart_droverd ? "droverd restarted meanwhile" : "droverd kept running");
    if (!restart_droverd) {
      grpc::ClientContext context;
      v1::CancelJobRequest cancel;
      cancel.set_job_id(id);
      cancel.set_reason("wrong data");
      v1::Job job;
      ASSERT_TRUE(jobs_->CancelJob(&context, cancel, &job).ok());
      ASSERT_EQ(job.status().state(), v1::JobStatus::CANCEL_REQUESTED);
    } else {
      droverd_->Shutdown();
      droverd_.reset();
      Start();
    }
    ScriptedAgent agent(NodeChannel("n1"), "n1", 4, {held});
    v1::SchedulerMessage stop = agent.Next(v1::SchedulerMessage::kStop);
    EXPECT_EQ(stop.stop().attempt().job_id(), id);
    EXPECT_EQ(stop.stop().attempt().epoch(), 1);
    EXPECT_EQ(stop.stop().cause(), v1::JobStatus::CANCELED_BY_USER);
    EXPECT_THAT(stop.stop().message(), HasSubstr("wrong data"));
  }
  ScriptedAgent agent(NodeChannel("n1"), "n1", 4, {held});
  agent.Next(v1::SchedulerMessage::kStop);
  agent.Report(id, 1, v1::AttemptReport::ENDED, {Exit(0, -1, 15)});
  v1::Job job = WaitFor(id, v1::JobStatus::CANCELED);
  EXPECT_THAT(job.status().message(), HasSubstr("wrong data"));
}

}  // namespace
}  // namespace drover::server::agent_protocol
