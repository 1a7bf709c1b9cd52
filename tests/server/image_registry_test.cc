// droverd's image registry, in-process: AdminService.PutImage/ListImages/DeleteImage over
// gRPC against a real Droverd, the submit check of `environment.image`, and the digest an
// assignment carries (read by a minimal scripted agent). What an agent does with the digest
// is tested in tests/agent/images and tests/e2e/image_e2e_test.cc.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "absl/strings/str_cat.h"
#include "common/archive/sha256.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/agent_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core.h"
#include "server/droverd.h"
#include "tests/testing/cluster.h"
#include "tests/testing/test_tls.h"
#include "tests/testing/subprocess.h"

namespace drover::server {
namespace {

using ::testing::HasSubstr;

// Just enough of an agent to receive assignments.
class ListeningAgent {
 public:
  explicit ListeningAgent(const std::shared_ptr<grpc::Channel>& channel)
      : stub_(v1::AgentService::NewStub(channel)) {
    stream_ = stub_->Connect(&context_);
    v1::AgentMessage hello;
    v1::NodeInfo* node = hello.mutable_hello()->mutable_node();
    node->set_name("n1");
    node->add_addresses("10.77.0.11");
    node->mutable_capacity()->set_cpus(8);
    node->mutable_capacity()->set_memory_mib(8192);
    stream_->Write(hello);
  }
  ~ListeningAgent() {
    context_.TryCancel();
    v1::SchedulerMessage ignored;
    while (stream_->Read(&ignored)) {
    }
    stream_->Finish();
  }
  v1::AssignAttempt NextAssignment() {
    v1::SchedulerMessage message;
    while (stream_->Read(&message)) {
      if (message.has_assign()) return message.assign();
    }
    ADD_FAILURE() << "stream ended while waiting for an assignment";
    return {};
  }

 private:
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::SchedulerMessage>> stream_;
};

class ImageRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    DroverdOptions options{.listen = "127.0.0.1:0", .state_dir = dir_.path(),
       .bootstrap_admin_token = testing::TestAdminToken()};
    options.tick = absl::Milliseconds(50);
    auto started = Droverd::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    droverd_ = *std::move(started);
    channel_ = testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate());
    jobs_ = v1::JobService::NewStub(channel_);
    admin_ = v1::AdminService::NewStub(channel_);
    blobs_ = v1::BlobService::NewStub(channel_);
  }

  std::string Upload(const std::string& bytes) {
    std::string digest = archive::Sha256Digest(bytes);
    grpc::ClientContext context;
    v1::UploadBlobResponse response;
    auto writer = blobs_->UploadBlob(&context, &response);
    v1::UploadBlobRequest header;
    header.mutable_header()->set_digest(digest);
    header.mutable_header()->set_size(static_cast<int64_t>(bytes.size()));
    writer->Write(header);
    v1::UploadBlobRequest chunk;
    chunk.set_chunk(bytes);
    writer->Write(chunk);
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return digest;
  }

  grpc::Status Put(const std::string& name, const std::string& digest, v1::Image* out = nullptr) {
    grpc::ClientContext context;
    v1::PutImageRequest request;
    request.mutable_image()->set_name(name);
    request.mutable_image()->set_digest(digest);
    v1::Image response;
    grpc::Status status = admin_->PutImage(&context, request, &response);
    if (out != nullptr) *out = response;
    return status;
  }

  std::vector<v1::Image> List() {
    grpc::ClientContext context;
    v1::ListImagesResponse response;
    EXPECT_TRUE(admin_->ListImages(&context, v1::ListImagesRequest(), &response).ok());
    return {response.images().begin(), response.images().end()};
  }

  grpc::Status Delete(const std::string& name) {
    grpc::ClientContext context;
    v1::DeleteImageRequest request;
    request.set_name(name);
    v1::DeleteImageResponse response;
    return admin_->DeleteImage(&context, request, &response);
  }

  grpc::Status Submit(const std::string& image, std::string* id = nullptr) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    request.mutable_spec()->mutable_resources()->set_cpus(1);
    request.mutable_spec()->mutable_environment()->set_image(image);
    v1::SubmitJobResponse response;
    grpc::Status status = jobs_->SubmitJob(&context, request, &response);
    if (id != nullptr) *id = response.job().id();
    return status;
  }

  testing::TempDir dir_;
  std::unique_ptr<Droverd> droverd_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  std::unique_ptr<v1::BlobService::Stub> blobs_;
};

TEST_F(ImageRegistryTest, ImportedImageIsListedWithItsSizeAndSurvivesARestart) {
  std::string digest = Upload("an oci archive");
  v1::Image put;
  grpc::Status status = Put("team/train:1.0", digest, &put);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(put.name(), "team/train:1.0");
  EXPECT_EQ(put.digest(), digest);
  EXPECT_EQ(put.size(), 14);
  EXPECT_GT(put.create_time().seconds(), 0);

  droverd_.reset();
  Start();
  std::vector<v1::Image> images = List();
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].name(), "team/train:1.0");
  EXPECT_EQ(images[0].digest(), digest);
  EXPECT_EQ(images[0].size(), 14);
  EXPECT_TRUE(Submit("team/train:1.0").ok());
}

