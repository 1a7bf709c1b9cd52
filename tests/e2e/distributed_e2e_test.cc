// Distributed jobs end to end: droverd on a bridge, one drover-agent per test host (network
// namespaces, deploy/testhosts.sh), real runc containers, real Open MPI (mpirun inside node
// rank 0's container, remote daemons through drover-rsh and the agents, no ssh) and real
// torch.distributed over gloo. Checks what a user sees: results on every rank, the whole
// gang placed and torn down together, the failing rank named, and nothing left behind on
// any node. Root only.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/archive/snapshot.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/agent_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_hosts.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

class DistributedE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "test hosts and runc need root";
  }

  // `count` test hosts, droverd on their bridge, an agent on each offering 2 cpus.
  void StartCluster(int count) {
    auto hosts = testing::TestHosts::Create(count);
    ASSERT_TRUE(hosts.ok()) << hosts.status();
    hosts_ = *std::move(hosts);
    auto droverd = testing::DroverdProcess::Start(
        dir_.path() + "/state", {"--listen", hosts_->bridge_address() + ":0"});
    ASSERT_TRUE(droverd.ok()) << droverd.status();
    droverd_ = *std::move(droverd);
    channel_ = grpc::CreateChannel(droverd_->address(), grpc::InsecureChannelCredentials());
    jobs_ = std::make_unique<testing::JobClient>(channel_);
    blobs_ = v1::BlobService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
    for (int k = 0; k < count; ++k) {
      agents_.emplace_back();
      work_dirs_.push_back(absl::StrCat(dir_.path(), "/agent-", k));
      StartAgent(k);
    }
    absl::Status ready = testing::WaitForReadyNodes(*admin_, count, absl::Seconds(30));
    ASSERT_TRUE(ready.ok()) << ready << AgentLogs();
  }

  // (Re)starts the agent of host k.
  void StartAgent(int k) {
    auto agent = testing::AgentProcess::Start(
        droverd_->address(), hosts_->name(k), work_dirs_[k],
        {"--address", hosts_->address(k), "--cpus", "2", "--memory", "4Gi"},
        hosts_->ExecPrefix(k));
    ASSERT_TRUE(agent.ok()) << agent.status();
    agents_[k] = *std::move(agent);
  }

  // SIGKILLs the agent of host k (its jobs' processes run on) and waits until it is gone.
  void KillAgent(int k) {
    agents_[k]->Signal(SIGKILL);
    ASSERT_TRUE(agents_[k]->Wait(absl::Seconds(10)).ok());
    killed_logs_ += absl::StrCat("\n--- killed agent ", hosts_->name(k), ":\n", agents_[k]->ReadLog());
  }

  // SIGKILLs the agent of host k while job `id` runs and starts it again; then lets the
  // job's ranks end (they wait for /job/go on every node) and expects it to complete in the
  // same attempt.
  void RestartAgentThenLetEnd(const std::string& id, int k) {
    KillAgent(k);
    absl::SleepFor(absl::Milliseconds(500));
    StartAgent(k);
    ASSERT_TRUE(testing::WaitForReadyNodes(*admin_, 2, absl::Seconds(30)).ok()) << AgentLogs();
    for (const std::string& work : work_dirs_) {
      std::ofstream(absl::StrCat(work, "/attempts/", id, "-1/job/go")) << "go\n";
    }
    v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
    EXPECT_EQ(job.status().attempt(), 1) << "the gang was not restarted";
  }

  void TearDown() override {
    if (hosts_ == nullptr) return;
    for (auto& agent : agents_) {
      if (agent != nullptr) agent->Signal(SIGCONT);  // a test may have stopped one
    }
    for (size_t k = 0; k < agents_.size(); ++k) {
      // The agent's mounts live in its own mount namespace: look before it goes.
      std::string mounts = testing::ReadWholeFile(absl::StrCat("/proc/", agents_[k]->pid(), "/mountinfo"));
      EXPECT_THAT(mounts, ::testing::Not(HasSubstr(work_dirs_[k] + "/attempts")))
          << "mounts left behind on " << hosts_->name(k);
    }
    agents_.clear();  // SIGTERM: each agent stops what still runs
    for (const std::string& work : work_dirs_) EXPECT_EQ(Containers(work), "") << work;
    droverd_.reset();
    hosts_.reset();
  }

  // The containers runc knows in an agent's work folder, one id per line.
  static std::string Containers(const std::string& work) {
    auto listed = testing::RunCommand({"/usr/sbin/runc", "--root", work + "/runc", "list", "-q"});
    return listed.ok() ? listed->out : "runc list failed: " + std::string(listed.status().message());
  }

  std::string AgentLogs() {
    std::string out = killed_logs_;
    for (size_t k = 0; k < agents_.size(); ++k) {
      absl::StrAppend(&out, "\n--- agent ", hosts_->name(k), ":\n", agents_[k]->ReadLog());
    }
    return out;
  }

  std::string Snapshot(const std::string& folder) {
    auto snapshot = archive::BuildSnapshot(
        folder, {.output_path = absl::StrCat(dir_.path(), "/snapshot-", ++snapshots_, ".tar")});
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    if (!snapshot.ok()) return "";
    absl::StatusOr<std::string> digest = testing::UploadBlobFile(*blobs_, snapshot->tar_path);
    EXPECT_TRUE(digest.ok()) << digest.status();
    return digest.ok() ? *digest : "";
  }

  static v1::JobSpec Distributed(v1::JobSpec::DistributedBackend backend, int nodes,
                                 int processes, double cpus = 1) {
    v1::JobSpec spec;
    spec.set_distributed_backend(backend);
    spec.set_node_count(nodes);
    spec.set_process_count_per_node(processes);
    spec.mutable_resources()->set_cpus(cpus);
    spec.mutable_resources()->set_memory_mib(1536);
    spec.mutable_resources()->set_shm_mib(256);
    return spec;
  }

  // A job of `script` in tests/e2e/jobs.
  v1::JobSpec Script(v1::JobSpec spec, const std::string& script,
                     const std::vector<std::string>& args = {}) {
    spec.set_source_snapshot(Snapshot(DROVER_SOURCE_DIR "/tests/e2e/jobs"));
    spec.set_entry_script(script);
    for (const std::string& arg : args) spec.add_arguments()->set_value(arg);
    return spec;
  }

  static v1::JobSpec Shell(v1::JobSpec spec, const std::string& command) {
    spec.set_entry_script("bin/sh");
    spec.add_arguments()->set_value("-c");
    spec.add_arguments()->set_value(command);
    return spec;
  }

  std::string Submit(const v1::JobSpec& spec) { return jobs_->Submit(spec); }
  v1::Job Get(const std::string& id) { return jobs_->Get(id); }
  v1::Job WaitFor(const std::string& id, v1::JobStatus::State state,
                  absl::Duration timeout = absl::Seconds(120)) {
    return jobs_->WaitFor(id, state, timeout, [&] {
      return absl::StrCat("\nrank 0's stderr (mpirun's too):\n", Logs(id, 0, v1::STDERR),
                          AgentLogs());
    });
  }
  std::string Logs(const std::string& id, int rank, v1::LogStream stream = v1::STDOUT) {
    return jobs_->Logs(id, rank, stream);
  }

  // The checksum every rank of the distributed PyTorch example printed; fails the test when
  // a rank printed none or they differ.
  void ExpectIdenticalParameters(const std::string& id, int world) {
    std::set<std::string> checksums;
    for (int rank = 0; rank < world; ++rank) {
      std::string out = Logs(id, rank);
      std::string marker = absl::StrCat("parameters identical on all ", world, " ranks: checksum=");
      size_t at = out.find(marker);
      ASSERT_NE(at, std::string::npos) << "rank " << rank << " printed:\n"
                                       << out << Logs(id, rank, v1::STDERR);
      checksums.insert(out.substr(at + marker.size(), 16));
    }
    EXPECT_EQ(checksums.size(), 1u) << "ranks disagree on the parameters";
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::TestHosts> hosts_;
  std::unique_ptr<testing::DroverdProcess> droverd_;
  std::vector<std::unique_ptr<testing::AgentProcess>> agents_;
  std::vector<std::string> work_dirs_;
  std::string killed_logs_;  // the logs of agents killed and started again
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<testing::JobClient> jobs_;
  std::unique_ptr<v1::BlobService::Stub> blobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  int snapshots_ = 0;
};

