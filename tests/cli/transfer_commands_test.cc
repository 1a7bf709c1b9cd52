// `drover submit --source` and `drover download` against FakeDroverClient, with real
// snapshot archives built from folders under the test's temporary folder.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/archive/snapshot.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace drover::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

class TransferTest : public CliTest {
 protected:
  TransferTest() {
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = absl::StrCat(::testing::TempDir(), "/transfer_test_", test->name());
    fs::remove_all(root_);
    fs::create_directories(root_ + "/tmp");
    ctx_.temp_dir = root_ + "/tmp";
  }
  ~TransferTest() override { fs::remove_all(root_); }

  void Write(const std::string& relative, const std::string& contents) {
    std::string path = absl::StrCat(root_, "/", relative);
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << contents;
  }

  // A COMPLETED job whose outputs are the folder `relative` as droverd would store them.
  void AddJobWithOutputs(const std::string& relative) {
    archive::SnapshotOptions options;
    options.use_ignore_files = false;
    options.output_path = root_ + "/outputs.tar";
    absl::StatusOr<archive::Snapshot> tar = archive::BuildSnapshot(root_ + "/" + relative, options);
    ASSERT_TRUE(tar.ok()) << tar.status();
    server_.blobs[tar->digest] = ReadFile(tar->tar_path);
    v1::Job& job = server_.Add(v1::JobStatus::COMPLETED);
    job.mutable_status()->set_outputs_digest(tar->digest);
    job.mutable_status()->set_outputs_size(static_cast<int64_t>(tar->tar_bytes));
  }

  bool TempDirIsEmpty() { return fs::is_empty(root_ + "/tmp"); }

  std::string root_;
};

// ---- submit --source

TEST_F(TransferTest, SubmitSourceUploadsTheSnapshotOnceAndRunsFromIt) {
  Write("src/train.py", "print('hi')\n");
  Write("src/data/weights.bin", std::string(2'500'000, 'w'));
  Write("src/.gitignore", "*.log\n");
  Write("src/debug.log", "ignored\n");
  ASSERT_EQ(Run({"submit", "--source", root_ + "/src", "train.py"}), 0) << err();
  EXPECT_EQ(out(), "j-1\n");  // stdout stays just the job id
  EXPECT_THAT(err(), HasSubstr("largest files:"));
  EXPECT_THAT(err(), HasSubstr("data/weights.bin"));
  EXPECT_THAT(err(), HasSubstr("uploading snapshot sha256:"));
  ASSERT_EQ(server_.uploads.size(), 1u);
  const FakeServer::Upload& upload = server_.uploads[0];
  EXPECT_EQ(upload.chunks, 3u);
  EXPECT_LE(upload.largest_chunk, size_t{1} << 20);
  const std::string& digest = SubmittedSpec().source_snapshot();
  EXPECT_THAT(digest, MatchesRegex("sha256:[0-9a-f]{64}"));
  EXPECT_EQ(upload.header.digest(), digest);
  EXPECT_EQ(server_.blobs.count(digest), 1u);
  EXPECT_TRUE(TempDirIsEmpty());  // the archive is removed

  ASSERT_EQ(Run({"submit", "--source", root_ + "/src", "train.py"}), 0) << err();
  EXPECT_EQ(out(), "j-2\n");
  EXPECT_THAT(err(), HasSubstr(absl::StrCat("snapshot ", digest, " already on droverd; nothing to upload")));
  EXPECT_EQ(server_.uploads.size(), 1u);
  EXPECT_EQ(SubmittedSpec().source_snapshot(), digest);
  EXPECT_TRUE(TempDirIsEmpty());
}

TEST_F(TransferTest, SubmitSourceUsageErrorsSendNothing) {
  Write("src/train.py", "");
  EXPECT_EQ(Run({"submit", "--source", root_ + "/src", "--snapshot", "sha256:abc", "train.py"}), 2);
  ExpectOneErrorLine("--source and --snapshot both name the job's code; give one of them");
  EXPECT_EQ(Run({"submit", "--source", root_ + "/missing", "train.py"}), 2);
  ExpectOneErrorLine(absl::StrCat("--source ", root_, "/missing: "));
  EXPECT_EQ(Run({"submit", "--source", "", "train.py"}), 2);
  EXPECT_THAT(server_.stats, IsEmpty());
  EXPECT_THAT(server_.submits, IsEmpty());
}

