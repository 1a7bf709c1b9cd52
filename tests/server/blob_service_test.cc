// Uploads and downloads of blobs through a real droverd, in-process.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "common/archive/sha256.h"
#include "drover/v1/blob.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/droverd.h"
#include "tests/testing/cluster.h"
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
    grpc::ClientContext context;
    auto writer = stub_->UploadBlob(&context, response);
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
    grpc::ClientContext context;
    v1::DownloadBlobRequest request;
    request.set_digest(digest);
    auto reader = stub_->DownloadBlob(&context, request);
    std::string out;
    v1::DownloadBlobResponse response;
    while (reader->Read(&response)) out += response.chunk();
    *status = reader->Finish();
    return out;
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

}  // namespace
}  // namespace drover::server
