// rclone datastores end to end (datastore_fixture.h): what a user sees: the same file read
// through the mount on both nodes of a job, a read-only mount that refuses writes,
// downloads, uploads, outputs and a read-write mount landing on the server byte for byte, a
// bad mount failing the job (and outputs that cannot be uploaded) with the datastore and
// rclone's error named, and no mount, rclone process or credential left behind on any node
// after a success, a failure, or a cancel. Root only.
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/datastore_fixture.h"

namespace drover {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

TEST_F(DatastoreE2eTest, BothNodesReadTheSameFileThroughTheMountWhichRefusesWrites) {
  StartCluster(2);
  CreateDatastore("dav", /*allow_write=*/false);
  v1::JobSpec spec = Shell(
      "sha256sum $0/file.bin | cut -d' ' -f1; echo root=$DROVER_DATASTORE_DAV; "
      "touch $0/new.txt 2>/dev/null && echo wrote || echo refused",
      /*nodes=*/2);
  Ref(&spec, "dav", "data", v1::DataReference::MOUNT);
  std::string id = jobs_->Submit(spec);
  v1::Job job = WaitFor(id, v1::JobStatus::COMPLETED);
  ASSERT_EQ(job.status().nodes_size(), 2);
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(jobs_->Logs(id, rank), absl::StrCat(file_sha_, "\nroot=/datastores/dav\nrefused\n"))
        << "rank " << rank << ":\n" << jobs_->Logs(id, rank, v1::STDERR);
  }
  EXPECT_FALSE(fs::exists(served_ + "/data/new.txt")) << "a read-only mount took a write";
}