TEST_F(ImageRegistryTest, ReimportReplacesTheDigestAndDeleteRemovesTheName) {
  std::string first = Upload("first archive");
  std::string second = Upload("second archive");
  ASSERT_TRUE(Put("busybox", first).ok());
  ASSERT_TRUE(Put("busybox", second).ok());
  ASSERT_EQ(List().size(), 1u);
  EXPECT_EQ(List()[0].digest(), second);

  ASSERT_TRUE(Delete("busybox").ok());
  EXPECT_TRUE(List().empty());
  grpc::Status again = Delete("busybox");
  EXPECT_EQ(again.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(again.error_message(), HasSubstr("image 'busybox' is not registered"));
  droverd_.reset();
  Start();
  EXPECT_TRUE(List().empty());
}

TEST_F(ImageRegistryTest, RegisteringAnArchiveThatWasNotUploadedIsRefused) {
  grpc::Status status = Put("busybox", "sha256:" + std::string(64, 'a'));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("image.digest: blob sha256:aaaa"));
  EXPECT_THAT(status.error_message(), HasSubstr("upload the archive first"));
  status = Put("busybox", "md5:abc");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("image.digest"));
  EXPECT_TRUE(List().empty());
}

TEST_F(ImageRegistryTest, BadNamesAreRefusedNamingTheField) {
  std::string digest = Upload("archive");
  for (const std::string& name :
       std::vector<std::string>{"", "host", "docker://busybox", "Busybox", "team//x", "x:", "-x",
                                "a b", std::string(256, 'a')}) {
    grpc::Status status = Put(name, digest);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
    EXPECT_THAT(status.error_message(), HasSubstr("image.name")) << name;
  }
  EXPECT_TRUE(List().empty());
}

TEST_F(ImageRegistryTest, SubmitRefusesAnImageThatIsNeitherHostNorDockerNorImported) {
  grpc::Status status = Submit("pytorch:2.1");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(),
              HasSubstr("spec.environment.image: 'pytorch:2.1' is not an imported image; import "
                        "it with drover image import pytorch:2.1 FILE"));
  EXPECT_TRUE(Submit("host").ok());
  EXPECT_TRUE(Submit("docker://registry.example.com/team/train:1.0").ok());
}

TEST_F(ImageRegistryTest, AssignmentCarriesTheDigestTheNameHasWhenAssigned) {
  std::string first = Upload("first archive");
  std::string second = Upload("second archive");
  ASSERT_TRUE(Put("busybox", first).ok());
  ListeningAgent agent(testing::NodeChannel(droverd_->address(), droverd_->ca_certificate(),
                                            droverd_->cluster_ca(), "n1"));
  std::string id;
  ASSERT_TRUE(Submit("busybox", &id).ok());
  v1::AssignAttempt assign = agent.NextAssignment();
  EXPECT_EQ(assign.attempt().job_id(), id);
  EXPECT_EQ(assign.image_digest(), first);

  ASSERT_TRUE(Put("busybox", second).ok());
  ASSERT_TRUE(Submit("busybox", &id).ok());
  assign = agent.NextAssignment();
  EXPECT_EQ(assign.attempt().job_id(), id);
  EXPECT_EQ(assign.image_digest(), second);

  ASSERT_TRUE(Submit("docker://busybox:1.36", &id).ok());
  assign = agent.NextAssignment();
  EXPECT_EQ(assign.spec().environment().image(), "docker://busybox:1.36");
  EXPECT_EQ(assign.image_digest(), "");
}

TEST_F(ImageRegistryTest, AnAssignmentSentAgainKeepsTheDigestOfItsPlacement) {
  std::string first = Upload("first archive");
  std::string second = Upload("second archive");
  ASSERT_TRUE(Put("busybox", first).ok());
  std::string id;
  {
    ListeningAgent agent(testing::NodeChannel(droverd_->address(), droverd_->ca_certificate(),
                                              droverd_->cluster_ca(), "n1"));
    ASSERT_TRUE(Submit("busybox", &id).ok());
    EXPECT_EQ(agent.NextAssignment().image_digest(), first);
  }
  // Re-imported while the agent was away: the agent that comes back without the attempt
  // gets it again with the archive it was placed with (the one droverd lets it download).
  ASSERT_TRUE(Put("busybox", second).ok());
  ListeningAgent agent(testing::NodeChannel(droverd_->address(), droverd_->ca_certificate(),
                                            droverd_->cluster_ca(), "n1"));
  v1::AssignAttempt assign = agent.NextAssignment();
  EXPECT_EQ(assign.attempt().job_id(), id);
  EXPECT_EQ(assign.image_digest(), first);
}

TEST(CheckImageNameTest, AcceptsReferencesJobsCanUse) {
  for (const char* name :
       {"busybox", "team/train:1.0", "registry.example.com/ml/pytorch:2.1.0-cuda12", "a",
        "my_image.v2:Latest_1"}) {
    EXPECT_TRUE(scheduler::CheckImageName("image.name", name).ok()) << name;
  }
  absl::Status status = scheduler::CheckImageName("image.name", "UPPER");
  EXPECT_EQ(std::string(status.message()),
            "image.name: 'UPPER' has the path component 'UPPER'; use lowercase path components "
            "such as 'busybox' or 'team/train:1.0'");
  EXPECT_TRUE(scheduler::IsBuiltInImage("host"));
  EXPECT_TRUE(scheduler::IsBuiltInImage("docker://x"));
  EXPECT_FALSE(scheduler::IsBuiltInImage("busybox"));
}

}  // namespace
}  // namespace drover::server
