// droverd under floods from one job (issue 16, point 4), in-process: a real Droverd and a
// scripted agent sending what a hostile or very large job would make the real agent send:
// thousands of log streams under a low open file limit, output far past the cap, more metric
// records than one answer should hold. Checked as a user or an administrator would: other
// clients are served throughout, the job still completes, the logs say what was cut, no
// descriptor stays open after the job, GetMetrics pages add up to what was logged.
#include <fcntl.h>
#include <grpcpp/create_channel.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>
#include <iostream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "drover/v1/agent_service.grpc.pb.h"
#include "drover/v1/job_service.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/droverd.h"
#include "tests/testing/cluster.h"
#include "tests/testing/scripted_agent.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_tls.h"

namespace drover::server {
namespace {

using ::drover::testing::ScriptedAgent;
using ::testing::HasSubstr;

// Descriptors this process (the test and droverd in it) holds now.
int OpenDescriptors() {
  int n = 0;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", error);
       it != std::filesystem::directory_iterator(); it.increment(error)) {
    ++n;
  }
  return n;
}

class LogLimitsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    agent_.reset();
    droverd_.reset();
    if (saved_limit_.rlim_cur != 0) setrlimit(RLIMIT_NOFILE, &saved_limit_);
  }

  // Starts droverd (after lowering this process' open file limit to `nofile`, when given)
  // and connects the scripted agent of n1, holding `held`.
  void Start(storage::LogLimits limits, int nofile = 0, std::vector<v1::AttemptReport> held = {}) {
    if (nofile > 0) {
      ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved_limit_), 0);
      struct rlimit low = saved_limit_;
      low.rlim_cur = static_cast<rlim_t>(nofile);
      ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
    }
    DroverdOptions options{.listen = "127.0.0.1:0", .state_dir = dir_.path(),
                           .bootstrap_admin_token = testing::TestAdminToken()};
    options.log_limits = limits;
    options.tick = absl::Milliseconds(50);
    // The scripted agent sends no heartbeats: its node must not be lost during a flood.
    options.core.lease = absl::Minutes(5);
    auto started = Droverd::Start(options);
    ASSERT_TRUE(started.ok()) << started.status();
    droverd_ = *std::move(started);
    jobs_ = v1::JobService::NewStub(NewClientChannel());
    agent_ = std::make_unique<ScriptedAgent>(
        testing::NodeChannel(droverd_->address(), droverd_->ca_certificate(),
                             droverd_->cluster_ca(), "n1"),
        "n1", 4, std::move(held));
    welcome_ = agent_->Next(v1::SchedulerMessage::kWelcome).welcome();
  }

  // A new connection, as a new client makes (not shared with other channels).
  std::shared_ptr<grpc::Channel> NewClientChannel() {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(
        droverd_->address(), testing::TlsCredentialsTrusting(droverd_->ca_certificate()), args);
  }

  // Submits a one-node job of `processes` and takes it to RUNNING on n1.
  std::string SubmitAndRun(int processes = 1) {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    request.mutable_spec()->set_process_count_per_node(processes);
    request.mutable_spec()->mutable_resources()->set_cpus(1);
    v1::SubmitJobResponse response;
    grpc::Status status = jobs_->SubmitJob(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::string id = response.job().id();
    agent_->Next(v1::SchedulerMessage::kAssign);
    agent_->Report(id, 1, v1::AttemptReport::READY);
    WaitFor(id, v1::JobStatus::STARTING);
    agent_->Report(id, 1, v1::AttemptReport::RUNNING);
    WaitFor(id, v1::JobStatus::RUNNING);
    return id;
  }

  void Complete(const std::string& id) {
    agent_->Report(id, 1, v1::AttemptReport::FINALIZING);
    v1::RankExit exit;
    exit.set_rank(0);
    agent_->Report(id, 1, v1::AttemptReport::ENDED, {exit});
    WaitFor(id, v1::JobStatus::COMPLETED);
  }

  // GetJob over `stub` (a fresh connection when null).
  grpc::Status GetJob(const std::string& id, v1::Job* job,
                      v1::JobService::Stub* stub = nullptr) {
    std::unique_ptr<v1::JobService::Stub> fresh;
    if (stub == nullptr) {
      fresh = v1::JobService::NewStub(NewClientChannel());
      stub = fresh.get();
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::GetJobRequest request;
    request.set_job_id(id);
    return stub->GetJob(&context, request, job);
  }

  v1::Job WaitFor(const std::string& id, v1::JobStatus::State state) {
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    v1::Job job;
    while (absl::Now() < deadline) {
      if (GetJob(id, &job, jobs_.get()).ok() && job.status().state() == state) return job;
      absl::SleepFor(absl::Milliseconds(10));
    }
    ADD_FAILURE() << id << " never reached " << v1::JobStatus::State_Name(state);
    return job;
  }

  std::string Logs(const std::string& id, int32_t rank) {
    grpc::ClientContext context;
    v1::StreamLogsRequest request;
    request.set_job_id(id);
    request.add_ranks(rank);
    auto reader = jobs_->StreamLogs(&context, request);
    std::string out;
    v1::StreamLogsResponse response;
    while (reader->Read(&response)) out += response.data();
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  testing::TempDir dir_;
  struct rlimit saved_limit_ {};
  std::unique_ptr<Droverd> droverd_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<ScriptedAgent> agent_;
  v1::AgentWelcome welcome_;  // the last one
};

TEST_F(LogLimitsTest, HundredsOfLogStreamsUnderALowFileLimitLeaveDroverdServingAndNothingOpen) {
  // 256 descriptors in all for the test and droverd; the job's 256 ranks have 768 streams
  // (stdout, stderr, metrics). (tests/storage: 3,000 streams through the log store alone.)
  Start({}, /*nofile=*/256);
  std::string id = SubmitAndRun(/*processes=*/256);
  const int before = OpenDescriptors();
  int most = before;
  constexpr v1::LogStream kStreams[] = {v1::STDOUT, v1::STDERR, v1::METRICS};
  int acknowledged = 0;
  for (int round = 0; round < 2; ++round) {
    for (int rank = 0; rank < 256; ++rank) {
      for (v1::LogStream stream : kStreams) {
        std::string data = stream == v1::METRICS
                               ? absl::StrCat("{\"n\":\"loss\",\"s\":", round, ",\"v\":1}\n")
                               : absl::StrCat("rank ", rank, " round ", round, "\n");
        agent_->Log(id, 1, rank, round == 0 ? 0 : static_cast<int64_t>(data.size()), data,
                    stream);
      }
      for (int i = 0; i < 3; ++i) {
        if (agent_->Next(v1::SchedulerMessage::kLogAck).log_ack().offset() > 0) ++acknowledged;
      }
      if (rank % 16 == 15) most = std::max(most, OpenDescriptors());
      if (rank % 64 == 0) {
        // Another client, on a new connection, is served throughout.
        v1::Job job;
        grpc::Status status = GetJob(id, &job);
        ASSERT_TRUE(status.ok()) << "at rank " << rank << ": " << status.error_message();
      }
    }
  }
  EXPECT_EQ(acknowledged, 2 * 768) << "every chunk stored";
  // droverd keeps at most a quarter of the limit in log files.
  EXPECT_LE(most - before, 256 / 4 + 8) << "descriptors before " << before << ", most " << most;
  EXPECT_EQ(Logs(id, 255), "rank 255 round 0\nrank 255 round 1\nrank 255 round 0\nrank 255 round 1\n");
  // A rank the job does not have is not stored (acknowledged, so nothing waits on it).
  agent_->Log(id, 1, 9999, 0, "not a rank of this job\n");
  EXPECT_GT(agent_->Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 0);
  EXPECT_EQ(Logs(id, 9999), "");
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/logs/" + id + "/1/rank-9999.stdout"));
  Complete(id);
  // No log file stays open once the job ended.
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (OpenDescriptors() > before && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_LE(OpenDescriptors(), before);
  std::cout << "descriptors: before=" << before << " most=" << most
            << " after=" << OpenDescriptors() << "\n";
}

TEST_F(LogLimitsTest, ShortOfDescriptorsReadsAnswerResourceExhaustedNewClientsAreServedAndAllRecovers) {
  Start({}, /*nofile=*/256);
  std::string id = SubmitAndRun();
  agent_->Log(id, 1, 0, 0, "{\"n\":\"loss\",\"s\":0,\"v\":1}\n", v1::METRICS);
  agent_->Next(v1::SchedulerMessage::kLogAck);
  agent_->Log(id, 1, 0, 0, "hello\n");
  agent_->Next(v1::SchedulerMessage::kLogAck);
  Complete(id);
  // Something else takes descriptors up to droverd's reserve (the last eighth).
  std::vector<int> held;
  while (true) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    if (fd >= 256 - 256 / 8) {
      close(fd);
      break;
    }
    held.push_back(fd);
  }
  auto metrics = [&] {
    grpc::ClientContext context;
    v1::GetMetricsRequest request;
    request.set_job_id(id);
    v1::GetMetricsResponse response;
    return jobs_->GetMetrics(&context, request, &response);
  };
  grpc::Status refused = metrics();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("file descriptors"));
  // A new client still gets in (accept has the reserve) and what needs no file works.
  v1::Job job;
  grpc::Status status = GetJob(id, &job);
  EXPECT_TRUE(status.ok()) << status.error_message();
  for (int fd : held) close(fd);
  EXPECT_TRUE(metrics().ok());
  EXPECT_EQ(Logs(id, 0), "hello\n");
}

TEST_F(LogLimitsTest, OutputFarPastTheCapIsAcknowledgedNotStoredAndTheJobCompletesWithANote) {
  Start({.max_log_bytes = 4096});
  std::string id = SubmitAndRun();
  const std::string chunk(1000, 'x');
  for (int i = 0; i < 100; ++i) {
    agent_->Log(id, 1, 0, i * 1000, chunk);
    // The agent is told it is all taken, so it never holds the attempt up, and from the
    // cap on that it need not send more.
    v1::LogAck ack = agent_->Next(v1::SchedulerMessage::kLogAck).log_ack();
    EXPECT_EQ(ack.offset(), (i + 1) * 1000);
    EXPECT_EQ(ack.capped(), (i + 1) * 1000 > 4096) << i;
  }
  Complete(id);
  std::string logs = Logs(id, 0);
  EXPECT_EQ(logs.substr(0, 4096), std::string(4096, 'x'));
  EXPECT_THAT(logs, HasSubstr("[drover: log truncated at 4096 bytes"));
  EXPECT_THAT(logs, HasSubstr("[drover: 95904 bytes dropped past the cap]"));
  EXPECT_LT(logs.size(), 4096u + 200u);
}

TEST_F(LogLimitsTest, ARestartedDroverdKeepsTheCapAndHasTheAgentResumeWhereItWas) {
  Start({.max_log_bytes = 4096});
  std::string id = SubmitAndRun();
  const std::string chunk(1000, 'x');
  for (int i = 0; i < 10; ++i) {
    agent_->Log(id, 1, 0, i * 1000, chunk);
    ASSERT_EQ(agent_->Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), (i + 1) * 1000);
  }
  agent_.reset();
  droverd_.reset();
  v1::AttemptReport running;
  running.mutable_attempt()->set_job_id(id);
  running.mutable_attempt()->set_epoch(1);
  running.set_phase(v1::AttemptReport::RUNNING);
  Start({.max_log_bytes = 4096}, 0, {running});
  // The agent resumes from what it sent (10,000), not from what droverd stored (4,096 and
  // the note): it neither sends the dropped part again nor gets refused for a gap.
  int64_t resume = -1;
  for (const v1::LogAck& offset : welcome_.log_offsets()) {
    if (offset.rank() == 0 && offset.stream() == v1::STDOUT) resume = offset.offset();
  }
  EXPECT_EQ(resume, 10000);
  agent_->Log(id, 1, 0, 10000, "", v1::STDOUT);  // an agent told of the cap sends its size
  agent_->Log(id, 1, 0, 12000, "");
  v1::LogAck ack = agent_->Next(v1::SchedulerMessage::kLogAck).log_ack();
  EXPECT_TRUE(ack.capped());
  EXPECT_EQ(agent_->Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), 12000);
  Complete(id);
  std::string logs = Logs(id, 0);
  EXPECT_EQ(logs.find("[drover: log truncated at 4096 bytes"), 4097u) << logs.substr(4000);
  EXPECT_THAT(logs, HasSubstr("[drover: 7904 bytes dropped past the cap]"));
}

