// The agents' peer port over real gRPC and real TLS on loopback: an agent of node n-2
// serving PeerExecService with its node certificate, callers with node certificates of
// the cluster CA (n-1 of the attempt, n-3 not), without one, or of another CA. The exec
// itself is a fake runtime: what is checked here is who gets to run a command.
#include "agent/peer_tls.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/server_builder.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "agent/exec_relay.h"
#include "common/safe_open.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"

namespace drover::agent {
namespace {

using ::testing::HasSubstr;

// Runs nothing: an exec prints the command it was given and exits 0.
class EchoRuntime final : public ContainerRuntime {
 public:
  absl::Status Create(const ContainerSpec&) override { return absl::UnimplementedError("create"); }
  absl::Status Start(absl::string_view) override { return absl::UnimplementedError("start"); }
  absl::Status Run(const ContainerSpec&) override { return absl::UnimplementedError("run"); }
  absl::StatusOr<pid_t> Pid(absl::string_view) override { return absl::UnimplementedError("pid"); }
  absl::StatusOr<ContainerState> Inspect(absl::string_view) override {
    return absl::UnimplementedError("inspect");
  }
  absl::StatusOr<ContainerStats> Stats(absl::string_view) override { return ContainerStats{}; }
  absl::StatusOr<int> Exec(absl::string_view, const std::vector<std::string>& args,
                           const std::function<void(bool, absl::string_view)>& output,
                           const std::function<bool()>&) override {
    output(false, args.back());
    return 0;
  }
  absl::Status Signal(absl::string_view, int, bool) override { return absl::OkStatus(); }
  absl::StatusOr<ContainerExit> Wait(absl::string_view, int) override {
    return absl::UnimplementedError("wait");
  }
  absl::Status Delete(absl::string_view) override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<ContainerInfo>> List() override {
    return std::vector<ContainerInfo>{};
  }
};

class PeerTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = pki::CreateCertificateAuthority("cluster-ca", absl::Hours(24), absl::Now());
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *ca;
    auto other = pki::CreateCertificateAuthority("other-ca", absl::Hours(24), absl::Now());
    ASSERT_TRUE(other.ok()) << other.status();
    other_ca_ = *other;
    assignment_.mutable_attempt()->set_job_id("j-7");
    assignment_.mutable_attempt()->set_epoch(1);
    assignment_.add_node_names("n-1");
    assignment_.add_node_names("n-2");
    assignment_.set_exec_token("the-secret");
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::ToChronoTime(absl::Now()));
  }

  // Writes a node certificate for `node` from `ca` (valid from `now` for `validity`) and its
  // key as `<file>.crt/.key` (default: the node's name), with `ca`'s certificate as the CA
  // the node trusts.
  NodeCertificateFiles Files(const std::string& node, const pki::KeyAndCertificate& ca,
                             std::string file = "", absl::Time now = absl::Now(),
                             absl::Duration validity = absl::Hours(1)) {
    if (file.empty()) file = node;
    const std::string base = absl::StrCat(dir_.path(), "/", file);
    absl::StatusOr<std::string> key = pki::GenerateKey();
    EXPECT_TRUE(key.ok());
    absl::StatusOr<std::string> cert = pki::IssueCertificate(
        ca, *key,
        {.common_name = node, .uris = {"drover-node://" + node}, .client = true,
         .validity = validity},
        now);
    EXPECT_TRUE(cert.ok()) << cert.status();
    EXPECT_TRUE(ReplaceFile(base + ".key", *key, 0600).ok());
    EXPECT_TRUE(ReplaceFile(base + ".crt", *cert, 0600).ok());
    EXPECT_TRUE(ReplaceFile(base + ".ca", ca.certificate_pem, 0600).ok());
    return {.certificate_file = base + ".crt", .key_file = base + ".key",
            .ca_file = base + ".ca", .managed = false};
  }

  // Serves PeerExecService as node n-2 with `files`, deciding as the agent does (the
  // attempt's nodes, then its secret).
  void Serve(const NodeCertificateFiles& files) {
    server_tls_ = std::make_unique<PeerTls>(files);
    service_ = std::make_unique<PeerExecService>(
        runtime_, [this](const v1::AttemptRef&, const std::string& token,
                         const std::string& caller) -> absl::StatusOr<std::string> {
          if (absl::Status s = CheckCallerOfAttempt(assignment_, caller); !s.ok()) return s;
          if (token != assignment_.exec_token()) return absl::PermissionDeniedError("wrong secret");
          return std::string("container");
        });
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", server_tls_->ServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
  }

  // A channel as the exec relay makes them (SNI: the node's name), or with other
  // `credentials`; each on a new connection (no channel shares a subchannel with another).
  std::shared_ptr<grpc::Channel> Channel(const PeerTls& client, const std::string& node) {
    return Channel(client.ChannelCredentials(node), node);
  }
  std::shared_ptr<grpc::Channel> Channel(std::shared_ptr<grpc::ChannelCredentials> credentials,
                                         const std::string& node = "") {
    grpc::ChannelArguments args;
    args.SetInt("drover.test.unique", ++channels_);
    if (!node.empty()) args.SetSslTargetNameOverride(node);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_), credentials, args);
  }

  // Execs `echo hi` in the attempt over `channel`: the status, and the output in `out`.
  grpc::Status Exec(const std::shared_ptr<grpc::Channel>& channel,
                    const std::string& token = "the-secret", std::string* out = nullptr) {
    auto stub = v1::AgentPeerService::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::ExecRequest request;
    *request.mutable_attempt() = assignment_.attempt();
    request.set_token(token);
    request.set_command("echo hi");
    auto reader = stub->Exec(&context, request);
    v1::ExecOutput output;
    std::string text;
    while (reader->Read(&output)) {
      if (output.has_stdout()) text += output.stdout();
    }
    if (out != nullptr) *out = text;
    return reader->Finish();
  }

  // Execs until the call succeeds, each time on a new connection, for up to 30 s.
  grpc::Status ExecUntilOk(const PeerTls& client, const std::string& server_node) {
    absl::Time deadline = absl::Now() + absl::Seconds(30);
    grpc::Status status;
    do {
      status = Exec(Channel(client, server_node));
      if (status.ok()) break;
      absl::SleepFor(absl::Milliseconds(200));
    } while (absl::Now() < deadline);
    return status;
  }

  testing::TempDir dir_;
  pki::KeyAndCertificate ca_, other_ca_;
  v1::AssignAttempt assignment_;
  EchoRuntime runtime_;
  std::unique_ptr<PeerTls> server_tls_;
  std::unique_ptr<PeerExecService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  int channels_ = 0;
};

