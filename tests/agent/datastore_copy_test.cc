// Copies between a datastore folder and a job folder that symlinks, FIFOs and hard links a
// job planted cannot redirect: real files in a temporary folder, "outside" standing for the
// host's own files.
#include "agent/datastore_copy.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/cluster.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class DatastoreCopyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = dir_.path() + "/store";
    job_ = dir_.path() + "/job";
    outside_ = dir_.path() + "/outside";
    for (const std::string& d : {store_, job_, outside_}) fs::create_directories(d);
    std::ofstream(outside_ + "/secret") << "host only\n";
  }

  static std::string Read(const std::string& path) { return testing::ReadWholeFile(path); }

  testing::TempDir dir_;
  std::string store_, job_, outside_;
};

TEST_F(DatastoreCopyTest, CopiesFilesAndFoldersMergingAndReplacing) {
  fs::create_directories(store_ + "/train/sub");
  std::ofstream(store_ + "/train/a.txt") << "a\n";
  std::ofstream(store_ + "/train/sub/b.txt") << "b\n";
  chmod((store_ + "/train/a.txt").c_str(), 04755);
  absl::StatusOr<CopyStats> stats = CopyBeneath(store_, "train", job_, "data/s/train");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, 2);
  EXPECT_EQ(Read(job_ + "/data/s/train/a.txt"), "a\n");
  EXPECT_EQ(Read(job_ + "/data/s/train/sub/b.txt"), "b\n");
  EXPECT_EQ(fs::status(job_ + "/data/s/train/a.txt").permissions(),
            fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                fs::perms::others_read | fs::perms::others_exec)
      << "permission bits kept, setuid dropped";

  std::ofstream(store_ + "/train/a.txt") << "a2\n";
  stats = CopyBeneath(store_, "train/a.txt", job_, "data/s/train/a.txt");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(Read(job_ + "/data/s/train/a.txt"), "a2\n");

  // The whole datastore into a folder, and a folder into the datastore's root.
  stats = CopyBeneath(store_, "", job_, "all");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(Read(job_ + "/all/train/sub/b.txt"), "b\n");
  stats = CopyBeneath(job_, "all/train/sub", store_, "");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(Read(store_ + "/b.txt"), "b\n");

  EXPECT_EQ(CopyBeneath(store_, "missing", job_, "x").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(DatastoreCopyTest, SymlinkOnTheWayToTheSourceIsRefusedAndNothingIsRead) {
  fs::create_directory_symlink(outside_, store_ + "/link");
  fs::create_symlink(outside_ + "/secret", store_ + "/secret");
  absl::StatusOr<CopyStats> stats = CopyBeneath(store_, "link/secret", job_, "data/x");
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("link is a symbolic link"));
  stats = CopyBeneath(store_, "secret", job_, "data/secret");
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("secret is a symbolic link"));
  stats = CopyBeneath(store_, "link", job_, "data/link");
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(job_ + "/data/secret"));
  EXPECT_FALSE(fs::exists(job_ + "/data/x"));
}

TEST_F(DatastoreCopyTest, SymlinkOnTheWayToTheTargetIsRefusedAndNothingIsWrittenOutside) {
  fs::create_directories(job_ + "/outputs");
  std::ofstream(job_ + "/outputs/model.pt") << "weights\n";
  fs::create_directory_symlink(outside_, store_ + "/runs");
  absl::StatusOr<CopyStats> stats = CopyBeneath(job_, "outputs", store_, "runs/7");
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(stats.status().message()), HasSubstr("runs is a symbolic link"));
  EXPECT_FALSE(fs::exists(outside_ + "/7"));

  // The job replaced its own outputs folder with a link to a host folder.
  fs::remove_all(job_ + "/outputs");
  fs::create_directory_symlink(outside_, job_ + "/outputs");
  stats = CopyBeneath(job_, "outputs", store_, "runs2");
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(store_ + "/runs2/secret")) << "a host file was read";
}

TEST_F(DatastoreCopyTest, LinksAndSpecialFilesInsideTheTreeAreSkippedOrReplaced) {
  fs::create_directories(job_ + "/outputs/ckpt");
  std::ofstream(job_ + "/outputs/ckpt/model.pt") << "weights\n";
  fs::create_symlink(outside_ + "/secret", job_ + "/outputs/leak");
  fs::create_directory_symlink(outside_, job_ + "/outputs/dir-leak");
  ASSERT_EQ(mkfifo((job_ + "/outputs/fifo").c_str(), 0644), 0);
  // Where the copy goes, links planted earlier point out of the datastore.
  fs::create_directories(store_ + "/runs");
  fs::create_directory_symlink(outside_, store_ + "/runs/ckpt");
  fs::create_directories(store_ + "/runs2/ckpt");
  fs::create_symlink(outside_ + "/secret", store_ + "/runs2/ckpt/model.pt");
  // A hard link to a host file where a copied file goes (same file system).
  fs::create_directories(store_ + "/runs3/ckpt");
  fs::create_hard_link(outside_ + "/secret", store_ + "/runs3/ckpt/model.pt");

  for (const std::string target : {"runs", "runs2", "runs3"}) {
    SCOPED_TRACE(target);
    absl::StatusOr<CopyStats> stats = CopyBeneath(job_, "outputs", store_, target);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(stats->files, 1);
    EXPECT_EQ(stats->skipped, 3) << "the two links and the FIFO";
    EXPECT_EQ(Read(store_ + "/" + target + "/ckpt/model.pt"), "weights\n");
    EXPECT_FALSE(fs::is_symlink(store_ + "/" + target + "/ckpt"));
    EXPECT_FALSE(fs::exists(fs::symlink_status(store_ + "/" + target + "/leak")));
    EXPECT_FALSE(fs::exists(fs::symlink_status(store_ + "/" + target + "/fifo")));
  }
  EXPECT_EQ(Read(outside_ + "/secret"), "host only\n") << "written through a link";
  EXPECT_FALSE(fs::exists(outside_ + "/model.pt")) << "written through a folder link";
}

TEST_F(DatastoreCopyTest, FoldersAreMadeBeneathWithoutFollowingLinks) {
  EXPECT_TRUE(MakeFoldersBeneath(job_, "upload/s/runs/1").ok());
  EXPECT_TRUE(fs::is_directory(job_ + "/upload/s/runs/1"));
  absl::StatusOr<bool> empty = FolderBeneathIsEmpty(job_, "upload/s/runs/1");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(*empty);
  EXPECT_TRUE(*FolderBeneathIsEmpty(job_, "missing"));
  fs::create_directory_symlink(outside_, job_ + "/upload/t");
  absl::Status made = MakeFoldersBeneath(job_, "upload/t/x");
  EXPECT_EQ(made.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(outside_ + "/x"));
  EXPECT_EQ(FolderBeneathIsEmpty(job_, "upload/t").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace drover::agent
