// Distributed jobs end to end: droverd on a bridge, one drover-agent per test host (network
// namespaces, deploy/testhosts.sh), real runc containers, real Open MPI (mpirun inside node
// rank 0's container, remote daemons through drover-rsh and the agents, no ssh) and real
// torch.distributed over gloo. Checks what a user sees: results on every rank, the whole
// gang placed and torn down together, the failing rank named, and nothing left behind on
// any node. Root only.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "agent/attempt_record.h"
#include "agent/exec_relay.h"
#include "agent/peer_tls.h"
#include "common/pki/pki.h"
#include "common/safe_open.h"
#include "tests/e2e/distributed_fixture.h"
#include "tests/testing/test_tls.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;

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
  // Only the attempt's own agents, over mutual TLS with their node certificates and with
  // its secret, may run commands in its containers.
  {
    std::string secret;
    for (const agent::AttemptRecord& record : agent::LoadAttemptRecords(work_dirs_[0])) {
      if (record.assignment.attempt().job_id() == id) secret = record.assignment.exec_token();
    }
    ASSERT_FALSE(secret.empty());
    // Node certificates of the cluster CA: `intruder` is a node of the cluster, not of the
    // attempt; and one of another CA that names a node of the attempt.
    auto files = [&](const std::string& node, const pki::KeyAndCertificate& ca,
                     const std::string& file) {
      auto issued = testing::IssueNodeCertificate(ca, node);
      EXPECT_TRUE(issued.ok()) << issued.status();
      const std::string base = absl::StrCat(dir_.path(), "/", file);
      std::ofstream(base + ".crt") << issued->certificate_pem;
      std::ofstream(base + ".key") << issued->key_pem;
      std::ofstream(base + ".ca") << ca.certificate_pem;
      return agent::NodeCertificateFiles{.certificate_file = base + ".crt",
                                         .key_file = base + ".key",
                                         .ca_file = base + ".ca",
                                         .managed = false};
    };
    auto other_ca = pki::CreateCertificateAuthority("other-ca", absl::Hours(24), absl::Now());
    ASSERT_TRUE(other_ca.ok());
    agent::PeerTls intruder(files("intruder", testing::TestCaKeyAndCertificate(), "intruder"));
    agent::PeerTls forged(files(hosts_->name(0), *other_ca, "forged"));
    grpc::ClientContext context;
    v1::ListNodesResponse nodes;
    ASSERT_TRUE(admin_->ListNodes(&context, v1::ListNodesRequest(), &nodes).ok());
    for (const v1::Node& node : nodes.nodes()) {
      ASSERT_FALSE(node.peer_endpoint().empty()) << node.name();
      agent::PeerTls member(
          files(node.name(), testing::TestCaKeyAndCertificate(), "member-" + node.name()));
      // As the agents make them (agent/peer_tls.h), with `tls`.
      auto as = [&](const agent::PeerTls& tls) {
        return tls.Channel(node.peer_endpoint(), node.name());
      };
      auto exec = [&](std::shared_ptr<grpc::Channel> channel, int64_t epoch,
                      const std::string& token) {
        auto peer = v1::AgentPeerService::NewStub(channel);
        grpc::ClientContext call;
        call.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
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
      EXPECT_EQ(exec(grpc::CreateChannel(node.peer_endpoint(), grpc::InsecureChannelCredentials()),
                     1, secret).error_code(),
                grpc::StatusCode::UNAVAILABLE)
          << "plaintext, on " << node.name();
      grpc::SslCredentialsOptions no_certificate;
      no_certificate.pem_root_certs = testing::TestCaPem();
      auto no_client_certificate =
          grpc::CreateChannel(node.peer_endpoint(), grpc::SslCredentials(no_certificate));
      EXPECT_EQ(exec(no_client_certificate, 1, secret).error_code(),
                grpc::StatusCode::UNAVAILABLE)
          << "no client certificate, on " << node.name();
      EXPECT_EQ(exec(as(forged), 1, secret).error_code(),
                grpc::StatusCode::UNAVAILABLE)
          << "a certificate of another CA, on " << node.name();
      grpc::Status outsider = exec(as(intruder), 1, secret);
      EXPECT_EQ(outsider.error_code(), grpc::StatusCode::PERMISSION_DENIED)
          << "a node outside the attempt, with its secret, on " << node.name();
      EXPECT_THAT(outsider.error_message(), HasSubstr("node 'intruder' is not a node of job"));
      EXPECT_EQ(exec(as(member), 1, "not-the-secret").error_code(),
                grpc::StatusCode::PERMISSION_DENIED)
          << node.name();
      EXPECT_EQ(exec(as(member), 1, "").error_code(),
                grpc::StatusCode::PERMISSION_DENIED)
          << node.name();
      EXPECT_EQ(exec(as(member), 2, "not-the-secret").error_code(),
                grpc::StatusCode::NOT_FOUND)
          << "an attempt the node does not run, on " << node.name();
    }
    for (size_t k = 0; k < agents_.size(); ++k) {
      EXPECT_THAT(agents_[k]->ReadLog(), HasSubstr("caller=intruder")) << "logged on node " << k;
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

TEST_F(DistributedE2eTest, AnMpiJobRunsOnNodeCertificatesRenewedWhileTheAgentsRan) {
  // Each agent starts with a node certificate that ends 20 s from now; then a new key and
  // certificate replace the files, as a renewal writes them. The peer port and the exec
  // relay take them without a restart, or no remote MPI daemon could start: the old
  // certificates have expired by then, and either side refuses an expired one.
  const absl::Duration left = absl::Seconds(20);
  const absl::Time expiry = absl::Now() + left;
  auto write = [&](int k, absl::Time now, absl::Duration validity) {
    const std::string node = hosts_->name(k);
    absl::StatusOr<std::string> key = pki::GenerateKey();
    ASSERT_TRUE(key.ok());
    absl::StatusOr<std::string> certificate = pki::IssueCertificate(
        testing::TestCaKeyAndCertificate(), *key,
        {.common_name = node, .uris = {"drover-node://" + node}, .client = true,
         .validity = validity},
        now);
    ASSERT_TRUE(certificate.ok()) << certificate.status();
    const std::string base = absl::StrCat(dir_.path(), "/node-", k);
    ASSERT_TRUE(ReplaceFile(base + ".key", *key, 0600).ok());
    ASSERT_TRUE(ReplaceFile(base + ".crt", *certificate, 0600).ok());
  };
  extra_agent_args_ = [&](int k) -> std::vector<std::string> {
    write(k, expiry - absl::Hours(1), absl::Hours(1));
    const std::string base = absl::StrCat(dir_.path(), "/node-", k);
    return {"--node-cert", base + ".crt", "--node-key", base + ".key"};
  };
  StartCluster(2);
  absl::SleepFor(expiry - absl::Now() + absl::Seconds(1));  // the certificates' end
  for (int k = 0; k < 2; ++k) write(k, absl::Now(), absl::Hours(1));
  std::string id = Submit(Script(Distributed(v1::JobSpec::MPI, 2, 1), "mpi_allreduce.py"));
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));
  ASSERT_EQ(job.status().exits_size(), 2) << AgentLogs();
  EXPECT_EQ(Logs(id, 1), "rank 1 of 2: allreduce sum=3 expected=3 ok\n") << AgentLogs();
}

TEST_F(DistributedE2eTest, AJobFloodingItsRelaySocketGetsErrorsAndTheAgentServesOn) {
  StartCluster(2);
  // 1,500 connections to the relay of a one-node MPI job, held open.
  std::string id = Submit(Script(Distributed(v1::JobSpec::MPI, 1, 1), "relay_flood.py",
                                 {"--connections", "1500"}));
  v1::Job running = WaitFor(id, v1::JobStatus::RUNNING);
  ASSERT_EQ(running.status().nodes_size(), 1);
  int k = hosts_->name(0) == running.status().nodes(0) ? 0 : 1;
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (!absl::StrContains(Logs(id, 0), "held=") && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  const std::string line = Logs(id, 0);
  int held = -1, refused = -1, failed = -1;
  ASSERT_EQ(sscanf(line.c_str(), "held=%d refused=%d failed=%d", &held, &refused, &failed), 3)
      << line << Logs(id, 0, v1::STDERR) << AgentLogs();
  EXPECT_EQ(held, agent::kMaxRelayConnections) << line;
  EXPECT_GT(refused, 500) << line << " (the job's own file limit ends the flood early)";
  // The agent holds a thread per served connection, not per connection.
  std::string status = testing::ReadWholeFile(absl::StrCat("/proc/", agents_[k]->pid(), "/status"));
  int threads = 0;
  for (absl::string_view l : absl::StrSplit(status, '\n')) {
    if (absl::ConsumePrefix(&l, "Threads:")) threads = std::atoi(std::string(l).c_str());
  }
  EXPECT_GT(threads, 0);
  EXPECT_LT(threads, agent::kMaxRelayConnections + 100) << "agent threads during the flood";
  EXPECT_THAT(agents_[k]->ReadLog(), HasSubstr("event=exec_relay_connection_refused"));
  std::ofstream(absl::StrCat(work_dirs_[k], "/attempts/", id, "-1/job/go")) << "go\n";
  WaitFor(id, v1::JobStatus::COMPLETED);
  // The agents serve MPI launches on as before.
  std::string next = Submit(Script(Distributed(v1::JobSpec::MPI, 2, 1), "mpi_allreduce.py"));
  WaitFor(next, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Logs(next, 1), "rank 1 of 2: allreduce sum=3 expected=3 ok\n") << AgentLogs();
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
