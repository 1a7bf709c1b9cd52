// StandbyServer (server/standby_server.h) and the callers that follow the leader it names
// (drover's gRPC client; the agent uses the same rule, common/leader_redirect.h): every
// call answered UNAVAILABLE at once with the leader's address, and a client that follows
// only an address it was given, never one a (hostile) standby names alone.
#include "server/standby_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/client_context.h>
#include <grpcpp/security/server_credentials.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli/grpc_drover_client.h"
#include "common/leader_redirect.h"
#include "drover/v1/agent_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/test_tls.h"

namespace drover::server {
namespace {

using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) { return testing::ReadWholeFile(path); }

std::unique_ptr<StandbyServer> StartStandby(const std::string& leader) {
  absl::StatusOr<testing::ServerTlsFiles> files = testing::IssueTestServerTls("127.0.0.1");
  EXPECT_TRUE(files.ok()) << files.status();
  grpc::SslServerCredentialsOptions tls;
  tls.pem_root_certs = testing::TestCaPem();
  tls.pem_key_cert_pairs.push_back({ReadAll(files->key_file), ReadAll(files->certificate_file)});
  absl::StatusOr<std::unique_ptr<StandbyServer>> server =
      StandbyServer::Start("127.0.0.1:0", grpc::SslServerCredentials(tls));
  EXPECT_TRUE(server.ok()) << server.status();
  (*server)->SetLeader(leader);
  return *std::move(server);
}

std::string Address(const StandbyServer& server) {
  return absl::StrCat("127.0.0.1:", server.port());
}

// A TCP port that listens and is never accepted from: a connection made to it stays in
// its backlog, so Dialled() tells whether anybody tried.
class Trap {
 public:
  Trap() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    socklen_t size = sizeof(address);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
  }
  ~Trap() { close(fd_); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  bool Dialled() {
    int accepted = accept(fd_, nullptr, nullptr);
    if (accepted < 0) return false;
    close(accepted);
    return true;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

absl::StatusOr<v1::Job> GetJobThroughCli(const std::string& servers) {
  cli::ConnectOptions options{.address = servers,
                              .ca_file = testing::TestCaFile(),
                              .timeout = absl::Seconds(10)};
  absl::StatusOr<std::unique_ptr<cli::DroverClient>> client = cli::ConnectGrpc(options);
  if (!client.ok()) return client.status();
  v1::GetJobRequest request;
  request.set_job_id("j-1");
  return (*client)->GetJob(request);
}

TEST(StandbyServerTest, AnswersEveryCallUnavailableNamingTheLeader) {
  std::unique_ptr<StandbyServer> standby = StartStandby("head-a.example.org:7070");
  auto channel = testing::TlsChannel(Address(*standby));
  {
    auto jobs = v1::JobService::NewStub(channel);
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id("j-1");
    v1::Job job;
    grpc::Status status = jobs->GetJob(&context, request, &job);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(status.error_message(), HasSubstr("stands by"));
    EXPECT_THAT(status.error_message(), HasSubstr("head-a.example.org:7070"));
    auto trailing = context.GetServerTrailingMetadata();
    auto it = trailing.find(kLeaderMetadataKey);
    ASSERT_NE(it, trailing.end());
    EXPECT_EQ(std::string(it->second.data(), it->second.size()), "head-a.example.org:7070");
  }
  {
    // An agent's stream too.
    auto agents = v1::AgentService::NewStub(channel);
    grpc::ClientContext context;
    auto stream = agents->Connect(&context);
    v1::AgentMessage hello;
    hello.mutable_hello()->mutable_node()->set_name("n1");
    stream->Write(hello);
    v1::SchedulerMessage message;
    EXPECT_FALSE(stream->Read(&message));
    grpc::Status status = stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(context.GetServerTrailingMetadata().count(kLeaderMetadataKey), 1u);
  }
  // No leader known (the lease ran out): still UNAVAILABLE, naming nobody.
  standby->SetLeader("");
  auto jobs = v1::JobService::NewStub(channel);
  grpc::ClientContext context;
  v1::GetJobRequest request;
  v1::Job job;
  grpc::Status status = jobs->GetJob(&context, request, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), HasSubstr("no droverd leads"));
  EXPECT_EQ(context.GetServerTrailingMetadata().count(kLeaderMetadataKey), 0u);
}

TEST(StandbyServerTest, CliFollowsTheNamedLeaderOnlyAmongItsOwnAddresses) {
  Trap trap;
  // Hostile: names a host the client was not given.
  std::unique_ptr<StandbyServer> hostile = StartStandby(trap.address());
  // Names the hostile one, which the client was given.
  std::unique_ptr<StandbyServer> pointing = StartStandby(Address(*hostile));

  // Given both, the client asks `pointing` first, follows it to `hostile` (one of its own),
  // and stops there: it never dials the address `hostile` names.
  absl::StatusOr<v1::Job> job =
      GetJobThroughCli(absl::StrCat(Address(*pointing), ",", Address(*hostile)));
  EXPECT_TRUE(absl::IsUnavailable(job.status())) << job.status();
  EXPECT_THAT(job.status().message(), HasSubstr(trap.address()))
      << "the answer is the followed droverd's";
  EXPECT_FALSE(trap.Dialled());

  // Asked first, `hostile`'s leader is ignored: the client tries its next address instead.
  job = GetJobThroughCli(absl::StrCat(Address(*hostile), ",", Address(*pointing)));
  EXPECT_TRUE(absl::IsUnavailable(job.status())) << job.status();
  EXPECT_THAT(job.status().message(), HasSubstr(Address(*hostile)))
      << "the answer is the next droverd's, which names the first";
  EXPECT_FALSE(trap.Dialled());

  // A stream (drover watch) follows the same way.
  {
    cli::ConnectOptions options{.address = absl::StrCat(Address(*pointing), ",", Address(*hostile)),
                                .ca_file = testing::TestCaFile()};
    absl::StatusOr<std::unique_ptr<cli::DroverClient>> client = cli::ConnectGrpc(options);
    ASSERT_TRUE(client.ok()) << client.status();
    v1::WatchJobRequest request;
    request.set_job_id("j-1");
    absl::Status watched = (*client)->WatchJob(request, [](const v1::WatchJobResponse&) {});
    EXPECT_TRUE(absl::IsUnavailable(watched)) << watched;
    EXPECT_THAT(watched.message(), HasSubstr(trap.address())) << "followed to `hostile`";
    EXPECT_FALSE(trap.Dialled());
  }

  // With one address the client never goes elsewhere: the standby's answer is the error.
  job = GetJobThroughCli(Address(*pointing));
  EXPECT_TRUE(absl::IsUnavailable(job.status())) << job.status();
  EXPECT_THAT(job.status().message(), HasSubstr(Address(*hostile)));
  EXPECT_FALSE(trap.Dialled());
}

}  // namespace
}  // namespace drover::server
