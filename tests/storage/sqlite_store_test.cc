#include "storage/sqlite_store.h"

#include <sqlite3.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "storage/sqlite_schema.h"
#include "tests/testing/fail_file_writes.h"
#include "tests/testing/subprocess.h"

namespace drover::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

v1::Job NewJob(absl::string_view experiment = "default", absl::string_view key = "") {
  v1::Job job;
  job.mutable_spec()->set_entry_script("train.py");
  job.mutable_spec()->set_experiment(std::string(experiment));
  job.mutable_spec()->set_idempotency_key(std::string(key));
  job.mutable_status()->set_state(v1::JobStatus::QUEUED);
  job.mutable_status()->set_version(1);
  *job.mutable_create_time() = google::protobuf::util::TimeUtil::SecondsToTimestamp(1700000000);
  return job;
}

// Blocks until the asynchronous write completes.
absl::StatusOr<CreateJobResult> CreateSync(Store& store, v1::Job job) {
  absl::Notification done;
  absl::StatusOr<CreateJobResult> out = absl::UnknownError("not called");
  store.CreateJob(std::move(job), [&](absl::StatusOr<CreateJobResult> result) {
    out = std::move(result);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

absl::StatusOr<v1::Job> UpdateSync(Store& store, const std::string& id, int64_t version,
                                   v1::JobStatus status) {
  absl::Notification done;
  absl::StatusOr<v1::Job> out = absl::UnknownError("not called");
  store.UpdateJobStatus(id, version, std::move(status), [&](absl::StatusOr<v1::Job> result) {
    out = std::move(result);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::string DbPath() const { return dir_.path() + "/drover.db"; }
  std::unique_ptr<SqliteStore> OpenStore() {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open({.path = DbPath()});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  testing::TempDir dir_;
};

TEST_F(SqliteStoreTest, AssignsIncreasingIdsAndReadsJobsBack) {
  auto store = OpenStore();
  auto first = CreateSync(*store, NewJob());
  auto second = CreateSync(*store, NewJob());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->job.id(), "j-1");
  EXPECT_EQ(second->job.id(), "j-2");
  EXPECT_TRUE(first->created);
  absl::StatusOr<v1::Job> read = store->GetJob("j-2");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->spec().entry_script(), "train.py");
  EXPECT_EQ(read->status().state(), v1::JobStatus::QUEUED);
  EXPECT_EQ(read->create_time().seconds(), 1700000000);
}

TEST_F(SqliteStoreTest, UnknownAndMalformedIdsGiveClearErrors) {
  auto store = OpenStore();
  EXPECT_EQ(store->GetJob("j-99").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetJob("bogus").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, SameIdempotencyKeyReturnsTheFirstJob) {
  auto store = OpenStore();
  auto first = CreateSync(*store, NewJob("default", "key-1"));
  auto again = CreateSync(*store, NewJob("default", "key-1"));
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->job.id(), first->job.id());
  auto page = store->ListJobs({});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->jobs.size(), 1u);
}

TEST_F(SqliteStoreTest, SameKeyWithDifferentSpecIsRefusedNamingTheKey) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSync(*store, NewJob("a", "key-1")).ok());
  auto other = CreateSync(*store, NewJob("b", "key-1"));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(other.status().message(), HasSubstr("spec.idempotency_key"));
  EXPECT_THAT(other.status().message(), HasSubstr("j-1"));
}

TEST_F(SqliteStoreTest, DuplicateKeysInOneBatchStillMakeOneJob) {
  auto store = OpenStore();
  constexpr int kWrites = 200;
  std::atomic<int> remaining{kWrites};
  std::atomic<int> created{0};
  absl::Notification done;
  std::vector<std::string> ids(kWrites);
  for (int i = 0; i < kWrites; ++i) {
    store->CreateJob(NewJob("default", absl::StrCat("key-", i % 10)),
                     [&, i](absl::StatusOr<CreateJobResult> result) {
                       ASSERT_TRUE(result.ok()) << result.status();
                       ids[i] = result->job.id();
                       if (result->created) created++;
                       if (--remaining == 0) done.Notify();
                     });
  }
  done.WaitForNotification();
  EXPECT_EQ(created.load(), 10);
  for (int i = 10; i < kWrites; ++i) EXPECT_EQ(ids[i], ids[i % 10]);
}

TEST_F(SqliteStoreTest, ConcurrentWritesShareCommits) {
  auto store = OpenStore();
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
    });
  }
  for (auto& t : threads) t.join();
  SqliteStore::Stats stats = store->stats();
  EXPECT_EQ(stats.writes, kThreads * kPerThread);
  // With 8 writers waiting on each other's fsync, batches form: fewer commits than writes.
  EXPECT_LT(stats.commits, stats.writes);
}

