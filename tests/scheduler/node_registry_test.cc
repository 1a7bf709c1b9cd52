// Leases of the node registry: silent nodes become DOWN and their loss is handled once;
// nodes expected after a restart are lost one lease later if they never come back; when
// most nodes vanish at once, handling pauses until enough come back. Time is an argument,
// so every test drives the clock by hand.
#include "scheduler/node_registry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);
const absl::Duration kLease = absl::Seconds(10);
constexpr double kHalf = 0.5;

absl::Time At(double seconds) { return kT0 + absl::Seconds(seconds); }

v1::NodeInfo Node(const std::string& name) {
  v1::NodeInfo info;
  info.set_name(name);
  info.mutable_capacity()->set_cpus(4);
  info.mutable_capacity()->set_memory_mib(8192);
  return info;
}

// `names` registered at kT0.
NodeRegistry Cluster(const std::vector<std::string>& names) {
  NodeRegistry nodes;
  for (const std::string& name : names) EXPECT_TRUE(nodes.Register(Node(name), kT0).ok());
  return nodes;
}

TEST(NodeLeaseTest, SilentNodeIsLostOnceAndBackOnlyWithAHello) {
  NodeRegistry nodes = Cluster({"n1", "n2", "n3"});
  nodes.Seen("n1", At(9));
  nodes.Seen("n2", At(9));
  LeaseCheck check = nodes.CheckLeases(At(10.5), kLease, kHalf);
  EXPECT_THAT(check.down, ElementsAre("n3"));
  EXPECT_THAT(check.lost, ElementsAre("n3"));
  EXPECT_FALSE(check.paused);
  EXPECT_EQ(nodes.Find("n3")->state(), v1::Node::DOWN);
  EXPECT_THAT(nodes.Find("n3")->reason(), HasSubstr("MISSED_LEASE"));
  EXPECT_FALSE(nodes.TakesWork("n3"));

  // Handled once; a message on its old stream changes nothing (its attempts were ended).
  nodes.Seen("n1", At(11));
  nodes.Seen("n2", At(11));
  EXPECT_THAT(nodes.CheckLeases(At(11), kLease, kHalf).lost, IsEmpty());
  EXPECT_FALSE(nodes.Seen("n3", At(12)));
  EXPECT_EQ(nodes.Find("n3")->state(), v1::Node::DOWN);
  ASSERT_TRUE(nodes.Register(Node("n3"), At(13)).ok());
  EXPECT_TRUE(nodes.TakesWork("n3"));
  EXPECT_TRUE(nodes.Seen("n3", At(14)));
}

TEST(NodeLeaseTest, ExpectedNodeIsHiddenAndLostOneLeaseAfterTheRestartUnlessItSaysHello) {
  NodeRegistry nodes;
  nodes.Expect("n1", kT0);
  nodes.Expect("n2", kT0);
  EXPECT_EQ(nodes.Find("n1"), nullptr);
  EXPECT_THAT(nodes.List(), IsEmpty());
  EXPECT_FALSE(nodes.TakesWork("n1"));
  EXPECT_FALSE(nodes.Cordon("n1", "").ok());
  EXPECT_THAT(nodes.CheckLeases(At(9), kLease, kHalf).lost, IsEmpty());

  ASSERT_TRUE(nodes.Register(Node("n2"), At(5)).ok());
  EXPECT_EQ(nodes.Find("n2")->state(), v1::Node::READY);
  EXPECT_TRUE(nodes.Find("n2")->has_register_time());

  LeaseCheck check = nodes.CheckLeases(At(11), kLease, kHalf);
  EXPECT_THAT(check.lost, ElementsAre("n1"));
  EXPECT_THAT(nodes.List(), ::testing::SizeIs(1)) << "n1 never registered: still not listed";
  // When it does come back, it is a node like any other.
  ASSERT_TRUE(nodes.Register(Node("n1"), At(20)).ok());
  EXPECT_TRUE(nodes.TakesWork("n1"));
}

