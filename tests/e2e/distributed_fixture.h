// The fixture of the distributed end-to-end tests: test hosts (network namespaces on a
// bridge, deploy/testhosts.sh), droverd on the bridge, one drover-agent per host offering 2
// cpus, and the steps the tests share (kill and restart an agent, jobs from shell commands
// or tests/e2e/jobs scripts, logs, nothing left behind at the end). Root only.
#ifndef DROVER_TESTS_E2E_DISTRIBUTED_FIXTURE_H_
#define DROVER_TESTS_E2E_DISTRIBUTED_FIXTURE_H_

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
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
        dir_.path() + "/state",
        {"--listen", hosts_->bridge_address() + ":0", "--datastore-root", dir_.path()});
    ASSERT_TRUE(droverd.ok()) << droverd.status();
    droverd_ = *std::move(droverd);
    Connect();
    for (int k = 0; k < count; ++k) {
      agents_.emplace_back();
      work_dirs_.push_back(absl::StrCat(dir_.path(), "/agent-", k));
      StartAgent(k);
    }
    absl::Status ready = testing::WaitForReadyNodes(*admin_, count, absl::Seconds(30));
    ASSERT_TRUE(ready.ok()) << ready << AgentLogs();
  }

  // (Re)starts the agent of host k, with the failpoints (common/failpoint.h) that
  // `failpoints_[k]` names armed.
  void StartAgent(int k) {
    if (agents_[k] != nullptr) connections_before_[k] = Connections(agents_[k]->ReadLog());
    std::vector<std::string> prefix = hosts_->ExecPrefix(k);
    if (auto armed = failpoints_.find(k); armed != failpoints_.end() && !armed->second.empty()) {
      prefix.insert(prefix.end(), {"/usr/bin/env", "DROVER_FAILPOINTS=" + armed->second});
    }
    std::vector<std::string> args = {"--address", hosts_->address(k), "--cpus", "2",
                                      "--memory", "4Gi", "--datastore-root", dir_.path()};
    if (extra_agent_args_ != nullptr) {
      for (std::string& arg : extra_agent_args_(k)) args.push_back(std::move(arg));
    }
    auto agent = testing::AgentProcess::Start(droverd_->address(), hosts_->name(k), work_dirs_[k],
                                              args, prefix);
    ASSERT_TRUE(agent.ok()) << agent.status();
    agents_[k] = *std::move(agent);
  }

  // A new channel to droverd and the clients on it.
  void Connect() {
    channel_ = testing::TlsChannel(droverd_->address());
    jobs_ = std::make_unique<testing::JobClient>(channel_);
    blobs_ = v1::BlobService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }

  // How often an agent's log says it connected to droverd.
  static size_t Connections(const std::string& log) {
    size_t count = 0;
    for (size_t at = log.find("event=connected "); at != std::string::npos;
         at = log.find("event=connected ", at + 1)) {
      ++count;
    }
    return count;
  }

  // Waits until the agent process of host k started last has connected to droverd (its
  // log, shared with the agent processes before it, says so once more than before).
  void WaitForAgentConnected(int k) {
    auto connections = [&] { return Connections(agents_[k]->ReadLog()); };
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (connections() <= connections_before_[k] && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_GT(connections(), connections_before_[k]) << "the agent never connected" << AgentLogs();
  }

  // SIGKILLs droverd and starts it again on the same address and state (the agents
  // reconnect by themselves; the test's clients get a new channel, as a user's would after
  // a failed call).
  void RestartDroverd() {
    std::string address = droverd_->address();
    droverd_->Signal(SIGKILL);
    ASSERT_TRUE(droverd_->Wait(absl::Seconds(20)).ok());
    killed_logs_ += absl::StrCat("\n--- killed droverd:\n", droverd_->ReadLog());
    droverd_.reset();
    auto droverd = testing::DroverdProcess::Start(
        dir_.path() + "/state", {"--listen", address, "--datastore-root", dir_.path()});
    ASSERT_TRUE(droverd.ok()) << droverd.status();
    droverd_ = *std::move(droverd);
    Connect();
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
      EXPECT_THAT(mounts, ::testing::Not(::testing::HasSubstr(work_dirs_[k] + "/attempts")))
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
  std::map<int, std::string> failpoints_;  // by host: DROVER_FAILPOINTS of its agent
  // More flags for the agent of host k (for example its own --node-cert/--node-key).
  std::function<std::vector<std::string>(int k)> extra_agent_args_;
  std::map<int, size_t> connections_before_;  // by host: its log's connections at its start
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<testing::JobClient> jobs_;
  std::unique_ptr<v1::BlobService::Stub> blobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  int snapshots_ = 0;
};

}  // namespace drover

#endif  // DROVER_TESTS_E2E_DISTRIBUTED_FIXTURE_H_
