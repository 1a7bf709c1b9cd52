// What the store tests share (tests/storage/store_*_test.cc and sqlite_store_test.cc, one
// binary): jobs and registrations to store, blocking forms of the asynchronous writes, and
// the fixtures. The fixtures live here, not in each file, because GoogleTest wants every
// test of a suite to use one fixture class.
//
// `StoreTest` is the conformance suite: each of its tests runs once per engine (SQLite, and
// PostgreSQL on a throw-away server this process starts, tests/testing/postgres_server.h),
// on a fresh database. `SqliteStoreTest` and `SealedStoreTest` hold what only SQLite has
// (its file, its WAL, its old schema versions).
#ifndef DROVER_TESTS_STORAGE_STORE_TEST_UTIL_H_
#define DROVER_TESTS_STORAGE_STORE_TEST_UTIL_H_

#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/notification.h"
#include "common/pki/secret_box.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "storage/postgres_store.h"
#include "storage/sqlite_store.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/temp_dir.h"

namespace drover::storage {

inline v1::Job NewJob(absl::string_view experiment = "default", absl::string_view key = "") {
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
inline absl::StatusOr<CreateJobResult> CreateSync(Store& store, v1::Job job) {
  absl::Notification done;
  absl::StatusOr<CreateJobResult> out = absl::UnknownError("not called");
  store.CreateJob(std::move(job), [&](absl::StatusOr<CreateJobResult> result) {
    out = std::move(result);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

inline absl::StatusOr<v1::Job> UpdateSync(
    Store& store, const std::string& id, int64_t version, v1::JobStatus status,
    Store::Durability durability = Store::Durability::kFlushed) {
  absl::Notification done;
  absl::StatusOr<v1::Job> out = absl::UnknownError("not called");
  store.UpdateJobStatus(id, version, std::move(status), durability,
                        [&](absl::StatusOr<v1::Job> result) {
    out = std::move(result);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

inline absl::StatusOr<v1::Job> UpdateTagsSync(Store& store, const std::string& id,
                                              JobTagUpdate update) {
  absl::Notification done;
  absl::StatusOr<v1::Job> out = absl::UnknownError("not called");
  store.UpdateJobTags(id, std::move(update), [&](absl::StatusOr<v1::Job> result) {
    out = std::move(result);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

inline absl::Status Sync(absl::AnyInvocable<void(Store::DoneCallback)> write) {
  absl::Notification done;
  absl::Status out = absl::UnknownError("not called");
  write([&](absl::Status status) {
    out = status;
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

inline v1::Datastore NewHostpathDatastore(const std::string& name, const std::string& path) {
  v1::Datastore datastore;
  datastore.set_name(name);
  datastore.set_type(v1::Datastore::HOSTPATH);
  datastore.set_path(path);
  *datastore.mutable_create_time() =
      google::protobuf::util::TimeUtil::SecondsToTimestamp(1700000000);
  return datastore;
}

// The database file and its WAL as bytes: what a copy of drover.db would give away.
inline std::string DatabaseBytes(const std::string& db_path) {
  std::string out;
  for (const std::string& path : {db_path, db_path + "-wal"}) {
    std::ifstream in(path, std::ios::binary);
    out.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return out;
}

// The engines of the conformance suite.
enum class Engine { kSqlite, kPostgres };

// A store on a fresh database of the engine the test runs for, opened by each test as often
// as it likes (a reopen sees what was committed before). For PostgreSQL, SetUp fails the
// test (never skips it) when the test server cannot start, saying which package to install.
class StoreTest : public ::testing::TestWithParam<Engine> {
 protected:
  void SetUp() override;  // store_engines.cc
  // The store, or null after a failed expectation naming the error.
  std::unique_ptr<Store> OpenStore(const SecretBox* secrets = nullptr);
  // The stored jobs and datastores as the engine keeps them (what a copy of the database
  // would give away), with printable text as it is.
  std::string BytesAtRest();
  testing::TempDir dir_;
  testing::PostgresServer* server_ = nullptr;  // PostgreSQL: the process's test server
  std::string database_;                       // PostgreSQL: the test's own database
  std::string conninfo_;                       // its URI
  SecretBox box_ = *SecretBox::FromKey(std::string(32, 'k'));
};

// A store in a fresh folder (`dir_`), opened by each test as often as it likes.
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

// The same, with secrets sealed under `box_` (OpenSealed) or not (OpenStore).
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

}  // namespace drover::storage

#endif  // DROVER_TESTS_STORAGE_STORE_TEST_UTIL_H_
