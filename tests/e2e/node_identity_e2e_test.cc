// Node identity against a real droverd over TLS with its own cluster CA: a node joins with
// a one-time token and gets a certificate, droverd takes a node's name from that
// certificate only, a node may speak only of its own attempts, a revoked certificate stops
// working at once, and no other CA's certificate gets in.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/pki/pki.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/node_identity.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/scripted_agent.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"

namespace drover {
namespace {

using ::testing::HasSubstr;

mode_t Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

// droverd with its own cluster CA; the tests start the agents that join it (AddNode).
class NodeIdentityE2eTest : public testing::LocalClusterTest {
 protected:
  NodeIdentityE2eTest() : LocalClusterTest(/*needs_root=*/false) {}

  void SetUp() override {
    LocalClusterTest::SetUp();
    StartCluster({.agents = 0,
                  .tls = testing::DroverdProcess::Tls::kOwnCa,
                  .droverd_files_dir = dir_.path(),
                  .datastore_root = false});
    ASSERT_FALSE(HasFatalFailure());
    ca_file_ = droverd_->ca_file();
    ca_.certificate_pem = testing::ReadWholeFile(ca_file_);
    ca_.key_pem = testing::ReadWholeFile(dir_.path() + "/state/tls/ca.key");
    identity_ = v1::NodeIdentityService::NewStub(channel_);
  }

  // Starts the agent of a new node (n1, n2, ... in turn) trusting droverd's CA, with
  // `flags`; its index.
  int StartNode(std::vector<std::string> flags) {
    flags.insert(flags.begin(), {"--ca", ca_file_});
    const int k = AddNode();
    StartAgent(k, flags);
    return k;
  }

  // `drover ARGS...` against this droverd.
  testing::CommandResult Drover(std::vector<std::string> args) {
    std::vector<std::string> argv = {DROVER_CLI_PATH, "--server", droverd_->address(), "--ca",
                                     ca_file_};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<testing::CommandResult> result = testing::RunCommand(argv, {"DROVER_SERVER="});
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{};
  }

  // A join token from `drover node token create`, written to a file.
  std::string TokenFile(const std::vector<std::string>& flags = {}) {
    std::vector<std::string> args = {"node", "token", "create"};
    args.insert(args.end(), flags.begin(), flags.end());
    testing::CommandResult made = Drover(args);
    EXPECT_EQ(made.exit_code, 0) << made.err;
    std::string path = absl::StrCat(dir_.path(), "/token-", ++tokens_);
    std::ofstream(path) << made.out;
    return path;
  }

  // JoinNode with a fresh CSR for `node`.
  grpc::Status Join(const std::string& token, const std::string& node,
                    v1::NodeCertificateResponse* response = nullptr,
                    const std::string& csr_override = "") {
    absl::StatusOr<std::string> key = pki::GenerateKey();
    absl::StatusOr<std::string> csr = pki::CreateCsr(*key, node, {"drover-node://" + node});
    // A name no CSR can carry (300 characters) goes with another name's CSR.
    if (!csr.ok()) csr = pki::CreateCsr(*key, "x", {});
    v1::JoinNodeRequest request;
    request.set_token(token);
    request.set_node_name(node);
    request.set_csr_pem(csr_override.empty() ? *csr : csr_override);
    v1::NodeCertificateResponse ignored;
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return identity_->JoinNode(&context, request, response != nullptr ? response : &ignored);
  }

  std::string CreateToken(const std::string& node = "", int64_t ttl_seconds = 3600) {
    v1::CreateJoinTokenRequest request;
    request.set_node_name(node);
    request.mutable_ttl()->set_seconds(ttl_seconds);
    v1::CreateJoinTokenResponse response;
    grpc::ClientContext context;
    grpc::Status status = identity_->CreateJoinToken(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.token();
  }

  std::shared_ptr<grpc::Channel> NodeChannel(const std::string& node) {
    return testing::NodeChannel(droverd_->address(), ca_.certificate_pem, ca_, node);
  }

  // Polls droverd's log for `text`.
  bool LogShows(const std::string& text, absl::Duration timeout = absl::Seconds(10)) {
    absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      if (droverd_->ReadLog().find(text) != std::string::npos) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }

  std::string ca_file_;
  pki::KeyAndCertificate ca_;
  std::unique_ptr<v1::NodeIdentityService::Stub> identity_;
  int tokens_ = 0;
};

TEST_F(NodeIdentityE2eTest, AnAgentJoinsWithAOneTimeTokenAndRestartsWithoutOne) {
  const std::string token_file = TokenFile({"--ttl", "10m"});
  {
    const int n1 = StartNode({"--join-file", token_file});
    ASSERT_FALSE(HasFatalFailure());
    const std::string work = this->work(n1);
    WaitForReadyNodes(1, absl::Seconds(60));
    ASSERT_FALSE(HasFatalFailure());
    EXPECT_EQ(Mode(work + "/node.key"), 0600u);
    EXPECT_EQ(Mode(work + "/node.crt"), 0600u);
    absl::StatusOr<pki::CertificateInfo> info =
        pki::ReadCertificate(testing::ReadWholeFile(work + "/node.crt"));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->common_name, "n1");
    EXPECT_THAT(info->uris, ::testing::ElementsAre("drover-node://n1"));
    StopAgent(n1, SIGTERM);
  }
  // The token is used up: a second node cannot join with it, and says why.
  const int n2 = StartNode({"--join-file", token_file});
  ASSERT_FALSE(HasFatalFailure());
  absl::StatusOr<int> status = agent(n2)->Wait(absl::Seconds(60));
  ASSERT_TRUE(status.ok()) << "an agent with a used token kept running";
  EXPECT_NE(*status, 0);
  EXPECT_THAT(agent(n2)->ReadLog(), HasSubstr("already used (by node 'n1')"));
  EXPECT_THAT(Drover({"node", "token", "list"}).out, HasSubstr("used by n1"));

