// The authorization policy (server/authz.h) and token hashing (server/auth.h), without a
// server: every method has a rule, each role gets what docs/security.md promises, and job
// answers are redacted.
#include "server/authz.h"

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/agent_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "drover/v1/sweep_service.grpc.pb.h"
#include "drover/v1/node_identity.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "server/auth.h"

namespace drover::server {
namespace {

using ::testing::HasSubstr;

Caller User(const std::string& name, v1::User::Role role) {
  return Caller{.kind = Caller::Kind::kUser, .name = name, .role = role};
}

// gRPC's own services droverd serves: health and reflection.
const std::set<std::string>& GrpcStandardMethods() {
  static const auto* methods = new std::set<std::string>{
      "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"};
  return *methods;
}

// Every method of every service droverd serves, by full name.
std::set<std::string> ServedMethods() {
  std::set<std::string> methods;
  // Naming the files' descriptor tables links them in, so that the pool knows them.
  for (const auto* table : {&descriptor_table_drover_2fv1_2fjob_5fservice_2eproto,
                            &descriptor_table_drover_2fv1_2fadmin_5fservice_2eproto,
                            &descriptor_table_drover_2fv1_2fblob_2eproto,
                            &descriptor_table_drover_2fv1_2fagent_5fservice_2eproto,
                            &descriptor_table_drover_2fv1_2fnode_5fidentity_2eproto,
                            &descriptor_table_drover_2fv1_2fsweep_5fservice_2eproto}) {
    (void)table;
  }
  for (const char* name : {v1::JobService::service_full_name(), v1::AdminService::service_full_name(),
                           v1::BlobService::service_full_name(),
                           v1::AgentService::service_full_name(),
                           v1::NodeIdentityService::service_full_name(),
                           v1::SweepService::service_full_name()}) {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(name);
    if (service == nullptr) {
      ADD_FAILURE() << name << " has no descriptor";
      continue;
    }
    for (int i = 0; i < service->method_count(); ++i) {
      methods.insert("/" + service->full_name() + "/" + service->method(i)->name());
    }
  }
  return methods;
}

TEST(AuthzTest, EveryMethodOfEveryServedServiceHasARule) {
  // The services of the files droverd serves, so that a new service is noticed too.
  std::set<std::string> services;
  for (const char* file : {"drover/v1/job_service.proto", "drover/v1/admin_service.proto",
                           "drover/v1/blob.proto", "drover/v1/agent_service.proto",
                           "drover/v1/node_identity.proto", "drover/v1/sweep_service.proto"}) {
    const google::protobuf::FileDescriptor* descriptor =
        google::protobuf::DescriptorPool::generated_pool()->FindFileByName(file);
    ASSERT_NE(descriptor, nullptr) << file;
    for (int i = 0; i < descriptor->service_count(); ++i) {
      services.insert(descriptor->service(i)->full_name());
    }
  }
  // Served by drover-agent on its peer port, not by droverd.
  services.erase("drover.v1.AgentPeerService");
  EXPECT_EQ(services, (std::set<std::string>{"drover.v1.JobService", "drover.v1.AdminService",
                                             "drover.v1.BlobService", "drover.v1.AgentService",
                                             "drover.v1.NodeIdentityService",
                                             "drover.v1.SweepService"}))
      << "a new service: add its methods to MethodRules() and to this test";
  for (const std::string& method : ServedMethods()) {
    EXPECT_TRUE(MethodRules().contains(method)) << method << " has no rule in server/authz.cc";
  }
  for (const auto& [method, rule] : MethodRules()) {
    EXPECT_TRUE(ServedMethods().contains(method) || GrpcStandardMethods().contains(method))
        << method << " is no method of droverd";
  }
  for (const std::string& method : GrpcStandardMethods()) {
    EXPECT_TRUE(MethodRules().contains(method)) << method << " has no rule in server/authz.cc";
  }
}

// A method changes something unless its name says it reads; every changing method is
// audited, and no reading one. A new method named otherwise fails here until it is put in
// one of the lists below.
TEST(AuthzTest, EveryChangingMethodIsAuditedAndNoReadingOne) {
  const std::set<std::string> reads_by_exception = {
      // The agent's stream: reports, logs and metrics of attempts (logged, not audited).
      "/drover.v1.AgentService/Connect",
  };
  std::set<std::string> audited;
  for (const std::string& method : ServedMethods()) {
    const std::string name = method.substr(method.rfind('/') + 1);
    const bool reads = absl::StartsWith(name, "Get") || absl::StartsWith(name, "List") ||
                       absl::StartsWith(name, "Watch") || absl::StartsWith(name, "Stream") ||
                       absl::StartsWith(name, "Stat") || absl::StartsWith(name, "Download") ||
                       name == "WhoAmI" || reads_by_exception.contains(method);
    EXPECT_EQ(IsAudited(method), !reads) << method;
    if (IsAudited(method)) audited.insert(method);
  }
  // Spelled out, so that a change of the list is a visible decision.
  EXPECT_EQ(audited, (std::set<std::string>{
                         "/drover.v1.JobService/SubmitJob",
                         "/drover.v1.JobService/CancelJob",
                         "/drover.v1.JobService/UpdateJobTags",
                         "/drover.v1.SweepService/SubmitSweep",
                         "/drover.v1.SweepService/CancelSweep",
                         "/drover.v1.AdminService/CordonNode",
                         "/drover.v1.AdminService/UncordonNode",
                         "/drover.v1.AdminService/DrainNode",
                         "/drover.v1.AdminService/DeclareNodeLost",
                         "/drover.v1.AdminService/PutComputeTarget",
                         "/drover.v1.AdminService/DeleteComputeTarget",
                         "/drover.v1.AdminService/PutImage",
                         "/drover.v1.AdminService/DeleteImage",
                         "/drover.v1.AdminService/PutDatastore",
                         "/drover.v1.AdminService/DeleteDatastore",
                         "/drover.v1.AdminService/CreateUser",
                         "/drover.v1.AdminService/RevokeUser",
                         "/drover.v1.AdminService/CollectGarbage",
                         "/drover.v1.AdminService/IssueUserToken",
                         "/drover.v1.AdminService/SetUserBlobQuota",
                         "/drover.v1.BlobService/UploadBlob",
                         "/drover.v1.NodeIdentityService/CreateJoinToken",
                         "/drover.v1.NodeIdentityService/RevokeJoinToken",
                         "/drover.v1.NodeIdentityService/RevokeNodeCertificates",
                         "/drover.v1.NodeIdentityService/JoinNode",
                         "/drover.v1.NodeIdentityService/RenewNodeCertificate",
                     }));
  for (const std::string& method : GrpcStandardMethods()) EXPECT_FALSE(IsAudited(method)) << method;
  // A method without a rule is refused, and audited.
  EXPECT_TRUE(IsAudited("/drover.v1.JobService/DeleteEverything"));
}

TEST(AuthzTest, HealthIsForAnyoneAndReflectionForAdminsOnly) {
  for (const char* method : {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"}) {
    EXPECT_TRUE(Authorize(Caller(), method).ok()) << method;
  }
  const char* reflection = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
  EXPECT_TRUE(absl::IsUnauthenticated(Authorize(Caller(), reflection)));
  EXPECT_TRUE(absl::IsUnauthenticated(
      Authorize(Caller{.kind = Caller::Kind::kNode, .name = "n1"}, reflection)));
  for (v1::User::Role role : {v1::User::VIEWER, v1::User::USER}) {
    absl::Status status = Authorize(User("alice", role), reflection);
    EXPECT_TRUE(absl::IsPermissionDenied(status)) << role;
    EXPECT_THAT(status.message(), HasSubstr("needs the role admin"));
  }
  EXPECT_TRUE(Authorize(User("root", v1::User::ADMIN), reflection).ok());
  EXPECT_TRUE(Authorize(User("root", v1::User::ADMIN), "/drover.v1.AdminService/ListAuditRecords").ok());
  for (v1::User::Role role : {v1::User::VIEWER, v1::User::USER}) {
    EXPECT_TRUE(absl::IsPermissionDenied(
        Authorize(User("alice", role), "/drover.v1.AdminService/ListAuditRecords")))
        << role;
  }
}

TEST(AuthzTest, CallsWithoutATokenAreUnauthenticatedAndSayWhatToDo) {
  Caller nobody;
  for (const std::string& method : ServedMethods()) {
    if (absl::StrContains(method, "AgentService") ||
        absl::StrContains(method, "NodeIdentityService/JoinNode") ||
        absl::StrContains(method, "NodeIdentityService/RenewNodeCertificate")) {
      continue;  // agents: checked by the service (certificate or join token)
    }
    absl::Status status = Authorize(nobody, method);
    EXPECT_TRUE(absl::IsUnauthenticated(status)) << method << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr("DROVER_TOKEN")) << method;
  }
}

TEST(AuthzTest, BlobCallsNeedATokenOrANodeCertificate) {
  Caller nobody;
  Caller node{.kind = Caller::Kind::kNode, .name = "n1"};
  for (const char* method : {"/drover.v1.BlobService/StatBlob", "/drover.v1.BlobService/UploadBlob",
                             "/drover.v1.BlobService/DownloadBlob"}) {
    EXPECT_TRUE(absl::IsUnauthenticated(Authorize(nobody, method))) << method;
    EXPECT_TRUE(Authorize(node, method).ok()) << method;
  }
  EXPECT_TRUE(absl::IsUnauthenticated(Authorize(node, "/drover.v1.JobService/SubmitJob")));
  // A node manages no join tokens and revokes no certificates.
  EXPECT_FALSE(Authorize(node, "/drover.v1.NodeIdentityService/CreateJoinToken").ok());
  EXPECT_FALSE(Authorize(node, "/drover.v1.NodeIdentityService/RevokeNodeCertificates").ok());
}

TEST(AuthzTest, UsersCannotAdministerAndAreToldWhichRoleIsNeeded) {
  Caller alice = User("alice", v1::User::USER);
  for (const char* method :
       {"/drover.v1.AdminService/CordonNode", "/drover.v1.AdminService/PutDatastore",
        "/drover.v1.AdminService/CreateUser", "/drover.v1.AdminService/ListUsers",
        "/drover.v1.AdminService/PutImage", "/drover.v1.AdminService/DeleteComputeTarget"}) {
    absl::Status status = Authorize(alice, method);
    EXPECT_TRUE(absl::IsPermissionDenied(status)) << method;
    EXPECT_THAT(status.message(), HasSubstr("needs the role admin")) << method;
  }
  EXPECT_TRUE(Authorize(alice, "/drover.v1.JobService/SubmitJob").ok());
  EXPECT_TRUE(Authorize(alice, "/drover.v1.AdminService/ListComputeTargets").ok());
  EXPECT_TRUE(Authorize(alice, "/drover.v1.AdminService/WhoAmI").ok());
}

TEST(AuthzTest, ViewersReadButCannotSubmitOrCancel) {
  Caller viewer = User("vic", v1::User::VIEWER);
  EXPECT_TRUE(Authorize(viewer, "/drover.v1.JobService/ListJobs").ok());
  EXPECT_TRUE(Authorize(viewer, "/drover.v1.JobService/StreamLogs").ok());
  for (const char* method : {"/drover.v1.JobService/SubmitJob", "/drover.v1.JobService/CancelJob",
                             "/drover.v1.JobService/UpdateJobTags",
                             "/drover.v1.BlobService/UploadBlob"}) {
    absl::Status status = Authorize(viewer, method);
    EXPECT_TRUE(absl::IsPermissionDenied(status)) << method;
    EXPECT_THAT(status.message(), HasSubstr("needs the role user or admin"));
  }
}

TEST(AuthzTest, AdminsAndTheLocalSocketMayDoEverything) {
  Caller local{.kind = Caller::Kind::kLocalAdmin, .name = std::string(kLocalSocketOwner),
               .role = v1::User::ADMIN};
  std::set<std::string> methods = ServedMethods();
  methods.insert(GrpcStandardMethods().begin(), GrpcStandardMethods().end());
  for (const std::string& method : methods) {
    EXPECT_TRUE(Authorize(User("root", v1::User::ADMIN), method).ok()) << method;
    EXPECT_TRUE(Authorize(local, method).ok()) << method;
  }
}

TEST(AuthzTest, UnknownMethodsAreRefused) {
  EXPECT_TRUE(absl::IsPermissionDenied(
      Authorize(User("root", v1::User::ADMIN), "/drover.v1.JobService/DeleteEverything")));
}

TEST(AuthzTest, UsersReadAndCancelOnlyTheirOwnJobs) {
  v1::Job job;
  job.set_id("j-1");
  job.set_owner("bob");
  EXPECT_TRUE(CanReadJob(User("bob", v1::User::USER), job).ok());
  EXPECT_TRUE(CanChangeJob(User("bob", v1::User::USER), job).ok());
  absl::Status read = CanReadJob(User("alice", v1::User::USER), job);
  EXPECT_TRUE(absl::IsPermissionDenied(read));
  EXPECT_THAT(read.message(), HasSubstr("belongs to another user"));
  EXPECT_TRUE(absl::IsPermissionDenied(CanChangeJob(User("alice", v1::User::USER), job)));
  EXPECT_TRUE(CanReadJob(User("vic", v1::User::VIEWER), job).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(CanChangeJob(User("vic", v1::User::VIEWER), job)));
  // A viewer named like the owner still cannot cancel.
  EXPECT_TRUE(absl::IsPermissionDenied(CanChangeJob(User("bob", v1::User::VIEWER), job)));
  EXPECT_TRUE(CanChangeJob(User("root", v1::User::ADMIN), job).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(CanReadJob(Caller(), job)));
}

TEST(AuthzTest, SweepsFollowTheJobsRulesAndHideTheTemplatesValues) {
  v1::Sweep sweep;
  sweep.set_id("s-0000000000000001");
  sweep.set_owner("bob");
  auto* env = sweep.mutable_spec()->mutable_trial_template()->mutable_environment();
  (*env->mutable_env())["SEED"] = "7";
  (*env->mutable_env())["API_TOKEN"] = "hunter2";
  env->add_secret_env("API_TOKEN");
  EXPECT_TRUE(CanReadSweep(User("bob", v1::User::USER), sweep).ok());
  EXPECT_TRUE(CanChangeSweep(User("bob", v1::User::USER), sweep).ok());
  absl::Status read = CanReadSweep(User("alice", v1::User::USER), sweep);
  EXPECT_TRUE(absl::IsPermissionDenied(read));
  EXPECT_THAT(read.message(), HasSubstr("sweep 's-0000000000000001' belongs to another user"));
  EXPECT_TRUE(absl::IsPermissionDenied(CanChangeSweep(User("alice", v1::User::USER), sweep)));
  EXPECT_TRUE(CanReadSweep(User("vic", v1::User::VIEWER), sweep).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(CanChangeSweep(User("bob", v1::User::VIEWER), sweep)));
  EXPECT_TRUE(CanChangeSweep(User("root", v1::User::ADMIN), sweep).ok());
  EXPECT_TRUE(absl::IsPermissionDenied(CanReadSweep(Caller(), sweep)));
  v1::Sweep owner_view = sweep;
  RedactSweep(User("bob", v1::User::USER), &owner_view);
  EXPECT_EQ(owner_view.spec().trial_template().environment().env().at("SEED"), "7");
  EXPECT_EQ(owner_view.spec().trial_template().environment().env().at("API_TOKEN"), "***");
  v1::Sweep viewer_view = sweep;
  RedactSweep(User("vic", v1::User::VIEWER), &viewer_view);
  EXPECT_EQ(viewer_view.spec().trial_template().environment().env().at("SEED"), "***");
  EXPECT_EQ(viewer_view.owner(), "bob");
}

TEST(AuthzTest, SecretsShowAsStarsToEveryoneAndValuesOnlyToOwnerAndAdmins) {
  v1::Job job;
  job.set_owner("bob");
  auto* env = job.mutable_spec()->mutable_environment();
  (*env->mutable_env())["SEED"] = "7";
  (*env->mutable_env())["API_TOKEN"] = "hunter2";
  env->add_secret_env("API_TOKEN");

  v1::Job owner_view = job;
  RedactJob(User("bob", v1::User::USER), &owner_view);
  EXPECT_EQ(owner_view.spec().environment().env().at("SEED"), "7");
  EXPECT_EQ(owner_view.spec().environment().env().at("API_TOKEN"), "***");

  v1::Job admin_view = job;
  RedactJob(User("root", v1::User::ADMIN), &admin_view);
  EXPECT_EQ(admin_view.spec().environment().env().at("SEED"), "7");
  EXPECT_EQ(admin_view.spec().environment().env().at("API_TOKEN"), "***");

  v1::Job viewer_view = job;
  RedactJob(User("vic", v1::User::VIEWER), &viewer_view);
  EXPECT_EQ(viewer_view.spec().environment().env().at("SEED"), "***");
  EXPECT_EQ(viewer_view.spec().environment().env().at("API_TOKEN"), "***");
}

TEST(AuthzTest, UserNamesRefuseHostileInput) {
  EXPECT_TRUE(CheckUserName("name", "alice").ok());
  EXPECT_TRUE(CheckUserName("name", "ci-bot.2").ok());
  for (const std::string& bad :
       {std::string(""), std::string("a/b"), std::string(".."), std::string("../etc"),
        std::string(300, 'a'), std::string("Alice"), std::string("al ice"),
        std::string("al\nice"), std::string("\xc3\xa9lise"), std::string("-x"),
        std::string("local-socket"), std::string("a\0b", 3)}) {
    absl::Status status = CheckUserName("name", bad);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << bad;
    EXPECT_LT(status.message().size(), 300u);
  }
}

TEST(AuthTest, TokensAreRandomPrefixedAndHashedWithSha256) {
  absl::StatusOr<std::string> a = NewUserToken();
  absl::StatusOr<std::string> b = NewUserToken();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(absl::StartsWith(*a, "drv_"));
  EXPECT_GE(a->size(), 4u + 43u);  // 256 bits in base64url
  EXPECT_EQ(a->find_first_of(" \n\t/+="), std::string::npos);
  EXPECT_EQ(HashUserToken("drv_abc"),
            "sha256:9c48af0289599ba76ea4ea0e709bfe2309635539ef54edcca4a9c76649097909");
  EXPECT_NE(HashUserToken(*a), HashUserToken(*b));
  EXPECT_EQ(HashUserToken(*a), HashUserToken(*a));
}

}  // namespace
}  // namespace drover::server
