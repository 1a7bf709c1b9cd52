#include "storage/sqlite_store.h"

#include <sqlite3.h>

#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/storage/store_test_util.h"

namespace drover::storage {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<JoinToken> UseSync(Store& store, const std::string& hash, const std::string& node,
                                  absl::Time now) {
  absl::Notification done;
  absl::StatusOr<JoinToken> out = absl::UnknownError("not called");
  store.UseJoinToken(hash, node, now, [&](absl::StatusOr<JoinToken> result) {
    out = std::move(result);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

TEST_P(StoreTest, AJoinTokenIsUsedOnceBeforeItExpiresAndOnlyByItsNode) {
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  const std::string any(64, 'a'), bound(64, 'b'), revoked(64, 'c');
  {
    auto store = OpenStore();
    for (const JoinToken& token :
         {JoinToken{.hash = any, .create_time = t, .expire_time = t + absl::Hours(1)},
          JoinToken{.hash = bound, .node = "n2", .create_time = t + absl::Seconds(1),
                    .expire_time = t + absl::Hours(1)},
          JoinToken{.hash = revoked, .create_time = t + absl::Seconds(2),
                    .expire_time = t + absl::Hours(1)}}) {
      ASSERT_TRUE(Sync([&](auto done) { store->PutJoinToken(token, std::move(done)); }).ok());
    }
    EXPECT_EQ(Sync([&](auto done) { store->PutJoinToken({.hash = any}, std::move(done)); }).code(),
              absl::StatusCode::kAlreadyExists);
    EXPECT_TRUE(Sync([&](auto done) { store->RevokeJoinTokens("cccccccc", std::move(done)); }).ok());
    EXPECT_EQ(Sync([&](auto done) { store->RevokeJoinTokens("dddddddd", std::move(done)); }).code(),
              absl::StatusCode::kNotFound);
    EXPECT_EQ(Sync([&](auto done) { store->RevokeJoinTokens("ab", std::move(done)); }).code(),
              absl::StatusCode::kInvalidArgument);
  }
  auto store = OpenStore();  // what is stored survives a restart
  EXPECT_EQ(UseSync(*store, any, "n1", t + absl::Hours(2)).status().code(),
            absl::StatusCode::kFailedPrecondition);  // expired
  EXPECT_EQ(UseSync(*store, std::string(64, 'e'), "n1", t).status().code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<JoinToken> used = UseSync(*store, any, "n1", t + absl::Minutes(1));
  ASSERT_TRUE(used.ok()) << used.status();
  absl::StatusOr<JoinToken> again = UseSync(*store, any, "n9", t + absl::Minutes(2));
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.status().message(), HasSubstr("already used (by node 'n1')"));
  absl::StatusOr<JoinToken> other = UseSync(*store, bound, "n1", t + absl::Minutes(1));
  EXPECT_THAT(other.status().message(), HasSubstr("is for node 'n2'"));
  EXPECT_TRUE(UseSync(*store, bound, "n2", t + absl::Minutes(1)).ok());
  EXPECT_THAT(UseSync(*store, revoked, "n1", t).status().message(), HasSubstr("revoked"));

  absl::StatusOr<std::vector<JoinToken>> tokens = store->LoadJoinTokens();
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ(tokens->size(), 3u);
  EXPECT_EQ((*tokens)[0].hash, revoked);  // newest first
  EXPECT_TRUE((*tokens)[0].revoked);
  EXPECT_EQ((*tokens)[2].used_by, "n1");
  EXPECT_EQ((*tokens)[2].used_time, t + absl::Minutes(1));
}

TEST_P(StoreTest, NodeCertificatesAreRecordedOnceAndRevokedByNode) {
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  auto store = OpenStore();
  for (const NodeCertificateRecord& record :
       {NodeCertificateRecord{.fingerprint = "f1", .node = "n1", .not_after = t, .recorded = t},
        NodeCertificateRecord{.fingerprint = "f2", .node = "n1", .recorded = t},
        NodeCertificateRecord{.fingerprint = "f3", .node = "n2", .recorded = t},
        NodeCertificateRecord{.fingerprint = "f1", .node = "n9", .recorded = t}}) {
    ASSERT_TRUE(Sync([&](auto done) { store->PutNodeCertificate(record, std::move(done)); }).ok());
  }
  ASSERT_TRUE(Sync([&](auto done) {
                store->RevokeNodeCertificates("n1", t + absl::Seconds(5), std::move(done));
              }).ok());
  absl::StatusOr<std::vector<NodeCertificateRecord>> records = store->LoadNodeCertificates();
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 3u);
  EXPECT_EQ((*records)[0].node, "n1");  // f1 kept as first recorded
  EXPECT_EQ((*records)[0].revoked, t + absl::Seconds(5));
  EXPECT_EQ((*records)[1].revoked, t + absl::Seconds(5));
  EXPECT_EQ((*records)[2].fingerprint, "f3");
  EXPECT_EQ((*records)[2].revoked, absl::UnixEpoch());
}


TEST_P(StoreTest, UsersAreFoundByTheirTokenHashUntilRevoked) {
  auto store = OpenStore();
  UserRecord record;
  record.user.set_name("alice");
  record.user.set_role(v1::User::USER);
  record.token_sha256 = "sha256:aaaa";
  ASSERT_TRUE(Sync([&](auto done) { store->CreateUser(record, std::move(done)); }).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(
      Sync([&](auto done) { store->CreateUser(record, std::move(done)); })));
  absl::StatusOr<v1::User> found = store->FindUserByToken("sha256:aaaa");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->name(), "alice");
  EXPECT_TRUE(absl::IsNotFound(store->FindUserByToken("sha256:bbbb").status()));

  absl::Notification revoked;
  store->SetUserToken("alice", "", [&](absl::StatusOr<v1::User> user) {
    EXPECT_TRUE(user.ok() && user->revoked());
    revoked.Notify();
  });
  revoked.WaitForNotification();
  EXPECT_TRUE(absl::IsNotFound(store->FindUserByToken("sha256:aaaa").status()));
  absl::StatusOr<std::vector<v1::User>> users = store->LoadUsers();
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 1u);
  EXPECT_TRUE((*users)[0].revoked());

  absl::Notification missing;
  store->SetUserToken("nobody", "sha256:cccc", [&](absl::StatusOr<v1::User> user) {
    EXPECT_TRUE(absl::IsNotFound(user.status()));
    missing.Notify();
  });
  missing.WaitForNotification();
}

TEST_P(StoreTest, AUsersOwnBlobQuotaIsKeptAndLeavesTheirTokenAlone) {
  auto store = OpenStore();
  UserRecord record;
  record.user.set_name("alice");
  record.user.set_role(v1::User::USER);
  record.token_sha256 = "sha256:aaaa";
  ASSERT_TRUE(Sync([&](auto done) { store->CreateUser(record, std::move(done)); }).ok());
  absl::Notification set;
  store->SetUserBlobQuota("alice", 5000, [&](absl::StatusOr<v1::User> user) {
    EXPECT_TRUE(user.ok() && user->blob_quota_bytes() == 5000) << user.status();
    set.Notify();
  });
  set.WaitForNotification();
  absl::StatusOr<v1::User> found = store->FindUserByToken("sha256:aaaa");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->blob_quota_bytes(), 5000);
  EXPECT_FALSE(found->revoked());
  absl::Notification missing;
  store->SetUserBlobQuota("nobody", 1, [&](absl::StatusOr<v1::User> user) {
    EXPECT_TRUE(absl::IsNotFound(user.status())) << user.status();
    missing.Notify();
  });
  missing.WaitForNotification();
}

