// droverd's agent protocol: the logs agents send, followed live by clients across attempts.
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "tests/server/agent_protocol_fixture.h"

namespace drover::server::agent_protocol {
namespace {

using ::testing::HasSubstr;

TEST_F(AgentProtocolTest, FollowedLogsArriveLiveAndEndWithTheJob) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit();
  RunOn(agent, id);

  grpc::ClientContext context;
  v1::StreamLogsRequest request;
  request.set_job_id(id);
  request.set_follow(true);
  auto reader = jobs_->StreamLogs(&context, request);
  agent.Log(id, 1, 0, 0, "step 1\n");
  v1::StreamLogsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.data(), "step 1\n");
  agent.Log(id, 1, 0, 7, "step 2\n");
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.data(), "step 2\n");
  EXPECT_EQ(response.offset(), 7);
  agent.Report(id, 1, v1::AttemptReport::ENDED, {Exit(0, 3)});
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.job().status().state(), v1::JobStatus::FAILED);
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_TRUE(reader->Finish().ok());
}

// The last system sample rides on a node's ENDED report (AttemptReport.usage): droverd
// stores it once, at the end of the node's SYSTEM_METRICS, in the series the agent's
// periodic samples use.
TEST_F(AgentProtocolTest, TheEndedReportsUsageIsTheNodesLastSystemSampleStoredOnce) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id = Submit();
  RunOn(agent, id);
  const std::string start =
      R"({"n":"memory_peak_bytes","s":0,"t":1700000000.000000,"v":800000})" "\n";
  agent.Log(id, 1, 0, 0, start, v1::SYSTEM_METRICS);
  EXPECT_EQ(agent.Next(v1::SchedulerMessage::kLogAck).log_ack().offset(),
            static_cast<int64_t>(start.size()));
  v1::AttemptReport ended;
  ended.mutable_attempt()->set_job_id(id);
  ended.mutable_attempt()->set_epoch(1);
  ended.set_phase(v1::AttemptReport::ENDED);
  *ended.add_exits() = Exit(0, 0);
  ended.mutable_usage()->mutable_time()->set_seconds(1700000004);
  ended.mutable_usage()->set_sample(1);
  ended.mutable_usage()->set_memory_peak_bytes(int64_t{200} << 20);
  ended.mutable_usage()->set_cpu_seconds(9);
  ended.mutable_usage()->set_cpu_cores(2);
  agent.Send(ended);
  WaitFor(id, v1::JobStatus::COMPLETED);
  agent.Send(ended);  // as a hello after a reconnect would: nothing more is stored
  agent.Log(id, 1, 0, 0, "late\n");
  agent.Next(v1::SchedulerMessage::kLogAck);

  grpc::ClientContext context;
  v1::GetMetricsRequest request;
  request.set_job_id(id);
  request.add_sources(v1::MetricSeries::SYSTEM);
  v1::GetMetricsResponse metrics;
  ASSERT_TRUE(jobs_->GetMetrics(&context, request, &metrics).ok());
  EXPECT_EQ(metrics.skipped_lines(), 0);
  std::map<std::string, v1::MetricSeries> series;
  for (const v1::MetricSeries& s : metrics.series()) series[s.name()] = s;
  ASSERT_TRUE(series.contains("memory_peak_bytes")) << metrics.DebugString();
  const v1::MetricSeries& peak = series["memory_peak_bytes"];
  ASSERT_EQ(peak.values_size(), 2) << metrics.DebugString();
  EXPECT_EQ(peak.values(0), 800000);
  EXPECT_EQ(peak.values(1), 200 << 20);
  EXPECT_EQ(peak.steps(1), 1);
  EXPECT_EQ(peak.source(), v1::MetricSeries::SYSTEM);
  ASSERT_TRUE(series.contains("cpu_cores"));
  ASSERT_EQ(series["cpu_cores"].values_size(), 1);
  EXPECT_EQ(series["cpu_cores"].values(0), 2);
}

// One message of a log stream, for comparing whole streams: "a1 r0 @0 DATA" for data,
// "next 2 (MESSAGE)" for a move to attempt 2, "end STATE" for the final job.
std::string Describe(const v1::StreamLogsResponse& m) {
  if (m.has_job()) return absl::StrCat("end ", v1::JobStatus::State_Name(m.job().status().state()));
  if (m.has_next_attempt()) {
    return absl::StrCat("next ", m.next_attempt().attempt(), " (",
                        m.next_attempt().previous().message(), ")");
  }
  return absl::StrCat("a", m.attempt(), " r", m.rank(), " @", m.offset(), " ", m.data());
}

