// Users, roles and job owners against a real droverd over TLS (issue 15; see
// docs/security.md). Users are made with the drover CLI over droverd's local admin socket,
// as root on droverd's host does.
#include <grpcpp/client_context.h>
#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/archive/sha256.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"

namespace drover {
namespace {

using ::testing::HasSubstr;

class UsersE2eTest : public testing::LocalClusterTest {
 protected:
  UsersE2eTest()
      : LocalClusterTest({.agents = 0, .datastore_root = false}, /*needs_root=*/false) {}

  void SetUp() override {
    LocalClusterTest::SetUp();
    socket_ = dir_.path() + "/state/admin.sock";
  }

  // `drover ARGS...` with no token of the test's own unless `env` gives one.
  testing::CommandResult Drover(std::vector<std::string> args, std::vector<std::string> env = {}) {
    args.insert(args.begin(), DROVER_CLI_PATH);
    env.insert(env.begin(), {"DROVER_TOKEN=", "DROVER_SERVER=", "DROVER_CONFIG=" + dir_.path() + "/config",
                             "DROVER_CA=" + droverd_->ca_file()});
    absl::StatusOr<testing::CommandResult> result = testing::RunCommand(args, env);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{};
  }

  // Creates a user over the local admin socket and returns their token.
  std::string CreateUser(const std::string& name, const std::string& role) {
    testing::CommandResult r =
        Drover({"--server", "unix:" + socket_, "user", "create", name, "--role", role});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return std::string(absl::StripAsciiWhitespace(r.out));
  }

  std::shared_ptr<grpc::Channel> As(const std::string& token) {
    return testing::TlsChannel(droverd_->address(), "", token);
  }

  v1::JobSpec Spec() {
    v1::JobSpec spec;
    spec.set_entry_script("train.py");
    (*spec.mutable_environment()->mutable_env())["SEED"] = "7";
    (*spec.mutable_environment()->mutable_env())["API_TOKEN"] = "hunter2";
    spec.mutable_environment()->add_secret_env("API_TOKEN");
    return spec;
  }