TEST_F(LogLimitsTest, GetMetricsComesInBoundedPagesThatAddUpToEverythingLogged) {
  Start({.max_metric_records = 30000});
  std::string id = SubmitAndRun(/*processes=*/5);
  // Ranks 0-3 log 10,000 points each; rank 4 logs 40,000, past the cap of 30,000.
  int64_t logged = 0;
  for (int rank = 0; rank < 5; ++rank) {
    int points = rank == 4 ? 40000 : 10000;
    int64_t offset = 0;
    for (int start = 0; start < points; start += 1000) {
      std::string lines;
      for (int s = start; s < start + 1000; ++s) {
        lines += absl::StrCat("{\"n\":\"loss\",\"s\":", s, ",\"t\":1764170000.5,\"v\":0.25}\n");
      }
      agent_->Log(id, 1, rank, offset, lines, v1::METRICS);
      offset += static_cast<int64_t>(lines.size());
      EXPECT_EQ(agent_->Next(v1::SchedulerMessage::kLogAck).log_ack().offset(), offset);
    }
    logged += std::min(points, 30000);
  }
  Complete(id);

  int pages = 0;
  int64_t points = 0, dropped = 0, capped = 0;
  size_t largest = 0;
  std::string token;
  do {
    grpc::ClientContext context;
    v1::GetMetricsRequest request;
    request.set_job_id(id);
    request.set_page_bytes(256 << 10);
    request.set_page_token(token);
    v1::GetMetricsResponse page;
    grpc::Status status = jobs_->GetMetrics(&context, request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const v1::MetricSeries& series : page.series()) points += series.values_size();
    dropped += page.dropped_records();
    capped += page.capped_streams();
    largest = std::max(largest, page.ByteSizeLong());
    token = page.next_page_token();
    ASSERT_LT(++pages, 1000);
  } while (!token.empty());
  EXPECT_EQ(points, logged);
  EXPECT_EQ(capped, 1);
  EXPECT_EQ(dropped, 10000);
  EXPECT_GT(pages, 5);
  EXPECT_LT(largest, 256u << 10) << "an answer is about a page of stored records or less";
  std::cout << "pages=" << pages << " largest_answer_bytes=" << largest << "\n";

  // Bad tokens and sizes are refused naming the field.
  grpc::ClientContext context;
  v1::GetMetricsRequest request;
  request.set_job_id(id);
  request.set_page_token("nonsense");
  v1::GetMetricsResponse page;
  grpc::Status status = jobs_->GetMetrics(&context, request, &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("page_token"));
}

