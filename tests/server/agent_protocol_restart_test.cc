// droverd's agent protocol across droverd restarts and a state disk that refuses writes:
// what agents hold and report is taken back, and nothing is lost or made up.
#include <string>

#include "tests/server/agent_protocol_fixture.h"
#include "tests/testing/fail_file_writes.h"

namespace drover::server::agent_protocol {
namespace {

using ::testing::HasSubstr;

TEST_F(AgentProtocolTest, ARestartedDroverdKeepsMasterPortsAndExecTokensOfRunningAttempts) {
  v1::AssignAttempt first;
  std::string id;
  {
    ScriptedAgent a(NodeChannel("n1"), "n1");
    a.Next(v1::SchedulerMessage::kWelcome);
    ScriptedAgent b(NodeChannel("n2"), "n2");
    b.Next(v1::SchedulerMessage::kWelcome);
    id = Submit(1, "", /*node_count=*/2);
    first = a.Next(v1::SchedulerMessage::kAssign).assign();
    b.Next(v1::SchedulerMessage::kAssign);
    EXPECT_EQ(Get(id).status().master_port(), first.master_port());
    droverd_->Shutdown();
    droverd_.reset();
  }
  Start();
  v1::AttemptReport held;
  *held.mutable_attempt() = first.attempt();
  held.set_phase(v1::AttemptReport::READY);
  // n1 comes back with the attempt; n2 lost it and is sent it again.
  ScriptedAgent a(NodeChannel("n1"), "n1", 8, {held});
  a.Next(v1::SchedulerMessage::kWelcome);
  ScriptedAgent b(NodeChannel("n2"), "n2", 8);
  b.Next(v1::SchedulerMessage::kWelcome);
  v1::AssignAttempt again = b.Next(v1::SchedulerMessage::kAssign).assign();
  EXPECT_EQ(again.attempt().epoch(), 1);
  EXPECT_EQ(again.exec_token(), first.exec_token()) << "the token n1 already has";
  EXPECT_EQ(again.master_port(), first.master_port());
  // A new distributed job whose first node is n1 too gets another port.
  std::string other = Submit(1, "", /*node_count=*/2);
  v1::AssignAttempt next = a.Next(v1::SchedulerMessage::kAssign).assign();
  ASSERT_EQ(next.attempt().job_id(), other);
  ASSERT_EQ(next.node_names(0), first.node_names(0)) << "placement orders nodes by name";
  EXPECT_NE(next.master_port(), first.master_port());
  EXPECT_NE(next.exec_token(), first.exec_token());
}

// droverd sends START before it stores STARTING: when it dies in between, the restarted
// droverd knows the job as PREPARING while a node's processes run. A node that says they
// run passes the launch barrier: the others get START, and the job runs and completes
// through a valid history instead of waiting for READYs that never come.
TEST_F(AgentProtocolTest, ANodeRunningAfterADroverdRestartPassesTheBarrierItMissed) {
  v1::AssignAttempt first, second;
  std::string id = PlaceTwoNodeJobThenRestart(&first, &second);
  EXPECT_EQ(Get(id).status().state(), v1::JobStatus::PREPARING);
  v1::AttemptReport running, ready;
  *running.mutable_attempt() = first.attempt();
  running.set_phase(v1::AttemptReport::RUNNING);
  *ready.mutable_attempt() = second.attempt();
  ready.set_phase(v1::AttemptReport::READY);
  ScriptedAgent b(NodeChannel("n2"), "n2", 8, {ready});
  b.Next(v1::SchedulerMessage::kWelcome);
  ScriptedAgent a(NodeChannel("n1"), "n1", 8, {running});
  a.Next(v1::SchedulerMessage::kWelcome);
  EXPECT_EQ(b.Next(v1::SchedulerMessage::kStart).start().attempt().epoch(), 1);
  WaitFor(id, v1::JobStatus::RUNNING);
  b.Report(id, 1, v1::AttemptReport::RUNNING);
  a.Report(id, 1, v1::AttemptReport::ENDED, {Exit(first.first_rank(), 0)});
  b.Report(id, 1, v1::AttemptReport::ENDED, {Exit(second.first_rank(), 0)});
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(job.status().attempt(), 1);
  EXPECT_TRUE(job.status().has_start_time());
}

// The whole attempt ran and ended while droverd was down between START and STARTING: both
// nodes come back with their end, and the job completes (it does not wait for a barrier,
// and no node is sent the attempt again).
TEST_F(AgentProtocolTest, AnAttemptThatEndedWhileDroverdWasDownBeforeStartingCompletes) {
  v1::AssignAttempt first, second;
  std::string id = PlaceTwoNodeJobThenRestart(&first, &second);
  auto ended = [](const v1::AssignAttempt& assign) {
    v1::AttemptReport report;
    *report.mutable_attempt() = assign.attempt();
    report.set_phase(v1::AttemptReport::ENDED);
    *report.add_exits() = Exit(assign.first_rank(), 0);
    return report;
  };
  ScriptedAgent a(NodeChannel("n1"), "n1", 8, {ended(first)});
  a.Next(v1::SchedulerMessage::kWelcome);
  ScriptedAgent b(NodeChannel("n2"), "n2", 8, {ended(second)});
  b.Next(v1::SchedulerMessage::kWelcome);
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(job.status().exits_size(), 2);
}

TEST_F(AgentProtocolTest, DiskRefusingWritesIsReportedAndWhatAgentsReportIsStoredLater) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit();
  agent.Next(v1::SchedulerMessage::kAssign);
  agent.Report(id, 1, v1::AttemptReport::READY);
  agent.Report(id, 1, v1::AttemptReport::RUNNING);
  WaitFor(id, v1::JobStatus::RUNNING);
  {
    testing::FailFileWrites disk_refuses;
    // A submit is refused with what to do, and nothing of it is kept.
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    v1::SubmitJobResponse response;
    grpc::Status refused = jobs_->SubmitJob(&context, request, &response);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
    EXPECT_THAT(refused.error_message(), HasSubstr("state disk error"));
    EXPECT_THAT(refused.error_message(), HasSubstr(dir_.path()));
    // A log chunk that could not be stored is not acknowledged: the agent resends it.
    agent.Log(id, 1, 0, 0, "hello\n");
    EXPECT_EQ(agent.Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), -1);
    // The processes end meanwhile: that happened, whether or not the disk takes it now.
    agent.Report(id, 1, v1::AttemptReport::FINALIZING);
    // Clients see only what is stored; a cancel cannot be stored either.
    EXPECT_EQ(Get(id).status().state(), v1::JobStatus::RUNNING);
    grpc::ClientContext cancel_context;
    v1::CancelJobRequest cancel;
    cancel.set_job_id(id);
    v1::Job canceled;
    grpc::Status cancel_status = jobs_->CancelJob(&cancel_context, cancel, &canceled);
    EXPECT_EQ(cancel_status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << cancel_status.error_message();
  }
  // The disk takes writes again: what the agent reported is stored without anyone asking.
  WaitFor(id, v1::JobStatus::FINALIZING);
  // The agent sends the chunk again (an agent reports the end only once droverd has every
  // byte: it stores nothing of an attempt that ended).
  agent.Log(id, 1, 0, 0, "hello\n");
  EXPECT_EQ(agent.Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 6);
  EXPECT_EQ(Logs(id, false), "hello\n");
  {
    testing::FailFileWrites disk_refuses;
    agent.Report(id, 1, v1::AttemptReport::ENDED, {Exit(0, 0)});
    // droverd has handled the end, and its store has tried every write queued by then: the
    // disk refused them as it refuses this submit.
    AwaitHandled(agent);
    EXPECT_EQ(AwaitStored().error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(Get(id).status().state(), v1::JobStatus::FINALIZING);
  }
  // The job's end too.
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(job.status().exits_size(), 1);
  EXPECT_FALSE(Submit().empty());
}

}  // namespace
}  // namespace drover::server::agent_protocol
