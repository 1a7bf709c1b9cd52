// `drover logs` against FakeDroverClient: what it asks droverd for, where each stream's
// lines go, rank prefixes, reconnects and how -f ends.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace drover::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::StreamLogsResponse Chunk(int32_t rank, v1::LogStream stream, int64_t offset, std::string data,
                             int64_t attempt = 1) {
  v1::StreamLogsResponse message;
  message.set_attempt(attempt);
  message.set_rank(rank);
  message.set_stream(stream);
  message.set_offset(offset);
  message.set_data(std::move(data));
  return message;
}

v1::StreamLogsResponse End(const v1::Job& job, v1::JobStatus::State state, std::string message,
                           std::vector<std::pair<int, int>> exits) {
  v1::StreamLogsResponse last;
  v1::Job* ended = last.mutable_job();
  *ended = job;
  ended->mutable_status()->set_state(state);
  ended->mutable_status()->set_message(std::move(message));
  if (state == v1::JobStatus::FAILED) ended->mutable_status()->set_cause(v1::JobStatus::PROCESS_FAILED);
  for (auto [rank, code] : exits) {
    v1::RankExit* exit = ended->mutable_status()->add_exits();
    exit->set_rank(rank);
    exit->set_node("n1");
    exit->set_exit_code(code);
  }
  return last;
}

// What droverd sends when it retries the job as `attempt`; `why`: how the one before ended
// (empty: the stream did not see it).
v1::StreamLogsResponse NextAttempt(int64_t attempt, std::string why) {
  v1::StreamLogsResponse message;
  message.mutable_next_attempt()->set_attempt(attempt);
  if (!why.empty()) {
    v1::JobStatus* previous = message.mutable_next_attempt()->mutable_previous();
    previous->set_state(v1::JobStatus::QUEUED);
    previous->set_reason(absl::StrCat("RETRYING after attempt ", attempt - 1));
    previous->set_attempt(static_cast<int32_t>(attempt - 1));
    previous->set_message(std::move(why));
  }
  return message;
}

class LogsTest : public CliTest {
 protected:
  // A running job with `world` ranks on one node.
  v1::Job& AddJob(int world) {
    v1::Job& job = server_.Add(v1::JobStatus::RUNNING);
    job.mutable_spec()->set_node_count(1);
    job.mutable_spec()->set_process_count_per_node(world);
    job.mutable_status()->set_attempt(1);
    return job;
  }
};

TEST_F(LogsTest, OneRankPassesTheBytesThroughUnchanged) {
  AddJob(1);
  server_.log_streams.push_back(
      {{Chunk(0, v1::STDOUT, 0, "epoch 1\nepo"), Chunk(0, v1::STDOUT, 11, "ch 2\nno newline"),
        Chunk(0, v1::STDERR, 0, "warning\n")},
       absl::OkStatus()});
  ASSERT_EQ(Run({"logs", "j-1"}), 0) << err();
  EXPECT_EQ(out(), "epoch 1\nepoch 2\nno newline");
  EXPECT_EQ(err(), "warning\n");
  ASSERT_EQ(server_.log_requests.size(), 1u);
  const v1::StreamLogsRequest& request = server_.log_requests[0];
  EXPECT_EQ(request.job_id(), "j-1");
  EXPECT_EQ(request.attempt(), 0);
  EXPECT_THAT(request.ranks(), IsEmpty());
  EXPECT_THAT(request.streams(), IsEmpty());  // both
  EXPECT_FALSE(request.follow());
}

TEST_F(LogsTest, SeveralRanksGetPrefixesAndSplitLinesAreJoined) {
  AddJob(2);
  server_.log_streams.push_back({{Chunk(0, v1::STDOUT, 0, "hel"), Chunk(1, v1::STDOUT, 0, "one\ntw"),
                                  Chunk(0, v1::STDOUT, 3, "lo\nwor"), Chunk(1, v1::STDERR, 0, "oops\n"),
                                  Chunk(0, v1::STDOUT, 9, "ld\n"), Chunk(1, v1::STDOUT, 6, "o")},
                                 absl::OkStatus()});
  ASSERT_EQ(Run({"logs", "j-1"}), 0) << err();
  EXPECT_EQ(out(),
            "[rank 1] one\n"
            "[rank 0] hello\n"
            "[rank 0] world\n"
            "[rank 1] two\n");  // the unfinished line, ended at the end
  EXPECT_EQ(err(), "[rank 1] oops\n");
}

