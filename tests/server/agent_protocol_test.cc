// droverd's side of the agent protocol, in-process: a real Droverd and a scripted agent
// speaking AgentService over gRPC. What runs on the node is the agent's business (tested
// with real runc in tests/agent and tests/e2e); here the agent's reports are written by
// hand, so every transition of droverd can be driven and checked.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <functional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/agent_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/droverd.h"
#include "tests/testing/fail_file_writes.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/scripted_agent.h"
#include "tests/testing/cluster.h"
#include "tests/testing/test_tls.h"
#include "tests/testing/subprocess.h"

namespace drover::server {
namespace {

using ::drover::testing::ScriptedAgent;
using ::testing::HasSubstr;

v1::RankExit Exit(int rank, int code, int signal = 0) {
  v1::RankExit e;
  e.set_rank(rank);
  e.set_exit_code(code);
  e.set_signal(signal);
  return e;
}

class AgentProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    DroverdOptions options{.listen = "127.0.0.1:0", .state_dir = dir_.path(),
       .bootstrap_admin_token = testing::TestAdminToken()};
    options.core.lease = lease_;
    options.core.stop_grace = absl::Seconds(1);
    options.core.launch_timeout = launch_timeout_;
    options.core.node_loss_pause_fraction = pause_fraction_;
    options.core.pip.add_find_links("/srv/wheels");
    options.core.pip.set_no_index(true);
    options.tick = absl::Milliseconds(50);
    auto started = Droverd::Start(options, *clock_);
    ASSERT_TRUE(started.ok()) << started.status();
    droverd_ = *std::move(started);
    channel_ = testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate());
    jobs_ = v1::JobService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }

  std::string Submit(double cpus = 1, const std::string& target = "", int node_count = 1) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    request.mutable_spec()->set_node_count(node_count);
    if (node_count > 1) request.mutable_spec()->set_distributed_backend(v1::JobSpec::PYTORCH);
    request.mutable_spec()->mutable_resources()->set_cpus(cpus);
    request.mutable_spec()->set_compute_target(target);
    v1::SubmitJobResponse response;
    grpc::Status status = jobs_->SubmitJob(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.job().id();
  }

  v1::Job Get(const std::string& id) {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id(id);
    v1::Job job;
    EXPECT_TRUE(jobs_->GetJob(&context, request, &job).ok());
    return job;
  }

  // Polls until the job is in `state` (the store is updated asynchronously).
  v1::Job WaitFor(const std::string& id, v1::JobStatus::State state) {
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    v1::Job job;
    while (absl::Now() < deadline) {
      job = Get(id);
      if (job.status().state() == state) return job;
      absl::SleepFor(absl::Milliseconds(10));
    }
    ADD_FAILURE() << id << " never reached " << v1::JobStatus::State_Name(state) << "; it is "
                  << job.DebugString();
    return job;
  }

  std::vector<v1::Node> Nodes() {
    grpc::ClientContext context;
    v1::ListNodesResponse response;
    EXPECT_TRUE(admin_->ListNodes(&context, v1::ListNodesRequest(), &response).ok());
    return {response.nodes().begin(), response.nodes().end()};
  }

  // Attempt 0: the current one.
  std::string Logs(const std::string& id, bool follow, v1::Job* last_job = nullptr,
                   int64_t attempt = 0) {
    grpc::ClientContext context;
    v1::StreamLogsRequest request;
    request.set_job_id(id);
    request.set_follow(follow);
    request.set_attempt(attempt);
    auto reader = jobs_->StreamLogs(&context, request);
    std::string out;
    v1::StreamLogsResponse response;
    while (reader->Read(&response)) {
      out += response.data();
      if (response.has_job() && last_job != nullptr) *last_job = response.job();
    }
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  std::string PlaceTwoNodeJobThenRestart(v1::AssignAttempt* first, v1::AssignAttempt* second);

  // `agent` takes the one-node job `id` it is assigned through READY to RUNNING (attempt 1).
  void RunOn(ScriptedAgent& agent, const std::string& id) {
    agent.Next(v1::SchedulerMessage::kAssign);
    agent.Report(id, 1, v1::AttemptReport::READY);
    WaitFor(id, v1::JobStatus::STARTING);
    agent.Report(id, 1, v1::AttemptReport::RUNNING);
    WaitFor(id, v1::JobStatus::RUNNING);
  }

  // Set before Start() to change them.
  absl::Duration launch_timeout_ = absl::Minutes(15);
  double pause_fraction_ = 0;
  absl::Duration lease_ = absl::Seconds(2);
  const Clock* clock_ = &RealClock::Get();
  testing::TempDir dir_;
  std::unique_ptr<Droverd> droverd_;
  std::shared_ptr<grpc::Channel> channel_;
  // A channel with a node certificate for `node` from droverd's own CA.
  std::shared_ptr<grpc::Channel> NodeChannel(const std::string& node) {
    return testing::NodeChannel(droverd_->address(), droverd_->ca_certificate(),
                                droverd_->cluster_ca(), node);
  }
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

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
  absl::SleepFor(absl::Milliseconds(300));  // droverd has had time to (wrongly) start it
  EXPECT_EQ(Get(id).status().state(), v1::JobStatus::PREPARING);
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

TEST_F(AgentProtocolTest, FollowedLogsArriveLiveAndEndWithTheJob) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit();
  RunOn(agent, id);

  grpc::ClientContext context;
  v1::StreamLogsRequest request;
  request.set_job_id(id);
  request.set_follow(true);
  auto reader = jobs_->StreamLogs(&context, request);
  agent.Log(id, 1, 0, 0, "step 1\n");
  v1::StreamLogsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.data(), "step 1\n");
  agent.Log(id, 1, 0, 7, "step 2\n");
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.data(), "step 2\n");
  EXPECT_EQ(response.offset(), 7);
  agent.Report(id, 1, v1::AttemptReport::ENDED, {Exit(0, 3)});
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.job().status().state(), v1::JobStatus::FAILED);
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_TRUE(reader->Finish().ok());
}

