// Uploads and downloads of blobs through a real droverd, in-process, and what a node may
// read: only the snapshot and image of the attempts it runs (a scripted agent takes them).
// Blob quotas, what users learn of each other's blobs, and retention (on a fake clock).
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

namespace drover::server {
namespace {

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

TEST_F(BlobServiceTest, UploadsPastTheBlobQuotaAreRefusedSayingWhatTheUserHolds) {
  Start({.interval = absl::ZeroDuration()}, /*quota=*/1000);
  auto alice = v1::BlobService::NewStub(UserChannel("alice"));
  auto bob = v1::BlobService::NewStub(UserChannel("bob"));
  std::string first(600, 'a'), second(600, 'b');
  v1::UploadBlobResponse uploaded;
  ASSERT_TRUE(Upload(*alice, archive::Sha256Digest(first), first, &uploaded).ok());
  grpc::Status status = Upload(*alice, archive::Sha256Digest(second), second, &uploaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("blob quota: you hold 600 B of 1000 B"));
  EXPECT_THAT(status.error_message(), HasSubstr("this upload of 600 B does not fit"));
  EXPECT_FALSE(Stat(*alice, archive::Sha256Digest(second)).present());
  // What she holds already costs nothing again; Bob has a quota of his own.
  EXPECT_TRUE(Upload(*alice, archive::Sha256Digest(first), first, &uploaded).ok());
  EXPECT_TRUE(Upload(*bob, archive::Sha256Digest(second), second, &uploaded).ok());

  // A job's outputs count against its owner's quota, whichever node uploads them.
  testing::ScriptedAgent n1(NodeChannel("n1"), "n1");
  n1.Next(v1::SchedulerMessage::kWelcome);
  std::string id;
  ASSERT_TRUE(TrySubmit(UserChannel("alice"), archive::Sha256Digest(first), &id).ok());
  n1.Next(v1::SchedulerMessage::kAssign);
  auto on_n1 = v1::BlobService::NewStub(NodeChannel("n1"));
  std::string outputs(500, 'o');
  status = Upload(*on_n1, archive::Sha256Digest(outputs), outputs, &uploaded, 1 << 20, id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(),
              HasSubstr("user 'alice', who owns job '" + id + "', holds 600 B of 1000 B"));
  std::string small(300, 's');
  status = Upload(*on_n1, archive::Sha256Digest(small), small, &uploaded, 1 << 20, id);
  EXPECT_TRUE(status.ok()) << status.error_message();
  // Alice holds them now: she downloads them without naming the job, and they count.
  grpc::Status downloaded;
  EXPECT_EQ(Download(*alice, archive::Sha256Digest(small), &downloaded), small);
  EXPECT_TRUE(downloaded.ok()) << downloaded.error_message();
  std::string tiny(150, 't');
  status = Upload(*alice, archive::Sha256Digest(tiny), tiny, &uploaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("you hold 900 B"));
}

TEST_F(BlobServiceTest, AUsersOwnQuotaReplacesTheDefaultAndSurvivesARestart) {
  Start({.interval = absl::ZeroDuration()}, /*quota=*/1000);
  auto alice = v1::BlobService::NewStub(UserChannel("alice"));
  auto admin = v1::AdminService::NewStub(
      testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()));
  auto set_quota = [&](v1::AdminService::Stub& stub, const std::string& name, int64_t bytes,
                       v1::User* user) {
    grpc::ClientContext context;
    v1::SetUserBlobQuotaRequest request;
    request.set_name(name);
    request.set_blob_quota_bytes(bytes);
    return stub.SetUserBlobQuota(&context, request, user);
  };
  auto whoami = [&](const std::string& name) {
    auto stub = v1::AdminService::NewStub(UserChannel(name));
    grpc::ClientContext context;
    v1::User user;
    grpc::Status status = stub->WhoAmI(&context, v1::WhoAmIRequest(), &user);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return user;
  };
  std::string first(600, 'a'), second(600, 'b');
  v1::UploadBlobResponse uploaded;
  ASSERT_TRUE(Upload(*alice, archive::Sha256Digest(first), first, &uploaded).ok());
  v1::User me = whoami("alice");
  EXPECT_EQ(me.blob_held_bytes(), 600);
  EXPECT_EQ(me.blob_quota_effective_bytes(), 1000);

  v1::User user;
  ASSERT_TRUE(set_quota(*admin, "alice", 2000, &user).ok());
  EXPECT_EQ(user.blob_quota_bytes(), 2000);
  EXPECT_TRUE(Upload(*alice, archive::Sha256Digest(second), second, &uploaded).ok());
  std::string third(900, 'c');
  grpc::Status status = Upload(*alice, archive::Sha256Digest(third), third, &uploaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("you hold 1.2 KiB of 2 KiB"));
  EXPECT_THAT(status.error_message(), HasSubstr("drover user quota alice SIZE"));