TEST(NodeLeaseTest, MostNodesSilentAtOncePauseLossHandlingUntilEnoughComeBack) {
  NodeRegistry nodes = Cluster({"n1", "n2", "n3"});
  nodes.Seen("n1", At(10));
  LeaseCheck check = nodes.CheckLeases(At(10.5), kLease, kHalf);
  EXPECT_TRUE(check.paused);
  EXPECT_THAT(check.down, ElementsAre("n2", "n3"));
  EXPECT_THAT(check.lost, IsEmpty());
  EXPECT_THAT(check.pending, ElementsAre("n2", "n3"));
  EXPECT_EQ(check.silent, 2);
  EXPECT_EQ(check.counted, 3);
  EXPECT_EQ(nodes.loss_paused_since(), At(10.5));
  // DOWN (no new work) while paused, but nothing is handled for as long as it lasts.
  EXPECT_FALSE(nodes.TakesWork("n2"));
  for (double t : {20.0, 60.0, 600.0}) {
    nodes.Seen("n1", At(t));
    check = nodes.CheckLeases(At(t), kLease, kHalf);
    EXPECT_TRUE(check.paused) << t;
    EXPECT_THAT(check.lost, IsEmpty()) << t;
  }
  EXPECT_EQ(nodes.loss_paused_since(), At(10.5));

  // n2 speaks again on its stream: it is simply back, and handling resumes. n3, still
  // silent, gets one more lease from the resume: after an outage nodes come back seconds
  // apart.
  EXPECT_TRUE(nodes.Seen("n2", At(601)));
  EXPECT_EQ(nodes.Find("n2")->state(), v1::Node::READY);
  check = nodes.CheckLeases(At(601), kLease, kHalf);
  EXPECT_FALSE(check.paused);
  EXPECT_THAT(check.lost, IsEmpty());
  EXPECT_THAT(check.pending, ElementsAre("n3"));
  EXPECT_EQ(nodes.loss_paused_since(), absl::InfiniteFuture());
  EXPECT_FALSE(nodes.LossPause().has_value()) << "nothing paused to store";
  EXPECT_FALSE(nodes.TakesWork("n3"));
  nodes.Seen("n1", At(611));
  nodes.Seen("n2", At(611));
  EXPECT_THAT(nodes.CheckLeases(At(611), kLease, kHalf).lost, IsEmpty()) << "the lease runs";
  nodes.Seen("n1", At(611.5));
  nodes.Seen("n2", At(611.5));
  check = nodes.CheckLeases(At(611.5), kLease, kHalf);
  EXPECT_FALSE(check.paused);
  EXPECT_THAT(check.lost, ElementsAre("n3"));
  EXPECT_THAT(check.pending, IsEmpty());
}

TEST(NodeLeaseTest, ANodeSilentWhenThePauseEndsIsBackIfItSpeaksWithinItsNewLease) {
  // A switch comes back: n2's agent speaks, then n3's a moment later. Handling resumed
  // in between must not lose n3.
  NodeRegistry nodes = Cluster({"n1", "n2", "n3"});
  nodes.Seen("n1", At(10));
  ASSERT_TRUE(nodes.CheckLeases(At(10.5), kLease, kHalf).paused);
  nodes.Seen("n1", At(30));
  EXPECT_TRUE(nodes.Seen("n2", At(30)));
  LeaseCheck check = nodes.CheckLeases(At(30), kLease, kHalf);
  EXPECT_FALSE(check.paused);
  EXPECT_THAT(check.lost, IsEmpty());
  ASSERT_TRUE(nodes.Register(Node("n3"), At(30.01)).ok());
  EXPECT_TRUE(nodes.TakesWork("n3"));
  check = nodes.CheckLeases(At(31), kLease, kHalf);
  EXPECT_THAT(check.lost, IsEmpty());
  EXPECT_THAT(check.pending, IsEmpty());
  EXPECT_EQ(check.silent, 0);

  // Only the nodes silent at the resume had their lease renewed: a node that goes silent
  // later is lost one lease after its last message, as always.
  nodes.Seen("n1", At(41.5));
  nodes.Seen("n2", At(41.5));
  check = nodes.CheckLeases(At(41.5), kLease, kHalf);
  EXPECT_THAT(check.lost, ElementsAre("n3"));
}