TEST_P(StoreTest, BlobUploadersAreRemembered) {
  auto store = OpenStore();
  ASSERT_TRUE(Sync([&](auto done) { store->AddBlobUploader("sha256:d", "alice", 10, std::move(done)); }).ok());
  ASSERT_TRUE(Sync([&](auto done) { store->AddBlobUploader("sha256:d", "alice", 10, std::move(done)); }).ok());
  EXPECT_TRUE(*store->IsBlobUploader("sha256:d", "alice"));
  EXPECT_FALSE(*store->IsBlobUploader("sha256:d", "bob"));
}

TEST_P(StoreTest, WhatAUserHoldsCountsEachBlobOnceAndGoesWhenTheBlobIsForgotten) {
  auto store = OpenStore();
  auto add = [&](std::string digest, std::string user, int64_t size) {
    ASSERT_TRUE(Sync([&](auto done) {
                  store->AddBlobUploader(digest, user, size, std::move(done));
                }).ok());
  };
  add("sha256:a", "alice", 100);
  add("sha256:a", "alice", 100);  // the same snapshot submitted twice
  add("sha256:b", "alice", 20);
  add("sha256:a", "bob", 100);    // both hold it
  absl::StatusOr<BlobHoldings> alice = store->BlobHoldingsOf("alice");
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->bytes, 120);
  EXPECT_TRUE(alice->unsized.empty());
  EXPECT_EQ(store->BlobHoldingsOf("carol")->bytes, 0);

  ASSERT_TRUE(Sync([&](auto done) { store->ForgetBlobs({"sha256:a"}, std::move(done)); }).ok());
  EXPECT_EQ(store->BlobHoldingsOf("alice")->bytes, 20);
  EXPECT_EQ(store->BlobHoldingsOf("bob")->bytes, 0);
  EXPECT_FALSE(*store->IsBlobUploader("sha256:a", "alice"));
  EXPECT_TRUE(*store->IsBlobUploader("sha256:b", "alice"));
}

TEST_F(SqliteStoreTest, BlobsRecordedBeforeSchema9AreHeldWithoutASizeUntilRecordedAgain) {
  { auto store = OpenStore(); }
  // What a droverd of schema version 8 left behind: holders without sizes.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE blob_uploaders; "
                         "CREATE TABLE blob_uploaders (digest TEXT NOT NULL, user TEXT NOT NULL, "
                         "PRIMARY KEY (digest, user)) WITHOUT ROWID; "
                         "INSERT INTO blob_uploaders VALUES ('sha256:old', 'alice'); "
                         "DROP TABLE leader_lease; DROP TABLE sweep_trials; DROP TABLE sweeps; "
                         "PRAGMA user_version = 8",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<BlobHoldings> alice = store->BlobHoldingsOf("alice");
  ASSERT_TRUE(alice.ok()) << alice.status();
  EXPECT_EQ(alice->bytes, 0);
  EXPECT_THAT(alice->unsized, ::testing::ElementsAre("sha256:old"));
  // Held again with its size (uploaded again): the size is recorded.
  ASSERT_TRUE(Sync([&](auto done) { store->AddBlobUploader("sha256:old", "alice", 7, std::move(done)); }).ok());
  alice = store->BlobHoldingsOf("alice");
  EXPECT_EQ(alice->bytes, 7);
  EXPECT_TRUE(alice->unsized.empty());
}

}  // namespace
}  // namespace drover::storage
