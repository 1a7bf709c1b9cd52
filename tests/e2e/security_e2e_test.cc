// The agent opens nothing a job can redirect (issue 16, point 2): jobs in real runc
// containers plant symbolic links and fifos where the agent reads and writes files (their
// logs folder, the exit files drover-init writes, outputs/, upload folders, datastores), and
// the test checks what a user or an administrator would notice: no host file's content in
// `drover logs`, metrics or outputs; no host file created or written; a cancel that takes
// effect; the job told what was left out. Runs as root.
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/archive/safe_extract.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/local_cluster.h"

namespace drover {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// A host file only root may read, with a metric line in it: if the agent followed a link
// to it, the marker would show in logs and the metric in GetMetrics.
constexpr char kMarker[] = "TOPSECRET-7f3a91";

class SecurityE2eTest : public testing::LocalClusterTest {
 protected:
  SecurityE2eTest() : LocalClusterTest({.agent_flags = {"--metrics-interval", "200ms"}}) {}

  void SetUp() override {
    LocalClusterTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    host_ = dir_.path() + "/host";
    fs::create_directories(host_);
    secret_ = host_ + "/secret";
    std::ofstream(secret_) << "{\"n\":\"leaked\",\"s\":0,\"t\":1,\"v\":42}\n" << kMarker << "\n";
    ASSERT_EQ(chmod(secret_.c_str(), 0600), 0);
  }

  // Every rank's stdout and stderr as droverd stored them.
  std::string AllLogs(const std::string& id) {
    return Logs(id, -1, v1::STDOUT) + Logs(id, -1, v1::STDERR);
  }

  v1::GetMetricsResponse Metrics(const std::string& id) {
    grpc::ClientContext context;
    v1::GetMetricsRequest request;
    request.set_job_id(id);
    v1::GetMetricsResponse metrics;
    grpc::Status status = jobs_->stub().GetMetrics(&context, request, &metrics);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return metrics;
  }

