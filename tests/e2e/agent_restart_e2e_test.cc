// drover-agent restarts are not workload events (issue 7, promise 2): the real droverd and
// drover-agent, real runc containers. The agent is SIGKILLed or stopped with SIGTERM (which
// leaves the jobs running by default) while a job runs, and started again: the same
// processes run on, their logs arrive complete and once, and the job's end is its real one,
// also when the processes ended while no agent (and no droverd) watched. Root only. The last
// agent of each test stops its jobs on exit, so nothing is left behind.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

// Prints "started", then numbered lines every 20 ms until the file /job/go appears, then
// "done", and exits with `code` `linger` seconds later.
v1::JobSpec CountingJob(int code, int linger = 0) {
  v1::JobSpec spec;
  spec.set_entry_script("bin/sh");
  spec.add_arguments()->set_value("-c");
  spec.add_arguments()->set_value(absl::StrCat(
      "echo started; i=0; while [ ! -e /job/go ]; do i=$((i+1)); echo line $i; sleep 0.02; "
      "done; echo done; sleep ", linger, "; exit ", code));
  spec.mutable_resources()->set_cpus(0.5);
  spec.mutable_resources()->set_memory_mib(128);
  return spec;
}

class AgentRestartE2eTest : public testing::LocalClusterTest {
 protected:
  void SetUp() override {
    LocalClusterTest::SetUp();
    if (IsSkipped()) return;
    // One system-metrics sample, at the start: a later one, written while droverd is away,
    // would be output the agent must deliver before it reports the end (the tests that
    // kill droverd once it has a job's whole output need that to hold). The default:
    // stopping the agent leaves the jobs running (--jobs-on-exit keep).
    StartCluster({.agent_flags = {"--metrics-interval", "1h", "--metrics-listen", agent_metrics_},
                  .agent_flags_of =
                      [this](int) {
                        return std::vector<std::string>{"--jobs-on-exit", jobs_on_exit_};
                      },
                  .datastore_root = false});
  }

  // `jobs_on_exit`: keep or stop. Waits until droverd has the node when `wait` says so.
  void StartAgent(const std::string& jobs_on_exit, bool wait = true) {
    jobs_on_exit_ = jobs_on_exit;
    LocalClusterTest::StartAgent(0);
    if (wait && !HasFatalFailure()) WaitForReadyNodes(1);
  }

  // Ends the agent with `signal` and waits until it is gone; returns how long that took.
  absl::Duration StopAgent(int signal) {
    absl::Duration took = LocalClusterTest::StopAgent(0, signal);
    agents_[0].reset();
    return took;
  }

  std::string Container(const std::string& job) const {
    return absl::StrCat("drover-", job, "-1-",
                        absl::Hex(std::hash<std::string>()(work()) & 0xffffffff, absl::kZeroPad8));
  }

  // runc's status of the job's container ("running", "stopped"), "" when there is none.
  std::string ContainerStatus(const std::string& job) const {
    auto state = testing::RunCommand(
        {testing::TestOciRuntime(), "--root", work() + "/runc", "state", Container(job)});
    if (!state.ok() || state->exit_code != 0) return "";
    for (const char* status : {"running", "stopped", "created", "paused"}) {
      if (absl::StrContains(state->out, absl::StrCat("\"status\": \"", status, "\""))) return status;
    }
    return "?";
  }

  // Polls the status of the job's container until it is `status` (at most 20 s); returns
  // the last one seen.
  std::string WaitForContainerStatus(const std::string& job, const std::string& status) const {
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    std::string now = ContainerStatus(job);
    while (now != status && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
      now = ContainerStatus(job);
    }
    return now;
  }

  // SIGKILLs droverd, then the agent: the job's processes run on with no daemon.
  void KillBothDaemons() {
    StopDroverd(SIGKILL);
    StopAgent(SIGKILL);
  }

  // The agent's drover_agent_log_bytes_unacknowledged; -1 when it cannot be read.
  int64_t UnacknowledgedLogBytes() const {
    auto page = testing::RunCommand(
        {"/usr/bin/python3", "-c",
         absl::StrCat("import urllib.request\n"
                      "print(urllib.request.urlopen('http://", agent_metrics_,
                      "/metrics').read().decode())")});
    if (!page.ok() || page->exit_code != 0) return -1;
    for (absl::string_view line : absl::StrSplit(page->out, '\n')) {
      if (absl::ConsumePrefix(&line, "drover_agent_log_bytes_unacknowledged ")) {
        double value = -1;
        return absl::SimpleAtod(line, &value) ? static_cast<int64_t>(value) : -1;
      }
    }
    return -1;
  }

