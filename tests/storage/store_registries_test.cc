#include "storage/sqlite_store.h"

#include <sqlite3.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "tests/storage/store_test_util.h"

namespace drover::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

v1::Image NewImage(const std::string& name, char hex) {
  v1::Image image;
  image.set_name(name);
  image.set_digest("sha256:" + std::string(64, hex));
  image.set_size(1234);
  *image.mutable_create_time() = google::protobuf::util::TimeUtil::SecondsToTimestamp(1700000000);
  return image;
}

TEST_P(StoreTest, ImageRegistrationsSurviveAReopenReplaceByNameAndDelete) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(Sync([&](auto done) { store->PutImage(NewImage("busybox", 'a'), std::move(done)); }).ok());
    ASSERT_TRUE(Sync([&](auto done) { store->PutImage(NewImage("team/train:1.0", 'b'), std::move(done)); }).ok());
    ASSERT_TRUE(Sync([&](auto done) { store->PutImage(NewImage("busybox", 'c'), std::move(done)); }).ok());
    ASSERT_TRUE(Sync([&](auto done) { store->PutImage(NewImage("old", 'd'), std::move(done)); }).ok());
    ASSERT_TRUE(Sync([&](auto done) { store->DeleteImage("old", std::move(done)); }).ok());
  }
  auto store = OpenStore();
  absl::StatusOr<std::vector<v1::Image>> images = store->LoadImages();
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_EQ(images->size(), 2u);
  EXPECT_EQ((*images)[0].name(), "busybox");
  EXPECT_EQ((*images)[0].digest(), "sha256:" + std::string(64, 'c'));
  EXPECT_EQ((*images)[0].size(), 1234);
  EXPECT_EQ((*images)[1].name(), "team/train:1.0");
  EXPECT_EQ((*images)[1].digest(), "sha256:" + std::string(64, 'b'));
}


v1::Datastore NewRcloneDatastore(const std::string& name) {
  v1::Datastore datastore;
  datastore.set_name(name);
  datastore.set_type(v1::Datastore::RCLONE);
  datastore.set_path("bucket/prefix");
  (*datastore.mutable_rclone_options())["type"] = "s3";
  (*datastore.mutable_rclone_options())["access_key_id"] = "AKIA1";
  (*datastore.mutable_rclone_options())["secret_access_key"] = "s3cr3t";
  datastore.add_secret_keys("access_key_id");
  datastore.set_allow_write(true);
  return datastore;
}

TEST_P(StoreTest, DatastoresSurviveAReopenWithTheirCredentials) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutDatastore(NewRcloneDatastore("s3"), false, std::move(done));
                }).ok());
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutDatastore(NewHostpathDatastore("imagenet", "/data/imagenet"), false,
                                      std::move(done));
                }).ok());
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutDatastore(NewHostpathDatastore("old", "/data/old"), false,
                                      std::move(done));
                }).ok());
    ASSERT_TRUE(Sync([&](auto done) { store->DeleteDatastore("old", std::move(done)); }).ok());
  }
  auto store = OpenStore();
  absl::StatusOr<std::vector<v1::Datastore>> datastores = store->LoadDatastores();
  ASSERT_TRUE(datastores.ok()) << datastores.status();
  ASSERT_EQ(datastores->size(), 2u);
  EXPECT_EQ((*datastores)[0].name(), "imagenet");
  EXPECT_EQ((*datastores)[0].path(), "/data/imagenet");
  EXPECT_EQ((*datastores)[0].create_time().seconds(), 1700000000);
  const v1::Datastore& s3 = (*datastores)[1];
  EXPECT_EQ(s3.name(), "s3");
  EXPECT_EQ(s3.type(), v1::Datastore::RCLONE);
  EXPECT_EQ(s3.rclone_options().at("secret_access_key"), "s3cr3t");
  EXPECT_THAT(s3.secret_keys(), ElementsAre("access_key_id"));
  EXPECT_TRUE(s3.allow_write());
}


