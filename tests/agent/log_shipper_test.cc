#include "agent/log_shipper.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

class LogShipperTest : public ::testing::Test {
 protected:
  LogShipperTest()
      : shipper_([this](v1::AgentMessage m) {
          if (!connected_) return false;
          sent_.push_back(m.log());
          return true;
        },
                 /*chunk_bytes=*/4, /*window_bytes=*/8) {
    attempt_.set_job_id("j-1");
    attempt_.set_epoch(1);
    std::filesystem::create_directories(logs_);
    shipper_.Watch(attempt_, Folder());
  }

  // The job folder's logs/, with ranks 0 and 1 on node 0.
  LogShipper::LogFolder Folder() const {
    return {.root = dir_.path(), .path = "logs", .first_rank = 0, .rank_count = 2, .node_rank = 0};
  }

  void Append(const std::string& name, const std::string& text) {
    std::ofstream(logs_ + "/" + name, std::ios::app) << text;
  }

  v1::LogAck Ack(int64_t offset, int rank = 0) {
    v1::LogAck ack;
    *ack.mutable_attempt() = attempt_;
    ack.set_rank(rank);
    ack.set_stream(v1::STDOUT);
    ack.set_offset(offset);
    return ack;
  }

  std::string SentData() {
    std::string out;
    for (const auto& c : sent_) out += c.data();
    return out;
  }

  testing::TempDir dir_;
  const std::string logs_ = dir_.path() + "/logs";
  bool connected_ = true;
  std::vector<v1::LogChunk> sent_;
  v1::AttemptRef attempt_;
  LogShipper shipper_;
};

TEST_F(LogShipperTest, ShipsInChunksWithinTheWindowAndOnlyAcknowledgedBytesCount) {
  Append("rank-0.stdout", "hello world!");  // 12 bytes: chunks of 4, window of 8
  shipper_.Poll();
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(sent_[0].offset(), 0);
  EXPECT_EQ(sent_[1].offset(), 4);
  EXPECT_FALSE(shipper_.Drained(attempt_));
  shipper_.Acknowledged(Ack(4));
  shipper_.Poll();
  ASSERT_EQ(sent_.size(), 3u);
  EXPECT_EQ(sent_[2].offset(), 8);
  shipper_.Acknowledged(Ack(8));
  shipper_.Acknowledged(Ack(12));
  EXPECT_TRUE(shipper_.Drained(attempt_));
  EXPECT_EQ(SentData(), "hello world!");
}

TEST_F(LogShipperTest, AStreamDroverdCappedIsNoLongerReadOnlyItsSizeIsSent) {
  Append("rank-0.stdout", "abcdefgh");
  shipper_.Poll();
  ASSERT_EQ(sent_.size(), 2u);
  v1::LogAck capped = Ack(4);
  capped.set_capped(true);
  shipper_.Acknowledged(capped);
  capped.set_offset(8);
  shipper_.Acknowledged(capped);
  sent_.clear();
  Append("rank-0.stdout", "more and more output");  // 28 bytes now
  Append("rank-1.stdout", "rank 1");
  shipper_.Poll();
  // Rank 0 sends only its size; rank 1 goes on as before.
  std::vector<v1::LogChunk> rank0;
  for (const v1::LogChunk& chunk : sent_) {
    if (chunk.rank() == 0) rank0.push_back(chunk);
  }
  ASSERT_EQ(rank0.size(), 1u);
  EXPECT_EQ(rank0[0].offset(), 28);
  EXPECT_EQ(rank0[0].data(), "");
  EXPECT_EQ(sent_.size(), 3u) << "rank 1 in two chunks";
  capped.set_offset(28);
  shipper_.Acknowledged(capped);
  v1::LogAck rank1 = Ack(4, 1);
  shipper_.Acknowledged(rank1);
  rank1.set_offset(6);
  shipper_.Acknowledged(rank1);
  EXPECT_TRUE(shipper_.Drained(attempt_));
  EXPECT_EQ(shipper_.Unacknowledged(), 0);
  // Written after: not drained until droverd has its size.
  Append("rank-0.stdout", "late");
  EXPECT_FALSE(shipper_.Drained(attempt_));
  sent_.clear();
  shipper_.Poll();
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].offset(), 32);
  EXPECT_EQ(sent_[0].data(), "");
  capped.set_offset(32);
  shipper_.Acknowledged(capped);
  EXPECT_TRUE(shipper_.Drained(attempt_));
}