TEST_F(LogsTest, OneRankOfSeveralIsShownWithoutPrefix) {
  AddJob(4);
  server_.log_streams.push_back({{Chunk(2, v1::STDOUT, 0, "only two\n")}, absl::OkStatus()});
  ASSERT_EQ(Run({"logs", "j-1", "--rank", "2", "--stdout"}), 0) << err();
  EXPECT_EQ(out(), "only two\n");
  EXPECT_THAT(server_.log_requests[0].ranks(), ElementsAre(2));
  EXPECT_THAT(server_.log_requests[0].streams(), ElementsAre(v1::STDOUT));
}

TEST_F(LogsTest, PassesRanksStreamsAndAttempt) {
  v1::Job& job = AddJob(4);
  job.mutable_status()->set_attempt(2);
  ASSERT_EQ(Run({"logs", "j-1", "--rank", "3,1", "--rank", "1", "--stderr", "--attempt", "1"}), 0)
      << err();
  const v1::StreamLogsRequest& request = server_.log_requests.back();
  EXPECT_THAT(request.ranks(), ElementsAre(1, 3));
  EXPECT_THAT(request.streams(), ElementsAre(v1::STDERR));
  EXPECT_EQ(request.attempt(), 1);
}

TEST_F(LogsTest, QueuedJobPrintsNothingAndExits0) {
  server_.Add(v1::JobStatus::QUEUED);
  ASSERT_EQ(Run({"logs", "j-1"}), 0) << err();
  EXPECT_THAT(out(), IsEmpty());
  EXPECT_THAT(err(), IsEmpty());
}

TEST_F(LogsTest, UsageErrors) {
  AddJob(2);
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"logs"}, "missing JOB"},
      {{"logs", "j-1", "--stdout", "--stderr"}, "--stdout, --stderr and --all-streams exclude each other"},
      {{"logs", "j-1", "--rank", "x"}, "--rank: 'x' is not a rank"},
      {{"logs", "j-1", "--rank", "-1"}, "--rank: '-1' is not a rank"},
      {{"logs", "j-1", "--attempt", "0"}, "--attempt: 0 is not an attempt"},
      {{"logs", "j-1", "--attempt", "-3"}, "--attempt: -3 is not an attempt"},
      {{"logs", "j-1", "--attempt", "99999999999999999999"},
       "--attempt: '99999999999999999999' is not a whole number"},
      {{"logs", "j-1", "-o", "json"}, "--output json is not available"},
      {{"logs", "j-1", "--rank", "2"}, "--rank 2: j-1 has ranks 0 to 1"},
      {{"logs", "j-1", "--prepare", "--stderr"}, "--prepare shows the nodes' preparation logs"},
      {{"logs", "j-1", "--prepare", "--rank", "0"}, "it does not go with --rank"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    EXPECT_EQ(Run(c.args), 2);
    ExpectOneErrorLine(c.message);
  }
  EXPECT_THAT(server_.log_requests, IsEmpty());
}

TEST_F(LogsTest, PrepareAsksForThePreparationLogsAndPrintsThemOnStdout) {
  AddJob(2);
  server_.log_streams.push_back(
      {{Chunk(0, v1::PREPARE, 0, "drover: building environment k on n1\n"),
        Chunk(0, v1::PREPARE, 37, "Successfully installed x-1\n")},
       absl::OkStatus()});
  ASSERT_EQ(Run({"logs", "j-1", "--prepare"}), 0) << err();
  // One node: no prefix, even with two ranks.
  EXPECT_EQ(out(), "drover: building environment k on n1\nSuccessfully installed x-1\n");
  EXPECT_THAT(err(), IsEmpty());
  ASSERT_EQ(server_.log_requests.size(), 1u);
  EXPECT_THAT(server_.log_requests[0].streams(), ElementsAre(v1::PREPARE));
  EXPECT_THAT(server_.log_requests[0].ranks(), IsEmpty());
}