TEST_F(SealedStoreTest, DatastoreCredentialsAreSealedAndOldClearOnesSealedAtOpen) {
  {
    // Stored in clear, as droverd did before it sealed them.
    auto store = OpenStore();
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutDatastore(NewRcloneDatastore("old"), false, std::move(done));
                }).ok());
  }
  ASSERT_THAT(DatabaseBytes(DbPath()), HasSubstr("s3cr3t"));
  {
    auto store = OpenSealed(&box_);
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutDatastore(NewRcloneDatastore("new"), false, std::move(done));
                }).ok());
    absl::StatusOr<std::vector<v1::Datastore>> datastores = store->LoadDatastores();
    ASSERT_TRUE(datastores.ok()) << datastores.status();
    ASSERT_EQ(datastores->size(), 2u);
    for (const v1::Datastore& d : *datastores) {
      EXPECT_EQ(d.rclone_options().at("secret_access_key"), "s3cr3t") << d.name();
      EXPECT_EQ(d.rclone_options().at("type"), "s3") << d.name();
    }
  }
  // A checkpoint writes the WAL back: no copy of the old clear value stays in either file.
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE); VACUUM;", nullptr, nullptr,
                           nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  std::string bytes = DatabaseBytes(DbPath());
  EXPECT_THAT(bytes, Not(HasSubstr("s3cr3t")));
  EXPECT_THAT(bytes, Not(HasSubstr("AKIA1")));

  // Under another key the credentials cannot be read, and the error names both keys.
  SecretBox other = *SecretBox::FromKey(std::string(32, 'z'));
  auto wrong = OpenSealed(&other);
  absl::StatusOr<std::vector<v1::Datastore>> refused = wrong->LoadDatastores();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr(box_.key_id()));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("datastore 'new'"));
}

TEST_P(StoreTest, PutDatastoreReplacesOnlyWhenAsked) {
  auto store = OpenStore();
  ASSERT_TRUE(Sync([&](auto done) {
                store->PutDatastore(NewHostpathDatastore("data", "/data/a"), false,
                                    std::move(done));
              }).ok());
  absl::Status taken = Sync([&](auto done) {
    store->PutDatastore(NewHostpathDatastore("data", "/data/b"), false, std::move(done));
  });
  EXPECT_EQ(taken.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(std::string(taken.message()), HasSubstr("datastore 'data' already exists"));
  absl::StatusOr<std::vector<v1::Datastore>> datastores = store->LoadDatastores();
  ASSERT_TRUE(datastores.ok()) << datastores.status();
  ASSERT_EQ(datastores->size(), 1u);
  EXPECT_EQ((*datastores)[0].path(), "/data/a");

  ASSERT_TRUE(Sync([&](auto done) {
                store->PutDatastore(NewHostpathDatastore("data", "/data/b"), true,
                                    std::move(done));
              }).ok());
  datastores = store->LoadDatastores();
  ASSERT_TRUE(datastores.ok()) << datastores.status();
  ASSERT_EQ(datastores->size(), 1u);
  EXPECT_EQ((*datastores)[0].path(), "/data/b");
  // Deleting a name that is not stored changes nothing and is not an error.
  EXPECT_TRUE(Sync([&](auto done) { store->DeleteDatastore("nothing", std::move(done)); }).ok());
}

TEST_F(SqliteStoreTest, ADatabaseFromBeforeDatastoresGainsTheTableAndKeepsItsImages) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(Sync([&](auto done) { store->PutImage(NewImage("busybox", 'a'), std::move(done)); }).ok());
  }
  // What a droverd of schema version 3 left behind.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE datastores; DROP TABLE node_admin; "
                         "DROP TABLE node_loss_pause; DROP TABLE node_loss_pause_nodes; "
                         "DROP TABLE users; DROP TABLE blob_uploaders; DROP INDEX jobs_by_owner; "
                         "ALTER TABLE jobs DROP COLUMN owner; "
                         "DROP TABLE join_tokens; DROP TABLE node_certificates; DROP TABLE audit; "
                         "DROP TABLE leader_lease; DROP TABLE sweep_trials; DROP TABLE sweeps; "
                         "PRAGMA user_version = 3",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<v1::Image>> images = store->LoadImages();
  ASSERT_TRUE(images.ok()) << images.status();
  ASSERT_EQ(images->size(), 1u);
  absl::StatusOr<std::vector<v1::Datastore>> datastores = store->LoadDatastores();
  ASSERT_TRUE(datastores.ok()) << datastores.status();
  EXPECT_TRUE(datastores->empty());
  ASSERT_TRUE(Sync([&](auto done) {
                store->PutDatastore(NewHostpathDatastore("data", "/data"), false,
                                    std::move(done));
              }).ok());
}

}  // namespace
}  // namespace drover::storage
