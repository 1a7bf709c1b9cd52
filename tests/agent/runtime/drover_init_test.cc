// drover-init run directly on the node (no container): ranks, their environment, the log and
// exit files, coordinated failure, and signal forwarding.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/launcher/init_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/agent/runtime/test_util.h"

namespace drover::agent {
namespace {

// A rank's .exit file: its status, then when it ended (drover-init's wall clock).
::testing::Matcher<std::string> RankExitLine(const std::string& status) {
  return ::testing::MatchesRegex(status + " end_time_ns=[0-9]+\n");
}

using ::drover::testing::Child;
using ::drover::testing::PollUntil;
using ::drover::testing::ReadFileOrEmpty;
using ::drover::testing::ScratchDir;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class DroverInitTest : public ::testing::Test {
 protected:
  std::string LogDir() const { return scratch_.path() + "/logs"; }
  std::string Log(const std::string& name) const { return LogDir() + "/" + name; }

  InitCommand Command(int count, std::vector<std::string> program) const {
    InitCommand command;
    command.init_path = DROVER_INIT_PATH;
    command.exit_file = scratch_.path() + "/init.exit";
    command.log_dir = LogDir();
    command.count = count;
    command.grace_seconds = 5;
    command.program = std::move(program);
    return command;
  }

  std::unique_ptr<Child> Start(const InitCommand& command) {
    return std::make_unique<Child>(command.ToArgs(), scratch_.path() + "/init.out",
                                   scratch_.path() + "/init.err");
  }

  // drover-init's exit code, failing the test when it does not exit in time.
  int ExitCode(Child* child, absl::Duration timeout = absl::Seconds(20)) {
    std::optional<int> status = child->Wait(timeout);
    if (!status.has_value()) {
      ADD_FAILURE() << "drover-init still runs after " << timeout
                    << "; stderr: " << ReadFileOrEmpty(scratch_.path() + "/init.err");
      return -1000;
    }
    EXPECT_TRUE(WIFEXITED(*status)) << "raw status " << *status;
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1000;
  }

  ScratchDir scratch_;
};

TEST_F(DroverInitTest, RanksGetTheirRankVariablesAndTheirOwnLogFiles) {
  InitCommand command = Command(
      2, {"/bin/sh", "-c", "echo rank=$DROVER_RANK/$RANK local=$LOCAL_RANK; echo oops >&2"});
  command.first_rank = 4;
  command.rank_env = {"DROVER_RANK", "RANK"};
  command.local_rank_env = {"LOCAL_RANK"};
  auto init = Start(command);
  EXPECT_EQ(ExitCode(init.get()), 0);
  EXPECT_EQ(ReadFileOrEmpty(Log("rank-4.stdout")), "rank=4/4 local=0\n");
  EXPECT_EQ(ReadFileOrEmpty(Log("rank-5.stdout")), "rank=5/5 local=1\n");
  EXPECT_EQ(ReadFileOrEmpty(Log("rank-5.stderr")), "oops\n");
  EXPECT_THAT(ReadFileOrEmpty(Log("rank-4.exit")), RankExitLine("exit_code=0 signal=0"));
  EXPECT_THAT(ReadFileOrEmpty(Log("rank-5.exit")), RankExitLine("exit_code=0 signal=0"));
  EXPECT_EQ(ReadFileOrEmpty(Log("init.result")), "first_failed_rank=-1 exit_code=0 signal=0\n");
  EXPECT_EQ(ReadFileOrEmpty(scratch_.path() + "/init.exit"), "exit_code=0 signal=0\n");
  EXPECT_FALSE(std::filesystem::exists(Log("rank-6.stdout")));
}

TEST_F(DroverInitTest, AppendsToLogsOfAnEarlierRun) {
  std::filesystem::create_directories(LogDir());
  testing::WriteFileOrDie(Log("rank-0.stdout"), "earlier\n");
  auto init = Start(Command(1, {"/bin/echo", "later"}));
  EXPECT_EQ(ExitCode(init.get()), 0);
  EXPECT_EQ(ReadFileOrEmpty(Log("rank-0.stdout")), "earlier\nlater\n");
}

TEST_F(DroverInitTest, EachRankLeadsItsOwnProcessGroup) {
  auto init = Start(Command(2, {"/bin/sh", "-c", "cut -d' ' -f5 /proc/$$/stat; echo $$"}));
  EXPECT_EQ(ExitCode(init.get()), 0);
  for (const char* rank : {"rank-0.stdout", "rank-1.stdout"}) {
    std::vector<std::string> lines = absl::StrSplit(ReadFileOrEmpty(Log(rank)), '\n');
    ASSERT_GE(lines.size(), 2u) << rank;
    EXPECT_EQ(lines[0], lines[1]) << "process group id equals the rank's pid";
  }
}

TEST_F(DroverInitTest, FirstFailingRankStopsTheOthers) {
  // Rank 1 fails at once; rank 0 would sleep for a minute but is stopped with SIGTERM.
  auto init = Start(Command(
      2, {"/bin/sh", "-c", "if [ \"$DROVER_LOCAL_RANK\" = 1 ]; then exit 3; fi; exec sleep 60"}));
  EXPECT_EQ(ExitCode(init.get(), absl::Seconds(10)), 3);
  EXPECT_EQ(ReadFileOrEmpty(Log("init.result")), "first_failed_rank=1 exit_code=3 signal=0\n");
  EXPECT_THAT(ReadFileOrEmpty(Log("rank-1.exit")), RankExitLine("exit_code=3 signal=0"));
  EXPECT_THAT(ReadFileOrEmpty(Log("rank-0.exit")), RankExitLine("exit_code=-1 signal=15"));
  EXPECT_EQ(ReadFileOrEmpty(scratch_.path() + "/init.exit"), "exit_code=3 signal=0\n");
}

TEST_F(DroverInitTest, RankKilledBySignalGives128PlusSignal) {
  auto init = Start(Command(1, {"/bin/sh", "-c", "kill -SEGV $$"}));
  EXPECT_EQ(ExitCode(init.get()), 128 + SIGSEGV);
  EXPECT_EQ(ReadFileOrEmpty(Log("init.result")),
            absl::StrCat("first_failed_rank=0 exit_code=-1 signal=", SIGSEGV, "\n"));
}

TEST_F(DroverInitTest, RankIgnoringSigtermIsKilledAfterTheGrace) {
  // Rank 0 ignores SIGTERM (and its sleep inherits that); rank 1 fails.
  InitCommand command =
      Command(2, {"/bin/sh", "-c",
                  "if [ \"$DROVER_LOCAL_RANK\" = 1 ]; then exec sh -c 'until [ -s " + LogDir() +
                      "/rank-0.stdout ]; do sleep 0.01; done; exit 4'; fi; "
                      "trap '' TERM; echo ignoring; sleep 60"});
  command.grace_seconds = 0.5;
  auto init = Start(command);
  EXPECT_EQ(ExitCode(init.get(), absl::Seconds(15)), 4);
  EXPECT_THAT(ReadFileOrEmpty(Log("rank-0.exit")), RankExitLine("exit_code=-1 signal=9"));
  EXPECT_EQ(ReadFileOrEmpty(Log("init.result")), "first_failed_rank=1 exit_code=4 signal=0\n");
}

TEST_F(DroverInitTest, ForwardsSigtermToEveryRank) {
  auto init = Start(Command(3, {"/bin/sh", "-c", "echo started; exec sleep 60"}));
  ASSERT_TRUE(PollUntil(
      [&] {
        for (const char* rank : {"rank-0.stdout", "rank-1.stdout", "rank-2.stdout"}) {
          if (ReadFileOrEmpty(Log(rank)) != "started\n") return false;
        }
        return true;
      },
      absl::Seconds(10)));
  ASSERT_EQ(kill(init->pid(), SIGTERM), 0);
  EXPECT_EQ(ExitCode(init.get(), absl::Seconds(10)), 128 + SIGTERM);
  for (const char* rank : {"rank-0.exit", "rank-1.exit", "rank-2.exit"}) {
    EXPECT_THAT(ReadFileOrEmpty(Log(rank)), RankExitLine("exit_code=-1 signal=15")) << rank;
  }
  EXPECT_THAT(ReadFileOrEmpty(Log("init.result")), HasSubstr("exit_code=-1 signal=15"));
}

TEST_F(DroverInitTest, SigintIsForwardedToo) {
  auto init = Start(Command(1, {"/bin/sh", "-c",
                                "trap 'echo got-int; exit 0' INT; echo started; "
                                "while :; do sleep 0.05; done"}));
  ASSERT_TRUE(PollUntil([&] { return ReadFileOrEmpty(Log("rank-0.stdout")) == "started\n"; },
                        absl::Seconds(10)));
  ASSERT_EQ(kill(init->pid(), SIGINT), 0);
  EXPECT_EQ(ExitCode(init.get(), absl::Seconds(10)), 0) << "the rank handled SIGINT and exited 0";
  EXPECT_EQ(ReadFileOrEmpty(Log("rank-0.stdout")), "started\ngot-int\n");
}

TEST_F(DroverInitTest, ProgramThatCannotRunReports127) {
  auto init = Start(Command(1, {"/nonexistent/train.py"}));
  EXPECT_EQ(ExitCode(init.get()), 127);
  EXPECT_THAT(ReadFileOrEmpty(Log("rank-0.exit")), RankExitLine("exit_code=127 signal=0"));
  EXPECT_THAT(ReadFileOrEmpty(Log("rank-0.stderr")),
              HasSubstr("cannot execute '/nonexistent/train.py': No such file or directory"));
}

TEST_F(DroverInitTest, SearchesPathForTheProgram) {
  auto init = Start(Command(1, {"echo", "found"}));
  EXPECT_EQ(ExitCode(init.get()), 0);
  EXPECT_EQ(ReadFileOrEmpty(Log("rank-0.stdout")), "found\n");
}

TEST_F(DroverInitTest, BadUsageExits127WithAMessage) {
  std::vector<std::vector<std::string>> bad = {
      {DROVER_INIT_PATH},
      {DROVER_INIT_PATH, "--log-dir", LogDir(), "--", "true"},                  // no --count
      {DROVER_INIT_PATH, "--log-dir", LogDir(), "--count", "1"},                // no program
      {DROVER_INIT_PATH, "--log-dir", LogDir(), "--count", "0", "--", "true"},  // count 0
      {DROVER_INIT_PATH, "--log-dir", LogDir(), "--count", "1", "--rank-env", "A=B", "--", "true"},
      {DROVER_INIT_PATH, "--log-dir", LogDir(), "--count", "1", "--frobnicate", "x", "--", "true"},
      {DROVER_INIT_PATH, "--log-dir", LogDir(), "--count", "1", "--grace-seconds", "-1", "--",
       "true"},
  };
  for (const auto& argv : bad) {
    Child child(argv, scratch_.path() + "/usage.out", scratch_.path() + "/usage.err");
    std::optional<int> status = child.Wait(absl::Seconds(10));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 127) << absl::StrJoin(argv, " ");
    // The usage, then what is wrong on the last line (the one the agent quotes).
    std::string err = ReadFileOrEmpty(scratch_.path() + "/usage.err");
    EXPECT_THAT(err, StartsWith("usage: drover-init"));
    EXPECT_THAT(err, ::testing::MatchesRegex("(.|\n)*\ndrover-init: [^\n]+\n"));
  }
  EXPECT_FALSE(std::filesystem::exists(Log("rank-0.stdout"))) << "nothing ran";
}

// The distributed backends' modes (MPI): a wrapper around one rank that mpirun starts, the
// launcher itself as PID 1's one process, and the idle PID 1 of the other nodes.
TEST_F(DroverInitTest, RankWrapperTakesItsRankFromTheLauncherAndPassesTheFailureOn) {
  InitCommand command = Command(1, {"/bin/sh", "-c", "echo rank=$RANK local=$LOCAL_RANK; exit 3"});
  command.rank_env = {"DROVER_RANK", "RANK"};
  command.local_rank_env = {"LOCAL_RANK"};
  setenv("TEST_WORLD_RANK", "6", 1);
  setenv("TEST_LOCAL_RANK", "2", 1);
  auto wrapper = std::make_unique<Child>(
      command.RankWrapperArgs("TEST_WORLD_RANK", "TEST_LOCAL_RANK"),
      scratch_.path() + "/init.out", scratch_.path() + "/init.err");
  unsetenv("TEST_WORLD_RANK");
  unsetenv("TEST_LOCAL_RANK");
  EXPECT_EQ(ExitCode(wrapper.get()), 3) << "the launcher must see the rank's failure";
  EXPECT_EQ(ReadFileOrEmpty(Log("rank-6.stdout")), "rank=6 local=2\n");
  EXPECT_THAT(ReadFileOrEmpty(Log("rank-6.exit")), RankExitLine("exit_code=3 signal=0"));
  // Several wrappers share the folder: init.result and the exit file are PID 1's.
  EXPECT_EQ(ReadFileOrEmpty(Log("init.result")), "");
  EXPECT_EQ(ReadFileOrEmpty(scratch_.path() + "/init.exit"), "");
}

TEST_F(DroverInitTest, RankWrapperWithoutItsVariableSaysSo) {
  InitCommand command = Command(1, {"true"});
  unsetenv("TEST_NO_SUCH_RANK");
  auto wrapper = std::make_unique<Child>(command.RankWrapperArgs("TEST_NO_SUCH_RANK", "X"),
                                         scratch_.path() + "/init.out",
                                         scratch_.path() + "/init.err");
  EXPECT_EQ(ExitCode(wrapper.get()), 127);
  EXPECT_THAT(ReadFileOrEmpty(scratch_.path() + "/init.err"),
              HasSubstr("--rank-from-env TEST_NO_SUCH_RANK: the variable holds no rank (unset)"));
}

TEST_F(DroverInitTest, LauncherWritesItsOwnExitFileAndGetsNoRankVariables) {
  InitCommand command =
      Command(1, {"/bin/sh", "-c", "echo \"rank=${RANK:-none}\"; echo launch-error >&2; exit 5"});
  command.launcher = "mpirun";
  auto init = Start(command);
  EXPECT_EQ(ExitCode(init.get()), 5);
  EXPECT_EQ(ReadFileOrEmpty(Log("rank-0.stdout")), "rank=none\n");
  EXPECT_EQ(ReadFileOrEmpty(Log("rank-0.stderr")), "launch-error\n");
  EXPECT_THAT(ReadFileOrEmpty(Log("mpirun.exit")), RankExitLine("exit_code=5 signal=0"));
  EXPECT_EQ(ReadFileOrEmpty(Log("rank-0.exit")), "") << "rank 0's file is its wrapper's";
  EXPECT_EQ(ReadFileOrEmpty(Log("init.result")), "first_failed_rank=-1 exit_code=5 signal=0\n");
}

TEST_F(DroverInitTest, IdleInitWaitsForSigtermAndExitsZero) {
  InitCommand command = Command(0, {});
  auto init = Start(command);
  EXPECT_FALSE(init->Wait(absl::Milliseconds(300)).has_value()) << "idle init exited by itself";
  ASSERT_EQ(kill(init->pid(), SIGTERM), 0);
  EXPECT_EQ(ExitCode(init.get()), 0);
  EXPECT_EQ(ReadFileOrEmpty(scratch_.path() + "/init.exit"), "exit_code=0 signal=0\n");
}

}  // namespace
}  // namespace drover::agent
