// The audit of changing calls, gRPC's health and reflection services, and the peer check
// of the local admin socket, against a real droverd over TLS (issue 15; see
// docs/security.md). Users are made over the local admin socket, as root on droverd's host
// does; the audit is read as an admin would, with `drover audit`.
#include <grpcpp/client_context.h>
#include <grpcpp/impl/codegen/client_unary_call.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/sync_stream.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/subprocess.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kReflection[] = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& slice : slices) {
    out.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return out;
}

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// grpc.health.v1.Health/Check of the whole server; `*response` gets the answer's bytes.
grpc::Status HealthCheck(const std::shared_ptr<grpc::Channel>& channel, std::string* response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::internal::RpcMethod method("/grpc.health.v1.Health/Check",
                                   grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::ByteBuffer answer;
  grpc::Status status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      channel.get(), method, &context, Buffer(""), &answer);
  *response = Bytes(answer);
  return status;
}

// Asks server reflection for the list of services (ServerReflectionRequest.list_services,
// field 7) as grpcurl does; `*answers` gets the bytes of every answer.
grpc::Status ListServicesByReflection(const std::shared_ptr<grpc::Channel>& channel,
                                      std::string* answers) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::internal::RpcMethod method(kReflection, grpc::internal::RpcMethod::BIDI_STREAMING);
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel.get(), method, &context));
  stream->Write(Buffer(std::string("\x3a\x00", 2)));
  grpc::ByteBuffer answer;
  if (stream->Read(&answer)) *answers += Bytes(answer);
  stream->WritesDone();
  while (stream->Read(&answer)) *answers += Bytes(answer);
  return stream->Finish();
}

class AuditE2eTest : public testing::LocalClusterTest {
 protected:
  AuditE2eTest()
      : LocalClusterTest({.agents = 0, .datastore_root = false}, /*needs_root=*/false) {}

  void SetUp() override {
    LocalClusterTest::SetUp();
    socket_ = dir_.path() + "/state/admin.sock";
  }

  // `drover ARGS...` with no token of the test's own unless `env` gives one.
  testing::CommandResult Drover(std::vector<std::string> args, std::vector<std::string> env = {},
                                std::vector<std::string> prefix = {}) {
    args.insert(args.begin(), DROVER_CLI_PATH);
    args.insert(args.begin(), prefix.begin(), prefix.end());
    env.insert(env.begin(), {"DROVER_TOKEN=", "DROVER_SERVER=", "DROVER_CONFIG=" + dir_.path() + "/config",
                             "DROVER_CA=" + droverd_->ca_file()});
    absl::StatusOr<testing::CommandResult> result = testing::RunCommand(args, env);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : testing::CommandResult{};
  }

  testing::CommandResult As(const std::string& token, std::vector<std::string> args) {
    args.insert(args.begin(), {"--server", droverd_->address()});
    return Drover(std::move(args), {"DROVER_TOKEN=" + token});
  }

  std::string CreateUser(const std::string& name, const std::string& role) {
    testing::CommandResult r =
        Drover({"--server", "unix:" + socket_, "user", "create", name, "--role", role});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return std::string(absl::StripAsciiWhitespace(r.out));
  }

