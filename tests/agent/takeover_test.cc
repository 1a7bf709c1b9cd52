// The take-over decision of a restarted drover-agent: every combination of what the record
// says and what the node shows. The rule under test: processes that may have started are
// never started again, and nothing that never ran is taken for a run.
#include "agent/takeover.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::agent {
namespace {

using Phase = v1::AttemptReport::Phase;

TakeOver Decide(Phase phase, bool start_intended, FoundContainer container, bool files = false) {
  return DecideTakeOver({.phase = phase,
                         .start_intended = start_intended,
                         .container = container,
                         .processes_left_files = files});
}

TEST(TakeOverTest, RunningProcessesAreWatchedWhateverTheRecordSays) {
  for (Phase phase : {v1::AttemptReport::PREPARING, v1::AttemptReport::READY,
                      v1::AttemptReport::RUNNING, v1::AttemptReport::FINALIZING}) {
    for (bool intended : {false, true}) {
      EXPECT_EQ(Decide(phase, intended, FoundContainer::kRunning), TakeOver::kWatch)
          << v1::AttemptReport::Phase_Name(phase) << " intended=" << intended;
    }
  }
}

// The race of issue 14: the agent died after `runc start` and before its record said
// RUNNING. The record says READY; the start intent and runc say otherwise.
TEST(TakeOverTest, AStartedContainerWhoseRecordSaysReadyIsNeverPreparedAgain) {
  EXPECT_EQ(Decide(v1::AttemptReport::READY, true, FoundContainer::kRunning), TakeOver::kWatch);
  EXPECT_EQ(Decide(v1::AttemptReport::READY, true, FoundContainer::kStopped, true),
            TakeOver::kWatch);
  EXPECT_EQ(Decide(v1::AttemptReport::READY, true, FoundContainer::kStopped, false),
            TakeOver::kWatch)
      << "PID 1 ended after a start was decided: its exit decides, not a second run";
}

TEST(TakeOverTest, ACreatedContainerStartsOnceWhenTheStartWasDecided) {
  EXPECT_EQ(Decide(v1::AttemptReport::READY, true, FoundContainer::kCreated),
            TakeOver::kStartAndWatch);
  EXPECT_EQ(Decide(v1::AttemptReport::RUNNING, false, FoundContainer::kCreated),
            TakeOver::kStartAndWatch);
}

TEST(TakeOverTest, WhatNeverRanIsPreparedAgain) {
  EXPECT_EQ(Decide(v1::AttemptReport::PREPARING, false, FoundContainer::kNone),
            TakeOver::kPrepareAgain);
  EXPECT_EQ(Decide(v1::AttemptReport::PREPARING, false, FoundContainer::kCreated),
            TakeOver::kPrepareAgain)
      << "created before READY was recorded";
  EXPECT_EQ(Decide(v1::AttemptReport::READY, false, FoundContainer::kCreated),
            TakeOver::kPrepareAgain);
  EXPECT_EQ(Decide(v1::AttemptReport::READY, false, FoundContainer::kStopped),
            TakeOver::kPrepareAgain)
      << "runc's init died waiting for a start that never came";
  EXPECT_EQ(Decide(v1::AttemptReport::READY, true, FoundContainer::kNone, false),
            TakeOver::kPrepareAgain)
      << "`runc run` died before it made the container";
}

TEST(TakeOverTest, AGoneContainerThatRanIsWatchedToItsEnd) {
  EXPECT_EQ(Decide(v1::AttemptReport::RUNNING, true, FoundContainer::kNone), TakeOver::kWatch);
  EXPECT_EQ(Decide(v1::AttemptReport::FINALIZING, true, FoundContainer::kNone), TakeOver::kWatch);
  EXPECT_EQ(Decide(v1::AttemptReport::READY, true, FoundContainer::kNone, true), TakeOver::kWatch);
  // Files without any start in the record: something ran after all; never run it again.
  EXPECT_EQ(Decide(v1::AttemptReport::PREPARING, false, FoundContainer::kNone, true),
            TakeOver::kWatch);
  EXPECT_EQ(Decide(v1::AttemptReport::READY, false, FoundContainer::kStopped, true),
            TakeOver::kWatch);
}

TEST(TakeOverTest, NamesAreStable) {
  EXPECT_EQ(TakeOverName(TakeOver::kPrepareAgain), "prepare_again");
  EXPECT_EQ(TakeOverName(TakeOver::kStartAndWatch), "start_and_watch");
  EXPECT_EQ(TakeOverName(TakeOver::kWatch), "watch");
}

// The one fact read from the job folder, which the job itself could write.
TEST(TakeOverTest, TracesInTheLogsFolderCountAndALinkedFolderCannotHideThem) {
  testing::TempDir dir;
  const std::string logs = dir.path() + "/logs";
  EXPECT_FALSE(JobLeftFiles(logs)) << "never made: nothing ran";
  std::filesystem::create_directories(logs);
  EXPECT_FALSE(JobLeftFiles(logs)) << "empty";
  std::ofstream(logs + "/rank-0.stdout") << "x\n";
  EXPECT_TRUE(JobLeftFiles(logs));

  // The job replaced logs/ by a link to an empty folder: not taken as "nothing ran".
  std::filesystem::remove_all(logs);
  std::filesystem::create_directories(dir.path() + "/empty");
  std::filesystem::create_symlink(dir.path() + "/empty", logs);
  EXPECT_TRUE(JobLeftFiles(logs));
  std::filesystem::remove(logs);
  ASSERT_EQ(mkfifo(logs.c_str(), 0600), 0);
  EXPECT_TRUE(JobLeftFiles(logs)) << "a fifo where the folder should be";
}

}  // namespace
}  // namespace drover::agent
