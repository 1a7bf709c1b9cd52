// The take-over decision of a restarted drover-agent: every combination of what the record
// says and what the node shows. The rule under test: processes that may have started are
// never started again, and nothing that never ran is taken for a run.
#include "agent/takeover.h"

#include "gtest/gtest.h"

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

}  // namespace
}  // namespace drover::agent