// One message of a log stream, for comparing whole streams: "a1 r0 @0 DATA" for data,
// "next 2 (MESSAGE)" for a move to attempt 2, "end STATE" for the final job.
std::string Describe(const v1::StreamLogsResponse& m) {
  if (m.has_job()) return absl::StrCat("end ", v1::JobStatus::State_Name(m.job().status().state()));
  if (m.has_next_attempt()) {
    return absl::StrCat("next ", m.next_attempt().attempt(), " (",
                        m.next_attempt().previous().message(), ")");
  }
  return absl::StrCat("a", m.attempt(), " r", m.rank(), " @", m.offset(), " ", m.data());
}

TEST_F(AgentProtocolTest, FollowedLogsGoOnIntoTheRetriedAttemptAndCanBeResumedFromAnAttempt) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id;
  {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    request.mutable_spec()->set_max_retries(1);
    v1::SubmitJobResponse response;
    ASSERT_TRUE(jobs_->SubmitJob(&context, request, &response).ok());
    id = response.job().id();
  }
  RunOn(agent, id);

  grpc::ClientContext context;
  v1::StreamLogsRequest request;
  request.set_job_id(id);
  request.set_follow(true);
  auto reader = jobs_->StreamLogs(&context, request);
  std::vector<std::string> got;
  auto read = [&] {
    v1::StreamLogsResponse response;
    EXPECT_TRUE(reader->Read(&response));
    got.push_back(Describe(response));
  };
  agent.Log(id, 1, 0, 0, "attempt 1 step 1\n");
  read();
  // Rank 0 fails; max_retries 1 queues the job again as attempt 2, on the same node.
  agent.Report(id, 1, v1::AttemptReport::ENDED, {Exit(0, 3)});
  read();
  v1::SchedulerMessage assign = agent.Next(v1::SchedulerMessage::kAssign);
  EXPECT_EQ(assign.assign().attempt().epoch(), 2);
  agent.Report(id, 2, v1::AttemptReport::READY);
  WaitFor(id, v1::JobStatus::STARTING);
  agent.Report(id, 2, v1::AttemptReport::RUNNING);
  agent.Log(id, 2, 0, 0, "attempt 2 step 1\n");
  read();
  agent.Log(id, 2, 0, 17, "attempt 2 step 2\n");
  read();
  agent.Report(id, 2, v1::AttemptReport::ENDED, {Exit(0, 0)});
  read();
  v1::StreamLogsResponse response;
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_THAT(got, ::testing::ElementsAre("a1 r0 @0 attempt 1 step 1\n",
                                          "next 2 (rank 0 on n1 exited with code 3)",
                                          "a2 r0 @0 attempt 2 step 1\n",
                                          "a2 r0 @17 attempt 2 step 2\n", "end COMPLETED"));

  // What a client that lost the stream asks for, after the job ended.
  auto follow = [&](int64_t attempt, int64_t from_attempt, grpc::Status* status) {
    grpc::ClientContext again;
    v1::StreamLogsRequest resume;
    resume.set_job_id(id);
    resume.set_follow(true);
    resume.set_attempt(attempt);
    resume.set_from_attempt(from_attempt);
    auto stream = jobs_->StreamLogs(&again, resume);
    std::vector<std::string> all;
    for (v1::StreamLogsResponse r; stream->Read(&r);) all.push_back(Describe(r));
    *status = stream->Finish();
    return all;
  };
  grpc::Status status;
  // From attempt 1: this stream never saw how attempt 1 ended, so the move says less. What
  // is stored comes in one piece per stream.
  EXPECT_THAT(follow(0, 1, &status),
              ::testing::ElementsAre("a1 r0 @0 attempt 1 step 1\n", "next 2 ()",
                                     "a2 r0 @0 attempt 2 step 1\nattempt 2 step 2\n",
                                     "end COMPLETED"));
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(follow(0, 2, &status),
              ::testing::ElementsAre("a2 r0 @0 attempt 2 step 1\nattempt 2 step 2\n",
                                     "end COMPLETED"));
  // One attempt asked for: only that one.
  EXPECT_THAT(follow(1, 0, &status),
              ::testing::ElementsAre("a1 r0 @0 attempt 1 step 1\n", "end COMPLETED"));
  EXPECT_TRUE(status.ok()) << status.error_message();

  for (auto [attempt, from_attempt, message] :
       {std::tuple{0, 3, "from_attempt: job 'j-1' has no attempt 3; it has 2 so far"},
        std::tuple{0, -1, "from_attempt: job 'j-1' has no attempt -1"},
        std::tuple{1, 1, "from_attempt: only for a followed stream of every attempt"},
        std::tuple{3, 0, "attempt: job 'j-1' has no attempt 3; it has 2 so far"}}) {
    EXPECT_THAT(follow(attempt, from_attempt, &status), ::testing::IsEmpty());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(message));
  }
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
  absl::SleepFor(absl::Milliseconds(200));  // a few ticks: nothing may be placed
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