TEST_F(DatastoreE2eTest, DownloadUploadOutputsAndReadWriteMountReachTheServer) {
  StartCluster(1);
  CreateDatastore("dav", /*allow_write=*/true);
  // $0: a downloaded copy; $1: an upload folder; $2: a read-write mount.
  v1::JobSpec spec = Shell(
      "sha256sum $0 | cut -d' ' -f1; "
      "head -c 2000000 /dev/urandom > $1/made.bin && sha256sum $1/made.bin | cut -d' ' -f1; "
      "head -c 3000000 /dev/urandom > $2/written.bin && echo more >> $2/written.bin && "
      "sha256sum $2/written.bin | cut -d' ' -f1; "
      "head -c 1000000 /dev/urandom > $DROVER_OUTPUT_DIR/model.bin && "
      "sha256sum $DROVER_OUTPUT_DIR/model.bin | cut -d' ' -f1");
  Ref(&spec, "dav", "data/file.bin", v1::DataReference::DOWNLOAD);
  Ref(&spec, "dav", "runs/1", v1::DataReference::UPLOAD);
  Ref(&spec, "dav", "scratch", v1::DataReference::MOUNT, /*read_write=*/true);
  fs::create_directories(served_ + "/scratch");
  v1::OutputTarget* output = spec.add_outputs();
  output->set_datastore("dav");
  output->set_path("outputs/run1");
  std::string id = jobs_->Submit(spec);
  WaitFor(id, v1::JobStatus::COMPLETED);
  std::vector<std::string> lines = absl::StrSplit(jobs_->Logs(id, 0), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << jobs_->Logs(id, 0) << jobs_->Logs(id, 0, v1::STDERR);
  EXPECT_EQ(lines[0], file_sha_) << "the downloaded copy";
  EXPECT_EQ(ServedSha("runs/1/made.bin"), lines[1]) << "the upload folder";
  EXPECT_EQ(ServedSha("scratch/written.bin"), lines[2]) << "the read-write mount";
  EXPECT_EQ(ServedSha("outputs/run1/model.bin"), lines[3]) << "the outputs";
}

// A file written through a read-write mount as the last thing the job does is on the server
// once the job has COMPLETED, even when its upload takes longer than rclone is given to
// exit after the unmount: the agent waits for rclone to upload it first. The agent's rclone
// uploads at 4 MiB/s here (RCLONE_BWLIMIT), as to a remote far away.
TEST_F(DatastoreE2eTest, FileWrittenLastThroughAReadWriteMountIsUploadedBeforeTheJobEnds) {
  StartCluster(1, /*own_mount_namespace=*/true, {"RCLONE_BWLIMIT=4M"});
  CreateDatastore("dav", /*allow_write=*/true);
  fs::create_directories(served_ + "/scratch");
  // (The checksum is taken before the copy: reading the file back would wait for its upload.)
  v1::JobSpec spec = Shell("head -c 32000000 /dev/urandom > /tmp/last.bin && "
                           "sha256sum /tmp/last.bin | cut -d' ' -f1 && cp /tmp/last.bin $0/");
  Ref(&spec, "dav", "scratch", v1::DataReference::MOUNT, /*read_write=*/true);
  std::string id = jobs_->Submit(spec);
  WaitFor(id, v1::JobStatus::COMPLETED);
  EXPECT_EQ(absl::StrCat(ServedSha("scratch/last.bin"), "\n"), jobs_->Logs(id, 0))
      << jobs_->Logs(id, 0, v1::STDERR);
}

TEST_F(DatastoreE2eTest, BadMountFailsTheJobNamingTheDatastoreAndLeavesNothingOnAnyNode) {
  StartCluster(2);
  CreateDatastore("wrong-pass", false, "", "not-the-password");
  // The storage host, where nothing listens.
  CreateDatastore("wrong-port", false,
                  absl::StrCat("http://", hosts_->address(2), ":", kWebdavPort + 1));
  struct Case {
    std::string datastore;
    std::string error;
  };
  for (const Case& c : {Case{"wrong-pass", "401 Unauthorized"},
                        Case{"wrong-port", "connection refused"}}) {
    SCOPED_TRACE(c.datastore);
    v1::JobSpec spec = Shell("echo never", /*nodes=*/2);
    Ref(&spec, c.datastore, "data", v1::DataReference::MOUNT);
    std::string id = jobs_->Submit(spec);
    v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
    EXPECT_EQ(job.status().cause(), v1::JobStatus::LAUNCH_FAILED);
    EXPECT_THAT(job.status().message(), HasSubstr(absl::StrCat("datastore '", c.datastore, "'")));
    EXPECT_THAT(job.status().message(), HasSubstr(c.error));
    EXPECT_THAT(job.status().message(), Not(HasSubstr("not-the-password")));
    EXPECT_EQ(jobs_->Logs(id, 0), "") << "the job never started";
    for (size_t k = 0; k < agents_.size(); ++k) ExpectNothingMountedOn(k);
  }
}

TEST_F(DatastoreE2eTest, OutputsThatCannotBeUploadedFailTheJobNamingTheDatastore) {
  StartCluster(1);
  CreateDatastore("wrong-pass", /*allow_write=*/true, "", "not-the-password");
  v1::JobSpec spec = Shell("echo weights > $DROVER_OUTPUT_DIR/model.pt");
  v1::OutputTarget* output = spec.add_outputs();
  output->set_datastore("wrong-pass");
  output->set_path("runs/1");
  std::string id = jobs_->Submit(spec);
  v1::Job job = WaitFor(id, v1::JobStatus::FAILED);
  EXPECT_EQ(job.status().cause(), v1::JobStatus::DATA_UPLOAD_FAILED);
  EXPECT_THAT(job.status().message(), HasSubstr("uploading to datastore 'wrong-pass'"));
  EXPECT_THAT(job.status().message(), HasSubstr("401 Unauthorized"));
  EXPECT_THAT(job.status().message(), Not(HasSubstr("not-the-password")));
  EXPECT_FALSE(job.status().outputs_digest().empty()) << "drover download still has them";
}

TEST_F(DatastoreE2eTest, CancelOfARunningJobUnmountsOnEveryNode) {
  StartCluster(2);
  CreateDatastore("dav", /*allow_write=*/true);
  v1::JobSpec spec = Shell("cat $0/file.bin > /dev/null && echo reading; exec sleep 600", 2);
  Ref(&spec, "dav", "data", v1::DataReference::MOUNT, /*read_write=*/true);
  std::string id = jobs_->Submit(spec);
  WaitFor(id, v1::JobStatus::RUNNING);
  for (int rank = 0; rank < 2; ++rank) {
    ASSERT_TRUE(WaitForOutput(id, rank, "reading\n")) << jobs_->Logs(id, rank, v1::STDERR);
  }
  for (size_t k = 0; k < agents_.size(); ++k) {
    EXPECT_TRUE(WaitForMounts(k, true)) << "node " << k << " has no mount";
    // The attempt's rclone config: private, the password only obscured.
    std::vector<std::string> configs = FilesNamed(work_dirs_[k] + "/attempts", "rclone.conf");
    for (const std::string& config : configs) {
      struct stat st {};
      ASSERT_EQ(stat(config.c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 0777, 0600u);
      std::string text = testing::ReadWholeFile(config);
      EXPECT_THAT(text, HasSubstr("[dav]\n"));
      EXPECT_THAT(text, Not(HasSubstr(kPassword)));
    }
    EXPECT_EQ(configs.size(), 1u) << "node " << k;
  }
  Cancel(id);
  v1::Job job = WaitFor(id, v1::JobStatus::CANCELED, absl::Seconds(60));
  EXPECT_EQ(job.status().cause(), v1::JobStatus::CANCELED_BY_USER);
  for (size_t k = 0; k < agents_.size(); ++k) {
    ExpectNothingMountedOn(k);
    // The agent removes the attempt's folder, config included, as it finishes the attempt,
    // which may be just after droverd says CANCELED: the config is gone soon, never kept.
    absl::Time deadline = absl::Now() + absl::Seconds(20);
    std::vector<std::string> left = FilesNamed(work_dirs_[k], "rclone.conf");
    while (!left.empty() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(50));
      left = FilesNamed(work_dirs_[k], "rclone.conf");
    }
    EXPECT_THAT(left, ::testing::IsEmpty()) << "node " << k;
  }
}

}  // namespace
}  // namespace drover