  // The audit as the bootstrap admin reads it over TLS, once it holds a record of `method`
  // by `who` (records are written right after the answer).
  std::vector<v1::AuditRecord> AwaitAudit(const std::string& who, const std::string& method) {
    auto admin = v1::AdminService::NewStub(testing::TlsChannel(droverd_->address()));
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    std::vector<v1::AuditRecord> records;
    while (absl::Now() < deadline) {
      grpc::ClientContext context;
      v1::ListAuditRecordsRequest request;
      request.set_page_size(1000);
      v1::ListAuditRecordsResponse response;
      grpc::Status status = admin->ListAuditRecords(&context, request, &response);
      EXPECT_TRUE(status.ok()) << status.error_message();
      records.assign(response.records().begin(), response.records().end());
      for (const v1::AuditRecord& record : records) {
        if (record.who() == who && absl::EndsWith(record.method(), "/" + method)) return records;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "no audit record of " << method << " by " << who;
    return records;
  }

  static const v1::AuditRecord* Find(const std::vector<v1::AuditRecord>& records,
                                     const std::string& who, const std::string& method) {
    for (const v1::AuditRecord& record : records) {
      if (record.who() == who && absl::EndsWith(record.method(), "/" + method)) return &record;
    }
    return nullptr;
  }

  std::string socket_;
};

TEST_F(AuditE2eTest, AUsersSubmitAndCancelShowInTheAdminsAuditWithNameTargetAndResult) {
  std::string alice = CreateUser("alice", "user");
  testing::CommandResult submitted = As(alice, {"submit", "train.py"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string id(absl::StripAsciiWhitespace(submitted.out));
  testing::CommandResult canceled = As(alice, {"cancel", id});
  ASSERT_EQ(canceled.exit_code, 0) << canceled.err;

  std::vector<v1::AuditRecord> records = AwaitAudit("alice", "CancelJob");
  const v1::AuditRecord* submit = Find(records, "alice", "SubmitJob");
  ASSERT_NE(submit, nullptr);
  EXPECT_EQ(submit->method(), "/drover.v1.JobService/SubmitJob");
  EXPECT_EQ(submit->who_kind(), "user");
  EXPECT_EQ(submit->target(), id);
  EXPECT_EQ(submit->code(), 0);
  EXPECT_THAT(submit->peer(), HasSubstr("127.0.0.1"));
  const v1::AuditRecord* cancel = Find(records, "alice", "CancelJob");
  ASSERT_NE(cancel, nullptr);
  EXPECT_EQ(cancel->target(), id);
  EXPECT_EQ(cancel->code(), 0);
  EXPECT_GT(cancel->id(), submit->id());
  // The user was made over the local socket: who is local-socket, from unix.
  const v1::AuditRecord* create = Find(records, "local-socket", "CreateUser");
  ASSERT_NE(create, nullptr);
  EXPECT_EQ(create->peer(), "unix");
  EXPECT_EQ(create->who_kind(), "local");
  EXPECT_EQ(create->target(), "alice");
  // Reads are not recorded.
  EXPECT_EQ(Find(records, "alice", "GetJob"), nullptr);
  EXPECT_EQ(Find(records, "alice", "WhoAmI"), nullptr);

  // What the admin sees with the CLI, filtered, newest first.
  testing::CommandResult audit =
      As(testing::TestAdminTokenValue(), {"audit", "--user", "alice", "--since", "1h"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  std::vector<std::string> lines = absl::StrSplit(audit.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << audit.out;
  EXPECT_THAT(lines[0], HasSubstr("TIME"));
  EXPECT_THAT(lines[1], HasSubstr("JobService/CancelJob"));
  EXPECT_THAT(lines[1], HasSubstr(id));
  EXPECT_THAT(lines[1], HasSubstr(" OK"));
  EXPECT_THAT(lines[2], HasSubstr("JobService/SubmitJob"));
  testing::CommandResult cancels =
      As(testing::TestAdminTokenValue(), {"audit", "--method", "CancelJob", "--json"});
  ASSERT_EQ(cancels.exit_code, 0) << cancels.err;
  EXPECT_THAT(cancels.out, HasSubstr("\"who\":\"alice\""));
  EXPECT_THAT(cancels.out, Not(HasSubstr("SubmitJob")));
}

TEST_F(AuditE2eTest, RefusedCallsAreRecordedWithTheirCode) {
  std::string alice = CreateUser("alice", "user");
  testing::CommandResult cordon = As(alice, {"node", "cordon", "gpu-01"});
  EXPECT_EQ(cordon.exit_code, 7) << cordon.err;
  EXPECT_THAT(cordon.err, HasSubstr("needs the role admin"));
  testing::CommandResult anonymous = As("", {"cancel", "j-1"});
  EXPECT_EQ(anonymous.exit_code, 7) << anonymous.err;
  testing::CommandResult forged = As("drv_forged-token-of-nobody-at-all", {"cancel", "j-2"});
  EXPECT_EQ(forged.exit_code, 7) << forged.err;

  std::vector<v1::AuditRecord> records = AwaitAudit("alice", "CordonNode");
  const v1::AuditRecord* refused = Find(records, "alice", "CordonNode");
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->code(), static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_THAT(refused->message(), HasSubstr("needs the role admin"));
  EXPECT_EQ(refused->target(), "gpu-01");
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  int unauthenticated = 0;
  while (unauthenticated < 2 && absl::Now() < deadline) {
    records = AwaitAudit("alice", "CordonNode");
    unauthenticated = 0;
    for (const v1::AuditRecord& record : records) {
      if (record.who().empty() && absl::EndsWith(record.method(), "/CancelJob") &&
          record.code() == static_cast<int>(grpc::StatusCode::UNAUTHENTICATED)) {
        ++unauthenticated;
        EXPECT_EQ(record.who_kind(), "anonymous");
      }
    }
  }
  EXPECT_EQ(unauthenticated, 2);
  testing::CommandResult audit = As(testing::TestAdminTokenValue(), {"audit", "--user", "alice"});
  EXPECT_THAT(audit.out, HasSubstr("PERMISSION_DENIED: CordonNode needs the role admin"));
}

TEST_F(AuditE2eTest, OnlyAdminsReadTheAudit) {
  std::string alice = CreateUser("alice", "user");
  std::string vic = CreateUser("vic", "viewer");
  for (const std::string& token : {alice, vic}) {
    testing::CommandResult audit = As(token, {"audit"});
    EXPECT_EQ(audit.exit_code, 7) << audit.err;
    EXPECT_THAT(audit.err, HasSubstr("needs the role admin"));
    EXPECT_THAT(audit.out, Not(HasSubstr("CreateUser")));
  }
  testing::CommandResult anonymous = As("", {"audit"});
  EXPECT_EQ(anonymous.exit_code, 7);
  EXPECT_THAT(anonymous.err, HasSubstr("drover login"));
  EXPECT_EQ(Drover({"--server", "unix:" + socket_, "audit"}).exit_code, 0);
}

TEST_F(AuditE2eTest, NoTokenOrSecretValueReachesTheAudit) {
  std::string alice = CreateUser("alice", "user");
  testing::CommandResult again = Drover({"--server", "unix:" + socket_, "user", "token", "alice"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const std::string new_token(absl::StripAsciiWhitespace(again.out));
  testing::CommandResult join =
      As(testing::TestAdminTokenValue(), {"node", "token", "create", "--ttl", "1h", "--name", "gpu-01"});
  ASSERT_EQ(join.exit_code, 0) << join.err;
  const std::string join_token(absl::StripAsciiWhitespace(join.out));
  testing::CommandResult submitted =
      As(new_token, {"submit", "--secret-env", "API_TOKEN=hunter2-secret", "train.py"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  AwaitAudit("alice", "SubmitJob");
  testing::CommandResult audit = As(testing::TestAdminTokenValue(), {"audit", "--json"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  EXPECT_THAT(audit.out, HasSubstr("CreateJoinToken"));
  EXPECT_THAT(audit.out, HasSubstr("IssueUserToken"));
  for (const std::string& secret :
       {alice, new_token, join_token, testing::TestAdminTokenValue(), std::string("hunter2")}) {
    ASSERT_FALSE(secret.empty());
    EXPECT_THAT(audit.out, Not(HasSubstr(secret)));
  }
}

TEST_F(AuditE2eTest, HugeLimitsAndBadTimesAreHandled) {
  CreateUser("alice", "user");
  AwaitAudit("local-socket", "CreateUser");
  const std::string admin = testing::TestAdminTokenValue();
  testing::CommandResult huge = As(admin, {"audit", "--limit", "9223372036854775807"});
  EXPECT_EQ(huge.exit_code, 0) << huge.err;
  EXPECT_THAT(huge.out, HasSubstr("CreateUser"));
  for (const char* since : {"bogus", "-1h", "1970-01-01T00:00:00Z", "99999999999999d"}) {
    testing::CommandResult bad = As(admin, {"audit", "--since", since});
    EXPECT_EQ(bad.exit_code, 2) << since << ": " << bad.err;
    EXPECT_THAT(bad.err, HasSubstr("--since"));
  }
  testing::CommandResult future = As(admin, {"audit", "--since", "9000-01-01T00:00:00Z"});
  EXPECT_EQ(future.exit_code, 0) << future.err;
  EXPECT_THAT(future.out, Not(HasSubstr("CreateUser")));
  // The API refuses what the CLI never sends.
  auto stub = v1::AdminService::NewStub(testing::TlsChannel(droverd_->address()));
  {
    grpc::ClientContext context;
    v1::ListAuditRecordsRequest request;
    request.set_page_token("not-a-token");
    v1::ListAuditRecordsResponse response;
    EXPECT_EQ(stub->ListAuditRecords(&context, request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext context;
    v1::ListAuditRecordsRequest request;
    request.mutable_since()->set_seconds(int64_t{1} << 62);
    request.set_page_size(-5);
    v1::ListAuditRecordsResponse response;
    EXPECT_EQ(stub->ListAuditRecords(&context, request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    grpc::ClientContext context;
    v1::ListAuditRecordsRequest request;
    request.set_page_size(1 << 30);
    v1::ListAuditRecordsResponse response;
    EXPECT_TRUE(stub->ListAuditRecords(&context, request, &response).ok());
    EXPECT_GE(response.records_size(), 1);
  }
}

TEST_F(AuditE2eTest, TheHealthServiceAnswersWithoutCredentialsAndIsNotAudited) {
  std::string response;
  grpc::Status status = HealthCheck(testing::TlsChannel(droverd_->address(), "", ""), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response, std::string("\x08\x01", 2));  // status: SERVING
  // Also with a wrong token (a load balancer's probe knows none).
  EXPECT_TRUE(HealthCheck(testing::TlsChannel(droverd_->address(), "", "drv_wrong"), &response).ok());
  CreateUser("alice", "user");
  std::vector<v1::AuditRecord> records = AwaitAudit("local-socket", "CreateUser");
  for (const v1::AuditRecord& record : records) EXPECT_THAT(record.method(), Not(HasSubstr("Health")));
}

TEST_F(AuditE2eTest, ServerReflectionIsForAdminsOnly) {
  std::string alice = CreateUser("alice", "user");
  std::string vic = CreateUser("vic", "viewer");
  std::string answers;
  grpc::Status admin = ListServicesByReflection(testing::TlsChannel(droverd_->address()), &answers);
  EXPECT_TRUE(admin.ok()) << admin.error_message();
  EXPECT_THAT(answers, HasSubstr("drover.v1.JobService"));
  EXPECT_THAT(answers, HasSubstr("drover.v1.AdminService"));
  for (const std::string& token : {alice, vic}) {
    answers.clear();
    grpc::Status status =
        ListServicesByReflection(testing::TlsChannel(droverd_->address(), "", token), &answers);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("needs the role admin"));
    EXPECT_THAT(answers, Not(HasSubstr("drover.v1")));
  }
  answers.clear();
  grpc::Status anonymous =
      ListServicesByReflection(testing::TlsChannel(droverd_->address(), "", ""), &answers);
  EXPECT_EQ(anonymous.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(answers, Not(HasSubstr("drover.v1")));
}

TEST_F(AuditE2eTest, TheAdminSocketRefusesOtherUsersEvenWhenItsModeIsLoosened) {
  // What a careless chmod would do: every user can reach the socket.
  for (std::string path = socket_; path != dir_.path(); path = path.substr(0, path.rfind('/'))) {
    ASSERT_EQ(::chmod(path.c_str(), path == socket_ ? 0666 : 0755), 0) << path;
  }
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  testing::CommandResult nobody =
      Drover({"--server", "unix:" + socket_, "whoami"}, {},
             {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  EXPECT_EQ(nobody.exit_code, 7) << nobody.out << nobody.err;
  EXPECT_THAT(nobody.err, HasSubstr("only; run drover as one of them"));
  testing::CommandResult create =
      Drover({"--server", "unix:" + socket_, "user", "create", "mallory", "--role", "admin"}, {},
             {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  EXPECT_EQ(create.exit_code, 7) << create.err;
  // The refusal is audited; root still gets in.
  std::vector<v1::AuditRecord> records = AwaitAudit("", "CreateUser");
  const v1::AuditRecord* refused = Find(records, "", "CreateUser");
  ASSERT_NE(refused, nullptr);
  EXPECT_EQ(refused->peer(), "unix");
  EXPECT_EQ(refused->code(), static_cast<int>(grpc::StatusCode::PERMISSION_DENIED));
  EXPECT_EQ(refused->target(), "mallory");
  testing::CommandResult root = Drover({"--server", "unix:" + socket_, "whoami"});
  EXPECT_EQ(root.exit_code, 0) << root.err;
  EXPECT_EQ(root.out, "local-socket admin\nblob store: 0 B held, no quota\n");
}

TEST_F(AuditE2eTest, RecordsSurviveARestartAndRetentionKeepsTheNewest) {
  // 1,100 refused cancels (no such job), then a restart with a cap of 1,000 records.
  auto jobs = v1::JobService::NewStub(testing::TlsChannel(droverd_->address()));
  for (int i = 1; i <= 1100; ++i) {
    grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(absl::StrCat("j-", 100000 + i));
    v1::Job job;
    ASSERT_EQ(jobs->CancelJob(&context, request, &job).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  auto count = [&](const std::string& since_job) {
    auto admin = v1::AdminService::NewStub(testing::TlsChannel(droverd_->address()));
    int records = 0;
    bool newest_kept = false;
    std::string token;
    do {
      grpc::ClientContext context;
      v1::ListAuditRecordsRequest request;
      request.set_method("CancelJob");
      request.set_page_size(1000);
      request.set_page_token(token);
      v1::ListAuditRecordsResponse response;
      if (!admin->ListAuditRecords(&context, request, &response).ok()) return -1;
      records += response.records_size();
      for (const v1::AuditRecord& record : response.records()) {
        if (record.target() == since_job) newest_kept = true;
      }
      token = response.next_page_token();
    } while (!token.empty());
    return newest_kept ? records : -records;
  };
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (count("j-101100") != 1100 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
  ASSERT_EQ(count("j-101100"), 1100);
  StopDroverd(SIGKILL);
  StartDroverd({"--audit-max-records", "1000"});
  ASSERT_FALSE(HasFatalFailure());
  // Pruned at start: the newest 1,000 of every record, the last cancel among them.
  deadline = absl::Now() + absl::Seconds(20);
  int left = 0;
  do {
    left = count("j-101100");
    if (left > 1000) absl::SleepFor(absl::Milliseconds(50));
  } while (left > 1000 && absl::Now() < deadline);
  // Every record of this test is a cancel, so the cancels are what is kept.
  EXPECT_EQ(left, 1000) << "negative: the newest record was removed";
  // Nonsense retention flags stop droverd with a message.
  StopDroverd(SIGKILL);
  for (const std::vector<std::string>& flags :
       std::vector<std::vector<std::string>>{{"--audit-max-records", "5"},
                                             {"--audit-retention", "1s"},
                                             {"--audit-retention", "soon"}}) {
    auto refused = testing::DroverdProcess::Start(dir_.path() + "/state", flags);
    EXPECT_FALSE(refused.ok()) << flags[0] << " " << flags[1];
  }
}

}  // namespace
}  // namespace drover