// An AdminService node call on the test's droverd.
using NodeCall = grpc::Status (v1::AdminService::Stub::*)(grpc::ClientContext*,
                                                          const v1::NodeRequest&, v1::Node*);
grpc::Status AdminCall(v1::AdminService::Stub& admin, NodeCall call, const std::string& name,
                       const std::string& reason = "", v1::Node* node = nullptr) {
  grpc::ClientContext context;
  v1::NodeRequest request;
  request.set_name(name);
  request.set_reason(reason);
  v1::Node ignored;
  return (admin.*call)(&context, request, node != nullptr ? node : &ignored);
}

const v1::Node* FindNode(const std::vector<v1::Node>& nodes, const std::string& name) {
  for (const v1::Node& node : nodes) {
    if (node.name() == name) return &node;
  }
  return nullptr;
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
  absl::SleepFor(absl::Milliseconds(300));  // a few ticks: nothing may be placed
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

TEST_F(AgentProtocolTest, SilentNodeGoesDownAndItsJobEndsNodeLost) {
  auto agent = std::make_unique<ScriptedAgent>(NodeChannel("n1"), "n1");
  agent->Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit();
  agent->Next(v1::SchedulerMessage::kAssign);
  agent->Report(id, 1, v1::AttemptReport::READY);
  WaitFor(id, v1::JobStatus::STARTING);
  agent->Report(id, 1, v1::AttemptReport::RUNNING);
  WaitFor(id, v1::JobStatus::RUNNING);
  // No heartbeats from now on: after the 2 s lease the node is DOWN.
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::NODE_LOST);
  EXPECT_EQ(Nodes()[0].state(), v1::Node::DOWN);
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

// Places a 2-node job on n1 and n2 (their assignments in `first` and `second`), then stops
// droverd before any node reported and starts it again: the job is PREPARING in the store.
// The agents are gone; the test brings them back with what they hold.
std::string AgentProtocolTest::PlaceTwoNodeJobThenRestart(v1::AssignAttempt* first,
                                                          v1::AssignAttempt* second) {
  std::string id;
  {
    ScriptedAgent a(NodeChannel("n1"), "n1");
    a.Next(v1::SchedulerMessage::kWelcome);
    ScriptedAgent b(NodeChannel("n2"), "n2");
    b.Next(v1::SchedulerMessage::kWelcome);
    id = Submit(1, "", /*node_count=*/2);
    *first = a.Next(v1::SchedulerMessage::kAssign).assign();
    *second = b.Next(v1::SchedulerMessage::kAssign).assign();
    droverd_->Shutdown();
    droverd_.reset();
  }
  Start();
  return id;
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
    absl::SleepFor(absl::Milliseconds(200));
    EXPECT_EQ(Get(id).status().state(), v1::JobStatus::FINALIZING);
  }
  // The job's end too.
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(job.status().exits_size(), 1);
  EXPECT_FALSE(Submit().empty());
}

