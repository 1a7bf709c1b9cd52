// Blob quota and retention against the real daemons (issue 16): a job's outputs past its
// owner's --blob-quota are not uploaded and its log says why while the job completes; an
// ended job's logs and outputs go at `drover gc` once past their retention, its metrics
// stay, and `drover logs`, `drover download` and `drover show` say what was removed and
// when. Root only.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/test_tls.h"

namespace drover {
namespace {

using ::testing::HasSubstr;

class RetentionE2eTest : public testing::LocalClusterTest {
 protected:
  RetentionE2eTest()
      : LocalClusterTest({.droverd_flags = {"--blob-quota", "65536", "--log-retention", "1s",
                                            "--snapshot-retention", "1s", "--outputs-retention",
                                            "1s", "--upload-grace", "1s", "--gc-interval", "0"},
                          .agent_flags = {"--metrics-interval", "200ms"}}) {}

  // The drover CLI against this droverd (as the test admin, whose token is in DROVER_TOKEN).
  testing::CommandResult Cli(const std::vector<std::string>& args) { return RunCli(args); }
};

TEST_F(RetentionE2eTest, OutputsPastTheOwnersBlobQuotaAreNotUploadedAndTheJobSaysWhy) {
  std::string id = Submit(Shell(
      "head -c 200000 /dev/urandom > outputs/weights.bin && echo trained"));
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(job.status().outputs_digest(), "") << "nothing past the quota is stored";
  EXPECT_EQ(Logs(id, 0), "trained\n");
  std::string said = Logs(id, 0, v1::STDERR);
  EXPECT_THAT(said, HasSubstr("outputs not uploaded: blob quota: user 'bootstrap-admin', who "
                              "owns job '" + id + "', holds 0 B of 64 KiB"));
  EXPECT_THAT(said, HasSubstr("drover user quota bootstrap-admin SIZE"));

  // Outputs within the quota go up as before.
  std::string small = Submit(Shell("echo ok > outputs/result.txt"));
  job = WaitFor(small, v1::JobStatus::COMPLETED);
  EXPECT_NE(job.status().outputs_digest(), "");
}

TEST_F(RetentionE2eTest, AnEndedJobsLogsAndOutputsGoPastTheirRetentionAndTheJobSaysSo) {
  std::string id = Submit(Shell("echo epoch 1; echo 0.9 > outputs/accuracy.txt"));
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  ASSERT_NE(job.status().outputs_digest(), "");
  ASSERT_EQ(Logs(id, 0), "epoch 1\n");

  // Give both a second past their retention of 1 s, then run the pass.
  absl::SleepFor(absl::Milliseconds(1500));
  testing::CommandResult gc = Cli({"gc", "--dry-run"});
  ASSERT_EQ(gc.exit_code, 0) << gc.err;
  EXPECT_THAT(gc.out, HasSubstr("would remove 1 blobs"));
  EXPECT_THAT(gc.out, HasSubstr("would remove the logs of 1 jobs (8 B)"));
  gc = Cli({"gc"});
  ASSERT_EQ(gc.exit_code, 0) << gc.err;
  EXPECT_THAT(gc.out, HasSubstr("removed 1 blobs"));
  EXPECT_THAT(gc.out, HasSubstr("removed the logs of 1 jobs (8 B)"));
  EXPECT_THAT(gc.out, HasSubstr("marked 1 jobs"));

  testing::CommandResult logs = Cli({"logs", id});
  EXPECT_NE(logs.exit_code, 0);
  EXPECT_THAT(logs.err, HasSubstr("the logs of job '" + id + "' were removed on "));
  EXPECT_THAT(logs.err, HasSubstr("drover metrics " + id));
  testing::CommandResult download =
      Cli({"download", id, "--dest", dir_.path() + "/outputs-of-" + id});
  EXPECT_NE(download.exit_code, 0);
  EXPECT_THAT(download.err, HasSubstr("the outputs of job '" + id + "' were removed on "));
  testing::CommandResult show = Cli({"show", id});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_THAT(show.out, HasSubstr("removed by droverd's retention"));
  EXPECT_THAT(show.out, HasSubstr("removed:"));
  // The metrics are kept (the agent's system samples of the job).
  testing::CommandResult metrics = Cli({"metrics", id});
  EXPECT_EQ(metrics.exit_code, 0) << metrics.err;
  // A second pass has nothing left to do.
  gc = Cli({"gc"});
  EXPECT_THAT(gc.out, HasSubstr("removed 0 blobs"));
  EXPECT_THAT(gc.out, HasSubstr("removed the logs of 0 jobs"));
}

}  // namespace
}  // namespace drover