TEST_F(PeerTlsTest, ANodeOfTheAttemptRunsACommandOverMutualTls) {
  Serve(Files("n-2", ca_));
  PeerTls client(Files("n-1", ca_));
  std::string out;
  grpc::Status status = Exec(Channel(client, "n-2"), "the-secret", &out);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(out, HasSubstr("echo hi"));
}

TEST_F(PeerTlsTest, ACallerWithoutAClientCertificateIsRefused) {
  Serve(Files("n-2", ca_));
  grpc::SslCredentialsOptions trusting_the_ca;
  trusting_the_ca.pem_root_certs = ca_.certificate_pem;
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("n-2");
  auto no_certificate = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port_),
                                                  grpc::SslCredentials(trusting_the_ca), args);
  EXPECT_EQ(Exec(no_certificate).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Exec(Channel(grpc::InsecureChannelCredentials())).error_code(),
            grpc::StatusCode::UNAVAILABLE)
      << "plaintext";
}

TEST_F(PeerTlsTest, ANodeOutsideTheAttemptIsRefusedEvenWithTheSecret) {
  Serve(Files("n-2", ca_));
  PeerTls outsider(Files("n-3", ca_));
  grpc::Status status = Exec(Channel(outsider, "n-2"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("node 'n-3' is not a node of job j-7 attempt 1"));
  // The exec token check stays: a node of the attempt without the secret gets nothing.
  PeerTls member(Files("n-1", ca_));
  EXPECT_EQ(Exec(Channel(member, "n-2"), "a-guess").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(PeerTlsTest, AClientOfAnotherCaCannotConnectNorServe) {
  Serve(Files("n-2", ca_));
  // A certificate for an attempt's node, from another CA, trusting that CA.
  PeerTls forged(Files("n-1", other_ca_, "forged-n-1"));
  EXPECT_EQ(Exec(Channel(forged, "n-2")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // A server of another CA is not taken for the node either.
  server_->Shutdown(absl::ToChronoTime(absl::Now()));
  Serve(Files("n-2", other_ca_, "forged-n-2"));
  PeerTls member(Files("n-1", ca_));
  EXPECT_EQ(Exec(Channel(member, "n-2")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(PeerTlsTest, TheCallerRefusesAServerThatIsAnotherNode) {
  Serve(Files("n-2", ca_));
  PeerTls member(Files("n-1", ca_));
  // The relay meant n-1's port (an address now taken by n-2's agent): no command goes there.
  EXPECT_EQ(Exec(Channel(member, "n-1")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(Exec(Channel(member, "n-2")).ok());
}

TEST_F(PeerTlsTest, RenewedCertificatesAreUsedWithoutARestart) {
  // Both sides start with certificates that expired an hour ago: nothing connects.
  const absl::Time past = absl::Now() - absl::Hours(3);
  NodeCertificateFiles server_files = Files("n-2", ca_, "", past, absl::Hours(2));
  NodeCertificateFiles client_files = Files("n-1", ca_, "", past, absl::Hours(2));
  Serve(server_files);
  PeerTls client(client_files);
  EXPECT_EQ(Exec(Channel(client, "n-2")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // The server's certificate is renewed (new key, new certificate, as RenewIfDue writes
  // them): the client still presents its expired one, which the server refuses.
  Files("n-2", ca_);
  absl::SleepFor(absl::Seconds(6));  // more than one reread of the files (kRefreshSeconds)
  EXPECT_EQ(Exec(Channel(client, "n-2")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  // Then the client's: calls go through, from the same server and PeerTls objects.
  Files("n-1", ca_);
  grpc::Status status = ExecUntilOk(client, "n-2");
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(PeerTlsTest, ThePeerPortAnswersGrpcHealthChecksOfNodes) {
  Serve(Files("n-2", ca_));
  PeerTls outsider(Files("n-3", ca_));  // any node of the cluster may ask
  grpc::GenericStub stub(Channel(outsider, "n-2"));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);  // HealthCheckRequest{service: ""}
  grpc::ByteBuffer response;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                 &response, [&](grpc::Status s) {
                   status = s;
                   done.Notify();
                 });
  done.WaitForNotification();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2)) << "status: SERVING";
}

}  // namespace
}  // namespace drover::agent