TEST_F(LogShipperTest, RefusedChunkIsResentFromWhatDroverdHas) {
  Append("rank-0.stdout", "abcdefgh");
  shipper_.Poll();
  ASSERT_EQ(sent_.size(), 2u);
  // droverd lost the first chunk (or had less): it answers with its stored size, 0.
  shipper_.Acknowledged(Ack(0));
  shipper_.Acknowledged(Ack(0));
  sent_.clear();
  shipper_.Poll();
  ASSERT_FALSE(sent_.empty());
  EXPECT_EQ(sent_[0].offset(), 0);
  EXPECT_EQ(sent_[0].data(), "abcd");
}

// What an attempt's end waits for: droverd cannot take its output while the agent is not
// connected, or while droverd refuses its chunks (its state disk).
TEST_F(LogShipperTest, OutputIsHeldWhileDisconnectedOrWhileDroverdRefusesIt) {
  EXPECT_TRUE(shipper_.Held(attempt_)) << "not connected yet";
  shipper_.Reconnected(v1::AgentWelcome());
  EXPECT_FALSE(shipper_.Held(attempt_));
  Append("rank-0.stdout", "abcd");
  shipper_.Poll();
  shipper_.Acknowledged(Ack(-1));
  EXPECT_TRUE(shipper_.Held(attempt_)) << "droverd could not store it";
  shipper_.Poll();
  shipper_.Acknowledged(Ack(4));
  EXPECT_FALSE(shipper_.Held(attempt_));
  EXPECT_TRUE(shipper_.Drained(attempt_));
  shipper_.Disconnected();
  EXPECT_TRUE(shipper_.Held(attempt_));
  shipper_.Reconnected(v1::AgentWelcome());
  connected_ = false;
  Append("rank-0.stdout", "efgh");
  shipper_.Poll();  // the send fails: the stream is gone
  EXPECT_TRUE(shipper_.Held(attempt_));
}

TEST_F(LogShipperTest, ReconnectResumesFromDroverdsOffsetsAndNothingIsLostWhileDown) {
  Append("rank-0.stdout", "abcd");
  shipper_.Poll();
  shipper_.Acknowledged(Ack(4));
  connected_ = false;
  Append("rank-0.stdout", "efgh");
  shipper_.Poll();  // fails to send: nothing counts as sent
  connected_ = true;
  v1::AgentWelcome welcome;
  *welcome.add_log_offsets() = Ack(4);
  shipper_.Reconnected(welcome);
  sent_.clear();
  shipper_.Poll();
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].offset(), 4);
  EXPECT_EQ(sent_[0].data(), "efgh");
}

TEST_F(LogShipperTest, ALinkNamedLikeARankFileIsNotFollowed) {
  testing::TempDir host;
  std::string secret = host.path() + "/secret";
  std::ofstream(secret) << "host secret";
  ASSERT_EQ(chmod(secret.c_str(), 0600), 0);
  std::filesystem::create_symlink(secret, logs_ + "/rank-1.stdout");
  std::filesystem::create_symlink(secret, logs_ + "/node-0.system");
  Append("rank-0.stdout", "ok");
  shipper_.Poll();
  EXPECT_EQ(SentData(), "ok");
  shipper_.Acknowledged(Ack(2));
  EXPECT_TRUE(shipper_.Drained(attempt_)) << "a skipped file holds nothing back";
  EXPECT_EQ(SentData(), "ok");
}

