// Lost nodes end to end (issue 7, promises 3 and 4): a node cut off for less and for more
// than the lease, followed logs going on into the retried attempt, a pytorch and an mpi gang
// losing one node. What clients were told is checked afterwards: a valid history, the right
// attempt completing exactly once, its logs complete, nothing of a stale attempt left
// running once its node is back. The fixture is node_loss_fixture.h. Root only.
#include "tests/e2e/node_loss_fixture.h"

namespace drover {
namespace {

TEST_F(NodeLossE2eTest, PartitionShorterThanTheLeaseChangesNothing) {
  StartCluster(2);
  const int kLines = 30;
  std::string id = Submit(Counting(kLines, /*max_retries=*/1));
  v1::Job running = WaitFor(id, v1::JobStatus::RUNNING, 1);
  const int k = HostOf(running.status().nodes(0));
  Eventually([&] { return absl::StrContains(Logs(id, 0), "line 3\n"); }, absl::Seconds(30),
             "the job prints");
  {
    auto cut = Cutoff::Start(hosts_->name(k), hosts_->bridge_address());
    ASSERT_TRUE(cut.ok()) << cut.status();
    absl::SleepFor(kLease / 3);  // the fault: a partition of a third of the lease
  }
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED, 1);
  ASSERT_EQ(job.status().exits_size(), 1);
  EXPECT_EQ(job.status().exits(0).exit_code(), 0);
  EXPECT_EQ(job.status().exits(0).node(), hosts_->name(k));
  EXPECT_EQ(Logs(id, 0), CountingOutput(kLines, 1));
  ExpectValidHistory(id);
  EXPECT_THAT(history_->RunningAttempts(id), ElementsAre(1));
  EXPECT_FALSE(HasContainer(1 - k, id, 1)) << "started on the other node too";
  std::string log = droverd_->ReadLog();
  EXPECT_THAT(log, Not(HasSubstr("event=node_down")));
  EXPECT_THAT(log, Not(HasSubstr("event=job_retried")));
}

TEST_F(NodeLossE2eTest, PartitionLongerThanTheLeaseRequeuesAndTheNodeKillsTheStaleAttemptOnReturn) {
  const int kLines = 40;
  auto [retried, single] = TwoJobsOnHost0(kLines);
  for (const std::string& id : {retried, single}) {
    Eventually([&] { return absl::StrContains(Logs(id, 0), "line 2\n"); }, absl::Seconds(30),
               "the job prints");
  }

  auto cut = Cutoff::Start(hosts_->name(0), hosts_->bridge_address());
  ASSERT_TRUE(cut.ok()) << cut.status();
  absl::Duration lost_after = WaitForNodeLost(single, 0);
  v1::Job moved = WaitFor(retried, v1::JobStatus::RUNNING, 2);
  EXPECT_EQ(moved.status().nodes(0), hosts_->name(1));
  EXPECT_EQ(NodeState(0), v1::Node::DOWN);
  // Host 0 cannot hear droverd: its stale attempts still run there.
  EXPECT_TRUE(HasContainer(0, retried, 1)) << Containers(0);
  EXPECT_TRUE(HasContainer(0, single, 1)) << Containers(0);

  ASSERT_TRUE((*cut)->Heal().ok());
  absl::Duration killed_after = Eventually([&] { return Containers(0).empty(); }, absl::Seconds(30),
                                           "host 0 removes its stale containers once healed");
  std::cout << "lost " << lost_after << " after the cut (lease " << kLease
            << "); stale containers gone " << killed_after << " after healing\n";
  Eventually([&] { return NodeState(0) == v1::Node::READY; }, absl::Seconds(30),
             "host 0 is READY again");

  v1::Job done = WaitFor(retried, v1::JobStatus::COMPLETED, 2);
  ASSERT_EQ(done.status().exits_size(), 1);
  EXPECT_EQ(done.status().exits(0).node(), hosts_->name(1));
  EXPECT_EQ(done.status().exits(0).exit_code(), 0);
  EXPECT_EQ(Logs(retried, 0), CountingOutput(kLines, 2)) << "the job's logs are attempt 2's";
  std::string first = Logs(retried, 0, /*attempt=*/1);
  EXPECT_THAT(first, HasSubstr("attempt 1 line 1\n"));
  EXPECT_THAT(first, Not(HasSubstr("attempt 2"))) << "attempt 1 kept its own logs";
  EXPECT_THAT(first, Not(HasSubstr("attempt 1 done"))) << "the stale attempt was stopped";
  for (const std::string& id : {retried, single}) ExpectValidHistory(id);
  EXPECT_THAT(history_->RunningAttempts(retried), ElementsAre(1, 2));
}

// What a user following the job sees: `drover logs -f` (the real CLI) started during attempt
// 1 goes on into attempt 2 once the node is lost, with a line between them that says why.

TEST_F(NodeLossE2eTest, FollowedLogsGoOnIntoTheRetriedAttemptAfterAMarkedLine) {
  StartCluster(2);
  NodeAdmin(1, /*cordon=*/true);
  const int kLines = 30;
  std::string id = Submit(Counting(kLines, /*max_retries=*/1));
  EXPECT_EQ(WaitFor(id, v1::JobStatus::RUNNING, 1).status().nodes(0), hosts_->name(0));
  NodeAdmin(1, /*cordon=*/false);
  Eventually([&] { return absl::StrContains(Logs(id, 0), "line 2\n"); }, absl::Seconds(30),
             "the job prints");

  // Both of the CLI's outputs into one pipe, so that their order shows.
  absl::StatusOr<testing::CommandResult> followed;
  std::jthread follower([&] {  // joined also when an assertion below returns early
    followed = testing::RunCommand(
        {"/bin/sh", "-c",
         absl::StrCat(DROVER_CLI_PATH, " --server ", listen_, " --ca ", testing::TestCaFile(),
                      " logs -f ", id, " 2>&1")},
        {}, "", absl::Seconds(150));
  });
  Eventually([&] { return absl::StrContains(Logs(id, 0), "line 4\n"); }, absl::Seconds(30),
             "the job prints on while followed");
  {
    auto cut = Cutoff::Start(hosts_->name(0), hosts_->bridge_address());
    ASSERT_TRUE(cut.ok()) << cut.status();
    WaitFor(id, v1::JobStatus::RUNNING, 2);
  }
  WaitFor(id, v1::JobStatus::COMPLETED, 2);
  follower.join();
  ASSERT_TRUE(followed.ok()) << followed.status();
  EXPECT_EQ(followed->exit_code, 0) << followed->out << followed->err;

  // Attempt 1's lines as stored (those written during the cut never arrived), each once;
  // the marker; attempt 2 whole, from its first line; how the job ended.
  std::string marker = absl::StrCat("--- attempt 2 (attempt 1 ended: node ", hosts_->name(0),
                                    " stopped answering (no message for ",
                                    absl::FormatDuration(kLease), "); retried) ---\n");
  std::string first = Logs(id, 0, /*attempt=*/1);
  EXPECT_THAT(first, HasSubstr("attempt 1 line 4\n"));
  EXPECT_EQ(followed->out,
            absl::StrCat(first, marker, CountingOutput(kLines, 2), id, " COMPLETED\n"));
  ExpectValidHistory(id);
  EXPECT_THAT(history_->RunningAttempts(id), ElementsAre(1, 2));
}

}  // namespace