  // n1 restarts with its certificate and no token.
  StartAgent(0, {"--ca", ca_file_});
  ASSERT_FALSE(HasFatalFailure());
  absl::Time deadline = absl::Now() + absl::Seconds(60);
  int connections = 0;
  while (absl::Now() < deadline) {
    std::string log = droverd_->ReadLog();
    connections = 0;
    for (size_t at = log.find("event=agent_connected"); at != std::string::npos;
         at = log.find("event=agent_connected", at + 1)) {
      ++connections;
    }
    if (connections >= 2) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  EXPECT_GE(connections, 2) << agent(0)->ReadLog();
}

TEST_F(NodeIdentityE2eTest, BadTokensAreRefusedWithAClearMessage) {
  // Garbage, through the agent: it exits and says what a token is.
  std::string garbage = dir_.path() + "/garbage";
  std::ofstream(garbage) << "../../etc/passwd\n";
  const int n1 = StartNode({"--join-file", garbage});
  ASSERT_FALSE(HasFatalFailure());
  absl::StatusOr<int> exited = agent(n1)->Wait(absl::Seconds(60));
  ASSERT_TRUE(exited.ok());
  EXPECT_NE(*exited, 0);
  EXPECT_THAT(agent(n1)->ReadLog(), HasSubstr("this is not a join token"));

  grpc::Status unknown = Join(std::string(64, 'a'), "n1");
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(unknown.error_message(), HasSubstr("unknown to this droverd"));

  const std::string expiring = CreateToken("", 1);
  absl::SleepFor(absl::Seconds(2));
  grpc::Status expired = Join(expiring, "n1");
  EXPECT_EQ(expired.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(expired.error_message(), HasSubstr("expired"));

  const std::string revoked = CreateToken();
  const std::string id = pki::Sha256Hex(revoked).substr(0, 12);
  testing::CommandResult revoke = Drover({"node", "token", "revoke", id});
  EXPECT_EQ(revoke.exit_code, 0) << revoke.err;
  grpc::Status refused = Join(revoked, "n1");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(refused.error_message(), HasSubstr("revoked"));

  // A token bound to a name: another name is refused, and the token is not used up.
  const std::string bound = CreateToken("gpu-01");
  grpc::Status other = Join(bound, "gpu-02");
  EXPECT_EQ(other.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(other.error_message(), HasSubstr("is for node 'gpu-01'"));
  // Hostile names and CSRs cost no token either.
  for (const std::string& name : {std::string("../etc"), std::string("a/b"), std::string(300, 'a')}) {
    grpc::Status bad = Join(bound, name);
    EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
  }
  EXPECT_EQ(Join(bound, "gpu-01", nullptr, std::string(1 << 20, 'A')).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Join(bound, "gpu-01", nullptr, "-----BEGIN CERTIFICATE REQUEST-----\ngarbage\n")
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::NodeCertificateResponse issued;
  grpc::Status joined = Join(bound, "gpu-01", &issued);
  ASSERT_TRUE(joined.ok()) << joined.error_message();
  EXPECT_TRUE(pki::VerifyCertificate(issued.certificate_pem(), ca_.certificate_pem, absl::Now()).ok());
  EXPECT_EQ(Join(bound, "gpu-01").error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(NodeIdentityE2eTest, AnAgentWithoutANodeCertificateIsUnauthenticated) {
  testing::ScriptedAgent agent(channel_, "n1");
  grpc::Status status = agent.WaitForEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("no node certificate"));
}

TEST_F(NodeIdentityE2eTest, AHelloAsAnotherNodeIsRefusedAndLogged) {
  testing::ScriptedAgent agent(NodeChannel("node-a"), "node-b");
  grpc::Status status = agent.WaitForEnd();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("node certificate is node 'node-a'"));
  EXPECT_TRUE(LogShows("agent_hello_refused"));
  v1::ListNodesResponse nodes;
  grpc::ClientContext context;
  ASSERT_TRUE(admin_->ListNodes(&context, v1::ListNodesRequest(), &nodes).ok());
  EXPECT_EQ(nodes.nodes_size(), 0) << "node-b was registered";
}

TEST_F(NodeIdentityE2eTest, ANodeCannotReportOrLogForAnAttemptThatIsNotOnIt) {
  testing::ScriptedAgent n1(NodeChannel("n1"), "n1");
  n1.Next(v1::SchedulerMessage::kWelcome);
  testing::JobClient jobs(channel_);
  v1::JobSpec spec;
  spec.set_entry_script("train.py");
  spec.set_node_count(1);
  spec.mutable_resources()->set_cpus(1);
  const std::string id = jobs.Submit(spec);
  v1::SchedulerMessage assign = n1.Next(v1::SchedulerMessage::kAssign);
  const int64_t epoch = assign.assign().attempt().epoch();
  n1.Report(id, epoch, v1::AttemptReport::READY);
  n1.Report(id, epoch, v1::AttemptReport::RUNNING);
  jobs.WaitFor(id, v1::JobStatus::RUNNING, absl::Seconds(20));

  // n2, with its own valid certificate, claims n1's job ended well and writes into its log.
  testing::ScriptedAgent n2(NodeChannel("n2"), "n2");
  n2.Next(v1::SchedulerMessage::kWelcome);
  n2.Log(id, epoch, 0, 0, "forged line\n");
  n2.Report(id, epoch, v1::AttemptReport::ENDED);
  EXPECT_TRUE(LogShows("agent_report_refused"));
  EXPECT_TRUE(LogShows("attempt_not_on_this_node"));
  EXPECT_EQ(jobs.Get(id).status().state(), v1::JobStatus::RUNNING);
  EXPECT_THAT(jobs.Logs(id, -1), ::testing::Not(HasSubstr("forged")));
}

TEST_F(NodeIdentityE2eTest, ARevokedNodeCertificateStopsWorkingWithinSeconds) {
  std::shared_ptr<grpc::Channel> n1_channel = NodeChannel("n1");
  auto agent = std::make_unique<testing::ScriptedAgent>(n1_channel, "n1");
  agent->Next(v1::SchedulerMessage::kWelcome);
  const absl::Time revoked_at = absl::Now();
  testing::CommandResult revoke = Drover({"node", "revoke-cert", "n1"});
  EXPECT_EQ(revoke.exit_code, 0) << revoke.err;
  grpc::Status ended = agent->WaitForEnd();
  EXPECT_LT(absl::Now() - revoked_at, absl::Seconds(10));
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(ended.error_message(), HasSubstr("revoked"));
  agent = std::make_unique<testing::ScriptedAgent>(n1_channel, "n1");  // the same certificate
  EXPECT_EQ(agent->WaitForEnd().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // It cannot renew itself back either.
  auto stub = v1::NodeIdentityService::NewStub(n1_channel);
  absl::StatusOr<std::string> key = pki::GenerateKey();
  v1::RenewNodeCertificateRequest renew;
  renew.set_csr_pem(*pki::CreateCsr(*key, "n1", {"drover-node://n1"}));
  v1::NodeCertificateResponse response;
  grpc::ClientContext context;
  EXPECT_EQ(stub->RenewNodeCertificate(&context, renew, &response).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // Joining again with a new token works.
  EXPECT_TRUE(Join(CreateToken("n1"), "n1").ok());
}

TEST_F(NodeIdentityE2eTest, ANodeCertificateFromAnotherCaIsRefused) {
  testing::ScriptedAgent agent(testing::NodeChannel(droverd_->address(), ca_.certificate_pem,
                                                    testing::TestCaKeyAndCertificate(), "n1"),
                               "n1");
  grpc::Status status = agent.WaitForEnd();
  EXPECT_NE(status.error_code(), grpc::StatusCode::OK);
  EXPECT_EQ(droverd_->ReadLog().find("agent_connected"), std::string::npos);
}

TEST_F(NodeIdentityE2eTest, ASecondStreamOfANodeReplacesTheFirstWithALoggedReason) {
  testing::ScriptedAgent first(NodeChannel("n1"), "n1");
  first.Next(v1::SchedulerMessage::kWelcome);
  testing::ScriptedAgent second(NodeChannel("n1"), "n1");
  second.Next(v1::SchedulerMessage::kWelcome);
  grpc::Status ended = first.WaitForEnd();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(ended.error_message(), HasSubstr("replaced"));
  EXPECT_TRUE(LogShows("agent_stream_replaced"));
}

}  // namespace
}  // namespace drover