TEST_F(SqliteStoreTest, StatusUpdateIsCompareAndSet) {
  auto store = OpenStore();
  auto created = CreateSync(*store, NewJob());
  ASSERT_TRUE(created.ok());
  v1::JobStatus canceled;
  canceled.set_state(v1::JobStatus::CANCELED);
  canceled.set_version(2);
  auto updated = UpdateSync(*store, "j-1", 1, canceled);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->status().state(), v1::JobStatus::CANCELED);
  EXPECT_EQ(updated->spec().entry_script(), "train.py");
  auto stale = UpdateSync(*store, "j-1", 1, canceled);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(UpdateSync(*store, "j-7", 1, canceled).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SqliteStoreTest, ListsNewestFirstWithFiltersAndPages) {
  auto store = OpenStore();
  for (int i = 0; i < 7; ++i) {
    v1::Job job = NewJob(i % 2 == 0 ? "even" : "odd");
    if (i == 3) (*job.mutable_spec()->mutable_tags())["team"] = "vision";
    if (i == 4) (*job.mutable_spec()->mutable_tags())["team"] = "nlp";
    ASSERT_TRUE(CreateSync(*store, job).ok());
  }
  auto ids = [](const ListJobsPage& page) {
    std::vector<std::string> out;
    for (const auto& job : page.jobs) out.push_back(job.id());
    return out;
  };
  auto first = store->ListJobs({.page_size = 3});
  ASSERT_TRUE(first.ok());
  EXPECT_THAT(ids(*first), ElementsAre("j-7", "j-6", "j-5"));
  auto second = store->ListJobs({.page_size = 3, .before_sequence = first->next_before_sequence});
  EXPECT_THAT(ids(*second), ElementsAre("j-4", "j-3", "j-2"));
  auto last = store->ListJobs({.page_size = 3, .before_sequence = second->next_before_sequence});
  EXPECT_THAT(ids(*last), ElementsAre("j-1"));
  EXPECT_EQ(last->next_before_sequence, 0);

  EXPECT_THAT(ids(*store->ListJobs({.experiment = "odd"})), ElementsAre("j-6", "j-4", "j-2"));
  EXPECT_THAT(ids(*store->ListJobs({.tag_key = "team"})), ElementsAre("j-5", "j-4"));
  EXPECT_THAT(ids(*store->ListJobs({.tag_key = "team", .tag_value = "nlp"})), ElementsAre("j-5"));

  v1::JobStatus canceled;
  canceled.set_state(v1::JobStatus::CANCELED);
  canceled.set_version(2);
  ASSERT_TRUE(UpdateSync(*store, "j-2", 1, canceled).ok());
  EXPECT_THAT(ids(*store->ListJobs({.states = {v1::JobStatus::CANCELED}})), ElementsAre("j-2"));
}