TEST(NodeLeaseTest, NodesGoingSilentSecondsApartAreOneMassLoss) {
  // A switch fails: the nodes' last heartbeats were spread over a few seconds, so the first
  // lease runs out while the others' are still running, half gone.
  NodeRegistry nodes = Cluster({"n1", "n2", "n3", "n4"});
  nodes.Seen("n3", At(2));
  nodes.Seen("n4", At(2));
  nodes.Seen("n1", At(10));
  LeaseCheck check = nodes.CheckLeases(At(10.5), kLease, kHalf);
  EXPECT_THAT(check.down, ElementsAre("n2"));
  EXPECT_EQ(check.silent, 3);
  EXPECT_TRUE(check.paused);
  EXPECT_THAT(check.lost, IsEmpty());
  nodes.Seen("n1", At(12.5));
  check = nodes.CheckLeases(At(12.5), kLease, kHalf);
  EXPECT_THAT(check.down, ElementsAre("n3", "n4"));
  EXPECT_TRUE(check.paused);
}

TEST(NodeLeaseTest, HalfOfTheNodesIsNotMoreThanHalf) {
  NodeRegistry nodes = Cluster({"n1", "n2", "n3", "n4"});
  nodes.Seen("n1", At(10));
  nodes.Seen("n2", At(10));
  LeaseCheck check = nodes.CheckLeases(At(10.5), kLease, kHalf);
  EXPECT_FALSE(check.paused);
  EXPECT_THAT(check.lost, ElementsAre("n3", "n4"));
}

TEST(NodeLeaseTest, SmallClustersAndAZeroFractionNeverPause) {
  NodeRegistry two = Cluster({"n1", "n2"});
  EXPECT_THAT(two.CheckLeases(At(11), kLease, kHalf).lost, ElementsAre("n1", "n2"));
  NodeRegistry three = Cluster({"n1", "n2", "n3"});
  LeaseCheck check = three.CheckLeases(At(11), kLease, 0);
  EXPECT_FALSE(check.paused);
  EXPECT_THAT(check.lost, ElementsAre("n1", "n2", "n3"));
}

TEST(NodeLeaseTest, EveryNodeSilentPausesToo) {
  // droverd's own network failed, or it was stopped (SIGSTOP) longer than a lease.
  NodeRegistry nodes = Cluster({"n1", "n2", "n3"});
  LeaseCheck check = nodes.CheckLeases(At(30), kLease, kHalf);
  EXPECT_TRUE(check.paused);
  EXPECT_THAT(check.lost, IsEmpty());
  for (const char* name : {"n1", "n2", "n3"}) EXPECT_TRUE(nodes.Seen(name, At(31)));
  check = nodes.CheckLeases(At(31), kLease, kHalf);
  EXPECT_FALSE(check.paused);
  EXPECT_THAT(check.lost, IsEmpty());
  for (const char* name : {"n1", "n2", "n3"}) EXPECT_TRUE(nodes.TakesWork(name)) << name;
}

TEST(NodeLeaseTest, NodesLostEarlierDoNotMakeALaterSingleLossAMassLoss) {
  NodeRegistry nodes = Cluster({"n1", "n2", "n3", "n4"});
  for (const char* name : {"n1", "n2", "n3"}) nodes.Seen(name, At(10));
  EXPECT_THAT(nodes.CheckLeases(At(10.5), kLease, kHalf).lost, ElementsAre("n4"));
  nodes.Seen("n1", At(30));
  nodes.Seen("n2", At(30));
  // n3 is now one of three counted nodes.
  LeaseCheck check = nodes.CheckLeases(At(30.5), kLease, kHalf);
  EXPECT_EQ(check.counted, 3);
  EXPECT_FALSE(check.paused);
  EXPECT_THAT(check.lost, ElementsAre("n3"));
}

