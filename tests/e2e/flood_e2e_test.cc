// Floods from a job (issue 16, point 4) against the real droverd and agent, jobs in real runc
// containers: output far past droverd's cap, more metric records than one answer should
// hold. Checked as a user or an administrator would see it: the job completes, its log ends
// with a note saying what was cut, droverd holds no file of the job once it ended, and
// GetMetrics pages add up to what was logged. (Thousands of streams under a low open file
// limit: tests/server/log_limits_test.cc.) Runs as root.
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/local_cluster.h"

namespace drover {
namespace {

using ::testing::HasSubstr;

class FloodE2eTest : public testing::LocalClusterTest {
 protected:
  FloodE2eTest()
      : LocalClusterTest(
            {.droverd_flags = {"--max-log-bytes", "65536", "--max-metric-records", "100000"},
             .agent_flags = {"--metrics-interval", "200ms"},
             .droverd_metrics = true}) {}

  // A counter of droverd's /metrics page, e.g. `drover_ingested_bytes_total{stream="stdout"}`.
  double DroverdCounter(const std::string& series) {
    auto page = testing::RunCommand(
        {"/usr/bin/python3", "-c",
         absl::StrCat("import urllib.request; print(urllib.request.urlopen('http://", metrics_,
                      "/metrics').read().decode())")});
    EXPECT_TRUE(page.ok());
    if (!page.ok()) return -1;
    for (absl::string_view line : absl::StrSplit(page->out, '\n')) {
      if (absl::ConsumePrefix(&line, series + " ")) {
        double value = 0;
        if (absl::SimpleAtod(line, &value)) return value;
      }
    }
    return 0;
  }

  // droverd's descriptors: all of them, and those of files under `path`.
  std::pair<int, int> DroverdDescriptors(const std::string& path) {
    int all = 0, under = 0;
    std::error_code error;
    std::string dir = absl::StrCat("/proc/", droverd_->pid(), "/fd");
    for (auto it = std::filesystem::directory_iterator(dir, error);
         it != std::filesystem::directory_iterator(); it.increment(error)) {
      ++all;
      std::string target = std::filesystem::read_symlink(it->path(), error).string();
      if (absl::StartsWith(target, path)) ++under;
    }
    return {all, under};
  }
};

TEST_F(FloodE2eTest, AJobWritingFarPastTheCapCompletesAndItsLogSaysWhatWasCut) {
  const int before = DroverdDescriptors("").first;
  // 20 MB of stdout, a line of stderr.
  std::string id = Submit(Shell("head -c 20000000 /dev/zero | tr '\\0' x; echo done >&2"));
  WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));
  std::string out = Logs(id, 0);
  EXPECT_EQ(out.substr(0, 65536), std::string(65536, 'x'));
  EXPECT_THAT(out, HasSubstr("[drover: log truncated at 65536 bytes"));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("[drover: ", 20000000 - 65536, " bytes dropped past the cap]")));
  EXPECT_LT(out.size(), 65536u + 300u);
  EXPECT_EQ(Logs(id, 0, v1::STDERR), "done\n");

  // droverd closed the job's files when it ended.
  const std::string logs = dir_.path() + "/state/logs/" + id + "/";
  absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::pair<int, int> now = DroverdDescriptors(logs);
  while ((now.second > 0 || now.first > before) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(50));
    now = DroverdDescriptors(logs);
  }
  EXPECT_EQ(now.second, 0) << "files of the ended job still open";
  EXPECT_LE(now.first, before) << "descriptors before the job " << before << ", after " << now.first;
  // The agent stopped sending once droverd said the stream was capped (only its size went
  // on): about its window (4 MiB) past the cap crossed the network, not the 20 MB.
  const double ingested = DroverdCounter("drover_ingested_bytes_total{stream=\"stdout\"}");
  const double dropped = DroverdCounter("drover_log_bytes_dropped_total{stream=\"stdout\"}");
  EXPECT_LT(ingested, 10e6);
  EXPECT_EQ(dropped, 20000000 - 65536);
  std::cout << "droverd descriptors: before=" << before << " after=" << now.first
            << " stored_bytes=" << out.size() << " ingested_bytes=" << ingested
            << " dropped_bytes=" << dropped << "\n";
}

TEST_F(FloodE2eTest, GetMetricsOfManyRecordsComesInPagesThatAddUpToWhatWasLogged) {
  // Two ranks log 40,000 points each, straight into their metrics files.
  std::string id = Submit(Shell(
      "awk 'BEGIN { for (i = 0; i < 40000; i++) "
      "printf \"{\\\"n\\\":\\\"loss\\\",\\\"s\\\":%d,\\\"t\\\":1764170000,\\\"v\\\":0.5}\\n\", i }' "
      ">> \"$DROVER_METRICS_DIR/rank-$DROVER_RANK.metrics\"",
      /*processes=*/2));
  WaitFor(id, v1::JobStatus::COMPLETED, absl::Seconds(120));
  int pages = 0;
  int64_t points = 0;
  size_t largest = 0;
  std::string token;
  do {
    grpc::ClientContext context;
    v1::GetMetricsRequest request;
    request.set_job_id(id);
    request.add_sources(v1::MetricSeries::USER);
    request.set_page_token(token);
    request.set_page_bytes(512 << 10);
    v1::GetMetricsResponse page;
    grpc::Status status = jobs_->stub().GetMetrics(&context, request, &page);
    ASSERT_TRUE(status.ok()) << status.error_message();
    for (const v1::MetricSeries& series : page.series()) points += series.values_size();
    EXPECT_EQ(page.capped_streams(), 0);
    largest = std::max(largest, page.ByteSizeLong());
    token = page.next_page_token();
    ASSERT_LT(++pages, 1000);
  } while (!token.empty());
  EXPECT_EQ(points, 80000);
  EXPECT_GT(pages, 4);
  EXPECT_LT(largest, 512u << 10);
  std::cout << "pages=" << pages << " largest_answer_bytes=" << largest << "\n";
}

}  // namespace
}  // namespace drover
