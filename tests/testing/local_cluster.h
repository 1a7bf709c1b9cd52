// The one local-cluster fixture of the end-to-end tests: droverd and N drover-agents as
// child processes (on this machine, or each on a test host: a network namespace on a
// bridge, test_hosts.h), real runc containers, the clients a test talks to droverd with,
// the steps tests share (stop, kill and restart droverd or an agent, wait for nodes and
// jobs, read logs, run the drover CLI) and, at TearDown, the checks that nothing is left
// behind: no mount of an agent's attempts, no container in its runc root, no cgroup of its
// containers, every agent gone within 20 s of SIGTERM. Root only (SetUp skips otherwise),
// but for a fixture of droverd alone that says it needs none. Used from the test's thread.
//
// A test fixture derives from LocalClusterTest, gives the options it needs to the
// constructor (SetUp starts that cluster) or to StartCluster (in its SetUp or in the test),
// and adds only the steps of its own subject. Starts that must fail stay direct
// DroverdProcess::Start calls: there the start is the subject.
#ifndef DROVER_TESTS_TESTING_LOCAL_CLUSTER_H_
#define DROVER_TESTS_TESTING_LOCAL_CLUSTER_H_

#include <grpcpp/channel.h>
#include <signal.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_hosts.h"

namespace drover::testing {

struct ClusterOptions {
  // How many agents StartCluster starts (0: droverd alone).
  int agents = 1;
  // Each agent on a test host of its own (its address given with --address, 2 cpus and
  // 4Gi offered), droverd on the hosts' bridge; otherwise all on 127.0.0.1 as nodes
  // "n1", "n2", ... The hosts are made unless the test made them already (hosts_).
  bool test_hosts = false;
  // With test_hosts: this many more hosts, with no agent (for servers the test starts on
  // them, hosts_->ExecPrefix(agents + i)).
  int extra_hosts = 0;
  // With test_hosts false here, an agent on a test host runs in the test's own mount
  // namespace (only its network is the host's): a new agent sees what a killed one
  // mounted, as on a real node.
  bool agent_mount_namespace = true;
  // More flags for droverd (beyond --listen, --state-dir and --datastore-root).
  std::vector<std::string> droverd_flags;
  // More flags for every agent, and for agent k alone.
  std::vector<std::string> agent_flags;
  std::function<std::vector<std::string>(int k)> agent_flags_of;
  // Added to every agent's environment ("NAME=VALUE").
  std::vector<std::string> agent_env;
  // Whose certificate droverd serves; with kOwnCa the test's clients trust droverd's own CA.
  DroverdProcess::Tls tls = DroverdProcess::Tls::kTestCa;
  // The folder of droverd's state (`<folder>/state`) and the agents' work folders (empty:
  // the test's folder, dir_); a test that starts several clusters in turn gives each its own.
  std::string folder;
  // Where droverd's log and address file go (empty: its state folder).
  std::string droverd_files_dir;
  // droverd and the agents get `--datastore-root` the test's folder.
  bool datastore_root = true;
  // droverd serves /metrics on a free loopback port (metrics_).
  bool droverd_metrics = false;
  // StartCluster waits until droverd lists every agent's node READY.
  bool wait_until_ready = true;
  // How long WaitFor waits for a job by default.
  absl::Duration job_timeout = absl::Seconds(60);
};

class LocalClusterTest : public ::testing::Test {
 protected:
  // A fixture of droverd alone (agents = 0) needs no root: it passes false.
  explicit LocalClusterTest(bool needs_root = true) : needs_root_(needs_root) {}
  // SetUp starts the cluster of `options` itself.
  explicit LocalClusterTest(ClusterOptions options, bool needs_root = true)
      : needs_root_(needs_root), start_(std::move(options)) {}

  // Skips the test unless it runs as root (when the fixture needs root); then starts the
  // cluster of the constructor's options, when it was given some.
  void SetUp() override;
  // Checks that nothing is left behind (ExpectNothingLeftBehind) and stops everything.
  void TearDown() override;

  // droverd on a fixed port (kept across restarts) and `options.agents` agents; fails the
  // test (fatally) when one does not start or, with `wait_until_ready`, its node does not
  // become READY within 30 s.
  void StartCluster(ClusterOptions options = {});
  // Checks that nothing is left behind (ExpectNothingLeftBehind) and stops the cluster, so
  // that StartCluster may start another.
  void StopCluster();

  // droverd with the cluster's flags plus `more_flags`, on the cluster's address and state;
  // connects the clients (ConnectClients).
  void StartDroverd(const std::vector<std::string>& more_flags = {});
  // Sends `signal` to droverd and waits up to 20 s until it is gone; its log is kept for
  // AgentLogs. Returns how long it took.
  absl::Duration StopDroverd(int signal);
  // StopDroverd(signal), then StartDroverd(): the agents reconnect by themselves; the
  // test's clients get a new channel, as a user's would after a failed call.
  void RestartDroverd(int signal = SIGKILL);
  // A new channel to droverd and the clients on it.
  void ConnectClients();