  // Waits until droverd has job `id`'s whole output ("done" last) and the agent has
  // droverd's acknowledgement of every byte (it ends the attempt only once it has it).
  void WaitUntilDroverdHasTheOutput(const std::string& id) {
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    while (!absl::EndsWith(jobs_->Logs(id, 0), "done\n") && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    deadline = absl::Now() + absl::Seconds(20);
    while (UnacknowledgedLogBytes() != 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_EQ(UnacknowledgedLogBytes(), 0) << agent()->ReadLog();
  }

  void LetEnd(const std::string& job) {
    std::ofstream(absl::StrCat(work(), "/attempts/", job, "-1/job/go")) << "go\n";
  }

  // Waits until droverd has at least `lines` lines of the job's stdout.
  void WaitForLines(const std::string& job, int lines) {
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      std::string out = jobs_->Logs(job, 0);
      if (std::count(out.begin(), out.end(), '\n') >= lines) return;
      absl::SleepFor(absl::Milliseconds(20));
    }
    ADD_FAILURE() << "fewer than " << lines << " lines arrived";
  }

  // The job's stdout is "started", "line 1" ... "line N", "done": every line once, in order.
  void ExpectCompleteOutput(const std::string& job) {
    std::vector<std::string> lines = absl::StrSplit(jobs_->Logs(job, 0), '\n');
    ASSERT_GE(lines.size(), 3u);
    EXPECT_EQ(lines.front(), "started") << "the processes started once";
    EXPECT_EQ(lines.back(), "") << "ends with a line end";
    lines.pop_back();
    EXPECT_EQ(lines.back(), "done");
    for (size_t i = 1; i + 1 < lines.size(); ++i) {
      ASSERT_EQ(lines[i], absl::StrCat("line ", i)) << "lost, doubled or reordered output";
    }
  }

  // The agent's --metrics-listen.
  const std::string agent_metrics_ = absl::StrCat("127.0.0.1:", testing::FreeLoopbackPort());
  std::string jobs_on_exit_ = "keep";  // the --jobs-on-exit of the agent started next
};

TEST_F(AgentRestartE2eTest, ASigkilledAgentTakesItsRunningJobOver) {
  std::string id = jobs_->Submit(CountingJob(0));
  WaitFor(id, v1::JobStatus::RUNNING);
  WaitForLines(id, 5);
  StopAgent(SIGKILL);
  EXPECT_EQ(ContainerStatus(id), "running") << "the processes outlive the agent";
  absl::SleepFor(absl::Milliseconds(500));  // they write on meanwhile

  StartAgent("stop");
  EXPECT_EQ(jobs_->Get(id).status().state(), v1::JobStatus::RUNNING);
  LetEnd(id);
  v1::Job done = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(done.status().attempt(), 1) << "not restarted";
  ASSERT_EQ(done.status().exits_size(), 1);
  EXPECT_EQ(done.status().exits(0).exit_code(), 0);
  ExpectCompleteOutput(id);
  EXPECT_THAT(agent()->ReadLog(), HasSubstr("event=attempt_recovered"));
}

TEST_F(AgentRestartE2eTest, SigtermLeavesTheJobRunningAndTheNextAgentTakesItOver) {
  std::string id = jobs_->Submit(CountingJob(0));
  WaitFor(id, v1::JobStatus::RUNNING);
  WaitForLines(id, 5);
  absl::Duration took = StopAgent(SIGTERM);
  EXPECT_LT(took, absl::Seconds(3)) << "a clean stop is fast";
  EXPECT_EQ(ContainerStatus(id), "running");
  absl::SleepFor(absl::Milliseconds(500));

  StartAgent("stop");
  LetEnd(id);
  v1::Job done = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(done.status().attempt(), 1);
  ExpectCompleteOutput(id);
}

TEST_F(AgentRestartE2eTest, AJobThatEndedWhileNoDaemonRanGetsItsRealExit) {
  std::string id = jobs_->Submit(CountingJob(3));
  WaitFor(id, v1::JobStatus::RUNNING);
  WaitForLines(id, 5);
  KillBothDaemons();
  // The processes end while neither daemon runs.
  LetEnd(id);
  ASSERT_EQ(WaitForContainerStatus(id, "stopped"), "stopped");

  StartDroverd();
  StartAgent("stop");
  v1::Job failed = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(failed.status().cause(), v1::JobStatus::PROCESS_FAILED);
  ASSERT_EQ(failed.status().exits_size(), 1);
  EXPECT_EQ(failed.status().exits(0).exit_code(), 3) << "reported, not guessed";
  EXPECT_EQ(failed.status().exits(0).signal(), 0);
  EXPECT_THAT(failed.status().message(), HasSubstr("code 3"));
  EXPECT_EQ(failed.status().attempt(), 1);
  ExpectCompleteOutput(id);
}

TEST_F(AgentRestartE2eTest, ARankKilledWhileNoDaemonRanEndsWithItsSignal) {
  std::string id = jobs_->Submit(CountingJob(0));
  WaitFor(id, v1::JobStatus::RUNNING);
  WaitForLines(id, 5);
  KillBothDaemons();
  // The rank (the only child of the container's drover-init) is killed from outside.
  auto state = testing::RunCommand({testing::TestOciRuntime(), "--root", work() + "/runc", "state", Container(id)});
  ASSERT_TRUE(state.ok() && state->exit_code == 0);
  size_t at = state->out.find("\"pid\": ");
  ASSERT_NE(at, std::string::npos) << state->out;
  int init = std::atoi(state->out.c_str() + at + 7);
  std::string children = testing::ReadWholeFile(absl::StrCat("/proc/", init, "/task/", init, "/children"));
  int rank = std::atoi(children.c_str());
  ASSERT_GT(rank, 0) << "drover-init (" << init << ") has no child: '" << children << "'";
  ASSERT_EQ(kill(rank, SIGKILL), 0);
  ASSERT_EQ(WaitForContainerStatus(id, "stopped"), "stopped");

  StartDroverd();
  StartAgent("stop");
  v1::Job failed = WaitFor(id, v1::JobStatus::FAILED);
  ASSERT_EQ(failed.status().exits_size(), 1);
  EXPECT_EQ(failed.status().exits(0).signal(), SIGKILL) << "reported, not guessed";
  EXPECT_THAT(failed.status().message(), HasSubstr("signal 9"));
  EXPECT_EQ(failed.status().attempt(), 1);
}

TEST_F(AgentRestartE2eTest, AnEndDroverdMissedIsReportedByTheNextAgent) {
  std::string id = jobs_->Submit(CountingJob(0, /*linger=*/1));
  WaitFor(id, v1::JobStatus::RUNNING);
  LetEnd(id);
  // Once droverd has the whole output, it goes away; the job ends a second later, the agent
  // cleans up and keeps the end to report...
  ASSERT_NO_FATAL_FAILURE(WaitUntilDroverdHasTheOutput(id));
  StopDroverd(SIGKILL);
  ASSERT_EQ(WaitForContainerStatus(id, ""), "") << "the agent deleted the container";
  // ...and is SIGKILLed before it could: the next one reports it.
  StopAgent(SIGKILL);
  StartDroverd();
  StartAgent("stop");
  v1::Job done = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(done.status().attempt(), 1);
  ASSERT_EQ(done.status().exits_size(), 1);
  EXPECT_EQ(done.status().exits(0).exit_code(), 0);
  ExpectCompleteOutput(id);
}

TEST_F(AgentRestartE2eTest, AnEndDroverdMissedIsReportedWhenDroverdComesBack) {
  std::string id = jobs_->Submit(CountingJob(0, /*linger=*/1));
  WaitFor(id, v1::JobStatus::RUNNING);
  LetEnd(id);
  ASSERT_NO_FATAL_FAILURE(WaitUntilDroverdHasTheOutput(id));
  // The job ends while droverd is away; the same agent process keeps only its last report
  // (its Attempt and thread are gone once the container is)...
  StopDroverd(SIGKILL);
  ASSERT_EQ(WaitForContainerStatus(id, ""), "") << "the agent deleted the container";
  absl::SleepFor(absl::Milliseconds(200));  // a few turns of the loop that collects it
  // ...and reports it in its hello when droverd is back.
  StartDroverd();
  v1::Job done = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(done.status().attempt(), 1);
  ASSERT_EQ(done.status().exits_size(), 1);
  EXPECT_EQ(done.status().exits(0).exit_code(), 0);
  ExpectCompleteOutput(id);
}

}  // namespace
}  // namespace drover