// Lost nodes on a fake clock: a 10 s lease, node-loss handling paused beyond half the nodes.
class NodeLossTest : public AgentProtocolTest {
 protected:
  void SetUp() override {
    lease_ = absl::Seconds(10);
    pause_fraction_ = 0.5;
    clock_ = &clock_value_;
    Start();
  }
  // droverd reads the clock until it stops: it goes before the clock (a member of this
  // class, destroyed before the base's).
  void TearDown() override { droverd_.reset(); }

  // Moves the clock by `by` in 2 s steps; after each, `alive` heartbeat and the test waits
  // until droverd has seen them at the new time (so only the others are silent).
  void Advance(absl::Duration by, const std::vector<ScriptedAgent*>& alive) {
    for (absl::Duration done; done < by; done += absl::Seconds(2)) {
      clock_value_.Advance(std::min(absl::Seconds(2), by - done));
      for (ScriptedAgent* agent : alive) agent->Heartbeat();
      const int64_t now = absl::ToUnixSeconds(clock_value_.Now());
      absl::Time deadline = absl::Now() + absl::Seconds(10);
      auto seen = [&] {
        size_t fresh = 0;
        for (const v1::Node& node : Nodes()) fresh += node.last_seen_time().seconds() == now;
        return fresh >= alive.size();
      };
      while (!seen() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    }
  }

  v1::ListNodesResponse ListNodes() {
    grpc::ClientContext context;
    v1::ListNodesResponse response;
    EXPECT_TRUE(admin_->ListNodes(&context, v1::ListNodesRequest(), &response).ok());
    return response;
  }

  // Polls ListNodes until `done` holds (the core checks leases every tick).
  v1::ListNodesResponse WaitForNodes(
      const std::function<bool(const v1::ListNodesResponse&)>& done) {
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    v1::ListNodesResponse nodes = ListNodes();
    while (!done(nodes) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
      nodes = ListNodes();
    }
    EXPECT_TRUE(done(nodes)) << nodes.DebugString();
    return nodes;
  }

  // An AdminService node call (CordonNode, DeclareNodeLost...) on node `name`.
  using NodeCall = grpc::Status (v1::AdminService::Stub::*)(grpc::ClientContext*,
                                                            const v1::NodeRequest&, v1::Node*);
  grpc::Status Admin(NodeCall call, const std::string& name, const std::string& reason = "",
                     v1::Node* node = nullptr) {
    grpc::ClientContext context;
    v1::NodeRequest request;
    request.set_name(name);
    request.set_reason(reason);
    v1::Node ignored;
    return ((*admin_).*call)(&context, request, node != nullptr ? node : &ignored);
  }

  static v1::Node::State StateOf(const v1::ListNodesResponse& nodes, const std::string& name) {
    for (const v1::Node& node : nodes.nodes()) {
      if (node.name() == name) return node.state();
    }
    return v1::Node::STATE_UNSPECIFIED;
  }

  // A job taking a whole 4-cpu node, assigned to `agent` and RUNNING there.
  std::string RunOn(ScriptedAgent& agent, int max_retries = 0) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    request.mutable_spec()->mutable_resources()->set_cpus(4);
    request.mutable_spec()->set_max_retries(max_retries);
    v1::SubmitJobResponse response;
    EXPECT_TRUE(jobs_->SubmitJob(&context, request, &response).ok());
    const std::string id = response.job().id();
    EXPECT_EQ(agent.Next(v1::SchedulerMessage::kAssign).assign().attempt().job_id(), id);
    agent.Report(id, 1, v1::AttemptReport::READY);
    WaitFor(id, v1::JobStatus::STARTING);
    agent.Report(id, 1, v1::AttemptReport::RUNNING);
    WaitFor(id, v1::JobStatus::RUNNING);
    return id;
  }

