// Lost nodes end to end, when many go at once and across droverd restarts: node-loss
// handling paused while most nodes are silent and resumed, an administrator giving up one
// node during a pause, cordon and drain and the pause surviving a droverd kill, an attempt
// whose node never returns after a restart retried. The fixture is node_loss_fixture.h.
// Root only.
#include "tests/e2e/node_loss_fixture.h"

namespace drover {
namespace {

TEST_F(NodeLossE2eTest, WhenMostNodesGoSilentTheirJobsAreKeptUntilTheyAreBack) {
  // One job per node, long enough to outlast the pause.
  const int kLines = 80;
  std::vector<int> host_of;
  std::vector<std::string> ids = OneJobPerNode({kLines, kLines, kLines}, &host_of);
  // The agents of two nodes stop answering at once (their containers run on).
  Stopped first(agents_[host_of[1]].get());
  Stopped second(agents_[host_of[2]].get());
  WaitForPause();
  v1::ListNodesResponse nodes = Nodes();
  EXPECT_EQ(nodes.node_loss().silent_nodes(), 2);
  EXPECT_EQ(nodes.node_loss().counted_nodes(), 3);
  // Handling pauses when one stopped node's lease has run out and the other is silent;
  // which one goes DOWN first depends on when each last sent a heartbeat.
  Eventually([&] { return NodeState(host_of[1]) == v1::Node::DOWN &&
                          NodeState(host_of[2]) == v1::Node::DOWN; },
             kLease, "both stopped nodes are DOWN");
  EXPECT_THAT(droverd_->ReadLog(), HasSubstr("event=node_loss_paused silent=2 nodes=3"));
  EXPECT_THAT(Metrics(), HasSubstr("\ndrover_node_loss_paused 1\n"));
  // Two more leases: the pause holds and nothing is requeued meanwhile.
  ExpectKeptWhilePaused({ids[1], ids[2]});
  if (HasFatalFailure()) return;

  first.Resume();
  second.Resume();
  Eventually([&] { return !Nodes().node_loss().paused(); }, absl::Seconds(20),
             "node-loss handling resumes");
  EXPECT_THAT(Metrics(), HasSubstr("\ndrover_node_loss_paused 0\n"));
  for (int j = 0; j < 3; ++j) {
    v1::Job job = WaitFor(ids[j], v1::JobStatus::COMPLETED, 1);
    ASSERT_EQ(job.status().exits_size(), 1);
    EXPECT_EQ(job.status().exits(0).exit_code(), 0);
    EXPECT_EQ(Logs(ids[j], 0), CountingOutput(kLines, 1)) << ids[j];
    ExpectValidHistory(ids[j]);
    EXPECT_THAT(history_->RunningAttempts(ids[j]), ElementsAre(1));
  }
  EXPECT_THAT(droverd_->ReadLog(), Not(HasSubstr("event=job_retried")));
}

TEST_F(NodeLossE2eTest, DuringAPauseAnAdministratorGivesUpOneNodeAndTheOtherComesBack) {
  // The first job frees its node early.
  std::vector<int> host_of;
  std::vector<std::string> ids = OneJobPerNode({10, 60, 60}, &host_of);
  Stopped kept(agents_[host_of[1]].get());
  Stopped given_up(agents_[host_of[2]].get());
  WaitForPause();

  EXPECT_THAT(Drover({"nodes"}).out, HasSubstr("node-loss handling PAUSED"));
  testing::CommandResult declared =
      Drover({"node", "lost", hosts_->name(host_of[2]), "--reason", "disk controller"});
  EXPECT_EQ(declared.exit_code, 0) << declared.err;
  EXPECT_EQ(declared.out, absl::StrCat(hosts_->name(host_of[2]), " DOWN\n"));
  // Its job starts again elsewhere (on the first job's node once that is done); the other
  // silent node's job is kept.
  v1::Job moved = WaitFor(ids[2], v1::JobStatus::RUNNING, 2);
  EXPECT_EQ(moved.status().nodes(0), hosts_->name(host_of[0]));
  EXPECT_EQ(Get(ids[1]).status().attempt(), 1);
  EXPECT_EQ(Get(ids[1]).status().state(), v1::JobStatus::RUNNING);

  kept.Resume();
  v1::Job back = WaitFor(ids[1], v1::JobStatus::COMPLETED, 1);
  EXPECT_EQ(Logs(ids[1], 0), CountingOutput(60, 1));
  given_up.Resume();
  Eventually([&] { return !HasContainer(host_of[2], ids[2], 1); }, absl::Seconds(30),
             "the given-up node stops its stale attempt once back");
  WaitFor(ids[2], v1::JobStatus::COMPLETED, 2);
  EXPECT_EQ(Logs(ids[2], 0), CountingOutput(60, 2));
  for (const std::string& id : ids) ExpectValidHistory(id);
}

TEST_F(NodeLossE2eTest, CordonedAndDrainingNodesStaySoAcrossADroverdKill) {
  StartCluster(3);
  // Host 1 runs a long job and is drained; host 0 is cordoned; host 2 is free.
  NodeAdmin(0, /*cordon=*/true);
  NodeAdmin(2, /*cordon=*/true);
  const int kLines = 60;
  std::string running = Submit(Counting(kLines, /*max_retries=*/0, /*cpus=*/2));
  EXPECT_EQ(WaitFor(running, v1::JobStatus::RUNNING, 1).status().nodes(0), hosts_->name(1));
  NodeAdmin(2, /*cordon=*/false);
  testing::CommandResult drained =
      Drover({"node", "drain", hosts_->name(1), "--reason", "kernel update"});
  EXPECT_EQ(drained.out, absl::StrCat(hosts_->name(1), " DRAINING\n")) << drained.err;

  KillAndRestartDroverd();
  // Submitted before any agent is back: whichever says hello first, only host 2 takes them.
  std::string first = Submit(Counting(4, /*max_retries=*/0, /*cpus=*/2));
  std::string second = Submit(Counting(4, /*max_retries=*/0, /*cpus=*/2));
  Eventually([&] { return Nodes().nodes_size() == 3; }, absl::Seconds(30),
             "every agent says hello to the restarted droverd");
  EXPECT_EQ(NodeState(0), v1::Node::CORDONED);
  EXPECT_EQ(NodeState(1), v1::Node::DRAINING);
  EXPECT_EQ(NodeState(2), v1::Node::READY);
  std::string listed = Drover({"nodes"}).out;
  EXPECT_THAT(listed, HasSubstr("CORDONED"));
  EXPECT_THAT(listed, HasSubstr("DRAINING"));
  for (const std::string& id : {first, second}) {
    v1::Job done = WaitFor(id, v1::JobStatus::COMPLETED, 1);
    EXPECT_EQ(done.status().nodes(0), hosts_->name(2)) << id;
  }
  // The drained node's job ran on undisturbed; then the node is CORDONED, and stays so.
  WaitFor(running, v1::JobStatus::COMPLETED, 1);
  EXPECT_EQ(Logs(running, 0), CountingOutput(kLines, 1));
  Eventually([&] { return NodeState(1) == v1::Node::CORDONED; }, absl::Seconds(10),
             "the drained node becomes CORDONED");
  EXPECT_EQ(NodeState(0), v1::Node::CORDONED);
  for (const std::string& id : {running, first, second}) ExpectValidHistory(id);
}

TEST_F(NodeLossE2eTest, APauseOfNodeLossHandlingSurvivesADroverdKill) {
  const int kLines = 80;
  std::vector<int> host_of;
  std::vector<std::string> ids = OneJobPerNode({kLines, kLines, kLines}, &host_of);
  Stopped first(agents_[host_of[1]].get());
  Stopped second(agents_[host_of[2]].get());
  WaitForPause();
  v1::ListNodesResponse before = Nodes();
  // The pause is answered as soon as droverd decides it and stored just after: what must
  // survive the kill is the stored pause.
  Eventually([&] { return absl::StrContains(droverd_->ReadLog(),
                                            "event=node_loss_pause_stored paused=true"); },
             absl::Seconds(10), "droverd stores the pause");

  KillAndRestartDroverd();
  v1::ListNodesResponse after = FirstNodes();
  EXPECT_TRUE(after.node_loss().paused()) << after.DebugString();
  EXPECT_EQ(after.node_loss().paused_since().seconds(),
            before.node_loss().paused_since().seconds());
  EXPECT_EQ(after.node_loss().counted_nodes(), 3);
  EXPECT_EQ(after.node_loss().silent_nodes(), 2);
  // Handling pauses when one stopped node's lease has run out and the other is silent;
  // which one goes DOWN first depends on when each last sent a heartbeat.
  Eventually([&] { return NodeState(host_of[1]) == v1::Node::DOWN &&
                          NodeState(host_of[2]) == v1::Node::DOWN; },
             kLease, "both stopped nodes are DOWN");
  EXPECT_THAT(droverd_->ReadLog(), HasSubstr("event=node_loss_pause_restored"));
  EXPECT_THAT(Drover({"nodes"}).out, HasSubstr("node-loss handling PAUSED"));
  // Two more leases: the pause holds and nothing is requeued meanwhile.
  ExpectKeptWhilePaused({ids[1], ids[2]});
  if (HasFatalFailure()) return;

  first.Resume();
  second.Resume();
  Eventually([&] { return !Nodes().node_loss().paused(); }, absl::Seconds(30),
             "node-loss handling resumes");
  for (int j = 0; j < 3; ++j) {
    WaitFor(ids[j], v1::JobStatus::COMPLETED, 1);
    EXPECT_EQ(Logs(ids[j], 0), CountingOutput(kLines, 1)) << ids[j];
    ExpectValidHistory(ids[j]);
    EXPECT_THAT(history_->RunningAttempts(ids[j]), ElementsAre(1));
  }
  EXPECT_THAT(droverd_->ReadLog(), Not(HasSubstr("event=job_retried")));
}

TEST_F(NodeLossE2eTest, AttemptOfANodeThatNeverReturnsAfterADroverdRestartIsRetried) {
  auto [retried, single] = TwoJobsOnHost0(40);

  StopDroverd(SIGKILL);
  KillAgent(0);  // host 0 is gone for good; its containers stay behind
  agents_[0].reset();
  StartDroverd();
  absl::Duration lost_after = WaitForNodeLost(single, 0);
  EXPECT_GE(lost_after, kLease - absl::Seconds(1)) << "a node gets a lease to come back";
  std::cout << "restored attempt lost " << lost_after << " after the restart (lease " << kLease
            << ")\n";
  v1::Job done = WaitFor(retried, v1::JobStatus::COMPLETED, 2);
  EXPECT_EQ(done.status().exits(0).node(), hosts_->name(1));
  EXPECT_EQ(Logs(retried, 0), CountingOutput(40, 2));

  // When host 0's agent does come back, nothing of the old attempts runs on.
  StartAgent(0);
  Eventually([&] { return Containers(0).empty(); }, absl::Seconds(30),
             "host 0 removes the stale containers");
  for (const std::string& id : {retried, single}) ExpectValidHistory(id);
}

}  // namespace
}  // namespace drover
