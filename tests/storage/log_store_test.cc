#include "storage/log_store.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
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
  // Closes the store and opens it again with `options`, as a restarted droverd would.
  void Reopen(LogStoreOptions options) {
    logs_.reset();
    auto logs = LogStore::Open(dir_.path() + "/logs", std::move(options));
    ASSERT_TRUE(logs.ok()) << logs.status();
    logs_ = *std::move(logs);
  }

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
  EXPECT_EQ(logs_->Received(key_), 4);
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

// Two droverds on one shared log folder (docs/operations.md#shared-data): the deposed leader
// still writes a chunk after the new leader stored it, and the new leader stores what the
// agent resends after the old one: every byte is in the stream once, in order.
TEST_F(LogStoreTest, ADeposedLeaderAndTheNewOneOnOneFolderStoreEveryChunkOnce) {
  ASSERT_EQ(*AppendSync(*logs_, key_, 0, "one\n"), 4);  // the old leader
  auto next = LogStore::Open(dir_.path() + "/logs");
  ASSERT_TRUE(next.ok()) << next.status();
  LogStore& leader = **next;
  // The agent follows the new leader and resends from what it had acknowledged.
  ASSERT_EQ(*AppendSync(leader, key_, 4, "two\n"), 8);
  // The deposed leader, not knowing, is sent the same chunk and more (its size is stale).
  ASSERT_EQ(*AppendSync(*logs_, key_, 4, "two\nthree\n"), 14);
  // The agent goes on with the new leader, which had stored up to 8.
  ASSERT_EQ(*AppendSync(leader, key_, 8, "three\nfour\n"), 19);
  EXPECT_EQ(*leader.Read(key_, 0, 1 << 20), "one\ntwo\nthree\nfour\n");
  EXPECT_EQ(leader.Received(key_), 19);
  leader.Close();
}

// A leader on a network file system that died before its file server had its last writes
// may leave a hole (zeros) below the size the next leader sees; the agent's resend from
// what was acknowledged fills it instead of being skipped.
TEST_F(LogStoreTest, AHoleLeftByADeadLeaderIsFilledByTheAgentsResend) {
  ASSERT_EQ(*AppendSync(*logs_, key_, 0, "one\n"), 4);
  logs_->Close();
  {
    int fd = ::open((dir_.path() + "/logs/j-1/1/rank-0.stdout").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "ee\n", 3, 11), 3);  // "one\n" + 7 bytes never written + "ee\n"
    ::close(fd);
  }
  Reopen({});
  ASSERT_EQ(*AppendSync(*logs_, key_, 4, "two\nthree\n"), 14);
  EXPECT_EQ(Stored(), "one\ntwo\nthree\n");
}

// The log folder may be on storage other hosts write: a link or a FIFO planted where a
// stream's file or an attempt's folder belongs is never followed nor waited on; the append
// fails naming the file, and nothing outside the folder is read, written or made.
TEST_F(LogStoreTest, ALinkOrFifoPlantedInTheFolderIsNeitherFollowedNorWaitedOn) {
  std::string outside = dir_.path() + "/outside";
  std::filesystem::create_directories(outside);
  std::ofstream(outside + "/secret") << "secret\n";
  std::filesystem::create_directories(dir_.path() + "/logs/j-1/1");
  std::filesystem::create_symlink(outside + "/secret", dir_.path() + "/logs/j-1/1/rank-0.stdout");
  ASSERT_EQ(::mkfifo((dir_.path() + "/logs/j-1/1/rank-0.stderr").c_str(), 0600), 0);
  std::filesystem::create_symlink(outside, dir_.path() + "/logs/j-2");

  absl::StatusOr<int64_t> linked = AppendSync(*logs_, key_, 0, "one\n");
  ASSERT_FALSE(linked.ok());
  EXPECT_EQ(linked.status().code(), absl::StatusCode::kUnavailable) << linked.status();
  EXPECT_THAT(std::string(linked.status().message()), HasSubstr("j-1/1/rank-0.stdout"));
  EXPECT_EQ(refused_, 0) << "a planted entry is no disk error";
  EXPECT_FALSE(logs_->Read(key_, 0, 100).ok());
  EXPECT_EQ(logs_->Received(key_), 0);
  const LogStreamKey fifo{"j-1", 1, 0, v1::STDERR};
  EXPECT_FALSE(AppendSync(*logs_, fifo, 0, "two\n").ok());  // returns: not waiting on a reader
  EXPECT_FALSE(logs_->Read(fifo, 0, 100).ok());
  EXPECT_EQ(logs_->Streams("j-1", 1).size(), 0u) << "neither is a stream";
  const LogStreamKey through{"j-2", 1, 0, v1::STDOUT};
  EXPECT_FALSE(AppendSync(*logs_, through, 0, "three\n").ok());

  std::ifstream in(outside + "/secret");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "secret\n");
  EXPECT_FALSE(std::filesystem::exists(outside + "/1")) << "a folder made through the link";
  // Retention of j-2 removes nothing through the link.
  std::ofstream(outside + "/rank-0.stdout") << "kept\n";
  EXPECT_EQ(*logs_->RemoveStreams("j-2", {v1::STDOUT}), 0);
  EXPECT_TRUE(std::filesystem::exists(outside + "/rank-0.stdout"));
}