TEST_F(AgentProtocolTest, FollowedLogsGoOnIntoTheRetriedAttemptAndCanBeResumedFromAnAttempt) {
  ScriptedAgent agent(NodeChannel("n1"), "n1");
  agent.Next(v1::SchedulerMessage::kWelcome);
  std::string id;
  {
    grpc::ClientContext context;
    v1::SubmitJobRequest request;
    request.mutable_spec()->set_entry_script("train.py");
    request.mutable_spec()->set_max_retries(1);
    v1::SubmitJobResponse response;
    ASSERT_TRUE(jobs_->SubmitJob(&context, request, &response).ok());
    id = response.job().id();
  }
  RunOn(agent, id);

  grpc::ClientContext context;
  v1::StreamLogsRequest request;
  request.set_job_id(id);
  request.set_follow(true);
  auto reader = jobs_->StreamLogs(&context, request);
  std::vector<std::string> got;
  auto read = [&] {
    v1::StreamLogsResponse response;
    EXPECT_TRUE(reader->Read(&response));
    got.push_back(Describe(response));
  };
  agent.Log(id, 1, 0, 0, "attempt 1 step 1\n");
  read();
  // Rank 0 fails; max_retries 1 queues the job again as attempt 2, on the same node.
  agent.Report(id, 1, v1::AttemptReport::ENDED, {Exit(0, 3)});
  read();
  v1::SchedulerMessage assign = agent.Next(v1::SchedulerMessage::kAssign);
  EXPECT_EQ(assign.assign().attempt().epoch(), 2);
  agent.Report(id, 2, v1::AttemptReport::READY);
  WaitFor(id, v1::JobStatus::STARTING);
  agent.Report(id, 2, v1::AttemptReport::RUNNING);
  agent.Log(id, 2, 0, 0, "attempt 2 step 1\n");
  read();
  agent.Log(id, 2, 0, 17, "attempt 2 step 2\n");
  read();
  agent.Report(id, 2, v1::AttemptReport::ENDED, {Exit(0, 0)});
  read();
  v1::StreamLogsResponse response;
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_THAT(got, ::testing::ElementsAre("a1 r0 @0 attempt 1 step 1\n",
                                          "next 2 (rank 0 on n1 exited with code 3)",
                                          "a2 r0 @0 attempt 2 step 1\n",
                                          "a2 r0 @17 attempt 2 step 2\n", "end COMPLETED"));

  // What a client that lost the stream asks for, after the job ended.
  auto follow = [&](int64_t attempt, int64_t from_attempt, grpc::Status* status) {
    grpc::ClientContext again;
    v1::StreamLogsRequest resume;
    resume.set_job_id(id);
    resume.set_follow(true);
    resume.set_attempt(attempt);
    resume.set_from_attempt(from_attempt);
    auto stream = jobs_->StreamLogs(&again, resume);
    std::vector<std::string> all;
    for (v1::StreamLogsResponse r; stream->Read(&r);) all.push_back(Describe(r));
    *status = stream->Finish();
    return all;
  };
  grpc::Status status;
  // From attempt 1: this stream never saw how attempt 1 ended, so the move says less. What
  // is stored comes in one piece per stream.
  EXPECT_THAT(follow(0, 1, &status),
              ::testing::ElementsAre("a1 r0 @0 attempt 1 step 1\n", "next 2 ()",
                                     "a2 r0 @0 attempt 2 step 1\nattempt 2 step 2\n",
                                     "end COMPLETED"));
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(follow(0, 2, &status),
              ::testing::ElementsAre("a2 r0 @0 attempt 2 step 1\nattempt 2 step 2\n",
                                     "end COMPLETED"));
  // One attempt asked for: only that one.
  EXPECT_THAT(follow(1, 0, &status),
              ::testing::ElementsAre("a1 r0 @0 attempt 1 step 1\n", "end COMPLETED"));
  EXPECT_TRUE(status.ok()) << status.error_message();

  for (auto [attempt, from_attempt, message] :
       {std::tuple{0, 3, "from_attempt: job 'j-1' has no attempt 3; it has 2 so far"},
        std::tuple{0, -1, "from_attempt: job 'j-1' has no attempt -1"},
        std::tuple{1, 1, "from_attempt: only for a followed stream of every attempt"},
        std::tuple{3, 0, "attempt: job 'j-1' has no attempt 3; it has 2 so far"}}) {
    EXPECT_THAT(follow(attempt, from_attempt, &status), ::testing::IsEmpty());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(), HasSubstr(message));
  }
}

}  // namespace
}  // namespace drover::server::agent_protocol