  // Kept across a restart; "none" lifts it, "default" brings the default back.
  Start({.interval = absl::ZeroDuration()}, /*quota=*/1000);
  alice = v1::BlobService::NewStub(UserChannel("alice"));
  EXPECT_EQ(whoami("alice").blob_quota_effective_bytes(), 2000);
  admin = v1::AdminService::NewStub(
      testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()));
  ASSERT_TRUE(set_quota(*admin, "alice", -1, &user).ok());
  EXPECT_EQ(whoami("alice").blob_quota_effective_bytes(), 0);
  EXPECT_TRUE(Upload(*alice, archive::Sha256Digest(third), third, &uploaded).ok());
  ASSERT_TRUE(set_quota(*admin, "alice", 0, &user).ok());
  me = whoami("alice");
  EXPECT_EQ(me.blob_quota_effective_bytes(), 1000);
  EXPECT_EQ(me.blob_held_bytes(), 2100);

  // Only admins set quotas; nonsense and unknown users are refused naming the field.
  auto as_alice = v1::AdminService::NewStub(UserChannel("alice"));
  EXPECT_EQ(set_quota(*as_alice, "alice", -1, &user).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  status = set_quota(*admin, "alice", -2, &user);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("blob_quota_bytes"));
  EXPECT_EQ(set_quota(*admin, "nobody", 5, &user).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(set_quota(*admin, "../x", 5, &user).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(BlobServiceTest, RetentionRemovesWhatEndedJobsNoLongerNeedAndEachJobSaysWhatItLost) {
  Start({.logs = absl::Hours(24 * 30),
         .snapshots = absl::Hours(24 * 30),
         .outputs = absl::Hours(24 * 90),
         .upload_grace = absl::Hours(24),
         .interval = absl::ZeroDuration()});
  auto alice = v1::BlobService::NewStub(UserChannel("alice"));
  v1::UploadBlobResponse uploaded;
  std::string code = "code", waiting_code = "code of a job still queued", stray = "never used";
  ASSERT_TRUE(Upload(*alice, archive::Sha256Digest(code), code, &uploaded).ok());
  ASSERT_TRUE(Upload(*alice, archive::Sha256Digest(waiting_code), waiting_code, &uploaded).ok());
  ASSERT_TRUE(Upload(*alice, archive::Sha256Digest(stray), stray, &uploaded).ok());
  std::string image = Put("an image archive");
  Import("trainer", image);

  // A job runs, writes a line and outputs, and completes; another waits for 64 CPUs.
  testing::ScriptedAgent n1(NodeChannel("n1"), "n1");
  n1.Next(v1::SchedulerMessage::kWelcome);
  std::string id, waiting;
  ASSERT_TRUE(TrySubmit(UserChannel("alice"), archive::Sha256Digest(code), &id).ok());
  ASSERT_TRUE(
      TrySubmit(UserChannel("alice"), archive::Sha256Digest(waiting_code), &waiting, "host", 64)
          .ok());
  n1.Next(v1::SchedulerMessage::kAssign);
  n1.Report(id, 1, v1::AttemptReport::READY);
  n1.Report(id, 1, v1::AttemptReport::RUNNING);
  WaitFor(id, v1::JobStatus::RUNNING);
  n1.Log(id, 1, 0, 0, "epoch 1\n");
  EXPECT_EQ(n1.Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 8);
  std::string outputs = "model weights";
  auto on_n1 = v1::BlobService::NewStub(NodeChannel("n1"));
  ASSERT_TRUE(Upload(*on_n1, archive::Sha256Digest(outputs), outputs, &uploaded, 1 << 20, id).ok());
  v1::AttemptReport ended;
  ended.mutable_attempt()->set_job_id(id);
  ended.mutable_attempt()->set_epoch(1);
  ended.set_phase(v1::AttemptReport::ENDED);
  ended.add_exits()->set_rank(0);
  ended.set_outputs_digest(archive::Sha256Digest(outputs));
  ended.set_outputs_size(static_cast<int64_t>(outputs.size()));
  n1.Send(ended);
  WaitFor(id, v1::JobStatus::COMPLETED);

  // Nothing is old enough yet: a dry run and a pass keep everything.
  v1::CollectGarbageResponse pass = CollectGarbage(/*dry_run=*/true);
  EXPECT_TRUE(pass.dry_run());
  EXPECT_EQ(pass.blobs_removed(), 0);
  EXPECT_EQ(pass.blobs_kept(), 5);
  pass = CollectGarbage();
  EXPECT_EQ(pass.blobs_removed(), 0);
  EXPECT_EQ(pass.jobs_logs_removed(), 0);

  // 31 days on: the logs and the snapshot of the ended job go, and the upload nothing
  // used; its outputs (90 days), the image and the queued job's code stay.
  clock_.Advance(absl::Hours(24 * 31));
  pass = CollectGarbage(/*dry_run=*/true);
  EXPECT_EQ(pass.blobs_removed(), 2);
  EXPECT_EQ(pass.jobs_logs_removed(), 1);
  EXPECT_EQ(pass.log_bytes_removed(), 8);
  pass = CollectGarbage();
  EXPECT_EQ(pass.blobs_removed(), 2);
  EXPECT_EQ(pass.blob_bytes_removed(), static_cast<int64_t>(code.size() + stray.size()));
  EXPECT_EQ(pass.blobs_kept(), 3);
  EXPECT_EQ(pass.jobs_logs_removed(), 1);
  EXPECT_EQ(pass.jobs_marked(), 1);
  EXPECT_FALSE(Stat(*alice, archive::Sha256Digest(code)).present());
  EXPECT_FALSE(Stat(*alice, archive::Sha256Digest(stray)).present());
  EXPECT_TRUE(Stat(*alice, archive::Sha256Digest(waiting_code)).present());
  EXPECT_TRUE(Stat(*stub_, image).present());
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_TRUE(job.status().has_logs_removed_time());
  EXPECT_TRUE(job.status().has_snapshot_removed_time());
  EXPECT_FALSE(job.status().has_outputs_removed_time());

  // Each job says what it lost.
  auto jobs = v1::JobService::NewStub(UserChannel("alice"));
  {
    grpc::ClientContext context;
    v1::StreamLogsRequest request;
    request.set_job_id(id);
    auto reader = jobs->StreamLogs(&context, request);
    v1::StreamLogsResponse chunk;
    while (reader->Read(&chunk)) {
    }
    grpc::Status status = reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
    EXPECT_THAT(status.error_message(), HasSubstr("the logs of job '" + id + "' were removed"));
    EXPECT_THAT(status.error_message(), HasSubstr("--log-retention"));
  }
  grpc::Status status;
  Download(*alice, archive::Sha256Digest(code), &status, id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("code snapshot of job '" + id + "' were removed"));
  EXPECT_EQ(Download(*alice, archive::Sha256Digest(outputs), &status, id), outputs);
  EXPECT_TRUE(status.ok()) << status.error_message();
  // Submitting with the removed snapshot again asks for it again.
  std::string again;
  status = TrySubmit(UserChannel("alice"), archive::Sha256Digest(code), &again);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // 60 more days: the outputs go too.
  clock_.Advance(absl::Hours(24 * 60));
  pass = CollectGarbage();
  EXPECT_EQ(pass.blobs_removed(), 1);
  EXPECT_EQ(pass.jobs_marked(), 1);
  EXPECT_EQ(pass.jobs_logs_removed(), 0) << "removed once";
  Download(*alice, archive::Sha256Digest(outputs), &status, id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("outputs of job '" + id + "' were removed"));
  EXPECT_THAT(status.error_message(), HasSubstr("--outputs-retention"));
  // The queued job's code and the image are still there.
  EXPECT_TRUE(Stat(*alice, archive::Sha256Digest(waiting_code)).present());
  EXPECT_TRUE(Stat(*stub_, image).present());
}

TEST_F(BlobServiceTest, ABlobCheckedJustBeforeASubmitIsNotRemovedUnderIt) {
  Start({.snapshots = absl::Hours(1), .upload_grace = absl::Hours(24),
         .interval = absl::ZeroDuration()});
  auto alice = v1::BlobService::NewStub(UserChannel("alice"));
  std::string code = "code";
  v1::UploadBlobResponse uploaded;
  ASSERT_TRUE(Upload(*alice, archive::Sha256Digest(code), code, &uploaded).ok());
  // Two days later nothing refers to it...
  clock_.Advance(absl::Hours(48));
  // ... but a client checks it (the CLI does before submitting), so a pass now keeps it
  // for the grace time: its submit finds it.
  ASSERT_TRUE(Stat(*alice, archive::Sha256Digest(code)).present());
  clock_.Advance(absl::Hours(1));
  EXPECT_EQ(CollectGarbage().blobs_removed(), 0);
  std::string id;
  grpc::Status status = TrySubmit(UserChannel("alice"), archive::Sha256Digest(code), &id);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace
}  // namespace drover::server