// Descriptors this process holds now.
int OpenDescriptors() {
  int n = 0;
  std::error_code error;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", error);
       it != std::filesystem::directory_iterator(); it.increment(error)) {
    ++n;
  }
  return n;
}

bool PollUntil(const std::function<bool()>& done) {
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

TEST_F(LogStoreTest, ThousandsOfStreamsHoldFewDescriptorsAndNoneAfterTheAttemptEnded) {
  Reopen({.sync = [](int) { return 0; }, .max_open_files = 16});
  const int before = OpenDescriptors();
  constexpr int kRanks = 3000;
  for (int round = 0; round < 2; ++round) {
    for (int rank = 0; rank < kRanks; ++rank) {
      LogStreamKey key{"j-9", 1, rank, rank % 2 ? v1::STDERR : v1::STDOUT};
      std::string line = absl::StrCat("rank ", rank, " round ", round, "\n");
      absl::StatusOr<int64_t> stored = AppendSync(*logs_, key, logs_->Received(key), line);
      ASSERT_TRUE(stored.ok()) << stored.status();
    }
    EXPECT_LE(logs_->OpenFiles(), 16);
    EXPECT_LE(OpenDescriptors(), before + 16 + 2);
  }
  // Every stream kept both rounds, in order, though its file was closed in between.
  for (int rank : {0, 1, 1234, kRanks - 1}) {
    LogStreamKey key{"j-9", 1, rank, rank % 2 ? v1::STDERR : v1::STDOUT};
    EXPECT_EQ(*logs_->Read(key, 0, 1 << 10),
              absl::StrCat("rank ", rank, " round 0\nrank ", rank, " round 1\n"));
  }
  EXPECT_EQ(logs_->Streams("j-9", 1).size(), static_cast<size_t>(kRanks));
  logs_->EndAttempt("j-9", 1);
  EXPECT_TRUE(PollUntil([&] { return logs_->OpenFiles() == 0; })) << logs_->OpenFiles();
  EXPECT_LE(OpenDescriptors(), before);
}

TEST_F(LogStoreTest, ShortOfDescriptorsAppendsAreRefusedWithResourceExhaustedAndThenTakenAgain) {
  struct rlimit saved {};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int before = OpenDescriptors();
  struct rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(before + 200);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  Reopen({.max_open_files = 1000, .fd_reserve = 50});
  ASSERT_TRUE(AppendSync(*logs_, key_, 0, "before\n").ok());
  logs_->EndAttempt("j-1", 1);  // the store holds nothing it could close
  ASSERT_TRUE(PollUntil([&] { return logs_->OpenFiles() == 0; }));
  // Something else in droverd (calls, the database) takes descriptors up to the reserve.
  std::vector<int> held;
  while (true) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    if (fd >= before + 200 - 50) {
      close(fd);
      break;
    }
    held.push_back(fd);
  }
  LogStreamKey key{"j-3", 1, 7, v1::STDOUT};
  absl::StatusOr<int64_t> refused = AppendSync(*logs_, key, 0, "hello\n");
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("file descriptors"));
  EXPECT_TRUE(absl::IsResourceExhausted(logs_->Read(key_, 0, 10).status()));
  EXPECT_EQ(refused_, 0) << "not the disk's fault";
  // The reserve is still there for the rest of the process: accept would get one.
  int spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  EXPECT_GE(spare, 0);
  close(spare);

  for (int fd : held) close(fd);
  absl::StatusOr<int64_t> stored = AppendSync(*logs_, key, 0, "hello\n");
  EXPECT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(*logs_->Read(key, 0, 100), "hello\n");
  logs_.reset();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