TEST_F(SqliteStoreTest, ReopenResumesExactlyTheUnfinishedJobs) {
  {
    auto store = OpenStore();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
    v1::JobStatus canceled;
    canceled.set_state(v1::JobStatus::CANCELED);
    canceled.set_version(2);
    ASSERT_TRUE(UpdateSync(*store, "j-2", 1, canceled).ok());
  }
  auto store = OpenStore();
  auto unfinished = store->LoadUnfinishedJobs();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 2u);
  EXPECT_EQ((*unfinished)[0].id(), "j-1");
  EXPECT_EQ((*unfinished)[1].id(), "j-3");
  // Ids keep growing after a restart.
  EXPECT_EQ(CreateSync(*store, NewJob())->job.id(), "j-4");
}

absl::Status Sync(absl::AnyInvocable<void(Store::DoneCallback)> write) {
  absl::Notification done;
  absl::Status out = absl::UnknownError("not called");
  write([&](absl::Status status) {
    out = status;
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

v1::Image NewImage(const std::string& name, char hex) {
  v1::Image image;
  image.set_name(name);
  image.set_digest("sha256:" + std::string(64, hex));
  image.set_size(1234);
  *image.mutable_create_time() = google::protobuf::util::TimeUtil::SecondsToTimestamp(1700000000);
  return image;
}

TEST_F(SqliteStoreTest, ImageRegistrationsSurviveAReopenReplaceByNameAndDelete) {
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

v1::Datastore NewHostpathDatastore(const std::string& name, const std::string& path) {
  v1::Datastore datastore;
  datastore.set_name(name);
  datastore.set_type(v1::Datastore::HOSTPATH);
  datastore.set_path(path);
  *datastore.mutable_create_time() =
      google::protobuf::util::TimeUtil::SecondsToTimestamp(1700000000);
  return datastore;
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

TEST_F(SqliteStoreTest, DatastoresSurviveAReopenWithTheirCredentials) {
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

// The database file and its WAL as bytes: what a copy of drover.db would give away.
std::string DatabaseBytes(const std::string& db_path) {
  std::string out;
  for (const std::string& path : {db_path, db_path + "-wal"}) {
    std::ifstream in(path, std::ios::binary);
    out.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return out;
}

class SealedStoreTest : public SqliteStoreTest {
 protected:
  std::unique_ptr<SqliteStore> OpenSealed(const SecretBox* box) {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store =
        SqliteStore::Open({.path = DbPath(), .secrets = box});
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  SecretBox box_ = *SecretBox::FromKey(std::string(32, 'k'));
};

TEST_F(SealedStoreTest, SecretEnvironmentValuesAreSealedAtRestAndReadBackInClear) {
  v1::Job job = NewJob("default", "key-1");
  auto& env = *job.mutable_spec()->mutable_environment()->mutable_env();
  env["API_TOKEN"] = "tok-9f8e7d6c5b4a";
  env["PLAIN"] = "visible-value-1234";
  job.mutable_spec()->mutable_environment()->add_secret_env("API_TOKEN");
  std::string id;
  {
    auto store = OpenSealed(&box_);
    absl::StatusOr<CreateJobResult> created = CreateSync(*store, job);
    ASSERT_TRUE(created.ok()) << created.status();
    id = created->job.id();
    EXPECT_EQ(created->job.spec().environment().env().at("API_TOKEN"), "tok-9f8e7d6c5b4a");
    // The same submit again (a retried call) is the same job, though its stored bytes differ.
    absl::StatusOr<CreateJobResult> again = CreateSync(*store, job);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_FALSE(again->created);
    EXPECT_EQ(again->job.id(), id);
    EXPECT_EQ(again->job.spec().environment().env().at("API_TOKEN"), "tok-9f8e7d6c5b4a");
    // Another spec under the key is still refused.
    v1::Job different = job;
    (*different.mutable_spec()->mutable_environment()->mutable_env())["API_TOKEN"] = "other";
    EXPECT_EQ(CreateSync(*store, different).status().code(), absl::StatusCode::kAlreadyExists);
  }
  std::string bytes = DatabaseBytes(DbPath());
  EXPECT_THAT(bytes, Not(HasSubstr("tok-9f8e7d6c5b4a")));
  EXPECT_THAT(bytes, HasSubstr("visible-value-1234")) << "only secret values are sealed";
  auto store = OpenSealed(&box_);
  absl::StatusOr<v1::Job> read = store->GetJob(id);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->spec().environment().env().at("API_TOKEN"), "tok-9f8e7d6c5b4a");
  absl::StatusOr<std::vector<v1::Job>> unfinished = store->LoadUnfinishedJobs();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status();
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ((*unfinished)[0].spec().environment().env().at("API_TOKEN"), "tok-9f8e7d6c5b4a");
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

TEST_F(SqliteStoreTest, PutDatastoreReplacesOnlyWhenAsked) {
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

TEST_F(SqliteStoreTest, NodeCordonsAndDrainsSurviveAReopenAndUncordonRemovesThem) {
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  {
    auto store = OpenStore();
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutNodeAdminState({.node = "n1", .reason = "disk check", .set_time = t},
                                           std::move(done));
                }).ok());
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutNodeAdminState({.node = "n2", .draining = true, .set_time = t},
                                           std::move(done));
                }).ok());
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutNodeAdminState({.node = "n3", .reason = "bios", .set_time = t},
                                           std::move(done));
                }).ok());
    // A second change of n1 replaces the first; an uncordon removes n3.
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutNodeAdminState(
                      {.node = "n1", .draining = true, .reason = "swap disk", .set_time = t},
                      std::move(done));
                }).ok());
    ASSERT_TRUE(Sync([&](auto done) { store->DeleteNodeAdminState("n3", std::move(done)); }).ok());
    ASSERT_TRUE(
        Sync([&](auto done) { store->DeleteNodeAdminState("nothing", std::move(done)); }).ok());
  }
  auto store = OpenStore();
  absl::StatusOr<std::vector<NodeAdminState>> states = store->LoadNodeAdminStates();
  ASSERT_TRUE(states.ok()) << states.status();
  ASSERT_EQ(states->size(), 2u);
  EXPECT_EQ((*states)[0].node, "n1");
  EXPECT_TRUE((*states)[0].draining);
  EXPECT_EQ((*states)[0].reason, "swap disk");
  EXPECT_EQ((*states)[0].set_time, t);
  EXPECT_EQ((*states)[1].node, "n2");
  EXPECT_TRUE((*states)[1].draining);
  EXPECT_EQ((*states)[1].reason, "");
}

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

