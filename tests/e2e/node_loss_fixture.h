// The fixture of the lost-node tests (issue 7): droverd on a bridge with a short lease, a
// drover-agent on each test host (network namespaces), real runc containers; a node cut off
// with iptables (Cutoff) or stopped with SIGSTOP (Stopped), droverd killed and restarted, what
// clients were told recorded (JobHistory). Tests: node_loss_e2e_test.cc (partitions, gangs)
// and node_loss_pause_e2e_test.cc (mass loss, administrators, droverd restarts). Root only.
#ifndef DROVER_TESTS_E2E_NODE_LOSS_FIXTURE_H_
#define DROVER_TESTS_E2E_NODE_LOSS_FIXTURE_H_
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>
#include <unistd.h>

#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/archive/snapshot.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/job_history.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"
#include "tests/testing/test_hosts.h"

namespace drover {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kLease = absl::Seconds(6);
const std::vector<std::string> kLeaseFlags = {"--heartbeat-interval", "500ms", "--node-lease",
                                              "6s"};

// Cuts test host `host` off from `address` (droverd): inside the host's namespace every
// packet to or from that address is dropped, as when a route or a switch port fails; the
// host still reaches the other hosts. The rules go with the object, also when a test fails.
class Cutoff {
 public:
  static absl::StatusOr<std::unique_ptr<Cutoff>> Start(const std::string& host,
                                                       const std::string& address) {
    std::unique_ptr<Cutoff> cut(new Cutoff(host, address));
    if (absl::Status s = cut->Rules("-A"); !s.ok()) return s;
    cut->active_ = true;
    return cut;
  }
  ~Cutoff() { EXPECT_TRUE(Heal().ok()); }

  // Removes the rules (once).
  absl::Status Heal() {
    if (!active_) return absl::OkStatus();
    active_ = false;
    return Rules("-D");
  }

 private:
  Cutoff(std::string host, std::string address)
      : host_(std::move(host)), address_(std::move(address)) {}

  absl::Status Rules(const char* op) {
    for (auto [chain, direction] : {std::pair{"OUTPUT", "-d"}, std::pair{"INPUT", "-s"}}) {
      auto result =
          testing::RunCommand({"/usr/sbin/ip", "netns", "exec", host_, "/usr/sbin/iptables", "-w",
                               op, chain, direction, address_, "-j", "DROP"});
      if (!result.ok()) return result.status();
      if (result->exit_code != 0) {
        return absl::InternalError(
            absl::StrCat("iptables ", op, " ", chain, " in ", host_, ": ", result->err));
      }
    }
    return absl::OkStatus();
  }

  std::string host_;
  std::string address_;
  bool active_ = false;
};

// Stops a process with SIGSTOP; SIGCONT when resumed or destroyed (also when a test fails).
class Stopped {
 public:
  explicit Stopped(testing::AgentProcess* agent) : agent_(agent) { agent_->Signal(SIGSTOP); }
  ~Stopped() { Resume(); }
  void Resume() {
    if (agent_ != nullptr) agent_->Signal(SIGCONT);
    agent_ = nullptr;
  }

 private:
  testing::AgentProcess* agent_;
};

class NodeLossE2eTest : public testing::LocalClusterTest {
 protected:
  // `count` test hosts, droverd on their bridge (a fixed port, so that it can be restarted)
  // with a short lease and `flags`, an agent on each offering 2 cpus.
  void StartCluster(int count, std::vector<std::string> flags = {}) {
    std::vector<std::string> droverd_flags = kLeaseFlags;
    droverd_flags.insert(droverd_flags.end(), flags.begin(), flags.end());
    LocalClusterTest::StartCluster({.agents = count,
                                    .test_hosts = true,
                                    .droverd_flags = droverd_flags,
                                    .datastore_root = false,
                                    .droverd_metrics = true,
                                    .wait_until_ready = false});
    if (HasFatalFailure()) return;
    history_ = std::make_unique<testing::JobHistory>(channel_);
    WaitForReadyNodes(count);
  }

  void TearDown() override {
    history_.reset();
    LocalClusterTest::TearDown();
  }

  std::string Containers(int k) const { return LocalClusterTest::Containers(work_dirs_[k]); }
  // Whether host k still has a container of attempt `epoch` of job `id`.
  bool HasContainer(int k, const std::string& id, int epoch) const {
    return absl::StrContains(Containers(k), absl::StrCat("drover-", id, "-", epoch, "-"));
  }

  // The host a node name belongs to.
  int HostOf(const std::string& node) const {
    for (int k = 0; k < hosts_->size(); ++k) {
      if (hosts_->name(k) == node) return k;
    }
    ADD_FAILURE() << "no test host " << node;
    return 0;
  }