  testing::FakeClock clock_value_;
};

TEST_F(NodeLossTest, MostNodesSilentAtOnceKeepTheirJobsUntilEnoughAreBack) {
  ScriptedAgent n1(NodeChannel("n1"), "n1"), n2(NodeChannel("n2"), "n2"), n3(NodeChannel("n3"), "n3");
  for (ScriptedAgent* agent : {&n1, &n2, &n3}) agent->Next(v1::SchedulerMessage::kWelcome);
  std::string j1 = RunOn(n1), j2 = RunOn(n2), j3 = RunOn(n3);

  // n2 and n3 fall silent together, for many leases.
  Advance(absl::Seconds(11), {&n1});
  v1::ListNodesResponse nodes = WaitForNodes([](const v1::ListNodesResponse& r) {
    return r.node_loss().paused();
  });
  EXPECT_EQ(StateOf(nodes, "n2"), v1::Node::DOWN);
  EXPECT_EQ(StateOf(nodes, "n3"), v1::Node::DOWN);
  EXPECT_EQ(nodes.node_loss().silent_nodes(), 2);
  EXPECT_EQ(nodes.node_loss().counted_nodes(), 3);
  EXPECT_THAT(nodes.node_loss().waiting_nodes(), ::testing::ElementsAre("n2", "n3"));
  EXPECT_EQ(nodes.node_loss().pause_fraction(), 0.5);
  Advance(absl::Seconds(60), {&n1});
  for (const std::string& id : {j2, j3}) {
    v1::Job job = Get(id);
    EXPECT_EQ(job.status().state(), v1::JobStatus::RUNNING) << id;
    EXPECT_EQ(job.status().attempt(), 1) << id;
  }

  // n2 speaks again on its stream: it is back, the pause ends, and n3, still silent, is a
  // lost node like any other.
  n2.Heartbeat();
  nodes = WaitForNodes([](const v1::ListNodesResponse& r) { return !r.node_loss().paused(); });
  EXPECT_EQ(StateOf(nodes, "n2"), v1::Node::READY);
  v1::Job lost = WaitFor(j3, v1::JobStatus::FAILED);
  EXPECT_EQ(lost.status().cause(), v1::JobStatus::NODE_LOST);
  EXPECT_EQ(lost.status().message(), "node n3 stopped answering (no message for 10s)");
  EXPECT_EQ(Get(j2).status().state(), v1::JobStatus::RUNNING);
  n2.Report(j2, 1, v1::AttemptReport::ENDED, {Exit(0, 0)});
  EXPECT_EQ(WaitFor(j2, v1::JobStatus::COMPLETED).status().attempt(), 1);
  EXPECT_EQ(Get(j1).status().state(), v1::JobStatus::RUNNING);
}