TEST(NodeLeaseTest, ExpectedNodesCountTowardsAMassLossAfterARestart) {
  // droverd restarted; two of the three nodes its attempts ran on do not come back.
  NodeRegistry nodes;
  for (const char* name : {"n1", "n2", "n3"}) nodes.Expect(name, kT0);
  ASSERT_TRUE(nodes.Register(Node("n1"), At(1)).ok());
  nodes.Seen("n1", At(10));
  LeaseCheck check = nodes.CheckLeases(At(10.5), kLease, kHalf);
  EXPECT_TRUE(check.paused);
  EXPECT_THAT(check.pending, ElementsAre("n2", "n3"));
  // While nobody is lost, a slow reconnect after the restart pauses nothing.
  NodeRegistry slow;
  for (const char* name : {"n1", "n2", "n3"}) slow.Expect(name, kT0);
  EXPECT_FALSE(slow.CheckLeases(At(9), kLease, kHalf).paused);
}

TEST(NodeLeaseTest, DeclaredLostNodeIsHandledAtOnceAndTheOthersStayPaused) {
  NodeRegistry nodes = Cluster({"n1", "n2", "n3"});
  nodes.Seen("n1", At(10));
  ASSERT_TRUE(nodes.CheckLeases(At(10.5), kLease, kHalf).paused);
  absl::StatusOr<v1::Node> n2 = nodes.DeclareLost("n2", "power supply", At(11));
  ASSERT_TRUE(n2.ok()) << n2.status();
  EXPECT_EQ(n2->state(), v1::Node::DOWN);
  EXPECT_EQ(n2->reason(), "DECLARED_LOST power supply");
  nodes.Seen("n1", At(12));
  LeaseCheck check = nodes.CheckLeases(At(12), kLease, kHalf);
  EXPECT_TRUE(check.paused) << "n2 still counts while the pause it was declared in lasts";
  EXPECT_THAT(check.pending, ElementsAre("n3"));
  EXPECT_THAT(check.lost, IsEmpty());

  // Once n3 is back, the pause ends; n2 stays DOWN until its agent says hello.
  EXPECT_TRUE(nodes.Seen("n3", At(13)));
  EXPECT_FALSE(nodes.CheckLeases(At(13), kLease, kHalf).paused);
  EXPECT_FALSE(nodes.Seen("n2", At(14)));
  EXPECT_EQ(nodes.Find("n2")->state(), v1::Node::DOWN);

  // A node expected after a restart can be declared lost too; an unknown one cannot.
  nodes.Expect("n9", At(14));
  EXPECT_TRUE(nodes.DeclareLost("n9", "", At(14)).ok());
  absl::StatusOr<v1::Node> unknown = nodes.DeclareLost("n7", "", At(14));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("'n7'"));
}

TEST(NodeLeaseTest, CordonIsKeptWhenAPausedNodeComesBack) {
  NodeRegistry nodes = Cluster({"n1", "n2", "n3"});
  ASSERT_TRUE(nodes.Cordon("n2", "disk check").ok());
  nodes.Seen("n1", At(10));
  ASSERT_TRUE(nodes.CheckLeases(At(10.5), kLease, kHalf).paused);
  EXPECT_TRUE(nodes.Seen("n2", At(11)));
  EXPECT_EQ(nodes.Find("n2")->state(), v1::Node::CORDONED);
  EXPECT_THAT(nodes.List(), ::testing::SizeIs(3));
  EXPECT_THAT(nodes.CheckLeases(At(11), kLease, kHalf).pending, ElementsAre("n3"));
  nodes.Seen("n1", At(21.5));
  nodes.Seen("n2", At(21.5));
  EXPECT_THAT(nodes.CheckLeases(At(21.5), kLease, kHalf).lost, ElementsAre("n3"));
  EXPECT_EQ(nodes.Find("n2")->state(), v1::Node::CORDONED);
}