// gRPC limits per connection (docs/operations.md#limits), with the same droverd.
using GrpcLimitsTest = LogLimitsTest;

TEST_F(GrpcLimitsTest, OneConnectionGetsAtMostItsShareOfStreamsAndOtherClientsAreServed) {
  Start({});
  std::string id = SubmitAndRun();
  // 130 watches of a running job on one connection: the first 100 are served, the others
  // wait for one of them to end.
  std::shared_ptr<grpc::Channel> greedy = NewClientChannel();
  auto stub = v1::JobService::NewStub(greedy);
  constexpr int kWatches = kMaxConcurrentStreams + 30;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts(kWatches);
  std::atomic<int> started = 0;
  std::vector<std::atomic<bool>> served(kWatches);
  std::vector<std::thread> watchers;
  for (int i = 0; i < kWatches; ++i) {
    contexts[i] = std::make_unique<grpc::ClientContext>();
    watchers.emplace_back([&, i] {
      v1::WatchJobRequest request;
      request.set_job_id(id);
      auto reader = stub->WatchJob(contexts[i].get(), request);
      v1::WatchJobResponse response;
      if (reader->Read(&response)) {
        served[i] = true;
        ++started;
      }
      while (reader->Read(&response)) {
      }
      reader->Finish();
    });
  }
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (started < kMaxConcurrentStreams && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(started, kMaxConcurrentStreams);
  // Another client on its own connection is served meanwhile.
  v1::Job job;
  grpc::Status status = GetJob(id, &job);
  EXPECT_TRUE(status.ok()) << status.error_message();
  absl::SleepFor(absl::Milliseconds(500));  // (nothing to poll for: the rest must wait)
  EXPECT_EQ(started, kMaxConcurrentStreams);
  // Ending 30 of the served ones lets the waiting ones in.
  for (int i = 0, ended = 0; i < kWatches && ended < 30; ++i) {
    if (!served[i]) continue;
    contexts[i]->TryCancel();
    ++ended;
  }
  deadline = absl::Now() + absl::Seconds(20);
  while (started < kWatches && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_EQ(started, kWatches);
  for (auto& context : contexts) context->TryCancel();
  for (std::thread& watcher : watchers) watcher.join();
}

}  // namespace
}  // namespace drover::server
