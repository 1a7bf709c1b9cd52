// droverd's agent protocol when nodes fall silent: leases, NODE_LOST, the pause when many
// nodes are silent at once, and the checks of the lease flags.
#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tests/server/agent_protocol_fixture.h"
#include "tests/testing/fake_clock.h"

namespace drover::server::agent_protocol {
namespace {

using ::testing::HasSubstr;

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

  // n2 speaks again on its stream: it is back and the pause ends. n3, still silent, gets
  // one more lease from then, and is a lost node like any other when it runs out.
  n2.Heartbeat();
  nodes = WaitForNodes([](const v1::ListNodesResponse& r) { return !r.node_loss().paused(); });
  EXPECT_EQ(StateOf(nodes, "n2"), v1::Node::READY);
  EXPECT_THAT(nodes.node_loss().waiting_nodes(), ::testing::ElementsAre("n3"));
  EXPECT_EQ(Get(j3).status().state(), v1::JobStatus::RUNNING);
  Advance(absl::Seconds(11), {&n1, &n2});
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

  // n2 comes back: 2 of 4 silent is not more than half, so the pause ends, and n3 is lost
  // when the lease it got then runs out.
  ScriptedAgent n2(NodeChannel("n2"), "n2", 4, held(j2));
  n2.Next(v1::SchedulerMessage::kWelcome);
  WaitForNodes([](const v1::ListNodesResponse& r) { return !r.node_loss().paused(); });
  EXPECT_EQ(Get(j3).status().state(), v1::JobStatus::RUNNING);
  Advance(absl::Seconds(11), {&n1, &n2});
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
}  // namespace drover::server::agent_protocol