TEST_F(DistributedE2eTest, MpiAllreduceOverTwoNodesOfTwoProcessesGivesTheSumOnEveryRank) {
  StartCluster(2);
  std::string id = Submit(Script(Distributed(v1::JobSpec::MPI, 2, 2), "mpi_allreduce.py"));
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(job.status().nodes_size(), 2);
  ASSERT_EQ(job.status().exits_size(), 4);
  std::set<std::string> nodes;
  for (const v1::RankExit& e : job.status().exits()) {
    EXPECT_EQ(e.exit_code(), 0) << e.DebugString();
    nodes.insert(e.node());
  }
  EXPECT_EQ(nodes.size(), 2u) << "two ranks on each node";
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_EQ(Logs(id, rank), absl::StrCat("rank ", rank, " of 4: allreduce sum=10 expected=10 ok\n"))
        << Logs(id, rank, v1::STDERR);
  }
}

TEST_F(DistributedE2eTest, PytorchExampleKeepsParametersIdenticalUnderBothBackends) {
  StartCluster(2);
  for (auto backend : {v1::JobSpec::PYTORCH, v1::JobSpec::MPI}) {
    v1::JobSpec spec = Distributed(backend, 2, 2);
    spec.set_source_snapshot(Snapshot(DROVER_SOURCE_DIR "/examples/distributed-pytorch"));
    spec.set_entry_script("train.py");
    for (const char* arg : {"--epochs", "1", "--samples", "512"}) spec.add_arguments()->set_value(arg);
    std::string id = Submit(spec);
    v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(240));
    SCOPED_TRACE(v1::JobSpec::DistributedBackend_Name(backend));
    ExpectIdenticalParameters(id, 4);
    EXPECT_FALSE(job.status().outputs_digest().empty()) << "rank 0 saves the model";
  }
}