TEST_F(LogsTest, PrepareOfSeveralNodesPrefixesTheNodeRank) {
  v1::Job& job = AddJob(1);
  job.mutable_spec()->set_node_count(2);
  job.mutable_status()->set_state(v1::JobStatus::PREPARING);
  job.mutable_status()->set_reason("BUILDING_ENVIRONMENT node=n2");
  server_.log_streams.push_back(
      {{Chunk(0, v1::PREPARE, 0, "drover: using cached environment k on n1\n"),
        Chunk(1, v1::PREPARE, 0, "drover: building environment k on n2\n"),
        End(job, v1::JobStatus::COMPLETED, "", {})},
       absl::OkStatus()});
  EXPECT_EQ(Run({"logs", "-f", "j-1", "--prepare"}), 0) << err();
  EXPECT_EQ(out(),
            "[node 0] drover: using cached environment k on n1\n"
            "[node 1] drover: building environment k on n2\n");
  // Not "its output appears once it runs": the preparation log is being written now.
  EXPECT_EQ(err(), "j-1 COMPLETED\n");
}

TEST_F(LogsTest, UnknownJobExits4) {
  EXPECT_EQ(Run({"logs", "j-7"}), 4);
  ExpectOneErrorLine("j-7");
}

TEST_F(LogsTest, FollowPrintsHowTheJobEndedAndExitsLikeWatch) {
  v1::Job& job = AddJob(2);
  server_.log_streams.push_back(
      {{Chunk(0, v1::STDOUT, 0, "step 1\n"), Chunk(1, v1::STDERR, 0, "bad input\n"),
        End(job, v1::JobStatus::FAILED, "rank 1 on n1 exited with code 3", {{0, 0}, {1, 3}})},
       absl::OkStatus()});
  EXPECT_EQ(Run({"logs", "-f", "j-1"}), 10) << err();
  EXPECT_EQ(out(), "[rank 0] step 1\n");
  EXPECT_EQ(err(),
            "[rank 1] bad input\n"
            "j-1 FAILED: rank 1 on n1 exited with code 3\n"
            "  rank 1 on n1 exited with code 3\n"
            "  the other rank exited with code 0\n");
  EXPECT_TRUE(server_.log_requests[0].follow());

  server_.log_streams.push_back({{End(job, v1::JobStatus::COMPLETED, "", {{0, 0}, {1, 0}})}, absl::OkStatus()});
  EXPECT_EQ(Run({"logs", "--follow", "j-1"}), 0);
  EXPECT_EQ(err(), "j-1 COMPLETED\n");
  server_.log_streams.push_back({{End(job, v1::JobStatus::CANCELED, "canceled: wrong lr", {})}, absl::OkStatus()});
  EXPECT_EQ(Run({"logs", "-f", "j-1"}), 11);
  EXPECT_EQ(err(), "j-1 CANCELED: canceled: wrong lr\n");
}

TEST_F(LogsTest, FollowReconnectsWithoutPrintingAnythingTwice) {
  v1::Job& job = AddJob(1);
  server_.log_streams.push_back(
      {{Chunk(0, v1::STDOUT, 0, "a\nb")}, absl::UnavailableError("droverd closed the call")});
  // Read again from the start after the reconnect, overlapping what was printed.
  server_.log_streams.push_back({{Chunk(0, v1::STDOUT, 0, "a\nb\nc"), Chunk(0, v1::STDOUT, 5, "\n"),
                                  End(job, v1::JobStatus::COMPLETED, "", {})},
                                 absl::OkStatus()});
  EXPECT_EQ(Run({"logs", "-f", "j-1"}), 0) << err();
  EXPECT_EQ(out(), "a\nb\nc\n");
  EXPECT_EQ(sleeps_.size(), 1u);
  EXPECT_EQ(server_.log_requests.size(), 2u);
}