TEST_F(LogShipperTest, ALogsFolderReplacedByALinkIsNotRead) {
  testing::TempDir host;
  std::ofstream(host.path() + "/rank-0.stdout") << "host file";
  std::filesystem::remove_all(logs_);
  std::filesystem::create_symlink(host.path(), logs_);
  shipper_.Poll();
  EXPECT_TRUE(sent_.empty());
  EXPECT_TRUE(shipper_.Drained(attempt_));
}

TEST_F(LogShipperTest, AFifoNamedLikeARankFileDoesNotBlockPoll) {
  std::string fifo = logs_ + "/rank-0.stdout";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0666), 0);
  Append("rank-1.stdout", "ok");
  auto polled = std::async(std::launch::async, [this] {
    shipper_.Poll();
    return shipper_.Drained(attempt_);
  });
  bool done = polled.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  if (!done) {
    int unblock = open(fifo.c_str(), O_RDWR | O_NONBLOCK);  // lets the blocked open go on
    polled.wait();
    close(unblock);
  }
  EXPECT_TRUE(done) << "Poll() blocked on a fifo";
  polled.get();
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].rank(), 1);
  EXPECT_EQ(sent_[0].data(), "ok");
}

TEST_F(LogShipperTest, EveryRankAndStreamIsShippedSeparately) {
  Append("rank-0.stdout", "a");
  Append("rank-0.stderr", "b");
  Append("rank-1.stdout", "c");
  Append("rank-1.metrics", "d\n");
  Append("node-0.system", "e\n");
  Append("init.result", "not a log");
  Append("rank-x.stdout", "not a log");
  Append("rank-2.stdout", "another node's rank");
  Append("node-1.system", "another node\n");
  shipper_.Poll();
  ASSERT_EQ(sent_.size(), 5u);
  std::set<std::tuple<int, int, std::string>> got;
  for (const auto& c : sent_) got.insert({c.rank(), c.stream(), c.data()});
  EXPECT_EQ(got, (std::set<std::tuple<int, int, std::string>>{{0, v1::STDOUT, "a"},
                                                              {0, v1::STDERR, "b"},
                                                              {1, v1::STDOUT, "c"},
                                                              {1, v1::METRICS, "d\n"},
                                                              {0, v1::SYSTEM_METRICS, "e\n"}}));
}

TEST_F(LogShipperTest, MetricsChunksEndAtALineEndUntilTheFilesAreFinal) {
  auto ack = [this](int64_t offset) {
    v1::LogAck a = Ack(offset);
    a.set_stream(v1::METRICS);
    shipper_.Acknowledged(a);
  };
  Append("rank-0.metrics", "ab\ncd");  // chunks of 4: "ab\n", then "cd" waits for its end
  shipper_.Poll();
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].data(), "ab\n");
  ack(3);
  Append("rank-0.metrics", "\nlonger line\n");  // a line longer than a chunk goes in pieces
  shipper_.Poll();
  ASSERT_EQ(sent_.size(), 4u);  // up to the window of 8 unacknowledged bytes
  EXPECT_EQ(sent_[1].data(), "cd\n");
  EXPECT_EQ(sent_[1].offset(), 3);
  EXPECT_EQ(sent_[2].data(), "long");
  EXPECT_EQ(sent_[3].data(), "er l");
  ack(6);
  ack(10);
  ack(14);
  shipper_.Poll();
  ack(18);
  EXPECT_EQ(SentData(), "ab\ncd\nlonger line\n");
  // A last line without its end waits while the rank may still write, and goes once the
  // files are final.
  Append("rank-0.metrics", "x");
  shipper_.Poll();
  EXPECT_EQ(SentData(), "ab\ncd\nlonger line\n");
  EXPECT_FALSE(shipper_.Drained(attempt_));
  shipper_.Poll();
  ack(19);
  EXPECT_TRUE(shipper_.Drained(attempt_));
  EXPECT_EQ(SentData(), "ab\ncd\nlonger line\nx");
}