// What survives droverd's restart: the registry is rebuilt from what was stored
// (storage::NodeAdminState, storage::NodeLossPause) before any agent says hello again.
TEST(NodeRestoreTest, RestoredCordonAndDrainHoldFromTheNodesFirstHello) {
  NodeRegistry nodes;
  nodes.RestoreAdmin({.node = "n1", .reason = "disk check"});
  nodes.RestoreAdmin({.node = "n2", .draining = true, .reason = "reboot"});
  nodes.RestoreAdmin({.node = "n3", .draining = true});
  // n2 runs a restored attempt; n3 runs nothing, so its drain is done.
  nodes.Expect("n2", kT0);
  v1::NodeResources two;
  two.set_cpus(2);
  nodes.Allocate("n2", "j-1", two);
  EXPECT_THAT(nodes.List(), IsEmpty()) << "listed once their agents say hello";
  for (const char* name : {"n1", "n2", "n3", "n4"}) {
    ASSERT_TRUE(nodes.Register(Node(name), At(1)).ok()) << name;
  }
  EXPECT_EQ(nodes.Find("n1")->state(), v1::Node::CORDONED);
  EXPECT_EQ(nodes.Find("n1")->reason(), "CORDONED disk check");
  EXPECT_EQ(nodes.Find("n2")->state(), v1::Node::DRAINING);
  EXPECT_EQ(nodes.Find("n2")->reason(), "DRAINING reboot");
  EXPECT_THAT(nodes.Find("n2")->running_jobs(), ElementsAre("j-1"));
  EXPECT_EQ(nodes.Find("n3")->state(), v1::Node::CORDONED);
  EXPECT_TRUE(nodes.TakesWork("n4"));
  for (const char* name : {"n1", "n2", "n3"}) EXPECT_FALSE(nodes.TakesWork(name)) << name;
  nodes.Release("n2", "j-1");
  EXPECT_EQ(nodes.Find("n2")->state(), v1::Node::CORDONED);
  EXPECT_EQ(nodes.Find("n2")->reason(), "CORDONED reboot");
  ASSERT_TRUE(nodes.Uncordon("n2").ok());
  EXPECT_TRUE(nodes.TakesWork("n2"));
}

TEST(NodeRestoreTest, ARestoredNodeNotBackYetCanBeUncordonedButAnUnknownOneCannot) {
  NodeRegistry nodes;
  nodes.RestoreAdmin({.node = "n1"});
  absl::StatusOr<v1::Node> answer = nodes.Uncordon("n1");
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->state(), v1::Node::DOWN);
  EXPECT_THAT(answer->reason(), HasSubstr("NOT_CONNECTED"));
  ASSERT_TRUE(nodes.Register(Node("n1"), At(1)).ok());
  EXPECT_TRUE(nodes.TakesWork("n1"));
  EXPECT_EQ(nodes.Cordon("n2", "").status().code(), absl::StatusCode::kNotFound);
}

