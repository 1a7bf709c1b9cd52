// The blob quota's arithmetic on a real store: what a user holds, uploads in progress
// counted together, a blob held already costing nothing, sizes an older droverd did not
// record.
#include "server/blob_quota.h"

#include <limits>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/sqlite_store.h"
#include "tests/testing/subprocess.h"

namespace drover::server {
namespace {

using ::testing::HasSubstr;

class BlobQuotaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = storage::SqliteStore::Open({.path = dir_.path() + "/drover.db"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    auto blobs = storage::BlobStore::Open(dir_.path() + "/blobs", 1 << 20);
    ASSERT_TRUE(blobs.ok()) << blobs.status();
    blobs_ = *std::move(blobs);
  }

  void Hold(const std::string& digest, const std::string& user, int64_t size) {
    absl::Notification done;
    store_->AddBlobUploader(digest, user, size, [&](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      done.Notify();
    });
    done.WaitForNotification();
  }

  testing::TempDir dir_;
  std::unique_ptr<storage::SqliteStore> store_;
  std::unique_ptr<storage::BlobStore> blobs_;
};

TEST_F(BlobQuotaTest, UploadsInProgressCountTogetherUntilTheyAreDropped) {
  BlobQuota quota(1000, *store_, *blobs_);
  Hold("sha256:held", "alice", 400);
  absl::StatusOr<BlobQuota::Reservation> first = quota.Reserve("alice", "sha256:a", 500, "you hold");
  ASSERT_TRUE(first.ok()) << first.status();
  // 400 held + 500 in progress + 200 > 1000.
  absl::StatusOr<BlobQuota::Reservation> second = quota.Reserve("alice", "sha256:b", 200, "you hold");
  ASSERT_TRUE(absl::IsResourceExhausted(second.status())) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("blob quota: you hold 400 B and upload 500 B now of 1000 B"));
  EXPECT_THAT(second.status().message(), HasSubstr("this upload of 200 B does not fit"));
  EXPECT_THAT(second.status().message(), HasSubstr("drover user quota alice SIZE"));
  // Another user has a quota of their own.
  EXPECT_TRUE(quota.Reserve("bob", "sha256:b", 900, "you hold").ok());
  // The first upload ends (dropped): its bytes no longer count.
  first->Release();
  EXPECT_TRUE(quota.Reserve("alice", "sha256:b", 600, "you hold").ok());
}

TEST_F(BlobQuotaTest, ABlobHeldAlreadyCostsNothingAgainAndZeroMeansNoQuota) {
  BlobQuota quota(1000, *store_, *blobs_);
  Hold("sha256:big", "alice", 1000);
  EXPECT_TRUE(quota.Reserve("alice", "sha256:big", 1000, "you hold").ok());
  EXPECT_TRUE(absl::IsResourceExhausted(quota.Reserve("alice", "sha256:one", 1, "you hold").status()));
  // Sizes chosen to overflow a sum are refused and leave the quota as it was.
  EXPECT_TRUE(absl::IsResourceExhausted(
      quota.Reserve("carol", "sha256:x", std::numeric_limits<int64_t>::max(), "you hold").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(quota.Reserve("carol", "sha256:x", -1, "you hold").status()));
  EXPECT_TRUE(quota.Reserve("carol", "sha256:x", 1000, "you hold").ok());
  BlobQuota none(0, *store_, *blobs_);
  EXPECT_TRUE(none.Reserve("alice", "sha256:huge", int64_t{1} << 40, "you hold").ok());
}

TEST_F(BlobQuotaTest, AUsersOwnQuotaReplacesTheDefault) {
  BlobQuota quota(1000, *store_, *blobs_);
  quota.SetUserQuota("alice", 5000);
  quota.SetUserQuota("ci", -1);
  EXPECT_EQ(quota.QuotaOf("alice"), 5000);
  EXPECT_EQ(quota.QuotaOf("ci"), 0);
  EXPECT_EQ(quota.QuotaOf("bob"), 1000);
  EXPECT_TRUE(quota.Reserve("alice", "sha256:a", 4000, "you hold").ok());
  EXPECT_TRUE(quota.Reserve("ci", "sha256:a", int64_t{1} << 40, "you hold").ok());
  EXPECT_TRUE(absl::IsResourceExhausted(quota.Reserve("bob", "sha256:a", 4000, "you hold").status()));
  quota.SetUserQuota("alice", 0);
  EXPECT_EQ(quota.QuotaOf("alice"), 1000);
  // No default quota: a user's own still applies.
  BlobQuota none(0, *store_, *blobs_);
  none.SetUserQuota("alice", 10);
  EXPECT_EQ(none.QuotaOf("bob"), 0);
  EXPECT_TRUE(absl::IsResourceExhausted(none.Reserve("alice", "sha256:a", 11, "you hold").status()));
}

TEST_F(BlobQuotaTest, ABlobAnOlderDroverdRecordedWithoutItsSizeCountsWithItsSizeOnDisk) {
  std::string bytes(300, 'x');
  std::string digest = archive::Sha256Digest(bytes);
  auto upload = blobs_->StartUpload(digest, 300);
  ASSERT_TRUE(upload.ok());
  ASSERT_TRUE((*upload)->Append(bytes).ok());
  ASSERT_TRUE((*upload)->Commit().ok());
  Hold(digest, "alice", -1);
  Hold("sha256:gone-since", "alice", -1);  // no longer on disk: counts nothing
  BlobQuota quota(1000, *store_, *blobs_);
  EXPECT_EQ(*quota.Held("alice"), 300);
  absl::StatusOr<BlobQuota::Reservation> refused = quota.Reserve("alice", "sha256:c", 701, "you hold");
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_TRUE(quota.Reserve("alice", "sha256:c", 700, "you hold").ok());
}

}  // namespace
}  // namespace drover::server