TEST_F(LogStoreTest, OutputPastTheCapIsAcknowledgedNotStoredAndTheLogSaysSo) {
  Reopen({.limits = {.max_log_bytes = 100}});
  const std::string a(60, 'a'), b(59, 'b'), c(200, 'c');
  EXPECT_EQ(*AppendSync(*logs_, key_, 0, a), 60);
  EXPECT_EQ(*AppendSync(*logs_, key_, 60, b + "\n"), 120);
  const std::string capped = a + std::string(40, 'b') + "\n" + LogCapNote(v1::STDOUT, 100);
  EXPECT_EQ(Stored(), capped);
  EXPECT_THAT(capped, HasSubstr("[drover: log truncated at 100 bytes"));
  EXPECT_EQ(*AppendSync(*logs_, key_, 120, c), 320);
  EXPECT_EQ(*AppendSync(*logs_, key_, 60, b), 320) << "a resend changes nothing";
  EXPECT_EQ(Stored(), capped);
  EXPECT_EQ(logs_->Received(key_), 320);
  ASSERT_EQ(logs_->Streams("j-1", 1).size(), 1u);
  EXPECT_EQ(logs_->Streams("j-1", 1)[0].size, static_cast<int64_t>(capped.size()));
  EXPECT_EQ(logs_->Streams("j-1", 1)[0].received, 320);

  // A restarted droverd knows the cap and where the sender is.
  Reopen({.limits = {.max_log_bytes = 100}});
  EXPECT_EQ(logs_->Received(key_), 320);
  EXPECT_EQ(*AppendSync(*logs_, key_, 320, "more"), 324);
  // An agent told of the cap sends only its size.
  EXPECT_EQ(*AppendSync(*logs_, key_, 1000, ""), 1000);
  EXPECT_EQ(Stored(), capped);
  logs_->EndAttempt("j-1", 1);
  EXPECT_EQ(Stored(), capped + "[drover: 900 bytes dropped past the cap]\n");
}

TEST_F(LogStoreTest, MetricRecordsPastTheCapAreDroppedWithANoteRecord) {
  Reopen({.limits = {.max_metric_records = 3}});
  LogStreamKey key{"j-1", 1, 0, v1::METRICS};
  std::string lines;
  for (int i = 0; i < 5; ++i) lines += absl::StrCat("{\"n\":\"loss\",\"s\":", i, "}\n");
  EXPECT_EQ(*AppendSync(*logs_, key, 0, lines), static_cast<int64_t>(lines.size()));
  std::string stored = *logs_->Read(key, 0, 1 << 20);
  EXPECT_EQ(stored, "{\"n\":\"loss\",\"s\":0}\n{\"n\":\"loss\",\"s\":1}\n"
                    "{\"n\":\"loss\",\"s\":2}\n" + LogCapNote(v1::METRICS, 3));
  logs_->EndAttempt("j-1", 1);
  EXPECT_THAT(*logs_->Read(key, 0, 1 << 20),
              HasSubstr("{\"drover_note\":\"dropped\",\"records\":2,"));
}