TEST_F(SqliteStoreTest, AJoinTokenIsUsedOnceBeforeItExpiresAndOnlyByItsNode) {
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

TEST_F(SqliteStoreTest, NodeCertificatesAreRecordedOnceAndRevokedByNode) {
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

TEST_F(SqliteStoreTest, NodeLossPauseSurvivesAReopenUntilItIsCleared) {
  const absl::Time since = absl::FromUnixSeconds(1700000000);
  NodeLossPause pause;
  pause.paused_since = since;
  using Role = NodeLossPause::Role;
  pause.nodes.push_back({.name = "n1", .role = Role::kCounted, .last_seen = since});
  NodeLossPause::Member waiting{.name = "n2",
                                .role = Role::kWaiting,
                                .last_seen = since - absl::Seconds(11)};
  waiting.node.set_name("n2");
  waiting.node.set_state(v1::Node::DOWN);
  waiting.node.set_reason("MISSED_LEASE last_seen=2023-11-14T22:13:09Z");
  waiting.node.mutable_capacity()->set_cpus(4);
  pause.nodes.push_back(waiting);
  NodeLossPause::Member lost{.name = "n3",
                             .role = Role::kDeclaredLost,
                             .listed = false,
                             .last_seen = since - absl::Seconds(12),
                             .lost_at = since + absl::Seconds(5)};
  lost.node.set_state(v1::Node::DOWN);
  pause.nodes.push_back(lost);
  {
    auto store = OpenStore();
    absl::StatusOr<std::optional<NodeLossPause>> none = store->LoadNodeLossPause();
    ASSERT_TRUE(none.ok()) << none.status();
    EXPECT_FALSE(none->has_value());
    // The last write wins: a first pause with another node is replaced whole.
    NodeLossPause earlier;
    earlier.nodes.push_back({.name = "n9"});
    ASSERT_TRUE(Sync([&](auto done) { store->PutNodeLossPause(earlier, std::move(done)); }).ok());
    ASSERT_TRUE(Sync([&](auto done) { store->PutNodeLossPause(pause, std::move(done)); }).ok());
  }
  {
    auto store = OpenStore();
    absl::StatusOr<std::optional<NodeLossPause>> loaded = store->LoadNodeLossPause();
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    ASSERT_TRUE(loaded->has_value());
    const NodeLossPause& got = **loaded;
    EXPECT_EQ(got.paused_since, since);
    ASSERT_EQ(got.nodes.size(), 3u);
    EXPECT_EQ(got.nodes[0].name, "n1");
    EXPECT_EQ(got.nodes[0].role, Role::kCounted);
    EXPECT_EQ(got.nodes[1].name, "n2");
    EXPECT_EQ(got.nodes[1].role, Role::kWaiting);
    EXPECT_TRUE(got.nodes[1].listed);
    EXPECT_EQ(got.nodes[1].last_seen, since - absl::Seconds(11));
    EXPECT_EQ(got.nodes[1].node.reason(), "MISSED_LEASE last_seen=2023-11-14T22:13:09Z");
    EXPECT_EQ(got.nodes[1].node.capacity().cpus(), 4);
    EXPECT_EQ(got.nodes[2].role, Role::kDeclaredLost);
    EXPECT_FALSE(got.nodes[2].listed);
    EXPECT_EQ(got.nodes[2].lost_at, since + absl::Seconds(5));
    // The pause ended.
    ASSERT_TRUE(
        Sync([&](auto done) { store->PutNodeLossPause(std::nullopt, std::move(done)); }).ok());
  }
  auto store = OpenStore();
  absl::StatusOr<std::optional<NodeLossPause>> ended = store->LoadNodeLossPause();
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_FALSE(ended->has_value());
}

TEST_F(SqliteStoreTest, ADatabaseFromBeforeNodeStatesGainsTheTablesAndKeepsItsDatastores) {
  {
    auto store = OpenStore();
    ASSERT_TRUE(Sync([&](auto done) {
                  store->PutDatastore(NewHostpathDatastore("data", "/data"), false,
                                      std::move(done));
                }).ok());
  }
  // What a droverd of schema version 4 left behind.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "DROP TABLE node_admin; DROP TABLE node_loss_pause; "
                         "DROP TABLE node_loss_pause_nodes; "
                         "DROP TABLE users; DROP TABLE blob_uploaders; DROP INDEX jobs_by_owner; "
                         "ALTER TABLE jobs DROP COLUMN owner; "
                         "DROP TABLE join_tokens; DROP TABLE node_certificates; DROP TABLE audit; "
                         "PRAGMA user_version = 4",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<v1::Datastore>> datastores = store->LoadDatastores();
  ASSERT_TRUE(datastores.ok()) << datastores.status();
  EXPECT_EQ(datastores->size(), 1u);
  absl::StatusOr<std::vector<NodeAdminState>> states = store->LoadNodeAdminStates();
  ASSERT_TRUE(states.ok()) << states.status();
  EXPECT_TRUE(states->empty());
  absl::StatusOr<std::optional<NodeLossPause>> pause = store->LoadNodeLossPause();
  ASSERT_TRUE(pause.ok()) << pause.status();
  EXPECT_FALSE(pause->has_value());
  EXPECT_TRUE(Sync([&](auto done) {
                store->PutNodeAdminState({.node = "n1"}, std::move(done));
              }).ok());
}

TEST_F(SqliteStoreTest, WritesAfterCloseFailUnavailableAndQueuedOnesCommit) {
  auto store = OpenStore();
  std::atomic<int> ok{0};
  for (int i = 0; i < 50; ++i) {
    store->CreateJob(NewJob(), [&](absl::StatusOr<CreateJobResult> r) {
      if (r.ok()) ok++;
    });
  }
  store->Close();
  EXPECT_EQ(ok.load(), 50);
  auto late = CreateSync(*store, NewJob());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(SqliteStoreTest, UsesWalWithFullSyncAndTheLatestSchema) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  auto pragma = [db](const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr);
    sqlite3_step(stmt);
    std::string value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return value;
  };
  EXPECT_EQ(pragma("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(pragma("PRAGMA user_version"), absl::StrCat(LatestSchemaVersion()));
  EXPECT_EQ(pragma("PRAGMA integrity_check"), "ok");
  sqlite3_close(db);
}

TEST_F(SqliteStoreTest, RefusesADatabaseFromANewerDroverd) {
  {
    auto store = OpenStore();
  }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 999", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto store = SqliteStore::Open({.path = DbPath()});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 999"));
}

TEST_F(SqliteStoreTest, FailedMigrationLeavesTheDatabaseUntouched) {
  // A database where table `jobs` already exists but user_version is 0: migration 1 fails
  // and must roll back as a whole.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE jobs (x)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  auto store = SqliteStore::Open({.path = DbPath()});
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("schema migration 1 failed"));
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &db), SQLITE_OK);
  int tables = -1;
  sqlite3_exec(
      db, "SELECT count(*) FROM sqlite_master WHERE name = 'job_tags'",
      [](void* out, int, char** values, char**) {
        *static_cast<int*>(out) = atoi(values[0]);
        return 0;
      },
      &tables, nullptr);
  sqlite3_close(db);
  EXPECT_EQ(tables, 0);
}

