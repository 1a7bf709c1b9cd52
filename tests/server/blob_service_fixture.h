// The fixture of the blob service's tests (blob_service_test.cc: transfers and what nodes
// and users may read; blob_holdings_test.cc: quotas and retention): a real droverd,
// in-process, on a fake clock, and helpers that upload, download and make users.
#ifndef DROVER_TESTS_SERVER_BLOB_SERVICE_FIXTURE_H_
#define DROVER_TESTS_SERVER_BLOB_SERVICE_FIXTURE_H_

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
#include "tests/testing/fake_clock.h"
#include "tests/testing/scripted_agent.h"
#include "tests/testing/test_tls.h"
#include "tests/testing/subprocess.h"

namespace drover::server::blob_service_testing {

using ::testing::HasSubstr;
using ::testing::Not;

class BlobServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  // (Re)starts droverd on the test's folder, on the test's clock, with `retention` (no
  // periodic passes by default) and a blob quota of `quota` bytes (0: none).
  void Start(RetentionOptions retention = {.interval = absl::ZeroDuration()},
             int64_t quota = 0) {
    stub_.reset();
    droverd_.reset();
    auto started = Droverd::Start({.listen = "127.0.0.1:0", .state_dir = dir_.path(),
                                   .bootstrap_admin_token = testing::TestAdminToken(),
                                   .retention = retention, .blob_quota_bytes = quota},
                                  clock_);
    ASSERT_TRUE(started.ok()) << started.status();
    droverd_ = *std::move(started);
    stub_ = v1::BlobService::NewStub(
        testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()));
  }

  // A channel with user `name`'s token (the user is made with role USER on first use).
  std::shared_ptr<grpc::Channel> UserChannel(const std::string& name) {
    auto& token = tokens_[name];
    if (token.empty()) {
      auto admin = v1::AdminService::NewStub(
          testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()));
      grpc::ClientContext context;
      v1::CreateUserRequest request;
      request.set_name(name);
      request.set_role(v1::User::USER);
      v1::UserToken made;
      grpc::Status status = admin->CreateUser(&context, request, &made);
      EXPECT_TRUE(status.ok()) << status.error_message();
      token = made.token();
    }
    return testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate(), token);
  }

  static v1::StatBlobResponse Stat(v1::BlobService::Stub& stub, const std::string& digest) {
    grpc::ClientContext context;
    v1::StatBlobRequest stat;
    stat.set_digest(digest);
    v1::StatBlobResponse present;
    grpc::Status status = stub.StatBlob(&context, stat, &present);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return present;
  }

  grpc::Status Upload(const std::string& digest, const std::string& bytes,
                      v1::UploadBlobResponse* response, size_t chunk = 1 << 20) {
    return Upload(*stub_, digest, bytes, response, chunk);
  }
  // `job_id`: a node's upload of that job's outputs.
  static grpc::Status Upload(v1::BlobService::Stub& stub, const std::string& digest,
                             const std::string& bytes, v1::UploadBlobResponse* response,
                             size_t chunk = 1 << 20, const std::string& job_id = "") {
    grpc::ClientContext context;
    auto writer = stub.UploadBlob(&context, response);
    v1::UploadBlobRequest header;
    header.mutable_header()->set_digest(digest);
    header.mutable_header()->set_size(static_cast<int64_t>(bytes.size()));
    header.mutable_header()->set_job_id(job_id);
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
    std::string id;
    grpc::Status status = TrySubmit(
        testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()), snapshot,
        &id, image);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return id;
  }
  static grpc::Status TrySubmit(const std::shared_ptr<grpc::Channel>& channel,
                                const std::string& snapshot, std::string* id,
                                const std::string& image = "host", double cpus = 1) {
    auto jobs = v1::JobService::NewStub(channel);
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    request.mutable_spec()->set_source_snapshot(snapshot);
    request.mutable_spec()->mutable_environment()->set_image(image);
    request.mutable_spec()->mutable_resources()->set_cpus(cpus);
    v1::SubmitJobResponse response;
    grpc::Status status = jobs->SubmitJob(&context, request, &response);
    *id = response.job().id();
    return status;
  }

  // The job once it is in `state` (20 s at most).
  v1::Job WaitFor(const std::string& id, v1::JobStatus::State state) {
    auto jobs = v1::JobService::NewStub(
        testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()));
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    v1::Job job;
    do {
      grpc::ClientContext context;
      v1::GetJobRequest request;
      request.set_job_id(id);
      EXPECT_TRUE(jobs->GetJob(&context, request, &job).ok());
      if (job.status().state() == state) return job;
      absl::SleepFor(absl::Milliseconds(10));
    } while (absl::Now() < deadline);
    ADD_FAILURE() << "job " << id << " is " << v1::JobStatus::State_Name(job.status().state())
                  << ", not " << v1::JobStatus::State_Name(state);
    return job;
  }

  // An admin's retention pass now.
  v1::CollectGarbageResponse CollectGarbage(bool dry_run = false) {
    auto admin = v1::AdminService::NewStub(
        testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()));
    grpc::ClientContext context;
    v1::CollectGarbageRequest request;
    request.set_dry_run(dry_run);
    v1::CollectGarbageResponse response;
    grpc::Status status = admin->CollectGarbage(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  testing::FakeClock clock_;
  std::map<std::string, std::string> tokens_;
  testing::TempDir dir_;
  std::unique_ptr<Droverd> droverd_;
  std::unique_ptr<v1::BlobService::Stub> stub_;
};

}  // namespace drover::server::blob_service_testing

#endif  // DROVER_TESTS_SERVER_BLOB_SERVICE_FIXTURE_H_
