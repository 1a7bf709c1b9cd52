// `drover watch` run against FakeDroverClient: one line (or JSON object) per event, the
// exit code of the final state, and how it waits for droverd across broken streams.
#include "cli/commands.h"

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace drover::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

v1::Job Event(v1::JobStatus::State state, int64_t version, std::string reason = "") {
  v1::Job job;
  job.set_id("j-1");
  job.mutable_status()->set_state(state);
  job.mutable_status()->set_version(version);
  job.mutable_status()->set_reason(std::move(reason));
  job.mutable_status()->mutable_update_time()->set_seconds(1'700'000'000 + version);
  return job;
}

TEST_F(CliTest, WatchPrintsOneLinePerEventAndExitsByFinalState) {
  struct Case {
    v1::JobStatus::State end;
    int exit_code;
  } cases[] = {{v1::JobStatus::COMPLETED, 0}, {v1::JobStatus::FAILED, 10}, {v1::JobStatus::CANCELED, 11}};
  for (const Case& c : cases) {
    server_.streams.push_back(
        {{Event(v1::JobStatus::QUEUED, 1, "WAITING_FOR_NODES need=1 free=0"),
          Event(v1::JobStatus::RUNNING, 2), Event(c.end, 3)},
         absl::OkStatus()});
    EXPECT_EQ(Run({"watch", "j-1"}), c.exit_code);
    std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[0], "2023-11-14T22:13:21+00:00 j-1 QUEUED WAITING_FOR_NODES need=1 free=0");
    EXPECT_EQ(lines[1], "2023-11-14T22:13:22+00:00 j-1 RUNNING");
  }
}

TEST_F(CliTest, WatchJsonPrintsOneObjectPerLine) {
  server_.streams.push_back(
      {{Event(v1::JobStatus::QUEUED, 1), Event(v1::JobStatus::CANCELED, 2)}, absl::OkStatus()});
  EXPECT_EQ(Run({"watch", "j-1", "-o", "json"}), 11);
  std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[1], StartsWith("{\"id\":\"j-1\""));
  EXPECT_THAT(lines[1], HasSubstr("\"state\":\"CANCELED\""));
}

TEST_F(CliTest, WatchReconnectsAfterABrokenStreamWithoutRepeatingEvents) {
  server_.streams.push_back({{Event(v1::JobStatus::QUEUED, 1), Event(v1::JobStatus::RUNNING, 2)},
                             absl::UnavailableError("connection lost")});
  server_.streams.push_back({{Event(v1::JobStatus::RUNNING, 2), Event(v1::JobStatus::COMPLETED, 3)},
                             absl::OkStatus()});
  EXPECT_EQ(Run({"watch", "j-1"}), 0) << err();
  std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[2], HasSubstr("COMPLETED"));
  EXPECT_EQ(sleeps_.size(), 1u);
}

TEST_F(CliTest, WatchWaitsLongerForARestartOnceTheJobWasSeen) {
  server_.streams.push_back({{Event(v1::JobStatus::RUNNING, 2)}, absl::UnavailableError("closed")});
  for (int i = 0; i < 5; ++i) {
    server_.streams.push_back({{}, absl::UnavailableError("cannot reach droverd")});
  }
  server_.streams.push_back({{Event(v1::JobStatus::FAILED, 3)}, absl::OkStatus()});
  EXPECT_EQ(Run({"watch", "j-1"}), 10) << err();
  EXPECT_EQ(sleeps_.size(), 6u);
}

TEST_F(CliTest, WatchOfAnUnreachableServerGivesUpQuickly) {
  for (int i = 0; i < 10; ++i) server_.errors.push_back(absl::UnavailableError("cannot reach droverd"));
  EXPECT_EQ(Run({"watch", "j-1"}), 6);
  EXPECT_EQ(sleeps_.size(), 3u);
}

TEST_F(CliTest, RetryPausesWaitForTheConnectionFirstAndSleepOnlyTheRest) {
  // The real client spends a pause driving the reconnection (a TLS handshake); a plain
  // sleep would leave it stalled. The pauses keep their length either way.
  server_.connection_wait = absl::Milliseconds(100);
  server_.errors = {absl::UnavailableError("cannot reach droverd"),
                    absl::UnavailableError("cannot reach droverd")};
  server_.Add(v1::JobStatus::RUNNING);
  EXPECT_EQ(Run({"show", "j-1"}), 0) << err();
  EXPECT_THAT(server_.connection_limits,
              ElementsAre(absl::Milliseconds(250), absl::Milliseconds(500)));
  EXPECT_THAT(sleeps_, ElementsAre(absl::Milliseconds(150), absl::Milliseconds(400)));
}

TEST_F(CliTest, ARetryAfterAWholePauseSpentConnectingDoesNotSleep) {
  server_.connection_wait = absl::Seconds(10);
  server_.errors = {absl::UnavailableError("cannot reach droverd")};
  server_.Add(v1::JobStatus::RUNNING);
  EXPECT_EQ(Run({"show", "j-1"}), 0) << err();
  EXPECT_THAT(server_.connection_limits, ElementsAre(absl::Milliseconds(250)));
  EXPECT_TRUE(sleeps_.empty());
}

TEST_F(CliTest, WatchOfAnUnknownJobExits4) {
  EXPECT_EQ(Run({"watch", "j-5"}), 4);
  ExpectOneErrorLine("j-5");
}

TEST_F(CliTest, WatchGivesUpWhenTheStreamKeepsEndingEarly) {
  for (int i = 0; i < 10; ++i) server_.streams.push_back({{Event(v1::JobStatus::RUNNING, 2)}, absl::OkStatus()});
  EXPECT_EQ(Run({"watch", "j-1"}), 6);
  ExpectOneErrorLine("before the job finished (last state RUNNING)");
}

// ---- exit codes, help, version

}  // namespace
}  // namespace drover::cli