  void Cancel(const std::string& id) {
    grpc::ClientContext context;
    v1::CancelJobRequest request;
    request.set_job_id(id);
    v1::Job job;
    grpc::Status status = jobs_->stub().CancelJob(&context, request, &job);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // The relative paths in a job's outputs archive, as extracted.
  std::set<std::string> OutputEntries(const v1::Job& job) {
    std::string tar = dir_.path() + "/outputs.tar";
    std::ofstream(tar, std::ios::binary) << Download(job.status().outputs_digest());
    std::string out = dir_.path() + "/outputs";
    fs::remove_all(out);
    auto extracted =
        archive::ExtractTar(tar, out, {.expected_digest = job.status().outputs_digest()});
    EXPECT_TRUE(extracted.ok()) << extracted.status();
    std::set<std::string> entries;
    std::error_code error;
    for (const auto& entry : fs::recursive_directory_iterator(out, error)) {
      entries.insert(fs::relative(entry.path(), out).string());
    }
    return entries;
  }

  std::string host_;
  std::string secret_;
};

TEST_F(SecurityE2eTest, LinksNamedLikeLogFilesShipNoHostFile) {
  // Another node's rank, this rank's metrics, and this rank's stderr replaced by a link.
  std::string id = Submit(Shell(absl::StrCat(
      "ln -s ", secret_, " /job/logs/rank-9.stdout; ln -s ", secret_, " /job/logs/rank-0.metrics; ",
      "ln -sf ", secret_, " /job/logs/rank-0.stderr; echo done")));
  WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Logs(id, 0), "done\n");
  EXPECT_THAT(AllLogs(id), Not(HasSubstr(kMarker)));
  v1::GetMetricsResponse metrics = Metrics(id);
  for (const v1::MetricSeries& series : metrics.series()) {
    EXPECT_NE(series.name(), "leaked") << "a host file was read as the rank's metrics";
  }
  EXPECT_THAT(agent()->ReadLog(), HasSubstr("unsafe_job_file"));
}

TEST_F(SecurityE2eTest, ALinkAsTheSystemMetricsFileCreatesAndAppendsToNoHostFile) {
  std::string created = host_ + "/created";
  // While the agent samples every 200 ms: first a link to a path that does not exist, then
  // to a root-owned file.
  std::string id = Submit(Shell(absl::StrCat(
      "ln -sf ", created, " /job/logs/node-0.system; sleep 1.5; ",
      "ln -sf ", secret_, " /job/logs/node-0.system; sleep 1.5; echo done")));
  WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_FALSE(fs::exists(created)) << "the agent created a host file through the job's link";
  EXPECT_EQ(testing::ReadWholeFile(secret_),
            absl::StrCat("{\"n\":\"leaked\",\"s\":0,\"t\":1,\"v\":42}\n", kMarker, "\n"))
      << "the agent appended to a host file through the job's link";
  EXPECT_THAT(agent()->ReadLog(), HasSubstr("kind=symlink"));
}

TEST_F(SecurityE2eTest, FifosInTheJobFolderDoNotHoldACancel) {
  // Fifos where the agent reads drover-init's files at the end and appends its samples.
  std::string id = Submit(Shell(
      "mkfifo /job/logs/mpirun.exit /job/logs/init.result /job/logs/node-0.system "
      "/job/logs/rank-0.metrics; echo started; exec sleep 300"));
  WaitFor(id, v1::JobStatus::RUNNING);
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (Logs(id, 0) != "started\n" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_EQ(Logs(id, 0), "started\n");
  absl::SleepFor(absl::Milliseconds(500));  // a few samples meet the fifo
  Cancel(id);
  v1::Job job = WaitFor(id, v1::JobStatus::CANCELED, absl::Seconds(30));
  EXPECT_EQ(job.status().cause(), v1::JobStatus::CANCELED_BY_USER);
  ASSERT_EQ(job.status().exits_size(), 1);
  EXPECT_EQ(job.status().exits(0).signal(), SIGTERM);
  EXPECT_THAT(agent()->ReadLog(), HasSubstr("kind=fifo"));
}

TEST_F(SecurityE2eTest, OutputsHoldNoHostFilesAndTheJobIsToldWhatWasLeftOut) {
  std::string id = Submit(Shell(absl::StrCat(
      "cd $DROVER_OUTPUT_DIR && echo real > model.txt && ln -s / root && ln -s ", secret_,
      " secret && ln -s ../../.. up && mkfifo pipe && mkdir sub && ln -s /etc sub/etc")));
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  ASSERT_FALSE(job.status().outputs_digest().empty());
  EXPECT_EQ(OutputEntries(job), (std::set<std::string>{"model.txt", "sub"}));
  EXPECT_EQ(testing::ReadWholeFile(dir_.path() + "/outputs/model.txt"), "real\n");
  std::string stderr_log = Logs(id, 0, v1::STDERR);
  EXPECT_THAT(stderr_log, HasSubstr("drover-agent on n1: outputs: skipped"));
  EXPECT_THAT(stderr_log, HasSubstr("'pipe'"));
  EXPECT_THAT(agent()->ReadLog(), HasSubstr("outputs_entry_skipped"));
}

TEST_F(SecurityE2eTest, AnOutputsFolderReplacedByALinkIsNotArchived) {
  std::string id = Submit(Shell("rm -rf /job/outputs && ln -s / /job/outputs && echo replaced"));
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Logs(id, 0), "replaced\n");
  EXPECT_TRUE(job.status().outputs_digest().empty()) << "the host's root was archived";
  EXPECT_THAT(Logs(id, 0, v1::STDERR), HasSubstr("outputs/ is a symlink"));
}

// A hostpath datastore a job may write to holds links another job planted: copies to and
// from it follow none of them, and a job's upload folder's links are not copied.
TEST_F(SecurityE2eTest, CopiesToAndFromADatastoreFollowNoLink) {
  std::string root = dir_.path() + "/store";
  std::string elsewhere = dir_.path() + "/elsewhere";
  fs::create_directories(root + "/data");
  fs::create_directories(elsewhere);
  std::ofstream(root + "/data/real.txt") << "real data\n";
  fs::create_symlink(secret_, root + "/data/secret-link");
  fs::create_symlink(elsewhere, root + "/runs");
  PutHostpathDatastore("store", root);
  auto ref = [](v1::JobSpec* spec, const std::string& path, v1::DataReference::Mode mode) {
    v1::DataReference* data = spec->add_arguments()->mutable_data();
    data->set_datastore("store");
    data->set_path(path);
    data->set_mode(mode);
  };

  // Download a folder holding a link: the link is left out.
  v1::JobSpec download = Shell("ls $0; cat $0/secret-link 2>/dev/null; echo end");
  ref(&download, "data", v1::DataReference::DOWNLOAD);
  std::string id = Submit(download);
  WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(Logs(id, 0), "real.txt\nend\n");

  // Download the link itself: refused, the job fails to launch.
  v1::JobSpec direct = Shell("cat $0");
  ref(&direct, "data/secret-link", v1::DataReference::DOWNLOAD);
  id = Submit(direct);
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::LAUNCH_FAILED);
  EXPECT_THAT(job.status().message(), HasSubstr("symbolic link"));
  EXPECT_THAT(AllLogs(id), Not(HasSubstr(kMarker)));

  // Upload a folder holding a link to a host file: the link is not copied.
  v1::JobSpec upload =
      Shell(absl::StrCat("echo ok > $0/ok.txt && ln -s ", secret_, " $0/leak && mkfifo $0/pipe"));
  ref(&upload, "out/1", v1::DataReference::UPLOAD);
  id = Submit(upload);
  WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(testing::ReadWholeFile(root + "/out/1/ok.txt"), "ok\n");
  EXPECT_FALSE(fs::exists(fs::symlink_status(root + "/out/1/leak")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(root + "/out/1/pipe")));

  // Outputs and an upload into a folder that is a link out of the datastore: refused.
  v1::JobSpec outputs = Shell("echo model > $DROVER_OUTPUT_DIR/model.txt; echo x > $0/x.txt");
  ref(&outputs, "runs/2", v1::DataReference::UPLOAD);
  outputs.add_outputs()->set_datastore("store");
  outputs.mutable_outputs(0)->set_path("runs/1");
  id = Submit(outputs);
  job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::DATA_UPLOAD_FAILED);
  EXPECT_THAT(job.status().message(), HasSubstr("symbolic link"));
  EXPECT_TRUE(fs::is_empty(elsewhere)) << "written outside the datastore through a link";
}

}  // namespace
}  // namespace drover