TEST_F(TransferTest, SubmitSourceStopsWhenTheUploadFails) {
  Write("src/train.py", "print('hi')\n");
  // StatBlob answers (not present); the upload is refused.
  server_.errors = {absl::OkStatus(), absl::InvalidArgumentError("digest: the bytes do not match")};
  EXPECT_EQ(Run({"submit", "--source", root_ + "/src", "train.py"}), 3);
  EXPECT_THAT(err(), HasSubstr("drover: digest: the bytes do not match\n"));
  EXPECT_THAT(server_.submits, IsEmpty());
  EXPECT_TRUE(TempDirIsEmpty());
}

// ---- download

TEST_F(TransferTest, DownloadExtractsTheOutputsAndSaysWhatItWrote) {
  Write("job/model.pt", std::string(5000, 'm'));
  Write("job/metrics/loss.csv", "epoch,loss\n1,0.5\n");
  AddJobWithOutputs("job");
  std::string dest = root_ + "/out";
  ASSERT_EQ(Run({"download", "j-1", "--dest", dest}), 0) << err();
  EXPECT_EQ(out(), absl::StrCat("wrote 2 files (4.9 KiB) to ", dest, "\n"));
  EXPECT_EQ(ReadFile(dest + "/model.pt"), std::string(5000, 'm'));
  EXPECT_EQ(ReadFile(dest + "/metrics/loss.csv"), "epoch,loss\n1,0.5\n");
  EXPECT_TRUE(TempDirIsEmpty());
}

TEST_F(TransferTest, DownloadGoesOnWhereABrokenStreamStopped) {
  Write("job/model.pt", std::string(50'000, 'm'));
  AddJobWithOutputs("job");
  server_.break_download_after = 3000;
  std::string dest = root_ + "/out";
  ASSERT_EQ(Run({"download", "j-1", "--dest", dest, "-o", "json"}), 0) << err();
  ASSERT_EQ(server_.downloads.size(), 2u);
  EXPECT_EQ(server_.downloads[1].offset(), 3000);
  EXPECT_EQ(ReadFile(dest + "/model.pt"), std::string(50'000, 'm'));
  EXPECT_THAT(out(), HasSubstr("\"files\": 1"));
  EXPECT_THAT(out(), HasSubstr("\"bytes\": 50000"));
}

TEST_F(TransferTest, DownloadNeverWritesIntoAnExistingFolder) {
  Write("job/model.pt", "weights");
  AddJobWithOutputs("job");
  fs::create_directories(root_ + "/out");
  EXPECT_EQ(Run({"download", "j-1", "--dest", root_ + "/out"}), 2);
  ExpectOneErrorLine("already exists; remove it, or name a new folder with --dest");
  EXPECT_THAT(server_.connects, IsEmpty());
}

TEST_F(TransferTest, DownloadOfAJobWithoutOutputsExits5) {
  server_.Add(v1::JobStatus::RUNNING);
  server_.Add(v1::JobStatus::COMPLETED);
  EXPECT_EQ(Run({"download", "j-1", "--dest", root_ + "/a"}), 5);
  ExpectOneErrorLine("j-1 is RUNNING; its outputs are uploaded when it ends");
  EXPECT_EQ(Run({"download", "j-2", "--dest", root_ + "/b"}), 5);
  ExpectOneErrorLine("j-2 has no outputs: it ended COMPLETED");
  EXPECT_EQ(Run({"download", "j-9", "--dest", root_ + "/c"}), 4);
  EXPECT_FALSE(fs::exists(root_ + "/a"));
}

TEST_F(TransferTest, DownloadRefusesBytesThatDoNotMatchTheDigest) {
  Write("job/model.pt", "weights");
  AddJobWithOutputs("job");
  std::string& blob = server_.blobs.begin()->second;
  blob[blob.size() - 1] ^= 1;  // tar padding at the end: still a readable archive
  EXPECT_EQ(Run({"download", "j-1", "--dest", root_ + "/out"}), 1);
  ExpectOneErrorLine("cannot extract the outputs of j-1");
  EXPECT_FALSE(fs::exists(root_ + "/out"));
  EXPECT_THAT(out(), Not(HasSubstr("wrote")));
  EXPECT_TRUE(TempDirIsEmpty());
}

}  // namespace
}  // namespace drover::cli
