// Tests of server/metric_records.h: the metric lines a job writes, as GetMetrics reads them.
#include "server/metric_records.h"

#include <optional>
#include <string>

#include "drover/v1/job_service.pb.h"
#include "gtest/gtest.h"

namespace drover::server {
namespace {

TEST(MetricRecordsTest, ParsesAPointAndTags) {
  std::optional<MetricRecord> point =
      ParseMetricRecord(R"({"n":"loss","s":3,"t":1700000000.5,"v":0.25})");
  ASSERT_TRUE(point.has_value());
  EXPECT_EQ(point->name, "loss");
  EXPECT_EQ(point->step, 3);
  EXPECT_EQ(point->value, 0.25);
  std::optional<MetricRecord> tags = ParseMetricRecord(R"({"tags":{"model":"\u00e9\ud83d\ude00"}})");
  ASSERT_TRUE(tags.has_value());
  EXPECT_EQ(tags->tags.at("model"), "\xC3\xA9\xF0\x9F\x98\x80");
}

// Found by metric_records_fuzz (tests/fuzz/corpus/metric_records/crash-name-not-utf8): a
// name with a raw byte that is not UTF-8 went into a proto3 string, and the whole answer
// failed to parse at every client. Lone surrogates written as escapes did the same.
TEST(MetricRecordsTest, SkipsNamesAndTagsThatAreNotUtf8) {
  EXPECT_FALSE(ParseMetricRecord("{\"n\":\"cpu_\xE3ores\",\"s\":3,\"v\":1}").has_value());
  EXPECT_FALSE(ParseMetricRecord(R"({"n":"loss\ud800","s":0,"v":1})").has_value());
  EXPECT_FALSE(ParseMetricRecord(R"({"tags":{"k":"\udfff"}})").has_value());
  EXPECT_FALSE(ParseMetricRecord("{\"tags\":{\"\xFF\":\"v\"}}").has_value());
}

TEST(MetricRecordsTest, AnswerWithABadLineStillReachesTheClient) {
  v1::GetMetricsRequest request;
  v1::GetMetricsResponse response;
  MetricsCollector collector(request, &response);
  std::string stream = "{\"n\":\"cpu_\xE3ores\",\"s\":3,\"v\":1}\n{\"n\":\"loss\",\"s\":0,\"v\":2}\n";
  EXPECT_EQ(collector.Add(v1::MetricSeries::USER, 0, stream, true), stream.size());
  EXPECT_EQ(response.skipped_lines(), 1);
  ASSERT_EQ(response.series_size(), 1);
  EXPECT_EQ(response.series(0).name(), "loss");

  std::string wire;
  ASSERT_TRUE(response.SerializeToString(&wire));
  v1::GetMetricsResponse received;
  ASSERT_TRUE(received.ParseFromString(wire));
  EXPECT_EQ(received.series(0).values(0), 2);
}

}  // namespace
}  // namespace drover::server
