#include "storage/log_store.h"

#include <atomic>
#include <string>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fail_file_writes.h"
#include "tests/testing/subprocess.h"

namespace drover::storage {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<int64_t> AppendSync(LogStore& logs, const LogStreamKey& key, int64_t offset,
                                   const std::string& data) {
  absl::Notification done;
  absl::StatusOr<int64_t> out = absl::UnknownError("not called");
  logs.Append(key, offset, data, [&](absl::StatusOr<int64_t> stored) {
    out = std::move(stored);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

class LogStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto logs = LogStore::Open(dir_.path() + "/logs",
                               {.on_write_error = [this](absl::string_view, WriteError) {
                                  ++refused_;
                                },
                                .sync = [this](int fd) {
                                  if (fail_sync_) {
                                    errno = EIO;
                                    return -1;
                                  }
                                  return fdatasync(fd);
                                }});
    ASSERT_TRUE(logs.ok()) << logs.status();
    logs_ = *std::move(logs);
  }
  std::string Stored() { return *logs_->Read(key_, 0, 1 << 20); }

  testing::TempDir dir_;
  std::atomic<bool> fail_sync_ = false;
  std::atomic<int> refused_ = 0;
  std::unique_ptr<LogStore> logs_;
  const LogStreamKey key_{"j-1", 1, 0, v1::STDOUT};
};

TEST_F(LogStoreTest, FailedFsyncIsNotAcknowledgedAndTheFileIsCutBack) {
  ASSERT_EQ(*AppendSync(*logs_, key_, 0, "one\n"), 4);
  fail_sync_ = true;
  absl::StatusOr<int64_t> refused = AppendSync(*logs_, key_, 4, "two\n");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr(dir_.path() + "/logs"));
  EXPECT_EQ(refused_, 1);
  // Only what was durable counts: the agent resends from there.
  EXPECT_EQ(logs_->Size(key_), 4);
  EXPECT_EQ(Stored(), "one\n");
  fail_sync_ = false;
  ASSERT_EQ(*AppendSync(*logs_, key_, 4, "two\n"), 8);
  EXPECT_EQ(Stored(), "one\ntwo\n");
}

TEST_F(LogStoreTest, RefusedWriteIsNotAcknowledgedAndTheResendIsStoredOnce) {
  ASSERT_EQ(*AppendSync(*logs_, key_, 0, "one\n"), 4);
  {
    testing::FailFileWrites disk_refuses;
    absl::StatusOr<int64_t> refused = AppendSync(*logs_, key_, 4, "two\n");
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
    // A chunk after the refused one would leave a gap.
    EXPECT_EQ(AppendSync(*logs_, key_, 8, "three\n").status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  ASSERT_EQ(*AppendSync(*logs_, key_, 4, "two\n"), 8);
  ASSERT_EQ(*AppendSync(*logs_, key_, 4, "two\nthree\n"), 14);
  EXPECT_EQ(Stored(), "one\ntwo\nthree\n");
}

}  // namespace
}  // namespace drover::storage
