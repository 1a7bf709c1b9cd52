// Job arrays end to end, through the real droverd (and drover-agent running real runc
// containers): one submit becomes N tasks, each its own job that knows its index; at most
// max_running of them are placed at any moment of the recorded status histories; `list`
// groups them; a cancel of the array ends every task; and droverd SIGKILLed while arrays
// are being submitted never leaves an acknowledged array short nor half an array stored.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/support/channel_arguments.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/job_history.h"
#include "tests/testing/local_cluster.h"

namespace drover {
namespace {

using ::testing::HasSubstr;
using google::protobuf::util::TimeUtil;

constexpr absl::Duration kRpcDeadline = absl::Seconds(30);

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout = kRpcDeadline) {
  context.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
}

// Every task of array `array_id`, through every page of ListJobs' array filter.
absl::StatusOr<std::vector<v1::Job>> ListArray(v1::JobService::Stub& stub,
                                               const std::string& array_id) {
  std::vector<v1::Job> tasks;
  v1::ListJobsRequest request;
  request.set_array_id(array_id);
  request.set_page_size(1000);
  for (int page = 0; page < 1000; ++page) {
    v1::ListJobsResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = stub.ListJobs(&context, request, &response);
    if (!status.ok()) return absl::UnknownError(status.error_message());
    for (const v1::Job& job : response.jobs()) tasks.push_back(job);
    if (response.next_page_token().empty()) return tasks;
    request.set_page_token(response.next_page_token());
  }
  return absl::InternalError("ListJobs never ends");
}

// The most intervals open at one moment; an interval is [first, second), so one that ends
// when another begins does not overlap it.
int MaxOverlap(const std::vector<std::pair<absl::Time, absl::Time>>& intervals) {
  std::vector<std::pair<absl::Time, int>> events;
  for (const auto& [begin, end] : intervals) {
    events.emplace_back(begin, +1);
    events.emplace_back(end, -1);
  }
  std::sort(events.begin(), events.end());  // at one time, ends (-1) before begins
  int open = 0, most = 0;
  for (const auto& [time, delta] : events) most = std::max(most, open += delta);
  return most;
}

class JobArrayE2eTest : public testing::LocalClusterTest {
 protected:
  JobArrayE2eTest() : LocalClusterTest(testing::ClusterOptions{.agents = 1}) {}

  v1::SubmitJobResponse SubmitArray(v1::JobSpec spec, const std::string& indices,
                                    int32_t max_running) {
    spec.mutable_array()->set_indices(indices);
    spec.mutable_array()->set_max_running(max_running);
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    v1::SubmitJobResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = jobs_->stub().SubmitJob(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }
};

TEST_F(JobArrayE2eTest, SixTasksTwoAtATimeEachIndexOnceGroupedInListAndShown) {
  ASSERT_FALSE(HasFatalFailure());
  v1::SubmitJobResponse submitted = SubmitArray(
      Shell("echo index=$DROVER_ARRAY_INDEX array=$DROVER_ARRAY_ID size=$DROVER_ARRAY_SIZE; "
            "sleep 1"),
      "0-5", 2);
  ASSERT_TRUE(submitted.created());
  const std::string array_id = submitted.job().spec().array_task().array_id();
  ASSERT_TRUE(absl::StartsWith(array_id, "a-")) << submitted.job().DebugString();
  EXPECT_EQ(submitted.job().spec().array_task().index(), 0);

  absl::StatusOr<std::vector<v1::Job>> tasks = ListArray(jobs_->stub(), array_id);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  ASSERT_EQ(tasks->size(), 6u);
  testing::JobHistory history(channel_);
  for (const v1::Job& task : *tasks) history.Watch(task.id());

  std::map<int64_t, int> seen_index;  // index -> how many tasks printed it
  std::vector<std::pair<absl::Time, absl::Time>> placed;  // PREPARING .. the end
  for (const v1::Job& task : *tasks) {
    v1::Job ended = WaitFor(task.id(), v1::JobStatus::COMPLETED);
    std::string out = Logs(task.id(), 0);
    const int64_t index = task.spec().array_task().index();
    EXPECT_EQ(out, absl::StrCat("index=", index, " array=", array_id, " size=6\n"))
        << task.id();
    ++seen_index[index];
    history.Record(ended);
  }
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(seen_index[i], 1) << "index " << i;

  // From every status droverd announced: each task counts from its first PREPARING until
  // it ended, as the limit counts it.
  for (const v1::Job& task : *tasks) {
    EXPECT_EQ(history.Check(task.id()), "") << task.id();
    absl::Time begin = absl::InfiniteFuture(), end = absl::InfinitePast();
    for (const auto& [source, statuses] : history.Seen(task.id())) {
      for (const v1::JobStatus& status : statuses) {
        absl::Time at = absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(status.update_time()));
        if (status.state() == v1::JobStatus::PREPARING) begin = std::min(begin, at);
        if (status.state() == v1::JobStatus::COMPLETED) end = std::max(end, at);
      }
    }
    // A task placed before its watch began: counted from its submit, which only lengthens
    // its interval (a stricter check).
    if (begin == absl::InfiniteFuture()) {
      begin = absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(task.create_time()));
    }
    ASSERT_NE(end, absl::InfinitePast()) << task.id() << " was never seen COMPLETED";
    placed.emplace_back(begin, end);
  }
  EXPECT_LE(MaxOverlap(placed), 2) << "more than max_running=2 tasks placed at once";

