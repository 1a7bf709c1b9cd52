// A rank never runs twice: the agent of one node of a 2-node attempt dies (SIGKILL) at every
// step boundary of the attempt, under both backends, sometimes together with droverd, and a
// new agent process takes the attempt over. The steps: right after `runc create` (before the
// record says READY), right after `runc start` (before it says RUNNING: the race of issue
// 14), after the ranks' first output, at the start of finalizing (before outputs are
// uploaded) and right after the end was reported. The agent dies at a failpoint
// (common/failpoint.h) or, for the first output, by the test's own SIGKILL.
//
// Each rank's program appends one line to a file on a hostpath datastore when it starts, so
// a second run of a rank, however brief, leaves a second line there (logs would not show
// it: droverd keeps one copy of each byte offset). The job must complete in its first
// attempt, every rank with exactly one line, complete logs, and its outputs. Root only.
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/distributed_fixture.h"

namespace drover {
namespace {

namespace fs = std::filesystem;

constexpr int kProcessesPerNode = 2;

struct StepCase {
  std::string name;
  v1::JobSpec::DistributedBackend backend;
  // A failpoint of agent/attempt.cc, or "first_output" (the test kills the agent once the
  // node's first rank printed its first line).
  std::string step;
  int node;           // whose agent dies
  bool with_droverd;  // droverd is SIGKILLed too before both start again
};

// Test names and ctest's listing show the case's name, not its bytes.
void PrintTo(const StepCase& c, std::ostream* out) { *out << c.name; }

class TakeOverE2eTest : public DistributedE2eTest,
                        public ::testing::WithParamInterface<StepCase> {
 protected:
  // Waits until the agent of host k died at its failpoint.
  void WaitForFailpoint(int k) {
    absl::StatusOr<int> status = agents_[k]->Wait(absl::Seconds(120));
    ASSERT_TRUE(status.ok()) << "the agent never reached " << GetParam().step << AgentLogs();
    EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << *status;
    std::string log = agents_[k]->ReadLog();
    EXPECT_THAT(log, ::testing::HasSubstr("event=failpoint name=" + GetParam().step));
    stopped_logs_ += absl::StrCat("\n--- agent ", hosts_->name(k), " (died at ", GetParam().step,
                                 "):\n", log);
  }
};

TEST_P(TakeOverE2eTest, EveryRankRunsOnceAndTheJobCompletesInItsFirstAttempt) {
  const StepCase& c = GetParam();
  const bool failpoint = c.step != "first_output";
  // Steps after the ranks' end: they run to it at once.
  const bool after_ranks = c.step == "attempt.finalizing" || c.step == "attempt.after_end";
  if (failpoint) failpoints_[c.node] = c.step;
  StartCluster(2);
  const std::string shared = dir_.path() + "/runs/shared";
  fs::create_directories(shared);
  testing::GiveToJobContainers(shared);  // a read-write datastore folder
  ASSERT_TRUE(testing::CreateHostpathDatastore(*admin_, "runs", dir_.path() + "/runs",
                                               /*allow_write=*/true)
                  .ok());
  if (after_ranks) std::ofstream(shared + "/go") << "go\n";

  // $0 is the datastore folder, the same path on every node.
  v1::JobSpec spec = Shell(
      Distributed(c.backend, 2, kProcessesPerNode, 0.5),
      "r=${OMPI_COMM_WORLD_RANK:-$RANK}; echo \"rank $r\" >> \"$0/ran\"; echo rank $r started; "
      "i=0; while [ ! -e \"$0/go\" ]; do i=$((i+1)); echo $r: $i; sleep 0.05; done; "
      "if [ \"$r\" = 0 ]; then echo model > /job/outputs/model.txt; fi; echo rank $r done");
  v1::DataReference* data = spec.add_arguments()->mutable_data();
  data->set_datastore("runs");
  data->set_path("shared");
  data->set_mode(v1::DataReference::MOUNT);
  data->set_read_write(true);
  std::string id = Submit(spec);

  if (failpoint) {
    WaitForFailpoint(c.node);
  } else {
    const int rank = c.node * kProcessesPerNode;
    absl::Time deadline = absl::Now() + absl::Seconds(120);
    while (absl::Now() < deadline &&
           !absl::StrContains(Logs(id, rank), absl::StrCat("rank ", rank, " started"))) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_THAT(Logs(id, rank), ::testing::HasSubstr("started")) << AgentLogs();
    KillAgent(c.node);
  }
  if (c.with_droverd) RestartDroverd();
  failpoints_.erase(c.node);
  StartAgent(c.node);
  // Up before anything else happens: a SIGTERM at the end of the test would otherwise reach
  // the wrapper that is still starting it (the agent never runs, and what it should have
  // cleaned up at its start stays).
  WaitForAgentConnected(c.node);
  if (!after_ranks) std::ofstream(shared + "/go") << "go\n";

  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(job.status().attempt(), 1) << "the gang was restarted";
  EXPECT_FALSE(job.status().outputs_digest().empty()) << "rank 0's model.txt was lost";

  // Each rank ran exactly once.
  std::map<std::string, int> runs;
  for (absl::string_view line :
       absl::StrSplit(testing::ReadWholeFile(shared + "/ran"), '\n', absl::SkipEmpty())) {
    ++runs[std::string(line)];
  }
  const int world = 2 * kProcessesPerNode;
  for (int rank = 0; rank < world; ++rank) {
    EXPECT_EQ(runs[absl::StrCat("rank ", rank)], 1) << "rank " << rank << " ran "
                                                     << runs[absl::StrCat("rank ", rank)]
                                                     << " times" << AgentLogs();
  }
  EXPECT_EQ(runs.size(), static_cast<size_t>(world)) << testing::ReadWholeFile(shared + "/ran");

  // Every rank's log is complete, each line once.
  for (int rank = 0; rank < world; ++rank) {
    std::vector<std::string> lines = absl::StrSplit(Logs(id, rank), '\n', absl::SkipEmpty());
    ASSERT_GE(lines.size(), 2u) << "rank " << rank;
    EXPECT_EQ(lines.front(), absl::StrCat("rank ", rank, " started"));
    EXPECT_EQ(lines.back(), absl::StrCat("rank ", rank, " done"));
    for (size_t i = 1; i + 1 < lines.size(); ++i) {
      ASSERT_EQ(lines[i], absl::StrCat(rank, ": ", i)) << "rank " << rank << ": lost or doubled";
    }
  }
}

std::vector<StepCase> Cases() {
  std::vector<StepCase> cases;
  for (auto [backend, label] : {std::pair{v1::JobSpec::PYTORCH, "Pytorch"},
                                std::pair{v1::JobSpec::MPI, "Mpi"}}) {
    auto add = [&, backend = backend, label = label](const std::string& name,
                                                     const std::string& step, int node,
                                                     bool with_droverd = false) {
      cases.push_back({absl::StrCat(label, name), backend, step, node, with_droverd});
    };
    add("AfterCreate", "attempt.after_create", 1);
    add("AfterStart", "attempt.after_start", 1);
    add("AfterStartWithDroverd", "attempt.after_start", 1, /*with_droverd=*/true);
    add("AfterFirstOutput", "first_output", 1);
    add("DuringFinalize", "attempt.finalizing", 1);
    add("AfterEnd", "attempt.after_end", 1);
    // Node rank 0: under MPI it runs mpirun and the relay of the remote launches.
    add("Node0AfterStart", "attempt.after_start", 0);
    add("Node0DuringFinalize", "attempt.finalizing", 0);
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Steps, TakeOverE2eTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<StepCase>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace drover