TEST_F(DistributedE2eTest, OneFailingRankFailsTheWholeJobNamingRankAndNode) {
  StartCluster(2);
  // Rank 2 is the first process of node rank 1: under MPI a remote rank, started through
  // drover-rsh; under pytorch the other node's own.
  for (auto backend : {v1::JobSpec::PYTORCH, v1::JobSpec::MPI}) {
    SCOPED_TRACE(v1::JobSpec::DistributedBackend_Name(backend));
    std::string id = Submit(Script(Distributed(backend, 2, 2), "fail_rank.py",
                                   {"--rank", "2", "--code", "3", "--delay", "1"}));
    v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
    EXPECT_EQ(job.status().cause(), v1::JobStatus::PROCESS_FAILED);
    ASSERT_EQ(job.status().nodes_size(), 2);
    EXPECT_EQ(job.status().message(),
              absl::StrCat("rank 2 on ", job.status().nodes(1), " exited with code 3"));
    EXPECT_THAT(Logs(id, 2), HasSubstr("rank 2 of 4: failing with exit code 3"));
    // The others were stopped, not left to sleep out their 60 s.
    for (int rank : {0, 1, 3}) {
      EXPECT_THAT(Logs(id, rank), ::testing::Not(HasSubstr("nobody stopped me"))) << rank;
    }
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    for (const std::string& work : work_dirs_) {
      while (Containers(work) != "" && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
      EXPECT_EQ(Containers(work), "") << "container left on " << work;
    }
  }
}

TEST_F(DistributedE2eTest, TooLargeJobWaitsWithItsReasonWhileASmallerOneRuns) {
  StartCluster(2);
  std::string large = Submit(Shell(Distributed(v1::JobSpec::PYTORCH, 3, 1), "true"));
  std::string small = Submit(Shell(Distributed(v1::JobSpec::PYTORCH, 2, 1), "echo small"));
  WaitFor(small, v1::JobStatus::COMPLETED);
  v1::Job waiting = Get(large);
  EXPECT_EQ(waiting.status().state(), v1::JobStatus::QUEUED);
  EXPECT_THAT(waiting.status().reason(), HasSubstr("WAITING_FOR_NODES need=3 free=2"));
}

TEST_F(DistributedE2eTest, TwoGangJobsOnThreeNodesRunOneAfterTheOther) {
  StartCluster(3);
  // Each takes both cpus of two nodes: the three nodes hold one such job at a time.
  std::string first = Submit(Shell(Distributed(v1::JobSpec::PYTORCH, 2, 1, 2), "sleep 2"));
  std::string second = Submit(Shell(Distributed(v1::JobSpec::PYTORCH, 2, 1, 2), "sleep 2"));
  bool both = false;
  absl::Time deadline = absl::Now() + absl::Seconds(120);
  v1::Job a, b;
  while (absl::Now() < deadline) {
    a = Get(first);
    b = Get(second);
    auto holding = [](const v1::Job& job) {
      v1::JobStatus::State s = job.status().state();
      return s == v1::JobStatus::PREPARING || s == v1::JobStatus::STARTING ||
             s == v1::JobStatus::RUNNING;
    };
    both = both || (holding(a) && holding(b));
    if (a.status().state() == v1::JobStatus::COMPLETED &&
        b.status().state() == v1::JobStatus::COMPLETED) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE(both) << "both gangs held nodes at once";
  ASSERT_EQ(a.status().state(), v1::JobStatus::COMPLETED) << a.status().DebugString() << AgentLogs();
  ASSERT_EQ(b.status().state(), v1::JobStatus::COMPLETED) << b.status().DebugString() << AgentLogs();
  EXPECT_GE(b.status().start_time().seconds() * 1000000000LL + b.status().start_time().nanos(),
            a.status().end_time().seconds() * 1000000000LL + a.status().end_time().nanos());
}

TEST_F(DistributedE2eTest, CancelOfARunningMpiJobCleansEveryNode) {
  StartCluster(2);
  std::string id = Submit(Script(Distributed(v1::JobSpec::MPI, 2, 1), "fail_rank.py",
                                 {"--rank", "-1", "--sleep", "60"}));
  WaitFor(id, v1::JobStatus::RUNNING);
  // Both ranks run (rank 1 on the other node, through drover-rsh) before the cancel.
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (absl::Now() < deadline &&
         !(absl::StrContains(Logs(id, 0), "sleeping") && absl::StrContains(Logs(id, 1), "sleeping"))) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_THAT(Logs(id, 1), HasSubstr("rank 1 of 2: sleeping")) << AgentLogs();
  // Only the attempt's own agents, with its secret, may run commands in its containers.
  {
    grpc::ClientContext context;
    v1::ListNodesResponse nodes;
    ASSERT_TRUE(admin_->ListNodes(&context, v1::ListNodesRequest(), &nodes).ok());
    for (const v1::Node& node : nodes.nodes()) {
      ASSERT_FALSE(node.peer_endpoint().empty()) << node.name();
      auto peer = v1::AgentPeerService::NewStub(
          grpc::CreateChannel(node.peer_endpoint(), grpc::InsecureChannelCredentials()));
      auto exec = [&](int64_t epoch, const std::string& token) {
        grpc::ClientContext call;
        v1::ExecRequest request;
        request.mutable_attempt()->set_job_id(id);
        request.mutable_attempt()->set_epoch(epoch);
        request.set_token(token);
        request.set_command("touch /job/outputs/intruder");
        auto reader = peer->Exec(&call, request);
        v1::ExecOutput output;
        while (reader->Read(&output)) {
        }
        return reader->Finish();
      };
      EXPECT_EQ(exec(1, "not-the-secret").error_code(), grpc::StatusCode::PERMISSION_DENIED)
          << node.name();
      EXPECT_EQ(exec(1, "").error_code(), grpc::StatusCode::PERMISSION_DENIED) << node.name();
      EXPECT_EQ(exec(2, "not-the-secret").error_code(), grpc::StatusCode::NOT_FOUND)
          << "an attempt the node does not run, on " << node.name();
    }
  }
  {
    grpc::ClientContext context;
    v1::CancelJobRequest cancel;
    cancel.set_job_id(id);
    v1::Job job;
    ASSERT_TRUE(jobs_->stub().CancelJob(&context, cancel, &job).ok());
  }
  v1::Job job = WaitFor(id, v1::JobStatus::CANCELED, absl::Seconds(60));
  EXPECT_EQ(job.status().cause(), v1::JobStatus::CANCELED_BY_USER);
  EXPECT_TRUE(job.status().outputs_digest().empty()) << "the refused commands wrote nothing";
  for (const std::string& work : work_dirs_) {
    absl::Time until = absl::Now() + absl::Seconds(30);
    while (Containers(work) != "" && absl::Now() < until) absl::SleepFor(absl::Milliseconds(50));
    EXPECT_EQ(Containers(work), "") << "container left on " << work;
  }
}

TEST_F(DistributedE2eTest, ATwoNodePytorchJobRunsOnWhileTheAgentOfANodeRestarts) {
  StartCluster(2);
  std::string id = Submit(Shell(Distributed(v1::JobSpec::PYTORCH, 2, 1),
                                "echo rank $RANK started; i=0; while [ ! -e /job/go ]; do "
                                "i=$((i+1)); echo $RANK: $i; sleep 0.02; done; echo rank $RANK done"));
  WaitFor(id, v1::JobStatus::RUNNING);
  RestartAgentThenLetEnd(id, 1);
  for (int rank = 0; rank < 2; ++rank) {
    std::vector<std::string> lines = absl::StrSplit(Logs(id, rank), '\n', absl::SkipEmpty());
    ASSERT_GE(lines.size(), 2u);
    EXPECT_EQ(lines.front(), absl::StrCat("rank ", rank, " started"));
    EXPECT_EQ(lines.back(), absl::StrCat("rank ", rank, " done"));
    for (size_t i = 1; i + 1 < lines.size(); ++i) {
      ASSERT_EQ(lines[i], absl::StrCat(rank, ": ", i)) << "rank " << rank << ": lost or doubled";
    }
  }
}

// mpirun runs in node 0's container and started its daemon on node 1 through both agents
// (drover-rsh and the exec relay): a restart of either agent leaves the job running, and
// the ranks still talk to each other afterwards.
TEST_F(DistributedE2eTest, ATwoNodeMpiJobRunsOnWhileTheAgentOfEitherNodeRestarts) {
  StartCluster(2);
  for (int node : {1, 0}) {
    SCOPED_TRACE(absl::StrCat("the agent of node ", node, " restarts"));
    std::string id = Submit(Script(Distributed(v1::JobSpec::MPI, 2, 1), "mpi_allreduce.py",
                                   {"--wait-for", "/job/go"}));
    WaitFor(id, v1::JobStatus::RUNNING);
    absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline &&
           !(absl::StrContains(Logs(id, 0), "0: 5") && absl::StrContains(Logs(id, 1), "1: 5"))) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    ASSERT_THAT(Logs(id, 1), HasSubstr("1: 5")) << "rank 1 runs on node 1" << AgentLogs();
    RestartAgentThenLetEnd(id, node);
    for (int rank = 0; rank < 2; ++rank) {
      std::vector<std::string> lines = absl::StrSplit(Logs(id, rank), '\n', absl::SkipEmpty());
      ASSERT_GE(lines.size(), 6u) << Logs(id, rank);
      EXPECT_EQ(lines.back(), absl::StrCat("rank ", rank, " of 2: allreduce sum=3 expected=3 ok"));
      for (size_t i = 0; i + 1 < lines.size(); ++i) {
        ASSERT_EQ(lines[i], absl::StrCat(rank, ": ", i + 1)) << "rank " << rank << ": lost or doubled";
      }
    }
  }
}

TEST_F(DistributedE2eTest, ANodeWhoseAgentRestartedBeforeStartPreparesAgainAndTheGangStarts) {
  StartCluster(2);
  // Node 0 stays silent (stopped, within its lease) while node 1 prepares and waits for
  // START; node 1's agent dies; node 0 goes on, so droverd sends START while node 1 has no
  // agent. The next agent of node 1 prepares the attempt again and is sent START again.
  agents_[0]->Signal(SIGSTOP);
  std::string id = Submit(Shell(Distributed(v1::JobSpec::PYTORCH, 2, 1), "echo rank $RANK ran"));
  std::string report = absl::StrCat(work_dirs_[1], "/records/", id, "-1/report.pb");
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!std::filesystem::exists(report) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(std::filesystem::exists(report)) << "node 1 never got READY" << AgentLogs();
  KillAgent(1);
  agents_[0]->Signal(SIGCONT);
  deadline = absl::Now() + absl::Seconds(30);
  while (Get(id).status().state() == v1::JobStatus::PREPARING && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_NE(Get(id).status().state(), v1::JobStatus::PREPARING) << "node 0 never got READY";
  StartAgent(1);
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(job.status().attempt(), 1);
  EXPECT_EQ(Logs(id, 0), "rank 0 ran\n");
  EXPECT_EQ(Logs(id, 1), "rank 1 ran\n");
  EXPECT_THAT(AgentLogs(), HasSubstr("event=attempt_prepared_again"));
}

}  // namespace
}  // namespace drover
