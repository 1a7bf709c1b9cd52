// drover-init's status files (agent/launcher/init_files.h): what drover-init writes reads
// back, and what a job may put in its place (the files are in folders it can write) reads
// as nothing, without undefined behaviour.
#include "agent/launcher/init_files.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::agent {
namespace {

TEST(InitFilesTest, WhatDroverInitWritesReadsBack) {
  ExitRecord rank{.exit_code = 3, .signal = 0, .end_time_ns = 1796592481095875000};
  EXPECT_EQ(FormatExitRecord(rank), "exit_code=3 signal=0 end_time_ns=1796592481095875000\n");
  std::optional<ExitRecord> read = ParseExitRecord(FormatExitRecord(rank));
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->exit_code, 3);
  EXPECT_EQ(read->signal, 0);
  EXPECT_EQ(read->end_time_ns, 1796592481095875000);

  std::optional<ExitRecord> killed = ParseExitRecord("exit_code=-1 signal=15 end_time_ns=7\n");
  ASSERT_TRUE(killed.has_value()) << "a rank a signal ended";
  EXPECT_EQ(killed->exit_code, -1);
  EXPECT_EQ(killed->signal, 15);

  std::optional<ExitRecord> own = ParseExitRecord("exit_code=137 signal=0\n");
  ASSERT_TRUE(own.has_value());
  EXPECT_EQ(own->exit_code, 137);
  EXPECT_EQ(own->end_time_ns, -1) << "drover-init's own exit file has no time";
  EXPECT_EQ(FormatExitRecord(*own), "exit_code=137 signal=0\n");

  InitResult result{.first_failed_rank = 5, .exit_code = 0, .signal = 9};
  EXPECT_EQ(FormatInitResult(result), "first_failed_rank=5 exit_code=0 signal=9\n");
  std::optional<InitResult> back = ParseInitResult(FormatInitResult(result));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->first_failed_rank, 5);
  EXPECT_EQ(back->signal, 9);
  EXPECT_EQ(ParseInitResult(FormatInitResult({}))->first_failed_rank, -1);
}

TEST(InitFilesTest, WhatAJobPutsThereInsteadReadsAsNothing) {
  for (const char* text : {
           "",
           "\n",
           "exit_code=0",                                  // no signal
           "signal=0 exit_code=0",                         // keys out of order
           "exit_code=0 signal=0 end_time_ns=1 extra=1",   // more than written
           "exit_code=99999999999999999999999 signal=0",   // sscanf's undefined behaviour
           "exit_code=256 signal=0",                       // out of range
           "exit_code=-2 signal=9",
           "exit_code=0 signal=65",
           "exit_code=0 signal=0 end_time_ns=-5",
           "exit_code=0x10 signal=0",
           "exit_code= signal=0",
           "exit_code=0  signal=0",                        // two spaces
           "exit_code=0 signal=0\n\n",
           "exit_code=0\0 signal=0",
           "exit_code=+1 signal=0",
       }) {
    EXPECT_FALSE(ParseExitRecord(text).has_value()) << "'" << text << "'";
  }
  for (const char* text : {
           "first_failed_rank=3",
           "first_failed_rank=-2 exit_code=0 signal=0",
           "first_failed_rank=2147483648 exit_code=0 signal=0",
           "first_failed_rank=1 exit_code=1 signal=1 more",
       }) {
    EXPECT_FALSE(ParseInitResult(text).has_value()) << "'" << text << "'";
  }
  std::string nul("exit_code=0 signal=0", 20);
  nul[11] = '\0';
  EXPECT_FALSE(ParseExitRecord(nul).has_value());
}

}  // namespace
}  // namespace drover::agent