TEST(NodeRestoreTest, ARestoredPauseCountsTheSameNodesAndStaysPausedSinceItBegan) {
  NodeRegistry before = Cluster({"n1", "n2", "n3", "n4"});
  before.Seen("n1", At(10));
  ASSERT_TRUE(before.CheckLeases(At(10.5), kLease, kHalf).paused);
  ASSERT_TRUE(before.DeclareLost("n4", "psu", At(11)).ok());
  before.Seen("n1", At(11));
  LeaseCheck was = before.CheckLeases(At(11), kLease, kHalf);
  ASSERT_TRUE(was.paused);
  std::optional<storage::NodeLossPause> stored = before.LossPause();
  ASSERT_TRUE(stored.has_value());
  EXPECT_EQ(stored->paused_since, At(10.5));
  ASSERT_EQ(stored->nodes.size(), 4u);
  using Role = storage::NodeLossPause::Role;
  EXPECT_EQ(stored->nodes[0].role, Role::kCounted);
  EXPECT_EQ(stored->nodes[1].role, Role::kWaiting);
  EXPECT_EQ(stored->nodes[3].role, Role::kDeclaredLost);

  // droverd restarts at 12 s; only n1's agent says hello again.
  NodeRegistry after;
  after.RestoreLossPause(*stored, At(12));
  EXPECT_THAT(after.List(), ::testing::SizeIs(3)) << "n2, n3 waiting and n4 given up are listed";
  EXPECT_EQ(after.Find("n2")->state(), v1::Node::DOWN);
  EXPECT_THAT(after.Find("n2")->reason(), HasSubstr("MISSED_LEASE"));
  EXPECT_EQ(after.Find("n4")->reason(), "DECLARED_LOST psu");
  EXPECT_EQ(after.Find("n1"), nullptr) << "not back yet";
  LeaseCheck check = after.CheckLeases(At(12), kLease, kHalf);
  EXPECT_TRUE(check.paused);
  EXPECT_EQ(check.counted, was.counted);
  EXPECT_EQ(check.silent, was.silent);
  EXPECT_THAT(check.pending, ElementsAre("n2", "n3"));
  EXPECT_EQ(after.loss_paused_since(), At(10.5));
  ASSERT_TRUE(after.Register(Node("n1"), At(13)).ok());
  EXPECT_TRUE(after.CheckLeases(At(13), kLease, kHalf).paused);

  // A waiting node that comes back is simply back; then the pause ends and n3, given one
  // more lease from then, is lost when it runs out.
  ASSERT_TRUE(after.Register(Node("n2"), At(14)).ok());
  EXPECT_EQ(after.Find("n2")->state(), v1::Node::READY);
  LeaseCheck resumed = after.CheckLeases(At(14), kLease, kHalf);
  EXPECT_FALSE(resumed.paused);
  EXPECT_THAT(resumed.pending, ElementsAre("n3"));
  EXPECT_FALSE(after.LossPause().has_value());
  after.Seen("n1", At(24.5));
  after.Seen("n2", At(24.5));
  EXPECT_THAT(after.CheckLeases(At(24.5), kLease, kHalf).lost, ElementsAre("n3"));
}

TEST(NodeRestoreTest, ANodeSilentButNotDownWhenThePauseWasStoredStaysSilentAfterARestart) {
  // n1 answers; n2 and n3 stop at 0, n3's last message came later (at 4 s): when n2's lease
  // runs out at 10.5 s, n3 is silent (more than half a lease) but not DOWN yet. Two of three
  // silent: handling pauses, with n2 waiting and n3 only silent.
  NodeRegistry before = Cluster({"n1", "n2", "n3"});
  before.Seen("n1", At(10));
  before.Seen("n3", At(4));
  LeaseCheck was = before.CheckLeases(At(10.5), kLease, kHalf);
  ASSERT_TRUE(was.paused);
  ASSERT_THAT(was.pending, ElementsAre("n2"));
  std::optional<storage::NodeLossPause> stored = before.LossPause();
  ASSERT_TRUE(stored.has_value());
  using Role = storage::NodeLossPause::Role;
  ASSERT_EQ(stored->nodes.size(), 3u);
  EXPECT_EQ(stored->nodes[0].role, Role::kCounted);
  EXPECT_EQ(stored->nodes[1].role, Role::kWaiting);
  EXPECT_EQ(stored->nodes[2].role, Role::kSilent);
  EXPECT_EQ(stored->nodes[2].last_seen, At(4));

  // droverd restarts at 11 s. Were n3's silence forgotten (its lease run from the restart),
  // one of three would be silent, the pause would end and n2 would be lost at once.
  NodeRegistry after;
  after.RestoreLossPause(*stored, At(11));
  LeaseCheck check = after.CheckLeases(At(11), kLease, kHalf);
  EXPECT_TRUE(check.paused);
  EXPECT_THAT(check.lost, IsEmpty());
  EXPECT_EQ(check.silent, 2);
  EXPECT_EQ(after.loss_paused_since(), At(10.5));
  ASSERT_NE(after.Find("n3"), nullptr) << "listed as before";
  EXPECT_EQ(after.Find("n3")->state(), v1::Node::READY);
  // n3's own lease runs out when it would have (4 s + 10 s): then it waits too.
  LeaseCheck later = after.CheckLeases(At(14.5), kLease, kHalf);
  EXPECT_TRUE(later.paused);
  EXPECT_THAT(later.pending, UnorderedElementsAre("n2", "n3"));
  EXPECT_EQ(after.Find("n3")->state(), v1::Node::DOWN);
}

}  // namespace
}  // namespace drover::scheduler
