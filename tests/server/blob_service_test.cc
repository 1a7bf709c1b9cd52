// Uploads and downloads of blobs through a real droverd, in-process, and what a node may
// read: only the snapshot and image of the attempts it runs (a scripted agent takes them).
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "common/archive/sha256.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/blob.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/droverd.h"
#include "tests/testing/cluster.h"
#include "tests/testing/scripted_agent.h"
#include "tests/testing/test_tls.h"
#include "tests/testing/subprocess.h"

namespace drover::server {
namespace {

using ::testing::HasSubstr;

class BlobServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto started = Droverd::Start({.listen = "127.0.0.1:0", .state_dir = dir_.path(),
       .bootstrap_admin_token = testing::TestAdminToken()});
    ASSERT_TRUE(started.ok()) << started.status();
    droverd_ = *std::move(started);
    stub_ = v1::BlobService::NewStub(
        testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()));
  }

  grpc::Status Upload(const std::string& digest, const std::string& bytes,
                      v1::UploadBlobResponse* response, size_t chunk = 1 << 20) {
    return Upload(*stub_, digest, bytes, response, chunk);
  }
  static grpc::Status Upload(v1::BlobService::Stub& stub, const std::string& digest,
                             const std::string& bytes, v1::UploadBlobResponse* response,
                             size_t chunk = 1 << 20) {
    grpc::ClientContext context;
    auto writer = stub.UploadBlob(&context, response);
    v1::UploadBlobRequest header;
    header.mutable_header()->set_digest(digest);
    header.mutable_header()->set_size(static_cast<int64_t>(bytes.size()));
    writer->Write(header);
    for (size_t at = 0; at < bytes.size(); at += chunk) {
      v1::UploadBlobRequest piece;
      piece.set_chunk(bytes.substr(at, chunk));
      if (!writer->Write(piece)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  std::string Download(const std::string& digest, grpc::Status* status) {
    return Download(*stub_, digest, status);
  }
  static std::string Download(v1::BlobService::Stub& stub, const std::string& digest,
                              grpc::Status* status, const std::string& job_id = "") {
    grpc::ClientContext context;
    v1::DownloadBlobRequest request;
    request.set_digest(digest);
    request.set_job_id(job_id);
    auto reader = stub.DownloadBlob(&context, request);
    std::string out;
    v1::DownloadBlobResponse response;
    while (reader->Read(&response)) out += response.chunk();
    *status = reader->Finish();
    return out;
  }

  // A blob uploaded by the admin; its digest.
  std::string Put(const std::string& bytes) {
    std::string digest = archive::Sha256Digest(bytes);
    v1::UploadBlobResponse response;
    grpc::Status status = Upload(digest, bytes, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return digest;
  }

  // A channel with a node certificate for `node` from droverd's own CA.
  std::shared_ptr<grpc::Channel> NodeChannel(const std::string& node) {
    return testing::NodeChannel(droverd_->address(), droverd_->ca_certificate(),
                                droverd_->cluster_ca(), node);
  }

  // Registers `image` as the imported image archive `digest`.
  void Import(const std::string& image, const std::string& digest) {
    auto admin = v1::AdminService::NewStub(
        testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()));
    grpc::ClientContext context;
    v1::PutImageRequest request;
    request.mutable_image()->set_name(image);
    request.mutable_image()->set_digest(digest);
    v1::Image response;
    grpc::Status status = admin->PutImage(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Submits a one-node job with code `snapshot` (and `image`, when given); its id.
  std::string Submit(const std::string& snapshot, const std::string& image = "host") {
    auto jobs = v1::JobService::NewStub(
        testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()));
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    request.mutable_spec()->set_source_snapshot(snapshot);
    request.mutable_spec()->mutable_environment()->set_image(image);
    request.mutable_spec()->mutable_resources()->set_cpus(1);
    v1::SubmitJobResponse response;
    grpc::Status status = jobs->SubmitJob(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.job().id();
  }

  testing::TempDir dir_;
  std::unique_ptr<Droverd> droverd_;
  std::unique_ptr<v1::BlobService::Stub> stub_;
};

TEST_F(BlobServiceTest, UploadedBlobIsPresentAndDownloadsByteIdentical) {
  std::string bytes(3 * (1 << 20) + 12345, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 + i / 4096);
  std::string digest = archive::Sha256Digest(bytes);
  v1::UploadBlobResponse response;
  grpc::Status status = Upload(digest, bytes, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.created());
  EXPECT_EQ(response.size(), static_cast<int64_t>(bytes.size()));

  grpc::ClientContext context;
  v1::StatBlobRequest stat;
  stat.set_digest(digest);
  v1::StatBlobResponse present;
  ASSERT_TRUE(stub_->StatBlob(&context, stat, &present).ok());
  EXPECT_TRUE(present.present());

  grpc::Status download_status;
  EXPECT_TRUE(Download(digest, &download_status) == bytes);
  EXPECT_TRUE(download_status.ok());

  ASSERT_TRUE(Upload(digest, bytes, &response).ok());
  EXPECT_FALSE(response.created());
}

TEST_F(BlobServiceTest, BytesThatDoNotMatchTheDigestAreRefusedAndNotStored) {
  std::string digest = archive::Sha256Digest("what was meant");
  v1::UploadBlobResponse response;
  grpc::Status status = Upload(digest, "what arrived!!", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("damaged"));
  grpc::ClientContext context;
  v1::StatBlobRequest stat;
  stat.set_digest(digest);
  v1::StatBlobResponse present;
  ASSERT_TRUE(stub_->StatBlob(&context, stat, &present).ok());
  EXPECT_FALSE(present.present());
}

TEST_F(BlobServiceTest, MalformedAndUnknownDigestsGiveClearErrors) {
  v1::UploadBlobResponse response;
  EXPECT_EQ(Upload("md5:abc", "x", &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status status;
  Download(archive::Sha256Digest("never uploaded"), &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(BlobServiceTest, EmptyBlobRoundTrips) {
  std::string digest = archive::Sha256Digest("");
  v1::UploadBlobResponse response;
  ASSERT_TRUE(Upload(digest, "", &response).ok());
  grpc::Status status;
  EXPECT_EQ(Download(digest, &status), "");
  EXPECT_TRUE(status.ok());
}

TEST_F(BlobServiceTest, ANodeDownloadsOnlyTheSnapshotAndImageOfTheAttemptsItRuns) {
  std::string snapshot = Put("the code of the job");
  std::string image = Put("the image archive");
  std::string other_snapshot = Put("another job's code");
  std::string reimported = Put("the image imported again");
  Import("trainer", image);
  testing::ScriptedAgent n1(NodeChannel("n1"), "n1");
  n1.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit(snapshot, "trainer");
  v1::SchedulerMessage assigned = n1.Next(v1::SchedulerMessage::kAssign);
  ASSERT_EQ(assigned.assign().image_digest(), image);

  auto on_n1 = v1::BlobService::NewStub(NodeChannel("n1"));
  grpc::Status status;
  EXPECT_EQ(Download(*on_n1, snapshot, &status, id), "the code of the job");
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Download(*on_n1, image, &status), "the image archive");
  EXPECT_TRUE(status.ok()) << status.error_message();

  // Another job's snapshot, an unknown digest (no probing for what exists), and an image
  // imported after the attempt was placed: refused, naming the blob and the node.
  Download(*on_n1, other_snapshot, &status, id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr(other_snapshot));
  EXPECT_THAT(status.error_message(), HasSubstr("job '" + id + "'"));
  EXPECT_THAT(status.error_message(), HasSubstr("node 'n1'"));
  Download(*on_n1, archive::Sha256Digest("never uploaded"), &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  Import("trainer", reimported);
  Download(*on_n1, reimported, &status);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // A node that does not run the attempt, with a valid certificate.
  auto on_n2 = v1::BlobService::NewStub(NodeChannel("n2"));
  Download(*on_n2, snapshot, &status, id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("node 'n2'"));

  // Once its part ended, n1 reads nothing of the job any more.
  n1.Report(id, 1, v1::AttemptReport::ENDED);
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  do {
    Download(*on_n1, snapshot, &status, id);
  } while (status.ok() && absl::Now() < deadline);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(BlobServiceTest, ANodeChecksAndUploadsBlobsOnlyWhileItRunsAnAttempt) {
  std::string snapshot = Put("the code of the job");
  std::string outputs = "the outputs";
  std::string digest = archive::Sha256Digest(outputs);
  auto on_n1 = v1::BlobService::NewStub(NodeChannel("n1"));
  v1::UploadBlobResponse uploaded;
  grpc::Status status = Upload(*on_n1, digest, outputs, &uploaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("node 'n1' runs no attempt now"));
  {
    grpc::ClientContext context;
    v1::StatBlobRequest stat;
    stat.set_digest(snapshot);
    v1::StatBlobResponse present;
    EXPECT_EQ(on_n1->StatBlob(&context, stat, &present).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }

  testing::ScriptedAgent n1(NodeChannel("n1"), "n1");
  n1.Next(v1::SchedulerMessage::kWelcome);
  Submit(snapshot);
  n1.Next(v1::SchedulerMessage::kAssign);
  grpc::ClientContext context;
  v1::StatBlobRequest stat;
  stat.set_digest(digest);
  v1::StatBlobResponse present;
  ASSERT_TRUE(on_n1->StatBlob(&context, stat, &present).ok());
  EXPECT_FALSE(present.present());
  status = Upload(*on_n1, digest, outputs, &uploaded);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(uploaded.created());
}

}  // namespace
}  // namespace drover::server
