// The JobService in-process: a real Droverd (SQLite store in a temporary folder, gRPC on a
// loopback port the kernel picked) and a real client stub.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "drover/v1/admin_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/droverd.h"
#include "tests/testing/cluster.h"
#include "tests/testing/test_tls.h"
#include "tests/testing/subprocess.h"

namespace drover::server {
namespace {

using ::testing::HasSubstr;

class JobServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { StartDroverd(); }

  void StartDroverd() {
    absl::StatusOr<std::unique_ptr<Droverd>> started =
        Droverd::Start({.listen = "127.0.0.1:0", .state_dir = dir_.path(),
       .bootstrap_admin_token = testing::TestAdminToken()});
    ASSERT_TRUE(started.ok()) << started.status();
    droverd_ = *std::move(started);
    stub_ = v1::JobService::NewStub(
        testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()));
  }

  void RestartDroverd() {
    droverd_->Shutdown();
    droverd_.reset();
    StartDroverd();
  }

  grpc::Status Submit(const v1::JobSpec& spec, v1::SubmitJobResponse* response) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    return stub_->SubmitJob(&context, request, response);
  }

  std::string SubmitOk(v1::JobSpec spec = Spec()) {
    v1::SubmitJobResponse response;
    grpc::Status status = Submit(spec, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.job().id();
  }

  grpc::Status Cancel(const std::string& id, v1::Job* job) {
    grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(id);
    request.set_reason("not needed");
    return stub_->CancelJob(&context, request, job);
  }

  // Changes the tags of job `id` through `stub` (the admin's when null).
  grpc::Status Tag(const std::string& id, const std::map<std::string, std::string>& set,
                   const std::vector<std::string>& remove, v1::Job* job,
                   v1::JobService::Stub* stub = nullptr) {
    grpc::ClientContext context;
    v1::UpdateJobTagsRequest request;
    request.set_job_id(id);
    request.mutable_set()->insert(set.begin(), set.end());
    for (const std::string& key : remove) request.add_remove(key);
    return (stub != nullptr ? stub : stub_.get())->UpdateJobTags(&context, request, job);
  }

  v1::Job Get(const std::string& id) {
    grpc::ClientContext context;
    v1::GetJobRequest request;
    request.set_job_id(id);
    v1::Job job;
    grpc::Status status = stub_->GetJob(&context, request, &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return job;
  }

  // Ids of the jobs ListJobs gives for the tag filter `tag` ("key" or "key=value").
  std::vector<std::string> ListTagged(const std::string& tag) {
    grpc::ClientContext context;
    v1::ListJobsRequest request;
    request.set_tag(tag);
    v1::ListJobsResponse listed;
    grpc::Status status = stub_->ListJobs(&context, request, &listed);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::vector<std::string> ids;
    for (const v1::Job& job : listed.jobs()) ids.push_back(job.id());
    return ids;
  }

  // A JobService stub with the token of user `name`, made with the role USER.
  std::unique_ptr<v1::JobService::Stub> UserStub(const std::string& name) {
    auto admin = v1::AdminService::NewStub(
        testing::TlsChannelTrusting(droverd_->address(), droverd_->ca_certificate()));
    grpc::ClientContext context;
    v1::CreateUserRequest request;
    request.set_name(name);
    request.set_role(v1::User::USER);
    v1::UserToken made;
    grpc::Status status = admin->CreateUser(&context, request, &made);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return v1::JobService::NewStub(testing::TlsChannelTrusting(
        droverd_->address(), droverd_->ca_certificate(), made.token()));
  }

  static v1::JobSpec Spec() {
    v1::JobSpec spec;
    spec.set_entry_script("train.py");
    return spec;
  }

  testing::TempDir dir_;
  std::unique_ptr<Droverd> droverd_;
  std::unique_ptr<v1::JobService::Stub> stub_;
};

TEST_F(JobServiceTest, SubmitAcknowledgesAQueuedJobWithDefaultsFilledIn) {
  v1::SubmitJobResponse response;
  ASSERT_TRUE(Submit(Spec(), &response).ok());
  EXPECT_TRUE(response.created());
  EXPECT_EQ(response.job().id(), "j-1");
  EXPECT_EQ(response.job().status().state(), v1::JobStatus::QUEUED);
  EXPECT_EQ(response.job().status().reason(), "WAITING_FOR_NODES need=1 free=0");
  EXPECT_EQ(response.job().spec().node_count(), 1);
  EXPECT_EQ(response.job().spec().environment().image(), "host");
  EXPECT_GT(response.job().create_time().seconds(), 0);
}

TEST_F(JobServiceTest, InvalidSpecIsRefusedNamingTheFieldAndNothingIsStored) {
  v1::JobSpec spec = Spec();
  spec.set_node_count(-3);
  v1::SubmitJobResponse response;
  grpc::Status status = Submit(spec, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("spec.node_count"));

  grpc::ClientContext context;
  v1::SubmitJobRequest empty;
  status = stub_->SubmitJob(&context, empty, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("spec: required"));

  grpc::ClientContext list_context;
  v1::ListJobsResponse listed;
  ASSERT_TRUE(stub_->ListJobs(&list_context, v1::ListJobsRequest(), &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 0);
}

TEST_F(JobServiceTest, ResubmittingWithTheSameKeyReturnsTheSameJob) {
  v1::JobSpec spec = Spec();
  spec.set_idempotency_key("retry-me");
  v1::SubmitJobResponse first, second;
  ASSERT_TRUE(Submit(spec, &first).ok());
  ASSERT_TRUE(Submit(spec, &second).ok());
  EXPECT_EQ(first.job().id(), second.job().id());
  EXPECT_FALSE(second.created());
  spec.set_name("something-else");
  grpc::Status conflict = Submit(spec, &second);
  EXPECT_EQ(conflict.error_code(), grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(JobServiceTest, GetJobReportsUnknownAndMalformedIds) {
  grpc::ClientContext context;
  v1::GetJobRequest request;
  request.set_job_id("j-404");
  v1::Job job;
  grpc::Status status = stub_->GetJob(&context, request, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("j-404"));
  grpc::ClientContext context2;
  request.set_job_id("nonsense");
  EXPECT_EQ(stub_->GetJob(&context2, request, &job).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(JobServiceTest, CancelOfAQueuedJobEndsItAndIsIdempotent) {
  std::string id = SubmitOk();
  v1::Job job;
  ASSERT_TRUE(Cancel(id, &job).ok());
  EXPECT_EQ(job.status().state(), v1::JobStatus::CANCELED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::CANCELED_BY_USER);
  EXPECT_THAT(job.status().message(), HasSubstr("not needed"));
  EXPECT_TRUE(job.status().has_end_time());
  v1::Job again;
  ASSERT_TRUE(Cancel(id, &again).ok());
  EXPECT_EQ(again.status().version(), job.status().version());
  EXPECT_EQ(Cancel("j-999", &again).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(JobServiceTest, ConcurrentCancelsOfOneJobAllSucceedWithOneChange) {
  std::string id = SubmitOk();
  std::vector<std::thread> threads;
  std::vector<v1::Job> results(8);
  std::vector<grpc::Status> statuses(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { statuses[i] = Cancel(id, &results[i]); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    EXPECT_EQ(results[i].status().state(), v1::JobStatus::CANCELED);
    EXPECT_EQ(results[i].status().version(), 2);
  }
}

TEST_F(JobServiceTest, WatchStreamsChangesAndEndsAtTheTerminalState) {
  std::string id = SubmitOk();
  grpc::ClientContext context;
  v1::WatchJobRequest request;
  request.set_job_id(id);
  auto reader = stub_->WatchJob(&context, request);
  v1::WatchJobResponse event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.job().status().state(), v1::JobStatus::QUEUED);
  v1::Job canceled;
  ASSERT_TRUE(Cancel(id, &canceled).ok());
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.job().status().state(), v1::JobStatus::CANCELED);
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(JobServiceTest, WatchOfAFinishedJobSendsItOnceAndEnds) {
  std::string id = SubmitOk();
  v1::Job canceled;
  ASSERT_TRUE(Cancel(id, &canceled).ok());
  grpc::ClientContext context;
  v1::WatchJobRequest request;
  request.set_job_id(id);
  auto reader = stub_->WatchJob(&context, request);
  v1::WatchJobResponse event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.job().status().state(), v1::JobStatus::CANCELED);
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(JobServiceTest, WatchOfAnUnknownJobIsNotFound) {
  grpc::ClientContext context;
  v1::WatchJobRequest request;
  request.set_job_id("j-77");
  auto reader = stub_->WatchJob(&context, request);
  v1::WatchJobResponse event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(JobServiceTest, ShutdownEndsWatchStreamsWithUnavailable) {
  std::string id = SubmitOk();
  grpc::ClientContext context;
  v1::WatchJobRequest request;
  request.set_job_id(id);
  auto reader = stub_->WatchJob(&context, request);
  v1::WatchJobResponse event;
  ASSERT_TRUE(reader->Read(&event));
  std::thread stopper([&] { droverd_->Shutdown(); });
  EXPECT_FALSE(reader->Read(&event));
  grpc::Status status = reader->Finish();
  stopper.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(JobServiceTest, ListPagesNewestFirstAndFilters) {
  for (int i = 0; i < 5; ++i) {
    v1::JobSpec spec = Spec();
    spec.set_experiment(i < 3 ? "mnist" : "resnet");
    (*spec.mutable_tags())["seed"] = absl::StrCat(i);
    SubmitOk(spec);
  }
  v1::Job canceled;
  ASSERT_TRUE(Cancel("j-2", &canceled).ok());

  std::vector<std::string> ids;
  std::string token;
  int pages = 0;
  do {
    grpc::ClientContext context;
    v1::ListJobsRequest request;
    request.set_page_size(2);
    request.set_page_token(token);
    v1::ListJobsResponse response;
    ASSERT_TRUE(stub_->ListJobs(&context, request, &response).ok());
    for (const auto& job : response.jobs()) ids.push_back(job.id());
    token = response.next_page_token();
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_THAT(ids, ::testing::ElementsAre("j-5", "j-4", "j-3", "j-2", "j-1"));

  auto list = [&](v1::ListJobsRequest request) {
    grpc::ClientContext context;
    v1::ListJobsResponse response;
    EXPECT_TRUE(stub_->ListJobs(&context, request, &response).ok());
    std::vector<std::string> out;
    for (const auto& job : response.jobs()) out.push_back(job.id());
    return out;
  };
  v1::ListJobsRequest by_experiment;
  by_experiment.set_experiment("resnet");
  EXPECT_THAT(list(by_experiment), ::testing::ElementsAre("j-5", "j-4"));
  v1::ListJobsRequest by_tag;
  by_tag.set_tag("seed=1");
  EXPECT_THAT(list(by_tag), ::testing::ElementsAre("j-2"));
  v1::ListJobsRequest by_state;
  by_state.add_states(v1::JobStatus::CANCELED);
  EXPECT_THAT(list(by_state), ::testing::ElementsAre("j-2"));
}

TEST_F(JobServiceTest, ListRefusesBadPageSizesAndTokens) {
  grpc::ClientContext context;
  v1::ListJobsRequest request;
  request.set_page_size(5000);
  v1::ListJobsResponse response;
  grpc::Status status = stub_->ListJobs(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("page_size"));
  grpc::ClientContext context2;
  request.set_page_size(0);
  request.set_page_token("garbage!");
  status = stub_->ListJobs(&context2, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("page_token"));
}

TEST_F(JobServiceTest, RestartResumesTheQueueExactly) {
  std::string a = SubmitOk();
  std::string b = SubmitOk();
  v1::Job canceled;
  ASSERT_TRUE(Cancel(a, &canceled).ok());
  RestartDroverd();
  EXPECT_EQ(droverd_->resumed_jobs(), 1u);
  // The resumed job can still be canceled: the core knows it after the restart.
  v1::Job job;
  ASSERT_TRUE(Cancel(b, &job).ok());
  EXPECT_EQ(job.status().state(), v1::JobStatus::CANCELED);
  EXPECT_EQ(SubmitOk(), "j-3");
}

TEST_F(JobServiceTest, TagsOfASubmittedJobChangeAndShowInGetAndList) {
  v1::JobSpec spec = Spec();
  (*spec.mutable_tags())["team"] = "vision";
  (*spec.mutable_tags())["stage"] = "draft";
  std::string id = SubmitOk(spec);
  v1::Job job;
  ASSERT_TRUE(Tag(id, {{"stage", "final"}, {"lr", "0.01"}}, {}, &job).ok());
  EXPECT_THAT(job.spec().tags(), ::testing::UnorderedElementsAre(
                                     ::testing::Pair("team", "vision"),
                                     ::testing::Pair("stage", "final"),
                                     ::testing::Pair("lr", "0.01")));
  // The status did not move: a tag change is not a status change.
  EXPECT_EQ(job.status().version(), 1);
  EXPECT_EQ(job.status().state(), v1::JobStatus::QUEUED);
  EXPECT_EQ(Get(id).spec().tags().at("stage"), "final");
  EXPECT_THAT(ListTagged("stage=final"), ::testing::ElementsAre(id));
  EXPECT_THAT(ListTagged("stage=draft"), ::testing::IsEmpty());
  EXPECT_THAT(ListTagged("lr"), ::testing::ElementsAre(id));
  // The job still cancels: the core's copy and the store agree on its version.
  v1::Job canceled;
  ASSERT_TRUE(Cancel(id, &canceled).ok());
  EXPECT_EQ(canceled.spec().tags().at("lr"), "0.01");
}

TEST_F(JobServiceTest, TagsAreRemovedByKeyAndAnAbsentKeyIsNoError) {
  v1::JobSpec spec = Spec();
  (*spec.mutable_tags())["team"] = "vision";
  (*spec.mutable_tags())["stage"] = "draft";
  std::string id = SubmitOk(spec);
  v1::Job job;
  ASSERT_TRUE(Tag(id, {}, {"stage", "never-set"}, &job).ok());
  EXPECT_THAT(job.spec().tags(),
              ::testing::UnorderedElementsAre(::testing::Pair("team", "vision")));
  EXPECT_THAT(ListTagged("stage"), ::testing::IsEmpty());
  EXPECT_THAT(Get(id).spec().tags(), ::testing::SizeIs(1));

  grpc::Status both = Tag(id, {{"team", "nlp"}}, {"team"}, &job);
  EXPECT_EQ(both.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(both.error_message(), HasSubstr("remove[0]: 'team' is also in set"));
  grpc::Status nothing = Tag(id, {}, {}, &job);
  EXPECT_EQ(nothing.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(JobServiceTest, BadTagsAreRefusedNamingTheEntryAndNothingChanges) {
  v1::JobSpec spec = Spec();
  (*spec.mutable_tags())["team"] = "vision";
  std::string id = SubmitOk(spec);
  v1::Job job;
  grpc::Status status = Tag(id, {{"bad key", "x"}, {"ok", "y"}}, {}, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("tags['bad key']"));
  status = Tag(id, {{"long", std::string(257, 'v')}}, {}, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("tags['long']: value"));
  EXPECT_THAT(Get(id).spec().tags(),
              ::testing::UnorderedElementsAre(::testing::Pair("team", "vision")));
  EXPECT_THAT(ListTagged("ok"), ::testing::IsEmpty());
}

TEST_F(JobServiceTest, TheTagLimitCountsTheTagsTheJobWouldHave) {
  v1::JobSpec spec = Spec();
  for (int i = 0; i < 60; ++i) (*spec.mutable_tags())[absl::StrCat("k", i)] = "v";
  std::string id = SubmitOk(spec);
  std::map<std::string, std::string> five;
  for (int i = 60; i < 65; ++i) five[absl::StrCat("k", i)] = "v";
  v1::Job job;
  grpc::Status status = Tag(id, five, {}, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("tags: 65 tags are too many; use at most 64"));
  EXPECT_THAT(Get(id).spec().tags(), ::testing::SizeIs(60));
  // Removing one in the same call makes room.
  ASSERT_TRUE(Tag(id, five, {"k0"}, &job).ok());
  EXPECT_THAT(job.spec().tags(), ::testing::SizeIs(64));
}

TEST_F(JobServiceTest, OnlyTheOwnerAndAdminsChangeAJobsTagsAsForCancel) {
  auto alice = UserStub("alice");
  auto bob = UserStub("bob");
  grpc::ClientContext context;
  v1::SubmitJobRequest request;
  *request.mutable_spec() = Spec();
  v1::SubmitJobResponse submitted;
  ASSERT_TRUE(alice->SubmitJob(&context, request, &submitted).ok());
  const std::string id = submitted.job().id();

  v1::Job job;
  grpc::Status refused = Tag(id, {{"stolen", "yes"}}, {}, &job, bob.get());
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(refused.error_message(), HasSubstr("belongs to another user"));
  grpc::ClientContext cancel_context;
  v1::CancelJobRequest cancel;
  cancel.set_job_id(id);
  grpc::Status cancel_refused = bob->CancelJob(&cancel_context, cancel, &job);
  EXPECT_EQ(cancel_refused.error_code(), refused.error_code());
  EXPECT_EQ(cancel_refused.error_message(), refused.error_message());
  EXPECT_THAT(Get(id).spec().tags(), ::testing::IsEmpty());

  ASSERT_TRUE(Tag(id, {{"mine", "yes"}}, {}, &job, alice.get()).ok());
  ASSERT_TRUE(Tag(id, {{"admin", "too"}}, {}, &job).ok());
  EXPECT_THAT(Get(id).spec().tags(), ::testing::SizeIs(2));
}

TEST_F(JobServiceTest, TagsOfAnUnknownJobAreNotFound) {
  v1::Job job;
  grpc::Status status = Tag("j-404", {{"a", "b"}}, {}, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("j-404"));
  EXPECT_EQ(Tag("nonsense", {{"a", "b"}}, {}, &job).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(JobServiceTest, ChangedTagsSurviveARestart) {
  std::string id = SubmitOk();
  v1::Job job;
  ASSERT_TRUE(Tag(id, {{"kept", "yes"}}, {}, &job).ok());
  RestartDroverd();
  EXPECT_EQ(Get(id).spec().tags().at("kept"), "yes");
  EXPECT_THAT(ListTagged("kept=yes"), ::testing::ElementsAre(id));
}

TEST_F(JobServiceTest, SubmitsAfterShutdownAreRefused) {
  droverd_->Shutdown();
  v1::SubmitJobResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::SubmitJobRequest request;
  *request.mutable_spec() = Spec();
  grpc::Status status = stub_->SubmitJob(&context, request, &response);
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(JobServiceTest, SecondDroverdOnTheSameStateDirIsRefused) {
  testing::TempDir other;
  absl::StatusOr<std::unique_ptr<Droverd>> second =
      Droverd::Start({.listen = "127.0.0.1:0", .state_dir = dir_.path(),
       .bootstrap_admin_token = testing::TestAdminToken()});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("in use by another droverd"));
}

TEST_F(JobServiceTest, SecondDroverdOnTheSamePortIsRefused) {
  testing::TempDir other;
  absl::StatusOr<std::unique_ptr<Droverd>> second =
      Droverd::Start({.listen = droverd_->address(), .state_dir = other.path(),
       .bootstrap_admin_token = testing::TestAdminToken()});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("cannot listen"));
}

}  // namespace
}  // namespace drover::server