  // A one-node job printing "attempt A line I" for I in 1..lines, half a second apart,
  // then "attempt A done".
  static v1::JobSpec Counting(int lines, int max_retries, double cpus = 1) {
    v1::JobSpec spec;
    spec.set_entry_script("bin/sh");
    spec.add_arguments()->set_value("-c");
    spec.add_arguments()->set_value(absl::StrCat(
        "i=1; while [ $i -le ", lines, " ]; do echo \"attempt $DROVER_ATTEMPT line $i\"; ",
        "i=$((i+1)); sleep 0.5; done; echo \"attempt $DROVER_ATTEMPT done\""));
    spec.set_max_retries(max_retries);
    spec.mutable_resources()->set_cpus(cpus);
    spec.mutable_resources()->set_memory_mib(256);
    return spec;
  }
  // What Counting prints in attempt `attempt`.
  static std::string CountingOutput(int lines, int attempt) {
    std::string out;
    for (int i = 1; i <= lines; ++i) absl::StrAppend(&out, "attempt ", attempt, " line ", i, "\n");
    return absl::StrCat(out, "attempt ", attempt, " done\n");
  }

  // Submits and watches the job for the history.
  std::string Submit(const v1::JobSpec& spec) {
    std::string id = jobs_->Submit(spec);
    history_->Watch(id);
    return id;
  }

  v1::Job Get(const std::string& id) {
    v1::Job job = jobs_->Get(id);
    history_->Record(job);
    return job;
  }

  // Polls the job (recording what it reads) until `done` holds; a test failure naming
  // `what` after `timeout`.
  v1::Job WaitUntil(const std::string& id, const std::function<bool(const v1::Job&)>& done,
                    const std::string& what, absl::Duration timeout = absl::Seconds(90)) {
    absl::Time deadline = absl::Now() + timeout;
    v1::Job job = Get(id);
    while (!done(job) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(100));
      job = Get(id);
    }
    EXPECT_TRUE(done(job)) << id << " never got to " << what << "; it is "
                           << job.status().DebugString() << AgentLogs();
    return job;
  }
  v1::Job WaitFor(const std::string& id, v1::JobStatus::State state, int attempt,
                  absl::Duration timeout = absl::Seconds(90)) {
    return WaitUntil(
        id,
        [&](const v1::Job& job) {
          return job.status().state() == state && job.status().attempt() == attempt;
        },
        absl::StrCat(v1::JobStatus::State_Name(state), " in attempt ", attempt), timeout);
  }

  // Everything of `stream` of `rank` droverd stored for attempt `attempt` (0: current).
  std::string Logs(const std::string& id, int rank, int64_t attempt = 0,
                   v1::LogStream stream = v1::STDOUT) {
    grpc::ClientContext context;
    v1::StreamLogsRequest request;
    request.set_job_id(id);
    request.set_attempt(attempt);
    request.add_ranks(rank);
    request.add_streams(stream);
    auto reader = jobs_->stub().StreamLogs(&context, request);
    std::string out;
    v1::StreamLogsResponse response;
    while (reader->Read(&response)) out += response.data();
    grpc::Status status = reader->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return out;
  }

  // Polls until `condition` holds; how long that took, or a test failure after `timeout`.
  // The verdict is the last evaluation's: evaluating again could see a passing moment of
  // the system (`runc list` while the agent deletes a container) and fail what held.
  static absl::Duration Eventually(const std::function<bool()>& condition, absl::Duration timeout,
                                   const std::string& what) {
    absl::Time start = absl::Now();
    bool held = condition();
    while (!held && absl::Now() - start < timeout) {
      absl::SleepFor(absl::Milliseconds(50));
      held = condition();
    }
    EXPECT_TRUE(held) << what << " within " << timeout;
    return absl::Now() - start;
  }

