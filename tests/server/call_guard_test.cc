// What the audit records of a call's target (server/call_guard.h): the name or id it acted
// on, never a token, CSR or secret value, and only safe text.
#include "server/call_guard.h"

#include "drover/v1/admin_service.pb.h"
#include "drover/v1/blob.pb.h"
#include "drover/v1/job_service.pb.h"
#include "drover/v1/node_identity.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::server {
namespace {

TEST(AuditTargetTest, NamesTheJobAnSubmitMadeAndTheJobACancelNamed) {
  v1::SubmitJobRequest submit;
  submit.mutable_spec()->set_name("resnet");
  v1::SubmitJobResponse submitted;
  submitted.mutable_job()->set_id("j-42");
  EXPECT_EQ(AuditTarget(&submit, &submitted), "j-42");
  // Refused: no answer, and the request names no job id.
  EXPECT_EQ(AuditTarget(&submit, nullptr), "resnet");
  v1::CancelJobRequest cancel;
  cancel.set_job_id("j-7");
  cancel.set_reason("oops");
  EXPECT_EQ(AuditTarget(&cancel, nullptr), "j-7");
}

TEST(AuditTargetTest, NamesObjectsOneMessageDeep) {
  v1::PutDatastoreRequest datastore;
  datastore.mutable_datastore()->set_name("data");
  (*datastore.mutable_datastore()->mutable_rclone_options())["token"] = "hunter2";
  EXPECT_EQ(AuditTarget(&datastore, nullptr), "data");
  v1::UploadBlobRequest upload;
  upload.mutable_header()->set_digest("sha256:abc");
  EXPECT_EQ(AuditTarget(&upload, nullptr), "sha256:abc");
  v1::NodeRequest node;
  node.set_name("gpu-01");
  node.set_reason("disk");
  EXPECT_EQ(AuditTarget(&node, nullptr), "gpu-01");
}

TEST(AuditTargetTest, NeverTakesATokenOrACsr) {
  v1::CreateUserRequest create;
  create.set_name("alice");
  v1::UserToken token;
  token.mutable_user()->set_name("alice");
  token.set_token("drv_secret");
  EXPECT_EQ(AuditTarget(&create, &token), "alice");
  v1::CreateJoinTokenRequest join_token;
  v1::CreateJoinTokenResponse made;
  made.set_token("0123456789abcdef");
  EXPECT_EQ(AuditTarget(&join_token, &made), "");
  join_token.set_node_name("gpu-01");
  EXPECT_EQ(AuditTarget(&join_token, &made), "gpu-01");
  v1::JoinNodeRequest join;
  join.set_token("0123456789abcdef");
  join.set_csr_pem("-----BEGIN CERTIFICATE REQUEST-----");
  EXPECT_EQ(AuditTarget(&join, nullptr), "");
  join.set_node_name("gpu-02");
  EXPECT_EQ(AuditTarget(&join, nullptr), "gpu-02");
}

TEST(AuditTargetTest, HostileNamesAreShortPrintableText) {
  v1::CancelJobRequest cancel;
  cancel.set_job_id(std::string(100000, 'x'));
  std::string target = AuditTarget(&cancel, nullptr);
  EXPECT_LE(target.size(), 200u);
  EXPECT_THAT(target, ::testing::EndsWith("..."));
  EXPECT_EQ(AuditText("a\nb\x1b[31m\xc3\xa9", 100), "a?b?[31m??");
  EXPECT_EQ(AuditTarget(nullptr, nullptr), "");
}

}  // namespace
}  // namespace drover::server
