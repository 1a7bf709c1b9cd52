// What droverd tells its clients when its store fails, in-process with a store that fails
// the operations each test picks (tests/testing/fault_injecting_store.h): nothing is
// acknowledged that was not stored, a refused change leaves no trace in memory either, and a
// read that fails is an error to retry, never a wrong answer ("not found", "who are you").
// The disk itself failing (ENOSPC, EIO under SQLite) is tested end to end in
// tests/e2e/disk_trouble_test.cc.
#include <grpcpp/client_context.h>

#include "absl/status/status.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/droverd.h"
#include "tests/testing/cluster.h"
#include "tests/testing/fault_injecting_store.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"

namespace drover::server {
namespace {

using ::testing::HasSubstr;
using testing::FaultInjectingStore;

const absl::Status kDiskError = absl::UnavailableError("disk I/O error (injected)");

class StoreFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(/*faulty=*/true); }

  // droverd on dir_; with `faulty`, its store is wrapped and reachable as store_.
  void Start(bool faulty) {
    DroverdOptions options{.listen = "127.0.0.1:0", .state_dir = dir_.path(),
                           .bootstrap_admin_token = testing::TestAdminToken()};
    store_ = nullptr;
    if (faulty) {
      options.wrap_store = [this](std::unique_ptr<storage::Store> base) {
        auto wrapped = std::make_unique<FaultInjectingStore>(std::move(base));
        store_ = wrapped.get();
        return wrapped;
      };
    }
    auto started = Droverd::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    droverd_ = *std::move(started);
    auto channel = testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate());
    jobs_ = v1::JobService::NewStub(channel);
    admin_ = v1::AdminService::NewStub(channel);
  }

  void Restart() {
    droverd_->Shutdown();
    droverd_.reset();
    Start(/*faulty=*/false);
  }

  grpc::Status Submit(std::string* id = nullptr) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    request.mutable_spec()->mutable_resources()->set_cpus(1);
    v1::SubmitJobResponse response;
    grpc::Status status = jobs_->SubmitJob(&context, request, &response);
    if (id != nullptr) *id = response.job().id();
    return status;
  }

  std::vector<v1::Job> List() {
    grpc::ClientContext context;
    v1::ListJobsRequest request;
    v1::ListJobsResponse response;
    grpc::Status status = jobs_->ListJobs(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return {response.jobs().begin(), response.jobs().end()};
  }

  grpc::Status Get(const std::string& id, v1::Job* job) {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id(id);
    return jobs_->GetJob(&context, request, job);
  }

  grpc::Status Cancel(const std::string& id) {
    grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(id);
    v1::Job job;
    return jobs_->CancelJob(&context, request, &job);
  }

  testing::TempDir dir_;
  std::unique_ptr<Droverd> droverd_;
  FaultInjectingStore* store_ = nullptr;  // owned by droverd_
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

TEST_F(StoreFaultsTest, ASubmitWhoseCommitFailsIsRefusedAndLeavesNoJob) {
  store_->FailNext("CreateJob", kDiskError);
  grpc::Status refused = Submit();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(refused.error_message(), HasSubstr("disk I/O error"));
  EXPECT_TRUE(List().empty()) << "a job nobody was told about";

  std::string id;
  ASSERT_TRUE(Submit(&id).ok());
  EXPECT_EQ(List().size(), 1u);
  EXPECT_EQ(store_->Failed("CreateJob"), 1);
  Restart();
  std::vector<v1::Job> after = List();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].id(), id);
}

TEST_F(StoreFaultsTest, ACancelWhoseWriteFailsIsRefusedAndTheJobStaysQueued) {
  std::string id;
  ASSERT_TRUE(Submit(&id).ok());  // no node: it stays QUEUED
  store_->FailNext("UpdateJobStatus", kDiskError);
  grpc::Status refused = Cancel(id);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  v1::Job job;
  ASSERT_TRUE(Get(id, &job).ok());
  EXPECT_EQ(job.status().state(), v1::JobStatus::QUEUED) << "droverd's memory too";

  ASSERT_TRUE(Cancel(id).ok());
  ASSERT_TRUE(Get(id, &job).ok());
  EXPECT_EQ(job.status().state(), v1::JobStatus::CANCELED);
  Restart();
  ASSERT_TRUE(Get(id, &job).ok());
  EXPECT_EQ(job.status().state(), v1::JobStatus::CANCELED);
}

TEST_F(StoreFaultsTest, AComputeTargetWhoseWriteFailsIsNotRegistered) {
  store_->FailNext("PutComputeTarget", kDiskError);
  grpc::ClientContext context;
  v1::PutComputeTargetRequest request;
  request.mutable_target()->set_name("gpu");
  (*request.mutable_target()->mutable_selector())["gpu"] = "a100";
  v1::ComputeTarget answer;
  grpc::Status refused = admin_->PutComputeTarget(&context, request, &answer);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();

  grpc::ClientContext list_context;
  v1::ListComputeTargetsResponse targets;
  ASSERT_TRUE(
      admin_->ListComputeTargets(&list_context, v1::ListComputeTargetsRequest(), &targets).ok());
  for (const v1::ComputeTarget& target : targets.targets()) {
    EXPECT_NE(target.name(), "gpu") << "listed although never stored";
  }
}

TEST_F(StoreFaultsTest, AReadThatFailsIsAnErrorToRetryNeverAWrongAnswer) {
  std::string id;
  ASSERT_TRUE(Submit(&id).ok());
  ASSERT_TRUE(Cancel(id).ok());

  // The job exists: a failed read must not say it does not.
  store_->FailNext("GetJob", kDiskError);
  v1::Job job;
  grpc::Status read = Get(id, &job);
  EXPECT_EQ(read.error_code(), grpc::StatusCode::UNAVAILABLE) << read.error_message();
  ASSERT_TRUE(Get(id, &job).ok());

  // The caller has a valid token: a failed lookup must not make them a stranger (refused
  // UNAUTHENTICATED, or worse, served as someone else).
  store_->FailNext("FindUserByToken", kDiskError);
  read = Get(id, &job);
  EXPECT_EQ(read.error_code(), grpc::StatusCode::UNAVAILABLE) << read.error_message();
  ASSERT_TRUE(Get(id, &job).ok());
}

}  // namespace
}  // namespace drover::server