  // One line for the array in a grouped listing, its tasks counted by state.
  v1::ListJobsRequest request;
  request.set_group_arrays(true);
  v1::ListJobsResponse listed;
  grpc::ClientContext context;
  SetDeadline(context);
  ASSERT_TRUE(jobs_->stub().ListJobs(&context, request, &listed).ok());
  EXPECT_EQ(listed.jobs_size(), 0);
  ASSERT_EQ(listed.arrays_size(), 1);
  EXPECT_EQ(listed.arrays(0).array_id(), array_id);
  EXPECT_EQ(listed.arrays(0).size(), 6);
  EXPECT_EQ(listed.arrays(0).max_running(), 2);
  ASSERT_EQ(listed.arrays(0).counts_size(), 1);
  EXPECT_EQ(listed.arrays(0).counts(0).state(), v1::JobStatus::COMPLETED);
  EXPECT_EQ(listed.arrays(0).counts(0).count(), 6);
  EXPECT_EQ(listed.arrays(0).first_task().id(), submitted.job().id());

  // What the CLI shows: one line; each task says which array and index.
  testing::CommandResult list = RunCli({"list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr(array_id));
  EXPECT_THAT(list.out, HasSubstr("ARRAY[6%2]"));
  EXPECT_THAT(list.out, HasSubstr("6 completed"));
  EXPECT_EQ(std::count(list.out.begin(), list.out.end(), '\n'), 2) << list.out;
  testing::CommandResult expanded = RunCli({"list", "--array", array_id});
  EXPECT_EQ(std::count(expanded.out.begin(), expanded.out.end(), '\n'), 7) << expanded.out;
  std::string index_3;
  for (const v1::Job& task : *tasks) {
    if (task.spec().array_task().index() == 3) index_3 = task.id();
  }
  testing::CommandResult show = RunCli({"show", index_3});
  EXPECT_THAT(show.out, HasSubstr(absl::StrCat(array_id, " index 3 (6 tasks, at most 2 running)")));
}

TEST_F(JobArrayE2eTest, CancelOfTheArrayEndsEveryTaskNotEnded) {
  ASSERT_FALSE(HasFatalFailure());
  v1::SubmitJobResponse submitted = SubmitArray(Shell("sleep 300"), "0-9", 1);
  const std::string array_id = submitted.job().spec().array_task().array_id();
  WaitFor(submitted.job().id(), v1::JobStatus::RUNNING);

  // The answer is the array's first task, as its cancel committed.
  v1::CancelJobRequest cancel_request;
  cancel_request.set_job_id(array_id);
  v1::Job answer;
  grpc::ClientContext cancel_context;
  SetDeadline(cancel_context);
  ASSERT_TRUE(jobs_->stub().CancelJob(&cancel_context, cancel_request, &answer).ok());
  EXPECT_EQ(answer.id(), submitted.job().id());
  EXPECT_EQ(answer.status().state(), v1::JobStatus::CANCEL_REQUESTED);
  // Again through the CLI: already canceling, no error.
  testing::CommandResult cancel = RunCli({"cancel", array_id});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_THAT(cancel.out, HasSubstr(array_id));
  EXPECT_THAT(cancel.out, HasSubstr(submitted.job().id()));

  absl::StatusOr<std::vector<v1::Job>> tasks = ListArray(jobs_->stub(), array_id);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  ASSERT_EQ(tasks->size(), 10u);
  for (const v1::Job& task : *tasks) WaitFor(task.id(), v1::JobStatus::CANCELED);

  // Unknown and malformed array ids are told apart.
  testing::CommandResult unknown = RunCli({"cancel", "a-0000000000000bad"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_THAT(unknown.err, HasSubstr("does not exist"));
  v1::ListJobsRequest bad;
  bad.set_array_id("a-nothex");
  v1::ListJobsResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  grpc::Status status = jobs_->stub().ListJobs(&context, bad, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("array_id"));
}

TEST_F(JobArrayE2eTest, HostileArraysAreRefusedNamingTheField) {
  ASSERT_FALSE(HasFatalFailure());
  struct Case {
    std::string indices;
    int32_t max_running;
    std::string expect;
  };
  for (const Case& c : std::vector<Case>{
           {"", 0, "spec.array.indices: is empty"},
           {"9-0", 0, "inverted"},
           {"0-100000", 0, "more than 100000 tasks"},
           {"0-99999999999999999999", 0, "too large"},
           {"0-9", -1, "spec.array.max_running"},
           {"zero-nine", 0, "not a number"}}) {
    v1::SubmitJobRequest request;
    *request.mutable_spec() = Shell("true");
    request.mutable_spec()->mutable_array()->set_indices(c.indices);
    request.mutable_spec()->mutable_array()->set_max_running(c.max_running);
    v1::SubmitJobResponse response;
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::Status status = jobs_->stub().SubmitJob(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.indices;
    EXPECT_THAT(status.error_message(), HasSubstr(c.expect)) << c.indices;
  }
  testing::CommandResult junk = RunCli({"submit", "--array", "0-9%x", "true"});
  EXPECT_NE(junk.exit_code, 0);
  EXPECT_THAT(junk.err, HasSubstr("--array"));
  // A retried submit (same idempotency key) is the same array, task for task.
  v1::JobSpec spec = Shell("true");
  spec.set_idempotency_key("array-retry");
  v1::SubmitJobResponse first = SubmitArray(spec, "0-49", 5);
  v1::SubmitJobResponse again = SubmitArray(spec, "0-49", 5);
  EXPECT_TRUE(first.created());
  EXPECT_FALSE(again.created());
  EXPECT_EQ(again.job().id(), first.job().id());
  absl::StatusOr<std::vector<v1::Job>> tasks =
      ListArray(jobs_->stub(), first.job().spec().array_task().array_id());
  ASSERT_TRUE(tasks.ok());
  EXPECT_EQ(tasks->size(), 50u);
  // The same key with other indices is another submit: refused, nothing added.
  v1::SubmitJobRequest other;
  *other.mutable_spec() = spec;
  other.mutable_spec()->mutable_array()->set_indices("0-59");
  v1::SubmitJobResponse refused;
  grpc::ClientContext context;
  SetDeadline(context);
  EXPECT_EQ(jobs_->stub().SubmitJob(&context, other, &refused).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  tasks = ListArray(jobs_->stub(), first.job().spec().array_task().array_id());
  ASSERT_TRUE(tasks.ok());
  EXPECT_EQ(tasks->size(), 50u);
  testing::CommandResult cancel =
      RunCli({"cancel", first.job().spec().array_task().array_id()});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
}

// droverd alone (no agents, no root): arrays submitted by concurrent clients, droverd
// SIGKILLed right after acknowledgements.
class JobArrayCrashTest : public testing::LocalClusterTest {
 protected:
  JobArrayCrashTest()
      : LocalClusterTest({.agents = 0, .droverd_flags = {"--log-level", "warning"},
                          .datastore_root = false},
                         /*needs_root=*/false) {}
};

TEST_F(JobArrayCrashTest, SigkillAfterAcknowledgementsLosesNoTaskAndStoresNoHalfArray) {
  ASSERT_FALSE(HasFatalFailure());
  constexpr int kClients = 4;
  constexpr int kTasks = 500;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    absl::Mutex mu;
    std::map<std::string, std::string> acked;  // key -> first task id
    std::set<std::string> tried;
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&, c] {
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        args.SetInt("drover.test.channel", c);
        auto stub = v1::JobService::NewStub(
            grpc::CreateCustomChannel(listen_, testing::TlsCredentials(), args));
        for (int n = 0; !stop.load(); ++n) {
          const std::string key = absl::StrCat("r", round, "-c", c, "-", n);
          v1::SubmitJobRequest request;
          request.mutable_spec()->set_entry_script("train.py");
          request.mutable_spec()->set_idempotency_key(key);
          request.mutable_spec()->mutable_array()->set_indices(absl::StrCat("0-", kTasks - 1));
          request.mutable_spec()->mutable_array()->set_max_running(10);
          {
            absl::MutexLock lock(&mu);
            tried.insert(key);
          }
          v1::SubmitJobResponse response;
          grpc::ClientContext context;
          SetDeadline(context, absl::Seconds(10));
          if (!stub->SubmitJob(&context, request, &response).ok()) return;  // droverd gone
          absl::MutexLock lock(&mu);
          acked[key] = response.job().id();
        }
      });
    }
    auto acks = [&] {
      absl::MutexLock lock(&mu);
      return acked.size();
    };
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (acks() < static_cast<size_t>(2 + round * 3) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    ASSERT_GE(acks(), 2u) << "no array was acknowledged within 60 s";
    StopDroverd(SIGKILL);
    stop = true;
    for (std::thread& t : clients) t.join();
    StartDroverd();
    ASSERT_FALSE(HasFatalFailure());

    // Every stored task, by array: each array whole (kTasks tasks, every index once).
    std::map<std::string, std::set<int64_t>> arrays;
    std::map<std::string, std::string> first_of;  // array id -> its task of index 0
    v1::ListJobsRequest request;
    request.set_page_size(1000);
    while (true) {
      v1::ListJobsResponse response;
      grpc::ClientContext context;
      SetDeadline(context);
      grpc::Status status = jobs_->stub().ListJobs(&context, request, &response);
      ASSERT_TRUE(status.ok()) << status.error_message();
      for (const v1::Job& job : response.jobs()) {
        const v1::ArrayTask& task = job.spec().array_task();
        EXPECT_TRUE(arrays[task.array_id()].insert(task.index()).second)
            << "index " << task.index() << " of " << task.array_id() << " stored twice";
        if (task.index() == 0) first_of[task.array_id()] = job.id();
      }
      if (response.next_page_token().empty()) break;
      request.set_page_token(response.next_page_token());
    }
    for (const auto& [array_id, indices] : arrays) {
      EXPECT_EQ(indices.size(), static_cast<size_t>(kTasks)) << array_id << " is stored in part";
    }
    // Every acknowledged array is there, and a retried submit of any key (acknowledged or
    // not) finds or makes the whole array exactly once.
    for (const auto& [key, first] : acked) {
      bool found = false;
      for (const auto& [array_id, id] : first_of) found |= id == first;
      EXPECT_TRUE(found) << "acknowledged array " << key << " (first task " << first
                         << ") is lost";
    }
    for (const std::string& key : tried) {
      v1::SubmitJobRequest retry;
      retry.mutable_spec()->set_entry_script("train.py");
      retry.mutable_spec()->set_idempotency_key(key);
      retry.mutable_spec()->mutable_array()->set_indices(absl::StrCat("0-", kTasks - 1));
      retry.mutable_spec()->mutable_array()->set_max_running(10);
      v1::SubmitJobResponse response;
      grpc::ClientContext context;
      SetDeadline(context);
      grpc::Status status = jobs_->stub().SubmitJob(&context, retry, &response);
      ASSERT_TRUE(status.ok()) << key << ": " << status.error_message();
      if (acked.contains(key)) {
        EXPECT_FALSE(response.created()) << key;
        EXPECT_EQ(response.job().id(), acked[key]) << key;
      }
      absl::StatusOr<std::vector<v1::Job>> tasks =
          ListArray(jobs_->stub(), response.job().spec().array_task().array_id());
      ASSERT_TRUE(tasks.ok()) << tasks.status();
      EXPECT_EQ(tasks->size(), static_cast<size_t>(kTasks)) << key;
    }
    std::printf("round %d: %zu arrays acknowledged, %zu tried, %zu stored before the retries\n",
                round, acked.size(), tried.size(), arrays.size());
  }
}

}  // namespace
}  // namespace drover
