// `drover metrics` against FakeDroverClient: the request it sends, the summary table, the
// whole series as CSV and JSON, and -f across a broken stream.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace drover::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

v1::GetMetricsResponse Points(const std::string& name, int32_t rank, std::vector<double> values,
                              int64_t first_step = 0,
                              v1::MetricSeries::Source source = v1::MetricSeries::USER) {
  v1::GetMetricsResponse message;
  message.set_attempt(1);
  v1::MetricSeries* series = message.add_series();
  series->set_name(name);
  series->set_rank(rank);
  series->set_source(source);
  for (size_t i = 0; i < values.size(); ++i) {
    series->add_steps(first_step + static_cast<int64_t>(i));
    series->add_times(1764170000.5 + static_cast<double>(i));
    series->add_values(values[i]);
  }
  return message;
}

class MetricsTest : public CliTest {};

TEST_F(MetricsTest, TableShowsLastMinMaxPointsAndASparklinePerSeries) {
  server_.Add(v1::JobStatus::RUNNING);
  v1::GetMetricsResponse tags;
  (*tags.mutable_tags())["optimizer"] = "adam";
  server_.metrics_streams.push_back(
      {{Points("loss", 0, {2.0, 1.0}), Points("loss", 0, {0.5}, 2), tags,
        Points("memory_bytes", 0, {1e9}, 0, v1::MetricSeries::SYSTEM)},
       absl::OkStatus()});
  ASSERT_EQ(Run({"metrics", "j-1", "--rank", "0", "--source", "user"}), 0) << err();
  ASSERT_EQ(server_.metrics_requests.size(), 1u);
  const v1::GetMetricsRequest& request = server_.metrics_requests[0];
  EXPECT_EQ(request.job_id(), "j-1");
  EXPECT_THAT(request.ranks(), ElementsAre(0));
  EXPECT_THAT(request.sources(), ElementsAre(v1::MetricSeries::USER));
  EXPECT_FALSE(request.follow());
  EXPECT_THAT(out(), HasSubstr("j-1 attempt 1  tags: optimizer=adam\n"));
  // 2, 1, 0.5 scaled between 0.5 (▁) and 2 (█). The fake serves every series it holds (the
  // filters are droverd's); system ones are named system/...
  EXPECT_THAT(out(), HasSubstr("NAME                 RANK    LAST   MIN    MAX    POINTS  TREND\n"
                               "loss                 rank 0  0.5    0.5    2      3       █▃▁\n"
                               "system/memory_bytes  node 0  1e+09  1e+09  1e+09  1       ▄\n"));
}

TEST_F(MetricsTest, CsvAndJsonPrintEveryPoint) {
  server_.Add(v1::JobStatus::COMPLETED);
  server_.metrics_streams.push_back({{Points("loss", 1, {0.25, NAN})}, absl::OkStatus()});
  ASSERT_EQ(Run({"metrics", "j-1", "--name", "loss", "--output", "csv"}), 0) << err();
  EXPECT_EQ(out(),
            "name,source,rank,step,time,value\n"
            "loss,user,1,0,1764170000.500000,0.25\n"
            "loss,user,1,1,1764170001.500000,nan\n");
  EXPECT_THAT(server_.metrics_requests[0].names(), ElementsAre("loss"));

  server_.metrics_streams.push_back({{Points("loss", 1, {0.25})}, absl::OkStatus()});
  ASSERT_EQ(Run({"metrics", "j-1", "--output", "json"}), 0) << err();
  EXPECT_EQ(out(),
            "{\"job_id\":\"j-1\",\"attempt\":1,\"tags\":{},\"series\":[{\"name\":\"loss\","
            "\"source\":\"user\",\"rank\":1,\"points\":[{\"step\":0,\"time\":1764170000.500000,"
            "\"value\":0.25}]}],\"skipped_lines\":0,\"capped_streams\":0,\"dropped_records\":0}\n");
}

TEST_F(MetricsTest, FollowPrintsNewPointsOnceAcrossAReconnectAndExitsLikeWatch) {
  v1::Job& job = server_.Add(v1::JobStatus::RUNNING);
  server_.metrics_streams.push_back(
      {{Points("loss", 0, {3, 2})}, absl::UnavailableError("droverd went away")});
  v1::GetMetricsResponse end;
  *end.mutable_job() = job;
  end.mutable_job()->mutable_status()->set_state(v1::JobStatus::COMPLETED);
  // The new stream starts over from the first point.
  server_.metrics_streams.push_back({{Points("loss", 0, {3, 2, 1}), end}, absl::OkStatus()});
  EXPECT_EQ(Run({"metrics", "-f", "j-1"}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("[rank 0] loss step=0 value=3\n"
                               "[rank 0] loss step=1 value=2\n"
                               "[rank 0] loss step=2 value=1\n"
                               "j-1 attempt 1\n"));
  EXPECT_TRUE(server_.metrics_requests[0].follow());
}

TEST_F(MetricsTest, CsvIsRefusedByOtherCommandsAndBadFlagsNameTheFlag) {
  server_.Add(v1::JobStatus::RUNNING);
  EXPECT_EQ(Run({"list", "--output", "csv"}), kExitUsage);
  EXPECT_THAT(err(), HasSubstr("--output csv is for drover metrics only"));
  EXPECT_EQ(Run({"metrics", "j-1", "--source", "gpu"}), kExitUsage);
  EXPECT_THAT(err(), HasSubstr("--source: 'gpu' is not user, system or all"));
}

}  // namespace
}  // namespace drover::cli