TEST_F(NodeLossTest, DeclaringANodeLostEndsItsJobsAtOnceAndKeepsThePause) {
  ScriptedAgent n1(NodeChannel("n1"), "n1"), n2(NodeChannel("n2"), "n2"), n3(NodeChannel("n3"), "n3");
  for (ScriptedAgent* agent : {&n1, &n2, &n3}) agent->Next(v1::SchedulerMessage::kWelcome);
  RunOn(n1);
  std::string j2 = RunOn(n2), j3 = RunOn(n3);
  Advance(absl::Seconds(11), {&n1});
  WaitForNodes([](const v1::ListNodesResponse& r) { return r.node_loss().paused(); });

  v1::Node node;
  ASSERT_TRUE(Admin(&v1::AdminService::Stub::DeclareNodeLost, "n3", "power supply", &node).ok());
  EXPECT_EQ(node.state(), v1::Node::DOWN);
  EXPECT_EQ(node.reason(), "DECLARED_LOST power supply");
  v1::Job lost = WaitFor(j3, v1::JobStatus::FAILED);
  EXPECT_EQ(lost.status().cause(), v1::JobStatus::NODE_LOST);
  EXPECT_EQ(lost.status().message(),
            "node n3 was declared lost by an administrator: power supply");
  Advance(absl::Seconds(4), {&n1});
  v1::ListNodesResponse nodes = ListNodes();
  EXPECT_TRUE(nodes.node_loss().paused()) << "n2's loss still waits";
  EXPECT_THAT(nodes.node_loss().waiting_nodes(), ::testing::ElementsAre("n2"));
  EXPECT_EQ(Get(j2).status().state(), v1::JobStatus::RUNNING);

  EXPECT_EQ(Admin(&v1::AdminService::Stub::DeclareNodeLost, "n9").error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(NodeLossTest, LostNodeIsToldToSayHelloAgainAndThenStopsItsStaleAttempt) {
  ScriptedAgent n2(NodeChannel("n2"), "n2");
  n2.Next(v1::SchedulerMessage::kWelcome);
  ASSERT_TRUE(Admin(&v1::AdminService::Stub::CordonNode, "n2").ok());
  auto n1 = std::make_unique<ScriptedAgent>(NodeChannel("n1"), "n1");
  n1->Next(v1::SchedulerMessage::kWelcome);
  std::string id = RunOn(*n1, /*max_retries=*/1);
  n1->Log(id, 1, 0, 0, "before\n");
  EXPECT_EQ(n1->Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 7);
  ASSERT_TRUE(Admin(&v1::AdminService::Stub::UncordonNode, "n2").ok());

  // Two nodes are too few to pause: n1's loss is handled, the job retried on n2.
  Advance(absl::Seconds(11), {&n2});
  v1::SchedulerMessage assign = n2.Next(v1::SchedulerMessage::kAssign);
  EXPECT_EQ(assign.assign().attempt().job_id(), id);
  EXPECT_EQ(assign.assign().attempt().epoch(), 2);

  // n1 was only cut off: its next heartbeat on the old stream ends that stream...
  n1->Heartbeat();
  grpc::Status ended = n1->WaitForEnd();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(ended.error_message(), HasSubstr("node n1 was lost"));
  // ... and when it says hello again with the attempt it still runs, it is told to stop
  // it. What the stale attempt sends is acknowledged but never stored.
  v1::AttemptReport held;
  held.mutable_attempt()->set_job_id(id);
  held.mutable_attempt()->set_epoch(1);
  held.set_phase(v1::AttemptReport::RUNNING);
  n1 = std::make_unique<ScriptedAgent>(NodeChannel("n1"), "n1", 4, std::vector<v1::AttemptReport>{held});
  v1::SchedulerMessage stop = n1->Next(v1::SchedulerMessage::kStop);
  EXPECT_EQ(stop.stop().attempt().job_id(), id);
  EXPECT_EQ(stop.stop().attempt().epoch(), 1);
  n1->Log(id, 1, 0, 7, "after the partition\n");
  EXPECT_EQ(n1->Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 27);
  n1->Log(id, 2, 0, 0, "not my attempt\n");
  EXPECT_EQ(n1->Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 15);
  n1->Log("j-404", 1, 0, 0, "no such job\n");
  EXPECT_EQ(n1->Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 12);
  const std::string record = R"({"name":"loss","value":0.5,"step":1})" "\n";
  n1->Log(id, 1, 0, 0, record, v1::METRICS);
  EXPECT_EQ(n1->Next(v1::SchedulerMessage::kLogAck).log_ack().offset(),
            static_cast<int64_t>(record.size()));
  n1->Report(id, 1, v1::AttemptReport::ENDED, {Exit(0, 0)});

  n2.Report(id, 2, v1::AttemptReport::READY);
  n2.Report(id, 2, v1::AttemptReport::RUNNING);
  n2.Log(id, 2, 0, 0, "attempt 2\n");
  EXPECT_EQ(n2.Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 10);
  n2.Report(id, 2, v1::AttemptReport::ENDED, {Exit(0, 0)});
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(job.status().attempt(), 2);
  EXPECT_EQ(Logs(id, false), "attempt 2\n");
  EXPECT_EQ(Logs(id, false, nullptr, /*attempt=*/1), "before\n");
  grpc::ClientContext context;
  v1::GetMetricsRequest request;
  request.set_job_id(id);
  request.set_attempt(1);
  v1::GetMetricsResponse metrics;
  ASSERT_TRUE(jobs_->GetMetrics(&context, request, &metrics).ok());
  EXPECT_EQ(metrics.series_size(), 0) << "the stale attempt's metrics were not stored";
}

TEST_F(NodeLossTest, RestoredAttemptWhoseNodeNeverComesBackEndsOneLeaseAfterTheRestart) {
  std::string id;
  {
    ScriptedAgent n1(NodeChannel("n1"), "n1");
    n1.Next(v1::SchedulerMessage::kWelcome);
    id = RunOn(n1);
    droverd_->Shutdown();
    droverd_.reset();
  }
  Start();  // n1's agent is gone for good
  EXPECT_TRUE(Nodes().empty()) << "a node is listed once its agent says hello";
  Advance(absl::Seconds(8), {});
  EXPECT_EQ(Get(id).status().state(), v1::JobStatus::RUNNING);
  Advance(absl::Seconds(4), {});
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::NODE_LOST);
  EXPECT_EQ(job.status().message(), "node n1 stopped answering (no message for 10s)");
}

TEST_F(NodeLossTest, APauseAndANodeGivenUpDuringItSurviveARestart) {
  std::string j1, j2, j3, j4;
  v1::ListNodesResponse before;
  {
    ScriptedAgent n1(NodeChannel("n1"), "n1"), n2(NodeChannel("n2"), "n2"), n3(NodeChannel("n3"), "n3"), n4(NodeChannel("n4"), "n4");
    for (ScriptedAgent* agent : {&n1, &n2, &n3, &n4}) agent->Next(v1::SchedulerMessage::kWelcome);
    j1 = RunOn(n1), j2 = RunOn(n2), j3 = RunOn(n3), j4 = RunOn(n4);
    Advance(absl::Seconds(11), {&n1});
    WaitForNodes([](const v1::ListNodesResponse& r) { return r.node_loss().paused(); });
    ASSERT_TRUE(Admin(&v1::AdminService::Stub::DeclareNodeLost, "n4", "power supply").ok());
    EXPECT_EQ(WaitFor(j4, v1::JobStatus::FAILED).status().cause(), v1::JobStatus::NODE_LOST);
    Advance(absl::Seconds(2), {&n1});
    before = ListNodes();
    ASSERT_TRUE(before.node_loss().paused());
    droverd_->Shutdown();
    droverd_.reset();
  }
  Start();
  // Before any agent is back: paused since the same time, counting the same nodes.
  v1::ListNodesResponse after = ListNodes();
  EXPECT_TRUE(after.node_loss().paused());
  EXPECT_EQ(after.node_loss().paused_since().seconds(),
            before.node_loss().paused_since().seconds());
  EXPECT_EQ(after.node_loss().silent_nodes(), 3);
  EXPECT_EQ(after.node_loss().counted_nodes(), 4);
  EXPECT_THAT(after.node_loss().waiting_nodes(), ::testing::ElementsAre("n2", "n3"));
  for (const char* name : {"n2", "n3", "n4"}) {
    EXPECT_EQ(StateOf(after, name), v1::Node::DOWN) << name;
  }
  for (const v1::Node& node : after.nodes()) {
    if (node.name() == "n4") {
      EXPECT_EQ(node.reason(), "DECLARED_LOST power supply");
    } else if (node.name() == "n2") {
      EXPECT_THAT(node.reason(), HasSubstr("MISSED_LEASE"));
    }
  }

  auto held = [](const std::string& id) {
    v1::AttemptReport report;
    report.mutable_attempt()->set_job_id(id);
    report.mutable_attempt()->set_epoch(1);
    report.set_phase(v1::AttemptReport::RUNNING);
    return std::vector<v1::AttemptReport>{report};
  };
  ScriptedAgent n1(NodeChannel("n1"), "n1", 4, held(j1));
  n1.Next(v1::SchedulerMessage::kWelcome);
  Advance(absl::Seconds(30), {&n1});
  v1::ListNodesResponse later = ListNodes();
  EXPECT_TRUE(later.node_loss().paused());
  EXPECT_THAT(later.node_loss().waiting_nodes(), ::testing::ElementsAre("n2", "n3"));
  for (const std::string& id : {j2, j3}) {
    v1::Job job = Get(id);
    EXPECT_EQ(job.status().state(), v1::JobStatus::RUNNING) << id;
    EXPECT_EQ(job.status().attempt(), 1) << id;
  }

  // n2 comes back: 2 of 4 silent is not more than half, so the pause ends and n3 is lost.
  ScriptedAgent n2(NodeChannel("n2"), "n2", 4, held(j2));
  n2.Next(v1::SchedulerMessage::kWelcome);
  WaitForNodes([](const v1::ListNodesResponse& r) { return !r.node_loss().paused(); });
  v1::Job lost = WaitFor(j3, v1::JobStatus::FAILED);
  EXPECT_EQ(lost.status().cause(), v1::JobStatus::NODE_LOST);
  EXPECT_EQ(Get(j2).status().state(), v1::JobStatus::RUNNING);
  // ... and stays ended across the next restart.
  droverd_->Shutdown();
  droverd_.reset();
  Start();
  EXPECT_FALSE(ListNodes().node_loss().paused());
}

TEST(NodeLeaseOptionsTest, BadValuesNameTheFlagAndTheFix) {
  CoreOptions options;
  EXPECT_TRUE(CheckNodeLeaseOptions(options).ok());
  options.lease = absl::Seconds(5);
  absl::Status short_lease = CheckNodeLeaseOptions(options);
  EXPECT_EQ(short_lease.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(short_lease.message()),
            "--node-lease: 5s is less than 3 heartbeat intervals (--heartbeat-interval 2s), so a "
            "node would be lost for a few late heartbeats; give a lease of at least 6s or a "
            "shorter heartbeat interval");
  options.lease = absl::Seconds(6);
  EXPECT_TRUE(CheckNodeLeaseOptions(options).ok());
  options.heartbeat_interval = absl::ZeroDuration();
  EXPECT_THAT(std::string(CheckNodeLeaseOptions(options).message()),
              HasSubstr("--heartbeat-interval: 0 must be positive"));
  options.heartbeat_interval = absl::Seconds(1);
  for (double bad : {-0.1, 1.0, 2.0}) {
    options.node_loss_pause_fraction = bad;
    EXPECT_THAT(std::string(CheckNodeLeaseOptions(options).message()),
                HasSubstr("--node-loss-pause-fraction")) << bad;
  }
  options.node_loss_pause_fraction = 0;
  EXPECT_TRUE(CheckNodeLeaseOptions(options).ok());
}

}  // namespace
}  // namespace drover::server