  std::string socket_;
};

grpc::Status GetJob(const std::shared_ptr<grpc::Channel>& channel, const std::string& id,
                        v1::Job* job = nullptr) {
  grpc::ClientContext context;
  v1::GetJobRequest request;
  request.set_job_id(id);
  v1::Job out;
  grpc::Status status = v1::JobService::NewStub(channel)->GetJob(&context, request, &out);
  if (job != nullptr) *job = out;
  return status;
}

grpc::Status SubmitWith(const std::shared_ptr<grpc::Channel>& channel, const v1::JobSpec& spec,
                        v1::Job* job = nullptr) {
  grpc::ClientContext context;
  v1::SubmitJobRequest request;
  *request.mutable_spec() = spec;
  v1::SubmitJobResponse response;
  grpc::Status status = v1::JobService::NewStub(channel)->SubmitJob(&context, request, &response);
  if (job != nullptr) *job = response.job();
  return status;
}

TEST_F(UsersE2eTest, TheLocalSocketIsAdminWithoutATokenAndOnlyForDroverdsUser) {
  struct stat st {};
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  testing::CommandResult who = Drover({"--server", "unix:" + socket_, "whoami"});
  EXPECT_EQ(who.exit_code, 0) << who.err;
  EXPECT_EQ(who.out, "local-socket admin\nblob store: 0 B held, no quota\n");
  std::string token = CreateUser("alice", "user");
  EXPECT_THAT(token, ::testing::StartsWith("drv_"));
  testing::CommandResult list = Drover({"--server", "unix:" + socket_, "user", "list"});
  EXPECT_THAT(list.out, HasSubstr("alice"));
  EXPECT_THAT(list.out, ::testing::Not(HasSubstr(token)));
}

TEST_F(UsersE2eTest, CallsWithoutATokenAreUnauthenticatedAndSayWhatToDo) {
  grpc::Status status = GetJob(As(""), "j-1");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("DROVER_TOKEN"));
  grpc::ClientContext context;
  v1::ListNodesResponse nodes;
  EXPECT_EQ(v1::AdminService::NewStub(As(""))->ListNodes(&context, {}, &nodes).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  testing::CommandResult cli = Drover({"--server", droverd_->address(), "list"});
  EXPECT_EQ(cli.exit_code, 7) << cli.err;  // not allowed: log in
  EXPECT_THAT(cli.err, HasSubstr("needs a user token"));
  // A wrong token is refused, not taken for no token; so are hostile ones.
  EXPECT_EQ(GetJob(As("drv_not-a-real-token-at-all"), "j-1").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(GetJob(As("drv_" + std::string(4000, 'x')), "j-1").error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  testing::CommandResult newline =
      Drover({"--server", droverd_->address(), "list"}, {"DROVER_TOKEN=drv_abc\nevil: 1"});
  EXPECT_EQ(newline.exit_code, 2) << newline.err;
  EXPECT_THAT(newline.err, HasSubstr("line break"));
}

TEST_F(UsersE2eTest, RolesAreEnforcedAndNamedWhenMissing) {
  std::string alice = CreateUser("alice", "user");
  std::string vic = CreateUser("vic", "viewer");
  testing::CommandResult cordon = Drover({"--server", droverd_->address(), "node", "cordon", "n1"},
                                         {"DROVER_TOKEN=" + alice});
  EXPECT_NE(cordon.exit_code, 0);
  EXPECT_THAT(cordon.err, HasSubstr("needs the role admin"));
  testing::CommandResult create = Drover(
      {"--server", droverd_->address(), "user", "create", "mallory", "--role", "admin"},
      {"DROVER_TOKEN=" + alice});
  EXPECT_THAT(create.err, HasSubstr("needs the role admin"));
  grpc::Status submit = SubmitWith(As(vic), Spec());
  EXPECT_EQ(submit.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(submit.error_message(), HasSubstr("needs the role user or admin"));
  EXPECT_TRUE(SubmitWith(As(alice), Spec()).ok());
  testing::CommandResult who =
      Drover({"--server", droverd_->address(), "whoami"}, {"DROVER_TOKEN=" + vic});
  EXPECT_EQ(who.out, "vic viewer\nblob store: 0 B held of 100 GiB (quota)\n");
  // An administrator gives vic a quota of their own; a user cannot.
  testing::CommandResult quota =
      Drover({"--server", "unix:" + socket_, "user", "quota", "vic", "2Gi"});
  EXPECT_EQ(quota.exit_code, 0) << quota.err;
  EXPECT_EQ(quota.out, "vic: blob quota 2 GiB\n");
  who = Drover({"--server", droverd_->address(), "whoami"}, {"DROVER_TOKEN=" + vic});
  EXPECT_EQ(who.out, "vic viewer\nblob store: 0 B held of 2 GiB (quota)\n");
  testing::CommandResult list = Drover({"--server", "unix:" + socket_, "user", "list"});
  EXPECT_THAT(list.out, ::testing::ContainsRegex("vic +viewer +active .* 2 GiB\n"));
  EXPECT_THAT(list.out, ::testing::ContainsRegex("alice +user +active .* default\n"));
  quota = Drover({"--server", droverd_->address(), "user", "quota", "vic", "none"},
                 {"DROVER_TOKEN=" + alice});
  EXPECT_THAT(quota.err, HasSubstr("needs the role admin"));
  quota = Drover({"--server", "unix:" + socket_, "user", "quota", "vic", "lots"});
  EXPECT_EQ(quota.exit_code, 2) << quota.err;
  EXPECT_THAT(quota.err, HasSubstr("SIZE 'lots' is not a size"));
  quota = Drover({"--server", "unix:" + socket_, "user", "quota", "nobody", "1Gi"});
  EXPECT_EQ(quota.exit_code, 4) << quota.err;
}

TEST_F(UsersE2eTest, AUserCannotReadFollowDownloadFromOrCancelAnotherUsersJob) {
  std::string alice = CreateUser("alice", "user");
  std::string bob = CreateUser("bob", "user");
  std::string vic = CreateUser("vic", "viewer");
  // Bob uploads a snapshot and submits with it.
  auto blobs = v1::BlobService::NewStub(As(bob));
  std::string file = dir_.path() + "/snapshot.tar";
  {
    std::ofstream(file) << "bob's code";
  }
  absl::StatusOr<std::string> digest = testing::UploadBlobFile(*blobs, file);
  ASSERT_TRUE(digest.ok()) << digest.status();
  v1::JobSpec spec = Spec();
  spec.set_source_snapshot(*digest);
  v1::Job job;
  ASSERT_TRUE(SubmitWith(As(bob), spec, &job).ok());
  EXPECT_EQ(job.owner(), "bob");
  const std::string id = job.id();

  EXPECT_EQ(GetJob(As(alice), id).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  auto jobs = v1::JobService::NewStub(As(alice));
  {
    grpc::ClientContext context;
    v1::StreamLogsRequest request;
    request.set_job_id(id);
    request.set_follow(true);
    auto reader = jobs->StreamLogs(&context, request);
    v1::StreamLogsResponse response;
    EXPECT_FALSE(reader->Read(&response));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext context;
    v1::WatchJobRequest request;
    request.set_job_id(id);
    auto reader = jobs->WatchJob(&context, request);
    v1::WatchJobResponse response;
    EXPECT_FALSE(reader->Read(&response));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  {
    grpc::ClientContext context;
    v1::GetMetricsRequest request;
    request.set_job_id(id);
    v1::GetMetricsResponse response;
    EXPECT_EQ(jobs->GetMetrics(&context, request, &response).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  testing::CommandResult cancel =
      Drover({"--server", droverd_->address(), "cancel", id}, {"DROVER_TOKEN=" + alice});
  EXPECT_NE(cancel.exit_code, 0);
  EXPECT_THAT(cancel.err, HasSubstr("belongs to another user"));
  EXPECT_EQ(testing::DownloadBlob(*v1::BlobService::NewStub(As(alice)), *digest).status().code(),
            absl::StatusCode::kPermissionDenied);
  {
    grpc::ClientContext context;
    v1::DownloadBlobRequest request;
    request.set_digest(*digest);
    request.set_job_id(id);
    auto reader = v1::BlobService::NewStub(As(alice))->DownloadBlob(&context, request);
    v1::DownloadBlobResponse chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
  // Alice's list holds none of Bob's jobs; the viewer's does.
  testing::CommandResult alice_list =
      Drover({"--server", droverd_->address(), "list"}, {"DROVER_TOKEN=" + alice});
  EXPECT_EQ(alice_list.exit_code, 0) << alice_list.err;
  EXPECT_THAT(alice_list.out, ::testing::Not(HasSubstr(id + " ")));
  testing::CommandResult viewer_list =
      Drover({"--server", droverd_->address(), "list"}, {"DROVER_TOKEN=" + vic});
  EXPECT_THAT(viewer_list.out, HasSubstr(id + " "));

  // Bob reads, downloads his snapshot and cancels.
  EXPECT_TRUE(GetJob(As(bob), id).ok());
  EXPECT_EQ(*testing::DownloadBlob(*blobs, *digest), "bob's code");
  testing::CommandResult bob_cancel =
      Drover({"--server", droverd_->address(), "cancel", id}, {"DROVER_TOKEN=" + bob});
  EXPECT_EQ(bob_cancel.exit_code, 0) << bob_cancel.err;
}

TEST_F(UsersE2eTest, SecretValuesShowAsStarsAndValuesOnlyToOwnerAndAdmins) {
  std::string bob = CreateUser("bob", "user");
  std::string vic = CreateUser("vic", "viewer");
  testing::CommandResult submitted = Drover(
      {"--server", droverd_->address(), "submit", "--env", "SEED=7", "--secret-env",
       "API_TOKEN=hunter2", "train.py"},
      {"DROVER_TOKEN=" + bob});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string id(absl::StripAsciiWhitespace(submitted.out));
  for (const std::string& token : {bob, testing::TestAdminTokenValue(), vic}) {
    testing::CommandResult shown = Drover(
        {"--server", droverd_->address(), "show", id, "--output", "json"}, {"DROVER_TOKEN=" + token});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    EXPECT_THAT(shown.out, ::testing::Not(HasSubstr("hunter2")));
    EXPECT_THAT(shown.out, HasSubstr("\"API_TOKEN\": \"***\""));
    if (token == vic) {
      EXPECT_THAT(shown.out, HasSubstr("\"SEED\": \"***\""));
    } else {
      EXPECT_THAT(shown.out, HasSubstr("\"SEED\": \"7\""));
    }
  }
  testing::CommandResult listed = Drover({"--server", droverd_->address(), "list", "--output", "json"},
                                         {"DROVER_TOKEN=" + vic});
  EXPECT_THAT(listed.out, ::testing::Not(HasSubstr("hunter2")));
}

TEST_F(UsersE2eTest, ARevokedTokenStopsWorkingWithinSecondsAndANewOneWorks) {
  std::string alice = CreateUser("alice", "user");
  ASSERT_TRUE(SubmitWith(As(alice), Spec()).ok());
  testing::CommandResult revoked = Drover({"--server", "unix:" + socket_, "user", "revoke", "alice"});
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  absl::Time deadline = absl::Now() + absl::Seconds(5);
  grpc::Status status;
  do {
    status = SubmitWith(As(alice), Spec());
  } while (status.ok() && absl::Now() < deadline);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), HasSubstr("revoked"));
  testing::CommandResult again = Drover({"--server", "unix:" + socket_, "user", "token", "alice"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(SubmitWith(As(std::string(absl::StripAsciiWhitespace(again.out))), Spec()).ok());
}

TEST_F(UsersE2eTest, LoginSavesTheTokenForLaterCommands) {
  std::string alice = CreateUser("alice", "user");
  testing::CommandResult login = Drover(
      {"login", droverd_->address(), "--token", alice, "--ca", droverd_->ca_file()});
  ASSERT_EQ(login.exit_code, 0) << login.err;
  EXPECT_THAT(login.out, HasSubstr("as alice (user)"));
  struct stat st {};
  ASSERT_EQ(::stat((dir_.path() + "/config").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // No flag, no variable: the config file's server, CA and token.
  absl::StatusOr<testing::CommandResult> who = testing::RunCommand(
      {DROVER_CLI_PATH, "whoami"},
      {"DROVER_TOKEN=", "DROVER_SERVER=", "DROVER_CA=", "DROVER_CONFIG=" + dir_.path() + "/config"});
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->out, "alice user\nblob store: 0 B held of 100 GiB (quota)\n") << who->err;
}

TEST_F(UsersE2eTest, HostileUserNamesAreRefused) {
  for (const std::string& name : {std::string("a/b"), std::string(".."), std::string(300, 'a'),
                                  std::string("\xc3\xa9lise"), std::string("local-socket")}) {
    testing::CommandResult r =
        Drover({"--server", "unix:" + socket_, "user", "create", name, "--role", "user"});
    EXPECT_EQ(r.exit_code, 3) << name << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("name: ")) << name;
  }
}

}  // namespace
}  // namespace drover