TEST_F(LogsTest, FollowOfAJobNotRunningYetSaysWhatItWaitsFor) {
  v1::Job& job = server_.Add(v1::JobStatus::QUEUED);
  job.mutable_status()->set_reason("WAITING_FOR_NODES need=1 free=0");
  server_.log_streams.push_back({{End(job, v1::JobStatus::CANCELED, "", {})}, absl::OkStatus()});
  EXPECT_EQ(Run({"logs", "-f", "j-1"}), 11);
  EXPECT_THAT(err(), HasSubstr("drover: j-1 is QUEUED (WAITING_FOR_NODES need=1 free=0); its "
                               "output appears here once it runs\n"));
}

TEST_F(LogsTest, FollowGivesUpWhenTheStreamKeepsEndingEarly) {
  AddJob(1);
  for (int i = 0; i < 10; ++i) server_.log_streams.push_back({{}, absl::OkStatus()});
  EXPECT_EQ(Run({"logs", "-f", "j-1"}), 6);
  ExpectOneErrorLine("droverd ended the log stream of j-1 before the job finished");
  EXPECT_EQ(sleeps_.size(), 3u);
}

TEST_F(LogsTest, ServerErrorsKeepTheirExitCodes) {
  AddJob(1).mutable_status()->set_attempt(5);
  server_.log_streams.push_back({{}, absl::InvalidArgumentError("attempt: job 'j-1' has no attempt 5")});
  EXPECT_EQ(Run({"logs", "j-1", "--attempt", "5"}), 3);
  ExpectOneErrorLine("has no attempt 5");
}

TEST_F(LogsTest, AttemptsTheJobNeverHadAreRefusedNamingTheFlag) {
  v1::Job& job = AddJob(1);
  job.mutable_status()->set_attempt(2);
  EXPECT_EQ(Run({"logs", "j-1", "--attempt", "3"}), 2);
  ExpectOneErrorLine("--attempt 3: j-1 has had 2 attempts so far; give 1 to 2");
  EXPECT_EQ(Run({"logs", "-f", "j-1", "--attempt", "9223372036854775807"}), 2);
  ExpectOneErrorLine("--attempt 9223372036854775807: j-1 has had 2 attempts so far");
  job.mutable_status()->set_attempt(1);
  EXPECT_EQ(Run({"logs", "j-1", "--attempt", "2"}), 2);
  ExpectOneErrorLine("--attempt 2: j-1 has had 1 attempt so far; give --attempt 1");
  job.mutable_status()->set_attempt(0);
  job.mutable_status()->set_state(v1::JobStatus::QUEUED);
  EXPECT_EQ(Run({"logs", "j-1", "--attempt", "1"}), 2);
  ExpectOneErrorLine("--attempt 1: j-1 has not been placed yet (no attempt so far)");
  EXPECT_THAT(server_.log_requests, IsEmpty());
}

TEST_F(LogsTest, FollowGoesOnWithTheRetriedAttemptAfterAMarkedLine) {
  v1::Job& job = AddJob(2);
  // Everything on stderr, so that the order of output and marker shows in one string.
  server_.log_streams.push_back(
      {{Chunk(0, v1::STDERR, 0, "a1 r0 step 1\na1 r0 st"), Chunk(1, v1::STDERR, 0, "a1 r1 step 1\n"),
        NextAttempt(2, "node n1 stopped answering (no message for 15s)"),
        Chunk(1, v1::STDERR, 0, "a2 r1 step 1\n", 2), Chunk(0, v1::STDERR, 0, "a2 r0 step 1\n", 2),
        End(job, v1::JobStatus::COMPLETED, "", {{0, 0}, {1, 0}})},
       absl::OkStatus()});
  EXPECT_EQ(Run({"logs", "-f", "j-1"}), 0) << err();
  EXPECT_THAT(out(), IsEmpty());
  EXPECT_EQ(err(),
            "[rank 0] a1 r0 step 1\n"
            "[rank 1] a1 r1 step 1\n"
            "[rank 0] a1 r0 st\n"  // the attempt's unfinished line ends before the marker
            "--- attempt 2 (attempt 1 ended: node n1 stopped answering (no message for 15s); "
            "retried) ---\n"
            "[rank 1] a2 r1 step 1\n"
            "[rank 0] a2 r0 step 1\n"
            "j-1 COMPLETED\n");
  ASSERT_EQ(server_.log_requests.size(), 1u);
  EXPECT_EQ(server_.log_requests[0].attempt(), 0);
  EXPECT_EQ(server_.log_requests[0].from_attempt(), 0);
}

