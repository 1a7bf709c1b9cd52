// Every call reaches droverd over TLS: a droverd started with nothing but a state folder
// makes its own cluster CA there, a client trusting that CA gets in, and one with no TLS or
// trusting another CA does not; the CA is kept across a restart; the CLI says what to do
// when it has no CA or the wrong one; droverd refuses to start with an administrator's key
// that is not its certificate's.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>
#include <sys/stat.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"

namespace drover {
namespace {

using ::testing::HasSubstr;

grpc::Status ListNodes(const std::shared_ptr<grpc::Channel>& channel) {
  auto admin = v1::AdminService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ListNodesResponse response;
  return admin->ListNodes(&context, v1::ListNodesRequest(), &response);
}

mode_t Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

testing::CommandResult Drover(const std::vector<std::string>& args,
                              const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv = {DROVER_CLI_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<std::string> environment = {"DROVER_SERVER=", "DROVER_CA="};
  environment.insert(environment.end(), env.begin(), env.end());
  absl::StatusOr<testing::CommandResult> result = testing::RunCommand(argv, environment);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : testing::CommandResult{};
}

// droverd alone, needing no root.
class TlsE2eTest : public testing::LocalClusterTest {
 protected:
  TlsE2eTest() : LocalClusterTest(/*needs_root=*/false) {}
};

TEST_F(TlsE2eTest, DroverdMakesItsOwnCaAndOnlyClientsTrustingItGetIn) {
  StartCluster({.agents = 0, .tls = testing::DroverdProcess::Tls::kOwnCa, .datastore_root = false});
  ASSERT_FALSE(HasFatalFailure());
  const std::string state = dir_.path() + "/state";
  const std::string ca_file = droverd_->ca_file();
  EXPECT_EQ(ca_file, state + "/tls/ca.crt");
  EXPECT_EQ(Mode(state + "/tls/ca.key"), 0600u);
  EXPECT_EQ(Mode(state + "/tls/server.key"), 0600u);
  const std::string ca = testing::ReadWholeFile(ca_file);
  const std::string address = droverd_->address();

  EXPECT_TRUE(ListNodes(testing::TlsChannel(address, ca_file)).ok());
  grpc::Status plain = ListNodes(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::UNAVAILABLE) << "plaintext got in";
  grpc::Status other = ListNodes(testing::TlsChannel(address, testing::TestCaFile()));
  EXPECT_EQ(other.error_code(), grpc::StatusCode::UNAVAILABLE) << "another CA's client got in";

  // The CLI: with droverd's CA it works; without one, or with another, it says what to do.
  testing::CommandResult ok = Drover({"--server", address, "--ca", ca_file, "nodes"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  testing::CommandResult env = Drover({"nodes"}, {"DROVER_SERVER=" + address, "DROVER_CA=" + ca_file});
  EXPECT_EQ(env.exit_code, 0) << env.err;
  testing::CommandResult none =
      Drover({"--server", address, "--ca", dir_.path() + "/missing.crt", "nodes"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("--ca: cannot read a certificate from"));
  testing::CommandResult wrong =
      Drover({"--server", address, "--ca", testing::TestCaFile(), "nodes", "--timeout", "3s"});
  EXPECT_EQ(wrong.exit_code, 6) << wrong.err;
  EXPECT_THAT(wrong.err, HasSubstr("cannot reach droverd"));

  // A restart keeps the CA: every node and client that trusts it still gets in.
  RestartDroverd(SIGKILL);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(testing::ReadWholeFile(ca_file), ca);
  EXPECT_TRUE(ListNodes(testing::TlsChannel(address, ca_file)).ok());
}

// Starting droverd is the subject here: it must refuse.
TEST_F(TlsE2eTest, DroverdRefusesAnAdministratorsKeyThatIsNotItsCertificates) {
  const testing::TempDir& dir = dir_;
  absl::StatusOr<testing::ServerTlsFiles> mine = testing::IssueTestServerTls("127.0.0.1");
  absl::StatusOr<testing::ServerTlsFiles> other = testing::IssueTestServerTls("127.0.0.1");
  ASSERT_TRUE(mine.ok() && other.ok());
  auto droverd = testing::DroverdProcess::Start(
      dir.path() + "/state",
      {"--tls-cert", mine->certificate_file, "--tls-key", other->key_file, "--tls-ca",
       mine->ca_file},
      "", testing::DroverdProcess::Tls::kOwnCa);
  ASSERT_FALSE(droverd.ok()) << "droverd started with a key that is not its certificate's";
  EXPECT_THAT(droverd.status().message(), HasSubstr("--tls-key"));
}

}  // namespace
}  // namespace drover
