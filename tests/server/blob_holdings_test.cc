// What users hold in droverd's blob store, through a real droverd: blob quotas (the
// default and a user's own) and retention of what ended jobs no longer need (on a fake
// clock).
#include "tests/server/blob_service_fixture.h"

namespace drover::server::blob_service_testing {
namespace {

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
}  // namespace drover::server::blob_service_testing