TEST_F(LogStoreTest, RetentionRemovesAJobsLogsOfEveryAttemptAndKeepsItsMetrics) {
  const LogStreamKey stdout1{"j-1", 1, 0, v1::STDOUT};
  const LogStreamKey stderr2{"j-1", 2, 1, v1::STDERR};
  const LogStreamKey prepare2{"j-1", 2, 0, v1::PREPARE};
  const LogStreamKey metrics2{"j-1", 2, 0, v1::METRICS};
  const LogStreamKey other_job{"j-2", 1, 0, v1::STDOUT};
  ASSERT_TRUE(AppendSync(*logs_, stdout1, 0, "first attempt\n").ok());
  ASSERT_TRUE(AppendSync(*logs_, stderr2, 0, "oops\n").ok());
  ASSERT_TRUE(AppendSync(*logs_, prepare2, 0, "pip install\n").ok());
  ASSERT_TRUE(AppendSync(*logs_, metrics2, 0, "{\"loss\":1}\n").ok());
  ASSERT_TRUE(AppendSync(*logs_, other_job, 0, "keep me\n").ok());
  logs_->EndAttempt("j-1", 1);
  logs_->EndAttempt("j-1", 2);
  // Hostile or stray entries in the job's folder: a link named like a log to a file outside,
  // a folder with a log's name, a name that only starts like one.
  std::string outside = dir_.path() + "/outside";
  { std::ofstream(outside) << "not droverd's"; }
  std::string attempt_dir = dir_.path() + "/logs/j-1/2";
  ASSERT_EQ(::symlink(outside.c_str(), (attempt_dir + "/rank-7.stdout").c_str()), 0);
  std::filesystem::create_directories(attempt_dir + "/rank-8.stdout");
  { std::ofstream(attempt_dir + "/rank-0.stdoutX") << "x"; }

  absl::StatusOr<int64_t> would = logs_->RemoveStreams("j-1", {v1::STDOUT, v1::STDERR, v1::PREPARE},
                                                       /*dry_run=*/true);
  ASSERT_TRUE(would.ok()) << would.status();
  EXPECT_EQ(*would, 14 + 5 + 12);
  EXPECT_EQ(*logs_->Read(stdout1, 0, 100), "first attempt\n");  // a dry run removes nothing

  absl::StatusOr<int64_t> freed = logs_->RemoveStreams("j-1", {v1::STDOUT, v1::STDERR, v1::PREPARE});
  ASSERT_TRUE(freed.ok()) << freed.status();
  EXPECT_EQ(*freed, 14 + 5 + 12);
  EXPECT_EQ(*logs_->Read(stdout1, 0, 100), "");
  EXPECT_EQ(*logs_->Read(stderr2, 0, 100), "");
  EXPECT_EQ(*logs_->Read(prepare2, 0, 100), "");
  EXPECT_EQ(*logs_->Read(metrics2, 0, 100), "{\"loss\":1}\n");
  EXPECT_EQ(*logs_->Read(other_job, 0, 100), "keep me\n");
  std::ifstream target(outside);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(target), {}), "not droverd's")
      << "the link's target is untouched";
  EXPECT_TRUE(std::filesystem::is_directory(attempt_dir + "/rank-8.stdout"));
  EXPECT_TRUE(std::filesystem::exists(attempt_dir + "/rank-0.stdoutX"));
  // Again: nothing left to free, no error; a job with no logs at all neither.
  EXPECT_EQ(*logs_->RemoveStreams("j-1", {v1::STDOUT}), 0);
  EXPECT_EQ(*logs_->RemoveStreams("j-404", {v1::STDOUT}), 0);
}

TEST_F(LogStoreTest, RetentionRemovesACappedStreamWithItsCapRecord) {
  Reopen({.limits = {.max_log_bytes = 8}});
  ASSERT_TRUE(AppendSync(*logs_, key_, 0, "0123456789abcdef").ok());
  logs_->EndAttempt(key_.job_id, key_.epoch);
  std::string file = dir_.path() + "/logs/j-1/1/rank-0.stdout";
  ASSERT_TRUE(std::filesystem::exists(file + ".capped"));
  ASSERT_TRUE(logs_->RemoveStreams("j-1", {v1::STDOUT}).ok());
  EXPECT_FALSE(std::filesystem::exists(file));
  EXPECT_FALSE(std::filesystem::exists(file + ".capped"));
  EXPECT_EQ(logs_->Received(key_), 0);
}

}  // namespace
}  // namespace drover::storage