TEST_F(LogShipperTest, AWatchedFileIsItsOwnStreamAndResumesFromWhatDroverdHas) {
  // A node's preparation log, outside the ranks' folder, shipped as PREPARE of node rank 1.
  std::string prepare = dir_.path() + "/prepare.log";
  shipper_.WatchFile(attempt_, 1, v1::PREPARE, prepare);
  shipper_.Poll();
  EXPECT_TRUE(sent_.empty());  // not there yet
  EXPECT_TRUE(shipper_.Drained(attempt_));
  std::ofstream(prepare, std::ios::app) << "pip ok";
  Append("rank-1.stdout", "out");
  shipper_.Poll();
  ASSERT_EQ(sent_.size(), 3u);  // chunks of 4 bytes
  std::map<int, std::string> by_stream;
  for (const v1::LogChunk& c : sent_) {
    EXPECT_EQ(c.rank(), 1);
    by_stream[c.stream()] += c.data();
  }
  EXPECT_EQ(by_stream[v1::PREPARE], "pip ok");
  EXPECT_EQ(by_stream[v1::STDOUT], "out");
  EXPECT_FALSE(shipper_.Drained(attempt_));

  // After a reconnect, from what droverd says it has; Watch() again keeps the file.
  v1::AgentWelcome welcome;
  v1::LogAck* stored = welcome.add_log_offsets();
  *stored->mutable_attempt() = attempt_;
  stored->set_rank(1);
  stored->set_stream(v1::PREPARE);
  stored->set_offset(4);
  v1::LogAck* out = welcome.add_log_offsets();
  *out = *stored;
  out->set_stream(v1::STDOUT);
  out->set_offset(3);
  shipper_.Reconnected(welcome);
  shipper_.Watch(attempt_, Folder());
  sent_.clear();
  shipper_.Poll();
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].stream(), v1::PREPARE);
  EXPECT_EQ(sent_[0].offset(), 4);
  EXPECT_EQ(sent_[0].data(), "ok");
  v1::LogAck done = Ack(6, 1);
  done.set_stream(v1::PREPARE);
  shipper_.Acknowledged(done);
  EXPECT_TRUE(shipper_.Drained(attempt_));
}

// With WakeOnChange the shipper says when to poll, so that the agent's loop sleeps while
// jobs are quiet: a write to a watched log file wakes it within the pace (not at a timer's
// next round), and so do a new watch, a reconnect and an acknowledgement that opens a full
// window; a plain acknowledgement and a quiet folder do not.
class LogShipperWakeTest : public ::testing::Test {
 protected:
  LogShipperWakeTest()
      : shipper_([this](v1::AgentMessage m) {
          absl::MutexLock lock(&mu_);
          sent_.push_back(m.log());
          return true;
        },
                 /*chunk_bytes=*/4, /*window_bytes=*/8) {
    attempt_.set_job_id("j-1");
    attempt_.set_epoch(1);
    std::filesystem::create_directories(logs_);
    shipper_.WakeOnChange(
        [this] {
          absl::MutexLock lock(&mu_);
          ++wakes_;
        },
        absl::Milliseconds(50));
  }

