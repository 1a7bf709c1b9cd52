// The fixture of droverd's agent protocol tests (agent_protocol*_test.cc), in-process: a real
// Droverd and scripted agents speaking AgentService over gRPC. What runs on the node is the
// agent's business (tested with real runc in tests/agent and tests/e2e); here the agent's
// reports are written by hand, so every transition of droverd can be driven and checked.
// Used from one test thread.
#ifndef DROVER_TESTS_SERVER_AGENT_PROTOCOL_FIXTURE_H_
#define DROVER_TESTS_SERVER_AGENT_PROTOCOL_FIXTURE_H_

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/agent_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/droverd.h"
#include "tests/testing/cluster.h"
#include "tests/testing/scripted_agent.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"

// Named, not anonymous: every file's tests share the one fixture class.
namespace drover::server::agent_protocol {

using ::drover::testing::ScriptedAgent;

inline v1::RankExit Exit(int rank, int code, int signal = 0) {
  v1::RankExit e;
  e.set_rank(rank);
  e.set_exit_code(code);
  e.set_signal(signal);
  return e;
}

class AgentProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    DroverdOptions options{.listen = "127.0.0.1:0", .state_dir = dir_.path(),
       .bootstrap_admin_token = testing::TestAdminToken()};
    options.core.lease = lease_;
    options.core.stop_grace = absl::Seconds(1);
    options.core.launch_timeout = launch_timeout_;
    options.core.node_loss_pause_fraction = pause_fraction_;
    options.core.pip.add_find_links("/srv/wheels");
    options.core.pip.set_no_index(true);
    options.tick = absl::Milliseconds(50);
    auto started = Droverd::Start(options, *clock_);
    ASSERT_TRUE(started.ok()) << started.status();
    droverd_ = *std::move(started);
    channel_ = testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate());
    jobs_ = v1::JobService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
  }

  std::string Submit(double cpus = 1, const std::string& target = "", int node_count = 1) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    request.mutable_spec()->set_node_count(node_count);
    if (node_count > 1) request.mutable_spec()->set_distributed_backend(v1::JobSpec::PYTORCH);
    request.mutable_spec()->mutable_resources()->set_cpus(cpus);
    request.mutable_spec()->set_compute_target(target);
    v1::SubmitJobResponse response;
    grpc::Status status = jobs_->SubmitJob(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.job().id();
  }

  v1::Job Get(const std::string& id) {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id(id);
    v1::Job job;
    EXPECT_TRUE(jobs_->GetJob(&context, request, &job).ok());
    return job;
  }

  // Polls until the job is in `state` (the store is updated asynchronously).
  v1::Job WaitFor(const std::string& id, v1::JobStatus::State state) {
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    v1::Job job;
    while (absl::Now() < deadline) {
      job = Get(id);
      if (job.status().state() == state) return job;
      absl::SleepFor(absl::Milliseconds(10));
    }
    ADD_FAILURE() << id << " never reached " << v1::JobStatus::State_Name(state) << "; it is "
                  << job.DebugString();
    return job;
  }

  // The nodes as droverd's core loop holds them, read on the loop: after everything posted to
  // it before the call, such as the placement round a submit asked for before it answered.
  std::vector<v1::Node> Nodes() {
    grpc::ClientContext context;
    v1::ListNodesResponse response;
    EXPECT_TRUE(admin_->ListNodes(&context, v1::ListNodesRequest(), &response).ok());
    return {response.nodes().begin(), response.nodes().end()};
  }

  // Attempt 0: the current one.
  std::string Logs(const std::string& id, bool follow, v1::Job* last_job = nullptr,
                   int64_t attempt = 0) {
    grpc::ClientContext context;
    v1::StreamLogsRequest request;
    request.set_job_id(id);
    request.set_follow(follow);
    request.set_attempt(attempt);
    auto reader = jobs_->StreamLogs(&context, request);
    std::string out;
    v1::StreamLogsResponse response;
    while (reader->Read(&response)) {
      out += response.data();
      if (response.has_job() && last_job != nullptr) *last_job = response.job();
    }
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  // Places a 2-node job on n1 and n2 (their assignments in `first` and `second`), then stops
  // droverd before any node reported and starts it again: the job is PREPARING in the store.
  // The agents are gone; the test brings them back with what they hold.
  std::string PlaceTwoNodeJobThenRestart(v1::AssignAttempt* first, v1::AssignAttempt* second) {
    std::string id;
    {
      ScriptedAgent a(NodeChannel("n1"), "n1");
      a.Next(v1::SchedulerMessage::kWelcome);
      ScriptedAgent b(NodeChannel("n2"), "n2");
      b.Next(v1::SchedulerMessage::kWelcome);
      id = Submit(1, "", /*node_count=*/2);
      *first = a.Next(v1::SchedulerMessage::kAssign).assign();
      *second = b.Next(v1::SchedulerMessage::kAssign).assign();
      droverd_->Shutdown();
      droverd_.reset();
    }
    Start();
    return id;
  }

  // `agent` takes the one-node job `id` it is assigned through READY to RUNNING (attempt 1).
  void RunOn(ScriptedAgent& agent, const std::string& id) {
    agent.Next(v1::SchedulerMessage::kAssign);
    agent.Report(id, 1, v1::AttemptReport::READY);
    WaitFor(id, v1::JobStatus::STARTING);
    agent.Report(id, 1, v1::AttemptReport::RUNNING);
    WaitFor(id, v1::JobStatus::RUNNING);
  }

  // Returns once droverd's core loop has handled every message `agent` sent before, so that
  // a check that something did not happen cannot pass because it has not happened yet. The
  // loop answers a report on an attempt it does not know with a stop, on the same stream and
  // after what the earlier messages made it send; what comes before that answer is skipped
  // (read what you expect first). Only for a node droverd takes messages from (not a lost one).
  void AwaitHandled(ScriptedAgent& agent) {
    const std::string probe = absl::StrCat("j-probe-", ++probes_);
    v1::AttemptReport unknown;
    unknown.mutable_attempt()->set_job_id(probe);
    unknown.mutable_attempt()->set_epoch(1);
    unknown.set_phase(v1::AttemptReport::RUNNING);
    agent.Send(unknown);
    while (!HasFailure()) {  // Next fails the test when the stream ends
      if (agent.Next(v1::SchedulerMessage::kStop).stop().attempt().job_id() == probe) return;
    }
  }

  // Returns once droverd's store has committed (or refused) every write queued before, the
  // core loop's status changes among them: a submit goes through the store's one writer after
  // them and is answered once its own write is durable (or refused). The job it submits needs
  // more than any test node has, so it is never placed. Its answer: OK, or the disk's error.
  grpc::Status AwaitStored() {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    request.mutable_spec()->mutable_resources()->set_cpus(1024);
    v1::SubmitJobResponse response;
    return jobs_->SubmitJob(&context, request, &response);
  }

  // Set before Start() to change them.
  absl::Duration launch_timeout_ = absl::Minutes(15);
  double pause_fraction_ = 0;
  absl::Duration lease_ = absl::Seconds(2);
  const Clock* clock_ = &RealClock::Get();
  testing::TempDir dir_;
  std::unique_ptr<Droverd> droverd_;
  std::shared_ptr<grpc::Channel> channel_;
  // A channel with a node certificate for `node` from droverd's own CA.
  std::shared_ptr<grpc::Channel> NodeChannel(const std::string& node) {
    return testing::NodeChannel(droverd_->address(), droverd_->ca_certificate(),
                                droverd_->cluster_ca(), node);
  }
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  int probes_ = 0;  // AwaitHandled's
};

// An AdminService node call on the test's droverd.
using NodeCall = grpc::Status (v1::AdminService::Stub::*)(grpc::ClientContext*,
                                                          const v1::NodeRequest&, v1::Node*);
inline grpc::Status AdminCall(v1::AdminService::Stub& admin, NodeCall call, const std::string& name,
                                     const std::string& reason = "", v1::Node* node = nullptr) {
  grpc::ClientContext context;
  v1::NodeRequest request;
  request.set_name(name);
  request.set_reason(reason);
  v1::Node ignored;
  return (admin.*call)(&context, request, node != nullptr ? node : &ignored);
}

inline const v1::Node* FindNode(const std::vector<v1::Node>& nodes, const std::string& name) {
  for (const v1::Node& node : nodes) {
    if (node.name() == name) return &node;
  }
  return nullptr;
}

}  // namespace drover::server::agent_protocol

#endif  // DROVER_TESTS_SERVER_AGENT_PROTOCOL_FIXTURE_H_
