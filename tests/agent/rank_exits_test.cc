// How an attempt reads its ranks' ends from drover-init's files in the job folder, without
// a container: exit codes and signals, the first failed rank (drover-init's word, else the
// earliest end), a launcher's failure, and files the job tampered with.
#include "agent/rank_exits.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "agent/launcher/init_files.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

class AttemptRankExitsTest : public ::testing::Test {
 protected:
  AttemptRankExitsTest() {
    std::filesystem::create_directories(dir_.path() + "/logs");
    assignment_.set_first_rank(4);
    assignment_.mutable_spec()->set_process_count_per_node(2);
  }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_.path() + "/logs/" + name) << text;
  }
  RankExits Read(const ContainerExit& exit = {.exit_code = 0}) {
    return ReadRankExits(dir_.path(), assignment_, "n1", exit);
  }

  drover::testing::TempDir dir_;
  v1::AssignAttempt assignment_;
};

TEST_F(AttemptRankExitsTest, EachRankEndsAsItsFileSays) {
  Write("rank-4.exit", FormatExitRecord({.exit_code = 0, .signal = 0, .end_time_ns = 1}));
  Write("rank-5.exit", FormatExitRecord({.exit_code = 3, .signal = 0, .end_time_ns = 2'500'000'000}));
  Write("init.result", FormatInitResult({.first_failed_rank = 5, .exit_code = 3}));
  RankExits ended = Read();
  ASSERT_EQ(ended.exits.size(), 2u);
  EXPECT_EQ(ended.exits[0].rank(), 4);
  EXPECT_EQ(ended.exits[0].exit_code(), 0);
  EXPECT_EQ(ended.exits[1].rank(), 5);
  EXPECT_EQ(ended.exits[1].exit_code(), 3);
  EXPECT_EQ(ended.exits[1].end_time().seconds(), 2);
  EXPECT_EQ(ended.exits[1].end_time().nanos(), 500'000'000);
  EXPECT_EQ(ended.first_failed_rank, 5);
  EXPECT_EQ(ended.launcher_message, "");
}

TEST_F(AttemptRankExitsTest, ARankWithoutAFileEndedByTheContainersSignalOrSigkill) {
  RankExits killed = Read({.exit_code = -1, .signal = SIGTERM});
  EXPECT_EQ(killed.exits[0].exit_code(), -1);
  EXPECT_EQ(killed.exits[0].signal(), SIGTERM);
  RankExits oom = Read({.exit_code = -1, .signal = 0, .oom_killed = true});
  EXPECT_EQ(oom.exits[1].signal(), SIGKILL);
  EXPECT_TRUE(oom.exits[1].oom_killed());
}

TEST_F(AttemptRankExitsTest, WithoutDroverInitsWordTheEarliestFailureIsTheFirst) {
  Write("rank-4.exit", FormatExitRecord({.exit_code = 1, .signal = 0, .end_time_ns = 9'000}));
  Write("rank-5.exit", FormatExitRecord({.exit_code = 2, .signal = 0, .end_time_ns = 5'000}));
  EXPECT_EQ(Read().first_failed_rank, 5);
}

TEST_F(AttemptRankExitsTest, AFailedMpirunIsSaidWhenNoRankHereFailed) {
  Write("mpirun.exit", FormatExitRecord({.exit_code = 1, .signal = 0}));
  EXPECT_EQ(Read().launcher_message,
            "mpirun on n1 exited with code 1; its messages are in rank 4's stderr");
  EXPECT_EQ(Read({.exit_code = 1, .last_message = "drover-init: cannot start python3"})
                .launcher_message,
            "mpirun on n1 exited with code 1; its messages are in rank 4's stderr");
  std::filesystem::remove(dir_.path() + "/logs/mpirun.exit");
  EXPECT_EQ(Read({.exit_code = 1, .last_message = "drover-init: cannot start python3"})
                .launcher_message,
            "on n1: drover-init: cannot start python3");
}

TEST_F(AttemptRankExitsTest, FilesTheJobTamperedWithAreReadAsMissing) {
  // A link to a file outside, a fifo (never waited on), and garbage.
  std::ofstream(dir_.path() + "/outside") << "exit_code=0 signal=0\n";
  std::filesystem::create_symlink(dir_.path() + "/outside", dir_.path() + "/logs/rank-4.exit");
  ASSERT_EQ(mkfifo((dir_.path() + "/logs/rank-5.exit").c_str(), 0644), 0);
  Write("init.result", "first_failed_rank=99999999999999999999999 exit_code=0 signal=0\n");
  RankExits ended = Read({.exit_code = -1, .signal = SIGKILL});
  EXPECT_EQ(ended.exits[0].signal(), SIGKILL);
  EXPECT_EQ(ended.exits[1].signal(), SIGKILL);
  EXPECT_EQ(ended.first_failed_rank, 4);  // the earliest failure: both have no time, the first
}

}  // namespace
}  // namespace drover::agent
