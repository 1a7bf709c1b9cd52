// Uploads and downloads of blobs through a real droverd, in-process, and what a node may
// read: only the snapshot and image of the attempts it runs (a scripted agent takes them);
// what users learn of each other's blobs.
#include "tests/server/blob_service_fixture.h"

namespace drover::server::blob_service_testing {
namespace {

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
  std::string id = Submit(snapshot);
  n1.Next(v1::SchedulerMessage::kAssign);
  EXPECT_FALSE(Stat(*on_n1, digest).present());
  // A node names the job whose outputs it uploads, and only one it runs a part of.
  status = Upload(*on_n1, digest, outputs, &uploaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("header.job_id: required of a node"));
  std::string queued;
  ASSERT_TRUE(TrySubmit(testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()),
                        snapshot, &queued, "host", /*cpus=*/64)
                  .ok());
  status = Upload(*on_n1, digest, outputs, &uploaded, 1 << 20, queued);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(status.error_message(), HasSubstr("runs no part of job '" + queued + "'"));
  // A made-up id, huge and with control bytes: refused, and not echoed back whole.
  std::string hostile = "j-1\n\x1b[31m" + std::string(1 << 20, 'x');
  status = Upload(*on_n1, digest, outputs, &uploaded, 1 << 20, hostile);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_LT(status.error_message().size(), 400u);
  EXPECT_THAT(status.error_message(), Not(HasSubstr("\x1b")));
  status = Upload(*on_n1, digest, outputs, &uploaded, 1 << 20, id);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(uploaded.created());
}

TEST_F(BlobServiceTest, AUserLearnsOfAndRunsOnlyBlobsTheyUploadedThemselves) {
  std::string code = "alice's training code";
  std::string snapshot = archive::Sha256Digest(code);
  auto alice = v1::BlobService::NewStub(UserChannel("alice"));
  auto bob = v1::BlobService::NewStub(UserChannel("bob"));
  v1::UploadBlobResponse uploaded;
  ASSERT_TRUE(Upload(*alice, snapshot, code, &uploaded).ok());
  EXPECT_TRUE(Stat(*alice, snapshot).present());
  // Bob knows the digest, not the code: droverd tells him nothing, and will not run it.
  EXPECT_FALSE(Stat(*bob, snapshot).present());
  std::string id;
  grpc::Status status = TrySubmit(UserChannel("bob"), snapshot, &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("spec.source_snapshot"));
  EXPECT_THAT(status.error_message(), HasSubstr("was not uploaded by you"));
  // Uploading the same bytes shows he has them.
  ASSERT_TRUE(Upload(*bob, snapshot, code, &uploaded).ok());
  EXPECT_FALSE(uploaded.created());
  EXPECT_TRUE(Stat(*bob, snapshot).present());
  EXPECT_TRUE(TrySubmit(UserChannel("bob"), snapshot, &id).ok());
  // A digest nobody uploaded: even an admin is told to upload it first.
  status = TrySubmit(testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()),
                     archive::Sha256Digest("never uploaded"), &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("is not on droverd"));
}

}  // namespace
}  // namespace drover::server::blob_service_testing
