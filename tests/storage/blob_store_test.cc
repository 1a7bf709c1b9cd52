// The blob store's part in retention: what counts as used, listing, removal under the lock
// that uploads and checks take too, and hostile entries in its folder.
#include "storage/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::storage {
namespace {

class BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto blobs = BlobStore::Open(dir_.path() + "/blobs", 1 << 20);
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    blobs_ = *std::move(blobs);
  }

  std::string Put(const std::string& bytes) {
    std::string digest = archive::Sha256Digest(bytes);
    auto upload = blobs_->StartUpload(digest, static_cast<int64_t>(bytes.size()));
    EXPECT_TRUE(upload.ok()) << upload.status();
    EXPECT_TRUE((*upload)->Append(bytes).ok());
    EXPECT_TRUE((*upload)->Commit().ok());
    return digest;
  }

  // Sets a blob's time of last use back to `when`.
  void UsedAt(const std::string& digest, absl::Time when) {
    timespec times[2] = {absl::ToTimespec(when), absl::ToTimespec(when)};
    ASSERT_EQ(::utimensat(AT_FDCWD, blobs_->PathOf(digest).c_str(), times, 0), 0);
  }

  testing::TempDir dir_;
  std::unique_ptr<BlobStore> blobs_;
};

TEST_F(BlobStoreTest, ABlobUnusedSinceTheCutOffGoesAndOneUsedSinceStays) {
  std::string old = Put("an old snapshot");
  std::string recent = Put("a recent upload");
  absl::Time cut_off = absl::Now() - absl::Hours(24);
  UsedAt(old, cut_off - absl::Hours(1));

  absl::StatusOr<std::vector<BlobInfo>> listed = blobs_->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 2u);
  for (const BlobInfo& blob : *listed) {
    EXPECT_EQ(blob.size, 15);
    EXPECT_EQ(blob.used < cut_off, blob.digest == old) << blob.digest;
  }

  EXPECT_FALSE(*blobs_->RemoveIfUnusedSince(recent, cut_off));
  EXPECT_TRUE(*blobs_->RemoveIfUnusedSince(old, cut_off));
  EXPECT_TRUE(absl::IsNotFound(blobs_->Stat(old).status()));
  EXPECT_FALSE(*blobs_->RemoveIfUnusedSince(old, cut_off));  // gone: nothing to do
  EXPECT_TRUE(blobs_->Stat(recent).ok());
}

TEST_F(BlobStoreTest, CheckingOrUploadingABlobAgainMarksItUsed) {
  std::string digest = Put("code");
  absl::Time cut_off = absl::Now() - absl::Hours(24);
  UsedAt(digest, cut_off - absl::Hours(1));
  ASSERT_TRUE(blobs_->Touch(digest).ok());  // a client checked it before submitting
  EXPECT_FALSE(*blobs_->RemoveIfUnusedSince(digest, cut_off));

  UsedAt(digest, cut_off - absl::Hours(1));
  auto upload = blobs_->StartUpload(digest, 4);
  ASSERT_TRUE(upload.ok());
  ASSERT_TRUE((*upload)->Append("code").ok());
  EXPECT_FALSE(*(*upload)->Commit());  // already there
  EXPECT_FALSE(*blobs_->RemoveIfUnusedSince(digest, cut_off));

  EXPECT_TRUE(absl::IsNotFound(blobs_->Touch(archive::Sha256Digest("never stored"))));
  EXPECT_TRUE(absl::IsInvalidArgument(blobs_->Touch("sha256:../../etc/passwd")));
}

TEST_F(BlobStoreTest, StrayEntriesInTheBlobFolderAreNeitherListedNorRemoved) {
  std::string digest = Put("real");
  std::string folder = dir_.path() + "/blobs/sha256/";
  std::string outside = dir_.path() + "/outside";
  { std::ofstream(outside) << "not a blob"; }
  std::string link_name = std::string(64, 'a');
  ASSERT_EQ(::symlink(outside.c_str(), (folder + link_name).c_str()), 0);
  std::filesystem::create_directories(folder + std::string(64, 'b'));
  { std::ofstream(folder + "notes.txt") << "x"; }
  { std::ofstream(folder + std::string(64, 'C')) << "upper case: not a digest"; }

  absl::StatusOr<std::vector<BlobInfo>> listed = blobs_->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].digest, digest);
  EXPECT_FALSE(*blobs_->RemoveIfUnusedSince("sha256:" + link_name, absl::InfiniteFuture()));
  EXPECT_TRUE(std::filesystem::is_symlink(folder + link_name));
  EXPECT_TRUE(std::filesystem::exists(outside));
}

}  // namespace
}  // namespace drover::storage