  // One more node, not started (StartAgent starts it); its index.
  int AddNode();
  // (Re)starts the agent of node k with the cluster's flags plus `more_flags`, with the
  // failpoints (common/failpoint.h) that `failpoints_[k]` names armed. Does not wait.
  void StartAgent(int k, const std::vector<std::string>& more_flags = {});
  // Sends `signal` to agent k and waits up to 20 s until it is gone; its log is kept for
  // AgentLogs. Returns how long it took.
  absl::Duration StopAgent(int k, int signal);
  void KillAgent(int k) { StopAgent(k, SIGKILL); }
  // Fails the test (fatally) unless droverd lists `count` READY nodes within `timeout`.
  void WaitForReadyNodes(int count, absl::Duration timeout = absl::Seconds(30));
  // Waits (30 s) until the agent of node k started last has connected to droverd: its log,
  // shared with the agents of k before it, says so once more than before.
  void WaitForAgentConnected(int k);

  // Node k's name and its agent's work folder.
  std::string NodeName(int k) const;
  const std::string& work(int k = 0) const { return work_dirs_[k]; }
  testing::AgentProcess* agent(int k = 0) const { return agents_[k].get(); }
  // droverd's log, the logs of the daemons stopped before, and every agent's log.
  std::string AgentLogs() const;

  // A job running `script` with /bin/sh in the host image: `processes` ranks, 1 cpu and
  // 512 MiB.
  static v1::JobSpec Shell(const std::string& script, int processes = 1);
  // `spec` running `command` with /bin/sh.
  static v1::JobSpec Shell(v1::JobSpec spec, const std::string& command);

  std::string Submit(const v1::JobSpec& spec) { return jobs_->Submit(spec); }
  v1::Job Get(const std::string& id) { return jobs_->Get(id); }
  // Polls until the job is in `state` (by default within the options' job_timeout); on
  // failure the test fails with rank 0's stderr and the daemons' logs.
  v1::Job WaitFor(const std::string& id, v1::JobStatus::State state,
                  absl::Duration timeout = absl::ZeroDuration());
  // Everything a rank (-1: every rank) wrote to a stream, as droverd stored it.
  std::string Logs(const std::string& id, int rank, v1::LogStream stream = v1::STDOUT) {
    return jobs_->Logs(id, rank, stream);
  }
  // A blob's bytes ("" and a test failure when it cannot be read).
  std::string Download(const std::string& digest);
  // Uploads a file as a blob; its digest ("" and a test failure on error).
  std::string UploadFile(const std::string& path);
  // Uploads a snapshot of `folder`; its digest.
  std::string Snapshot(const std::string& folder);
  // Cancels the job; fails the test when droverd refuses.
  void Cancel(const std::string& id);
  // Registers a HOSTPATH datastore at `root` that jobs may write to.
  void PutHostpathDatastore(const std::string& name, const std::string& root);

  // The drover CLI built with the tests, with `--server` droverd and `--ca` the CA it
  // trusts, then `args`; `env` as for RunCommand (the test admin token unless it sets
  // DROVER_TOKEN).
  CommandResult RunCli(const std::vector<std::string>& args,
                       const std::vector<std::string>& env = {}, const std::string& input = "");

  // The containers runc knows in an agent's work folder, one id per line.
  static std::string Containers(const std::string& work);
  // The checks TearDown makes (once); stops the agents (SIGCONT first, for one a test
  // stopped). A fixture with checks of its own that must run once the agents are gone
  // calls it in its TearDown before them.
  void ExpectNothingLeftBehind();

  TempDir dir_;
  ClusterOptions options_;
  std::string listen_;   // droverd's address: "IP:PORT"
  std::string metrics_;  // droverd's /metrics address, with droverd_metrics
  std::unique_ptr<TestHosts> hosts_;
  std::unique_ptr<DroverdProcess> droverd_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
  std::vector<std::string> work_dirs_;
  std::map<int, std::string> failpoints_;  // by node: DROVER_FAILPOINTS of its agent
  std::string stopped_logs_;               // the logs of daemons stopped before
  std::map<int, size_t> connections_before_;  // by node: its log's connections at its start
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<JobClient> jobs_;
  std::unique_ptr<v1::BlobService::Stub> blobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;

 private:
  const bool needs_root_;
  std::optional<ClusterOptions> start_;  // what SetUp starts
  std::string folder_;  // the options' folder, or dir_'s
  int snapshots_ = 0;
  bool checked_ = false;  // ExpectNothingLeftBehind ran
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_LOCAL_CLUSTER_H_