  int Wakes() {
    absl::MutexLock lock(&mu_);
    return wakes_;
  }
  // Waits up to `limit` for more than `seen` wakes; whether they came.
  bool WokenAfter(int seen, absl::Duration limit) {
    const absl::Time deadline = absl::Now() + limit;
    while (Wakes() <= seen && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
    return Wakes() > seen;
  }

  v1::LogAck Ack(int64_t offset) {
    v1::LogAck ack;
    *ack.mutable_attempt() = attempt_;
    ack.set_rank(0);
    ack.set_stream(v1::STDOUT);
    ack.set_offset(offset);
    return ack;
  }

  testing::TempDir dir_;
  const std::string logs_ = dir_.path() + "/logs";
  v1::AttemptRef attempt_;
  absl::Mutex mu_;
  int wakes_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::LogChunk> sent_ ABSL_GUARDED_BY(mu_);
  LogShipper shipper_;
};

TEST_F(LogShipperWakeTest, AWriteToAWatchedLogFileWakesThePollerPromptly) {
  shipper_.Watch(attempt_, {.root = dir_.path(), .path = "logs"});
  EXPECT_EQ(Wakes(), 1);  // the watch itself: what was written before it began
  EXPECT_FALSE(shipper_.NeedsPolling());
  // Quiet: nothing wakes it.
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(Wakes(), 1);
  const absl::Time written = absl::Now();
  std::ofstream(logs_ + "/rank-0.stdout", std::ios::app) << "hello\n";
  ASSERT_TRUE(WokenAfter(1, absl::Seconds(5)));
  // Prompt: well under the old 50 ms round on an idle machine, and under a second on a busy one.
  EXPECT_LT(absl::Now() - written, absl::Seconds(1));
  shipper_.Poll();
  {
    absl::MutexLock lock(&mu_);
    ASSERT_FALSE(sent_.empty());
    EXPECT_EQ(sent_[0].data(), "hell");
  }
  // Many writes in a burst wake it a few times (paced), not once per write.
  const int before = Wakes();
  for (int i = 0; i < 2000; ++i) std::ofstream(logs_ + "/rank-0.stderr", std::ios::app) << "x";
  ASSERT_TRUE(WokenAfter(before, absl::Seconds(5)));
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_LT(Wakes() - before, 100);
  // The agent's own system metrics, written into the same folder, wake it too.
  const int metrics = Wakes();
  std::ofstream(logs_ + "/node-0.system", std::ios::app) << "{}\n";
  EXPECT_TRUE(WokenAfter(metrics, absl::Seconds(5)));
  // Once forgotten, its folder no longer wakes anyone.
  shipper_.Forget(attempt_);
  absl::SleepFor(absl::Milliseconds(100));
  const int forgotten = Wakes();
  std::ofstream(logs_ + "/rank-0.stdout", std::ios::app) << "more\n";
  EXPECT_FALSE(WokenAfter(forgotten, absl::Milliseconds(300)));
}

TEST_F(LogShipperWakeTest, AFolderThatCannotBeWatchedIsPolledOnTheTimer) {
  // Not there yet (or a link the job put in its place): the shipper cannot watch it.
  shipper_.Watch(attempt_, {.root = dir_.path(), .path = "missing"});
  EXPECT_TRUE(shipper_.NeedsPolling());
  shipper_.Forget(attempt_);
  EXPECT_FALSE(shipper_.NeedsPolling());
  std::filesystem::create_directory_symlink(logs_, dir_.path() + "/link");
  shipper_.Watch(attempt_, {.root = dir_.path(), .path = "link"});
  EXPECT_TRUE(shipper_.NeedsPolling());
}

TEST_F(LogShipperWakeTest, AcknowledgementsWakeOnlyWhenMoreMayGoAndAReconnectWakes) {
  shipper_.Watch(attempt_, {.root = dir_.path(), .path = "logs"});
  std::ofstream(logs_ + "/rank-0.stdout", std::ios::app) << "hi";
  ASSERT_TRUE(WokenAfter(1, absl::Seconds(5)));
  absl::SleepFor(absl::Milliseconds(100));  // the pace, and the write's events, pass
  shipper_.Poll();                          // 2 bytes in flight, the window (8) not full
  int seen = Wakes();
  shipper_.Acknowledged(Ack(2));  // nothing waited for it
  EXPECT_EQ(Wakes(), seen);
  std::ofstream(logs_ + "/rank-0.stdout", std::ios::app) << "hello world!";  // 14 bytes in all
  ASSERT_TRUE(WokenAfter(seen, absl::Seconds(5)));
  absl::SleepFor(absl::Milliseconds(100));
  shipper_.Poll();  // bytes 2 to 10 in flight: the window is full, 4 bytes wait
  seen = Wakes();
  shipper_.Acknowledged(Ack(6));  // the window opens: what waited may go
  EXPECT_EQ(Wakes(), seen + 1);
  shipper_.Reconnected(v1::AgentWelcome());  // everything droverd lacks goes again
  EXPECT_EQ(Wakes(), seen + 2);
}

}  // namespace
}  // namespace drover::agent