TEST_F(SqliteStoreTest, RefusedWriteFailsNamingTheFolderAndTheNextOneWorks) {
  std::vector<std::string> errors;  // as droverd's metric sees them
  auto store = SqliteStore::Open(
      {.path = DbPath(), .on_write_error = [&](absl::string_view store, WriteError kind) {
         errors.push_back(absl::StrCat(store, "/", WriteErrorName(kind)));
       }});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE(CreateSync(**store, NewJob("default", "before")).ok());
  {
    testing::FailFileWrites disk_refuses;
    auto refused = CreateSync(**store, NewJob("default", "refused"));
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
    EXPECT_THAT(refused.status().message(), HasSubstr("state disk error"));
    EXPECT_THAT(refused.status().message(), HasSubstr(dir_.path()));
    auto update = UpdateSync(**store, "j-1", 1, NewJob().status());
    EXPECT_EQ(update.status().code(), absl::StatusCode::kUnavailable) << update.status();
    // Reads go on.
    EXPECT_TRUE((*store)->GetJob("j-1").ok());
  }
  EXPECT_THAT(errors, ElementsAre("database/io_error", "database/io_error"));
  // The writer and its connection went on: the next write works, with the next id.
  auto after = CreateSync(**store, NewJob("default", "after"));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->job.id(), "j-2");
  store->reset();
  auto reopened = OpenStore();
  auto page = reopened->ListJobs({});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->jobs.size(), 2u);
  EXPECT_EQ(page->jobs[0].spec().idempotency_key(), "after");
  EXPECT_EQ(page->jobs[1].spec().idempotency_key(), "before");
}