// A 2-node gang of `backend` (torch.distributed in both: under mpi its ranks are started by
// mpirun, the remote one through drover-rsh) loses its second node for longer than the
// lease: the whole gang is requeued, and no rank of the old attempt joins the new one.
void NodeLossE2eTest::LoseOneNodeOfAGang(v1::JobSpec::DistributedBackend backend) {
  StartCluster(3);
  NodeAdmin(2, /*cordon=*/true);  // the gang starts on hosts 0 and 1
  v1::JobSpec spec;
  spec.set_distributed_backend(backend);
  spec.set_node_count(2);
  spec.set_process_count_per_node(1);
  spec.mutable_resources()->set_cpus(1);
  spec.mutable_resources()->set_memory_mib(1536);
  spec.mutable_resources()->set_shm_mib(256);
  spec.set_max_retries(1);
  spec.set_source_snapshot(Snapshot(DROVER_SOURCE_DIR "/tests/e2e/jobs"));
  spec.set_entry_script("gang_epoch.py");
  for (const char* arg : {"--steps", "50", "--interval", "0.5"})
    spec.add_arguments()->set_value(arg);
  std::string id = Submit(spec);
  v1::Job first = WaitFor(id, v1::JobStatus::RUNNING, 1, absl::Seconds(120));
  ASSERT_EQ(first.status().nodes_size(), 2);
  for (int rank = 0; rank < 2; ++rank) {
    Eventually([&] { return absl::StrContains(Logs(id, rank), " step 1 "); }, absl::Seconds(120),
               absl::StrCat("rank ", rank, " trains"));
  }
  NodeAdmin(2, /*cordon=*/false);
  const int lost = HostOf(first.status().nodes(1));
  const int kept = HostOf(first.status().nodes(0));

  auto cut = Cutoff::Start(hosts_->name(lost), hosts_->bridge_address());
  ASSERT_TRUE(cut.ok()) << cut.status();
  v1::Job second = WaitFor(id, v1::JobStatus::RUNNING, 2, absl::Seconds(120));
  EXPECT_THAT(second.status().nodes(),
              ::testing::UnorderedElementsAre(hosts_->name(kept), hosts_->name(2)));
  Eventually([&] { return !HasContainer(kept, id, 1); }, absl::Seconds(30),
             "the old gang's other node removes its container");
  ASSERT_TRUE((*cut)->Heal().ok());
  absl::Duration killed_after =
      Eventually([&] { return !HasContainer(lost, id, 1); }, absl::Seconds(30),
                 "the lost node removes its stale container once healed");
  std::cout << "stale container gone " << killed_after << " after healing\n";

  v1::Job done = WaitFor(id, v1::JobStatus::COMPLETED, 2, absl::Seconds(180));
  EXPECT_EQ(done.status().exits_size(), 2);
  for (int rank = 0; rank < 2; ++rank) {
    std::string out = Logs(id, rank);
    EXPECT_THAT(out, HasSubstr(absl::StrCat("rank ", rank,
                                            " of 2 attempt 2: the group holds "
                                            "attempts [2, 2]")))
        << out << Logs(id, rank, 0, v1::STDERR);
    EXPECT_THAT(out, HasSubstr(absl::StrCat("rank ", rank, " attempt 2: done")));
    EXPECT_THAT(out, Not(HasSubstr("attempt 1")));
  }
  ExpectValidHistory(id);
  EXPECT_THAT(history_->RunningAttempts(id), ElementsAre(1, 2));
}

namespace {

TEST_F(NodeLossE2eTest, PytorchGangLosingOneNodeIsRequeuedWholeWithoutItsOldRanks) {
  LoseOneNodeOfAGang(v1::JobSpec::PYTORCH);
}

TEST_F(NodeLossE2eTest, MpiGangLosingOneNodeIsRequeuedWholeWithoutItsOldRanks) {
  LoseOneNodeOfAGang(v1::JobSpec::MPI);
}

}  // namespace
}  // namespace drover
