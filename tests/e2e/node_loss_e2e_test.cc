// Lost nodes end to end (issue 7, promises 3 and 4): droverd on a bridge with a short lease,
// a drover-agent on each test host (network namespaces), real runc containers. A node is cut
// off from droverd with iptables rules inside its namespace (for less and for more than the
// lease), its agent is stopped with SIGSTOP, or droverd is killed and restarted without it.
// What clients were told is recorded (JobHistory) and checked afterwards: a valid history,
// the right attempt completing exactly once, its logs complete, nothing of a stale attempt
// left running once its node is back. Root only.
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
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"
#include "tests/testing/test_hosts.h"

namespace drover {
namespace {

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

class NodeLossE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "test hosts and runc need root";
  }

  // `count` test hosts, droverd on their bridge (a fixed port, so that it can be restarted)
  // with a short lease and `flags`, an agent on each offering 2 cpus.
  void StartCluster(int count, std::vector<std::string> flags = {}) {
    auto hosts = testing::TestHosts::Create(count);
    ASSERT_TRUE(hosts.ok()) << hosts.status();
    hosts_ = *std::move(hosts);
    listen_ = absl::StrCat(hosts_->bridge_address(), ":", testing::FreeLoopbackPort());
    metrics_ = absl::StrCat("127.0.0.1:", testing::FreeLoopbackPort());
    droverd_flags_ = kLeaseFlags;
    droverd_flags_.insert(droverd_flags_.end(),
                          {"--listen", listen_, "--metrics-listen", metrics_});
    droverd_flags_.insert(droverd_flags_.end(), flags.begin(), flags.end());
    StartDroverd();
    channel_ = testing::TlsChannel(listen_);
    jobs_ = std::make_unique<testing::JobClient>(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
    blobs_ = v1::BlobService::NewStub(channel_);
    history_ = std::make_unique<testing::JobHistory>(channel_);
    agents_.resize(count);
    for (int k = 0; k < count; ++k) {
      work_dirs_.push_back(absl::StrCat(dir_.path(), "/agent-", k));
      StartAgent(k);
    }
    absl::Status ready = testing::WaitForReadyNodes(*admin_, count, absl::Seconds(30));
    ASSERT_TRUE(ready.ok()) << ready << AgentLogs();
  }

  void StartDroverd() {
    auto droverd = testing::DroverdProcess::Start(dir_.path() + "/state", droverd_flags_);
    ASSERT_TRUE(droverd.ok()) << droverd.status();
    droverd_ = *std::move(droverd);
  }

  void StartAgent(int k) {
    auto agent = testing::AgentProcess::Start(
        listen_, hosts_->name(k), work_dirs_[k],
        {"--address", hosts_->address(k), "--cpus", "2", "--memory", "4Gi"}, hosts_->ExecPrefix(k));
    ASSERT_TRUE(agent.ok()) << agent.status();
    agents_[k] = *std::move(agent);
  }

  void TearDown() override {
    if (hosts_ == nullptr) return;
    history_.reset();
    agents_.clear();  // SIGTERM: each agent stops what still runs
    for (const std::string& work : work_dirs_) {
      std::string left = Containers(work);
      EXPECT_EQ(left, "") << work;
      // A container a SIGKILLed agent left: gone with the test all the same.
      for (absl::string_view id : absl::StrSplit(left, '\n', absl::SkipEmpty())) {
        (void)testing::RunCommand(
            {"/usr/sbin/runc", "--root", work + "/runc", "delete", "--force", std::string(id)});
      }
    }
    droverd_.reset();
    hosts_.reset();
  }

  // The containers runc knows in an agent's work folder, one id per line.
  static std::string Containers(const std::string& work) {
    auto listed = testing::RunCommand({"/usr/sbin/runc", "--root", work + "/runc", "list", "-q"});
    return listed.ok() ? listed->out
                       : "runc list failed: " + std::string(listed.status().message());
  }
  std::string Containers(int k) const { return Containers(work_dirs_[k]); }
  // Whether host k still has a container of attempt `epoch` of job `id`.
  bool HasContainer(int k, const std::string& id, int epoch) const {
    return absl::StrContains(Containers(k), absl::StrCat("drover-", id, "-", epoch, "-"));
  }

  std::string AgentLogs() {
    std::string out = absl::StrCat("\n--- droverd:\n", droverd_ ? droverd_->ReadLog() : "");
    for (size_t k = 0; k < agents_.size(); ++k) {
      if (agents_[k] != nullptr) {
        absl::StrAppend(&out, "\n--- agent ", hosts_->name(k), " (", agents_[k]->Describe(),
                        "):\n", agents_[k]->ReadLog());
      }
    }
    return out;
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

  std::string Snapshot(const std::string& folder) {
    auto snapshot =
        archive::BuildSnapshot(folder, {.output_path = absl::StrCat(dir_.path(), "/snapshot.tar")});
    EXPECT_TRUE(snapshot.ok()) << snapshot.status();
    if (!snapshot.ok()) return "";
    absl::StatusOr<std::string> digest = testing::UploadBlobFile(*blobs_, snapshot->tar_path);
    EXPECT_TRUE(digest.ok()) << digest.status();
    return digest.ok() ? *digest : "";
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
  testing::CommandResult Drover(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {DROVER_CLI_PATH, "--server", listen_, "--ca",
                                     testing::TestCaFile()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto result = testing::RunCommand(argv);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult();
  }

  // SIGKILLs droverd and starts it again on the same state folder and address.
  void KillAndRestartDroverd() {
    droverd_->Signal(SIGKILL);
    ASSERT_TRUE(droverd_->Wait(absl::Seconds(10)).ok());
    StartDroverd();
  }

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

  testing::TempDir dir_;
  std::unique_ptr<testing::TestHosts> hosts_;
  std::string listen_;
  std::string metrics_;
  std::vector<std::string> droverd_flags_;
  std::unique_ptr<testing::DroverdProcess> droverd_;
  std::vector<std::unique_ptr<testing::AgentProcess>> agents_;
  std::vector<std::string> work_dirs_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<testing::JobClient> jobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::unique_ptr<v1::BlobService::Stub> blobs_;
  std::unique_ptr<testing::JobHistory> history_;
};

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

TEST_F(NodeLossE2eTest, PytorchGangLosingOneNodeIsRequeuedWholeWithoutItsOldRanks) {
  LoseOneNodeOfAGang(v1::JobSpec::PYTORCH);
}

TEST_F(NodeLossE2eTest, MpiGangLosingOneNodeIsRequeuedWholeWithoutItsOldRanks) {
  LoseOneNodeOfAGang(v1::JobSpec::MPI);
}

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

  droverd_->Signal(SIGKILL);
  ASSERT_TRUE(droverd_->Wait(absl::Seconds(10)).ok());
  agents_[0]->Signal(SIGKILL);  // host 0 is gone for good; its containers stay behind
  ASSERT_TRUE(agents_[0]->Wait(absl::Seconds(10)).ok());
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