TEST_F(LogsTest, MarkerSaysLessWhenDroverdDidNotSeeHowTheAttemptEnded) {
  v1::Job& job = AddJob(1);
  server_.log_streams.push_back({{Chunk(0, v1::STDERR, 0, "one\n"), NextAttempt(2, ""),
                                  NextAttempt(3, ""), Chunk(0, v1::STDERR, 0, "three\n", 3),
                                  End(job, v1::JobStatus::FAILED, "rank 0 on n1 exited with code 1",
                                      {{0, 1}})},
                                 absl::OkStatus()});
  EXPECT_EQ(Run({"logs", "-f", "j-1"}), 10);
  EXPECT_THAT(err(), HasSubstr("one\n"
                               "--- attempt 2 (attempt 1 ended; retried) ---\n"
                               "--- attempt 3 (attempt 2 ended; retried) ---\n"
                               "three\n"
                               "j-1 FAILED: rank 0 on n1 exited with code 1\n"));
}

TEST_F(LogsTest, FollowReconnectsIntoTheAttemptItWasInAndPrintsEachLineOnce) {
  v1::Job& job = AddJob(1);
  // Broken inside attempt 1: asked again from attempt 1, which is sent again from offset 0.
  server_.log_streams.push_back(
      {{Chunk(0, v1::STDOUT, 0, "a\nb")}, absl::UnavailableError("droverd closed the call")});
  // Broken after the move to attempt 2 (nothing of it printed yet): asked from attempt 2.
  server_.log_streams.push_back(
      {{Chunk(0, v1::STDOUT, 0, "a\nb\nc\n"), NextAttempt(2, "node n1 stopped answering")},
       absl::UnavailableError("droverd closed the call")});
  // Broken inside attempt 2.
  server_.log_streams.push_back(
      {{Chunk(0, v1::STDOUT, 0, "x\n", 2)}, absl::UnavailableError("droverd closed the call")});
  server_.log_streams.push_back({{Chunk(0, v1::STDOUT, 0, "x\ny\n", 2),
                                  End(job, v1::JobStatus::COMPLETED, "", {{0, 0}})},
                                 absl::OkStatus()});
  EXPECT_EQ(Run({"logs", "-f", "j-1"}), 0) << err();
  EXPECT_EQ(out(), "a\nb\nc\nx\ny\n");
  EXPECT_EQ(err(),
            "--- attempt 2 (attempt 1 ended: node n1 stopped answering; retried) ---\n"
            "j-1 COMPLETED\n");
  ASSERT_EQ(server_.log_requests.size(), 4u);
  EXPECT_EQ(server_.log_requests[0].from_attempt(), 0);
  EXPECT_EQ(server_.log_requests[1].from_attempt(), 1);
  EXPECT_EQ(server_.log_requests[2].from_attempt(), 2);
  EXPECT_EQ(server_.log_requests[3].from_attempt(), 2);
  for (const v1::StreamLogsRequest& request : server_.log_requests) EXPECT_EQ(request.attempt(), 0);
}

TEST_F(LogsTest, FollowOfOneAttemptAsksForThatAttemptOnlyAfterAReconnect) {
  v1::Job& job = AddJob(1);
  job.mutable_status()->set_attempt(2);
  server_.log_streams.push_back(
      {{Chunk(0, v1::STDOUT, 0, "a\n")}, absl::UnavailableError("droverd closed the call")});
  server_.log_streams.push_back({{Chunk(0, v1::STDOUT, 0, "a\nb\n"),
                                  End(job, v1::JobStatus::COMPLETED, "", {{0, 0}})},
                                 absl::OkStatus()});
  EXPECT_EQ(Run({"logs", "-f", "j-1", "--attempt", "1"}), 0) << err();
  EXPECT_EQ(out(), "a\nb\n");
  ASSERT_EQ(server_.log_requests.size(), 2u);
  for (const v1::StreamLogsRequest& request : server_.log_requests) {
    EXPECT_EQ(request.attempt(), 1);
    EXPECT_EQ(request.from_attempt(), 0);
  }
}

}  // namespace
}  // namespace drover::cli