  v1::ListNodesResponse Nodes() {
    grpc::ClientContext context;
    v1::ListNodesResponse response;
    grpc::Status status = admin_->ListNodes(&context, v1::ListNodesRequest(), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
  v1::Node::State NodeState(int k) {
    v1::ListNodesResponse nodes = Nodes();
    for (const v1::Node& node : nodes.nodes()) {
      if (node.name() == hosts_->name(k)) return node.state();
    }
    return v1::Node::STATE_UNSPECIFIED;
  }

  void NodeAdmin(int k, bool cordon) {
    grpc::ClientContext context;
    v1::NodeRequest request;
    request.set_name(hosts_->name(k));
    v1::Node node;
    grpc::Status status = cordon ? admin_->CordonNode(&context, request, &node)
                                 : admin_->UncordonNode(&context, request, &node);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // droverd's Prometheus page (scraped with Python's urllib, as agent_e2e_test does).
  std::string Metrics() {
    auto page = testing::RunCommand(
        {"/usr/bin/python3", "-c",
         absl::StrCat("import urllib.request; print(urllib.request.urlopen('http://", metrics_,
                      "/metrics').read().decode())")});
    return page.ok() ? page->out : "";
  }

  // The drover CLI against this cluster's droverd.
  testing::CommandResult Drover(const std::vector<std::string>& args) { return RunCli(args); }

  // SIGKILLs droverd and starts it again on the same state folder and address.
  void KillAndRestartDroverd() { RestartDroverd(SIGKILL); }

  // The node list as soon as the restarted droverd answers.
  v1::ListNodesResponse FirstNodes() {
    v1::ListNodesResponse response;
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    grpc::Status status;
    do {
      grpc::ClientContext context;
      context.set_wait_for_ready(true);
      context.set_deadline(absl::ToChronoTime(deadline));
      status = admin_->ListNodes(&context, v1::ListNodesRequest(), &response);
    } while (!status.ok() && absl::Now() < deadline);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  void ExpectValidHistory(const std::string& id) { EXPECT_EQ(history_->Check(id), "") << id; }

  void LoseOneNodeOfAGang(v1::JobSpec::DistributedBackend backend);

  // Starts 3 test hosts with node-loss handling paused beyond half of them, and on each a
  // Counting job of `lines[j]` lines (max_retries 1) taking the whole node; returns the
  // jobs, RUNNING, and in `hosts` the host each runs on.
  std::vector<std::string> OneJobPerNode(const std::vector<int>& lines, std::vector<int>* hosts) {
    StartCluster(3, {"--node-loss-pause-fraction", "0.5"});
    std::vector<std::string> ids;
    for (int n : lines) ids.push_back(Submit(Counting(n, /*max_retries=*/1, /*cpus=*/2)));
    for (const std::string& id : ids) {
      hosts->push_back(HostOf(WaitFor(id, v1::JobStatus::RUNNING, 1).status().nodes(0)));
    }
    return ids;
  }

  // Starts 2 test hosts, and on host 0 two Counting jobs of `lines` lines: one with
  // max_retries 1, one without; returns them, RUNNING.
  std::pair<std::string, std::string> TwoJobsOnHost0(int lines) {
    StartCluster(2);
    NodeAdmin(1, /*cordon=*/true);
    std::string retried = Submit(Counting(lines, /*max_retries=*/1));
    std::string single = Submit(Counting(lines, /*max_retries=*/0));
    for (const std::string& id : {retried, single}) {
      EXPECT_EQ(WaitFor(id, v1::JobStatus::RUNNING, 1).status().nodes(0), hosts_->name(0));
    }
    NodeAdmin(1, /*cordon=*/false);
    return {retried, single};
  }

  // Waits until job `id` FAILED because host k was lost, and returns how long that took.
  absl::Duration WaitForNodeLost(const std::string& id, int k) {
    absl::Time start = absl::Now();
    v1::Job failed = WaitUntil(
        id, [](const v1::Job& job) { return job.status().state() == v1::JobStatus::FAILED; },
        "FAILED");
    EXPECT_EQ(failed.status().cause(), v1::JobStatus::NODE_LOST);
    EXPECT_THAT(failed.status().message(), HasSubstr(absl::StrCat("node ", hosts_->name(k))));
    return absl::Now() - start;
  }

  // For two leases: node-loss handling stays paused and each job of `ids` RUNNING in its
  // first attempt (its silent node's attempt is kept, not requeued).
  void ExpectKeptWhilePaused(const std::vector<std::string>& ids) {
    absl::Time until = absl::Now() + 2 * kLease;
    while (absl::Now() < until) {
      ASSERT_TRUE(Nodes().node_loss().paused());
      for (const std::string& id : ids) {
        v1::Job job = Get(id);
        ASSERT_EQ(job.status().state(), v1::JobStatus::RUNNING) << job.status().DebugString();
        ASSERT_EQ(job.status().attempt(), 1);
      }
      absl::SleepFor(absl::Milliseconds(200));
    }
  }

  void WaitForPause() {
    Eventually([&] { return Nodes().node_loss().paused(); }, kLease + absl::Seconds(20),
               "droverd pauses node-loss handling");
  }

  std::unique_ptr<testing::JobHistory> history_;
};

}  // namespace drover

#endif  // DROVER_TESTS_E2E_NODE_LOSS_FIXTURE_H_
