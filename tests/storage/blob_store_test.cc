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

// The blob folder may be on storage other hosts write (docs/operations.md#shared-data): a
// link or a FIFO planted under a blob's name is no blob. Checking or reading it says the blob
// is missing (never the linked file's bytes, never waiting on the FIFO); uploading the real
// blob replaces the link, and the linked file is left as it was.
TEST_F(BlobStoreTest, ALinkOrFifoPlantedUnderABlobsNameIsNoBlobAndTheUploadReplacesIt) {
  std::string folder = dir_.path() + "/blobs/sha256/";
  std::string outside = dir_.path() + "/outside";
  { std::ofstream(outside) << "a secret of the head node"; }
  std::string bytes = "the real snapshot";
  std::string digest = archive::Sha256Digest(bytes);
  std::string path = blobs_->PathOf(digest);
  ASSERT_EQ(::symlink(outside.c_str(), path.c_str()), 0);
  std::string fifo_digest = archive::Sha256Digest("another");
  ASSERT_EQ(::mkfifo(blobs_->PathOf(fifo_digest).c_str(), 0600), 0);

  for (const std::string& planted : {digest, fifo_digest}) {
    EXPECT_EQ(blobs_->Stat(planted).status().code(), absl::StatusCode::kNotFound) << planted;
    EXPECT_EQ(blobs_->Read(planted, 0, 100).status().code(), absl::StatusCode::kNotFound)
        << planted;
  }
  EXPECT_TRUE(blobs_->Touch(digest).ok());  // marks the link itself, not what it names

  EXPECT_EQ(Put(bytes), digest);
  EXPECT_FALSE(std::filesystem::is_symlink(path));
  EXPECT_EQ(*blobs_->Read(digest, 0, 100), bytes);
  std::ifstream in(outside);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "a secret of the head node");
}

}  // namespace
}  // namespace drover::storage