TEST_F(SqliteStoreTest, OpensAnUpToDateDatabaseWithoutWritingSoItStartsOnAFullDisk) {
  // Kept open, as a killed droverd leaves its WAL and shared memory behind.
  auto before = OpenStore();
  ASSERT_TRUE(CreateSync(*before, NewJob()).ok());
  testing::FailFileWrites disk_refuses;
  auto store = SqliteStore::Open({.path = DbPath()});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->GetJob("j-1").ok());
}

}  // namespace
}  // namespace drover::storage

namespace drover::storage {
namespace {

TEST_F(SqliteStoreTest, JobsKeepTheirOwnerAndListByOwner) {
  auto store = OpenStore();
  v1::Job alice_job = NewJob();
  alice_job.set_owner("alice");
  v1::Job bob_job = NewJob();
  bob_job.set_owner("bob");
  auto a = CreateSync(*store, alice_job);
  auto b = CreateSync(*store, bob_job);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(store->GetJob(a->job.id())->owner(), "alice");
  ListJobsQuery query;
  query.owner = "bob";
  absl::StatusOr<ListJobsPage> page = store->ListJobs(query);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->jobs.size(), 1u);
  EXPECT_EQ(page->jobs[0].id(), b->job.id());
}

TEST_F(SqliteStoreTest, AnIdempotencyKeyOfAnotherOwnerIsRefusedNotShared) {
  auto store = OpenStore();
  v1::Job first = NewJob("default", "key-1");
  first.set_owner("alice");
  ASSERT_TRUE(CreateSync(*store, first).ok());
  v1::Job second = first;
  second.set_owner("bob");
  auto other = CreateSync(*store, second);
  ASSERT_TRUE(absl::IsAlreadyExists(other.status())) << other.status();
  EXPECT_THAT(other.status().message(), ::testing::HasSubstr("another user"));
}

TEST_F(SqliteStoreTest, UsersAreFoundByTheirTokenHashUntilRevoked) {
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

TEST_F(SqliteStoreTest, BlobUploadersAreRemembered) {
  auto store = OpenStore();
  ASSERT_TRUE(Sync([&](auto done) { store->AddBlobUploader("sha256:d", "alice", 10, std::move(done)); }).ok());
  ASSERT_TRUE(Sync([&](auto done) { store->AddBlobUploader("sha256:d", "alice", 10, std::move(done)); }).ok());
  EXPECT_TRUE(*store->IsBlobUploader("sha256:d", "alice"));
  EXPECT_FALSE(*store->IsBlobUploader("sha256:d", "bob"));
}

TEST_F(SqliteStoreTest, WhatAUserHoldsCountsEachBlobOnceAndGoesWhenTheBlobIsForgotten) {
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


AuditRecord Audit(absl::Time time, std::string who, std::string method, int code = 0) {
  return {.time = time,
          .who = std::move(who),
          .who_kind = "user",
          .peer = "ipv4:127.0.0.1:5000",
          .method = std::move(method),
          .target = "j-1",
          .code = code,
          .message = code == 0 ? "" : "refused"};
}

TEST_F(SqliteStoreTest, AuditRecordsSurviveAReopenAndListNewestFirstWithFiltersAndPages) {
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  {
    auto store = OpenStore();
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(Sync([&](auto done) {
                    store->AppendAudit(Audit(t + absl::Seconds(i), i % 2 ? "bob" : "alice",
                                             i < 3 ? "/drover.v1.JobService/SubmitJob"
                                                   : "/drover.v1.JobService/CancelJob",
                                             i == 4 ? 7 : 0),
                                       std::move(done));
                  }).ok());
    }
  }
  auto store = OpenStore();  // durable: read back after a restart
  absl::StatusOr<AuditPage> all = store->ListAudit({});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->records.size(), 5u);
  EXPECT_EQ(all->records[0].time, t + absl::Seconds(4));
  EXPECT_EQ(all->records[0].code, 7);
  EXPECT_EQ(all->records[0].message, "refused");
  EXPECT_EQ(all->records[0].peer, "ipv4:127.0.0.1:5000");
  EXPECT_EQ(all->records[0].target, "j-1");
  EXPECT_GT(all->records[0].id, all->records[1].id);
  EXPECT_EQ(all->next_before_id, 0);

  absl::StatusOr<AuditPage> bobs = store->ListAudit({.who = "bob"});
  ASSERT_TRUE(bobs.ok());
  EXPECT_EQ(bobs->records.size(), 2u);
  absl::StatusOr<AuditPage> since = store->ListAudit({.since = t + absl::Seconds(3)});
  ASSERT_TRUE(since.ok());
  EXPECT_EQ(since->records.size(), 2u);
  // A method by its full name or its last part; LIKE's wildcards match nothing.
  for (const char* method : {"/drover.v1.JobService/SubmitJob", "SubmitJob", "JobService/SubmitJob"}) {
    absl::StatusOr<AuditPage> submits = store->ListAudit({.method = method});
    ASSERT_TRUE(submits.ok());
    EXPECT_EQ(submits->records.size(), 3u) << method;
  }
  for (const char* method : {"%", "_ubmitJob", "Submit", "\\"}) {
    absl::StatusOr<AuditPage> none = store->ListAudit({.method = method});
    ASSERT_TRUE(none.ok()) << method;
    EXPECT_TRUE(none->records.empty()) << method;
  }
  // Pages of two, then the rest.
  absl::StatusOr<AuditPage> first = store->ListAudit({.limit = 2});
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->records.size(), 2u);
  ASSERT_NE(first->next_before_id, 0);
  absl::StatusOr<AuditPage> second =
      store->ListAudit({.limit = 100, .before_id = first->next_before_id});
  ASSERT_TRUE(second.ok());
  ASSERT_EQ(second->records.size(), 3u);
  EXPECT_EQ(second->records[0].id, first->records[1].id - 1);
  // Hostile limits and times are clamped, not errors.
  for (int limit : {0, -1, 1 << 30}) {
    absl::StatusOr<AuditPage> page = store->ListAudit({.limit = limit});
    ASSERT_TRUE(page.ok()) << limit;
    EXPECT_FALSE(page->records.empty()) << limit;
  }
  absl::StatusOr<AuditPage> future = store->ListAudit({.since = absl::InfiniteFuture()});
  ASSERT_TRUE(future.ok());
  EXPECT_TRUE(future->records.empty());
  absl::StatusOr<AuditPage> past = store->ListAudit({.since = absl::FromUnixSeconds(-100)});
  ASSERT_TRUE(past.ok());
  EXPECT_EQ(past->records.size(), 5u);
}

TEST_F(SqliteStoreTest, AuditRetentionRemovesOldAndSurplusRecordsInBoundedSteps) {
  auto store = OpenStore();
  const absl::Time t = absl::FromUnixSeconds(1700000000);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Sync([&](auto done) {
                  store->AppendAudit(Audit(t + absl::Hours(i), "alice", "/m/M"), std::move(done));
                }).ok());
  }
  auto count = [&] {
    absl::StatusOr<AuditPage> page = store->ListAudit({.limit = 1000});
    return page.ok() ? static_cast<int>(page->records.size()) : -1;
  };
  // Older than hour 3: three records, but at most two per prune.
  ASSERT_TRUE(Sync([&](auto done) {
                store->PruneAudit(t + absl::Hours(3), 1000, 2, std::move(done));
              }).ok());
  EXPECT_EQ(count(), 8);
  ASSERT_TRUE(Sync([&](auto done) {
                store->PruneAudit(t + absl::Hours(3), 1000, 2, std::move(done));
              }).ok());
  EXPECT_EQ(count(), 7);
  // Keep the newest four, whatever their time.
  ASSERT_TRUE(Sync([&](auto done) {
                store->PruneAudit(absl::InfinitePast(), 4, 1000, std::move(done));
              }).ok());
  EXPECT_EQ(count(), 4);
  absl::StatusOr<AuditPage> left = store->ListAudit({});
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->records.back().time, t + absl::Hours(6));
  // Nothing to remove is no error; nor is keeping zero.
  ASSERT_TRUE(Sync([&](auto done) {
                store->PruneAudit(absl::InfinitePast(), 4, 1000, std::move(done));
              }).ok());
  EXPECT_EQ(count(), 4);
  ASSERT_TRUE(Sync([&](auto done) {
                store->PruneAudit(absl::InfinitePast(), 0, 1000, std::move(done));
              }).ok());
  EXPECT_EQ(count(), 0);
}

}  // namespace
}  // namespace drover::storage
