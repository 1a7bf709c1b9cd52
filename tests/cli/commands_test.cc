// The drover command table run against FakeDroverClient: what each command sends, prints and
// exits with.
#include "cli/commands.h"

#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_fixture.h"

namespace drover::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

TEST_F(CliTest, ServerDefaultsToLocalhost) {
  ASSERT_EQ(Run({"list"}), 0);
  ASSERT_EQ(server_.connects.size(), 1u);
  EXPECT_EQ(server_.connects[0].address, "localhost:7070");
  EXPECT_EQ(server_.connects[0].timeout, absl::Seconds(30));
}

TEST_F(CliTest, UnaryCommandsUseTheKeeperUnlessItIsOff) {
  env_["XDG_RUNTIME_DIR"] = "/run/user/1000";
  env_["DROVER_KEEPER_IDLE"] = "60";
  ASSERT_EQ(Run({"list"}), 0);
  EXPECT_TRUE(server_.connects.back().use_keeper);
  EXPECT_EQ(server_.connects.back().runtime_dir, "/run/user/1000");
  EXPECT_EQ(server_.connects.back().keeper_idle, absl::Seconds(60));
  env_["DROVER_KEEPER_IDLE"] = "soon";  // not a number: the default
  env_["DROVER_KEEPER"] = "off";
  ASSERT_EQ(Run({"list"}), 0);
  EXPECT_FALSE(server_.connects.back().use_keeper);
  EXPECT_EQ(server_.connects.back().keeper_idle, absl::Minutes(5));
}

TEST_F(CliTest, CommandsThatStreamMakeEveryCallOnTheirOwnConnection) {
  ASSERT_EQ(Run({"submit", "train.py"}), 0) << err();
  EXPECT_TRUE(server_.connects.back().use_keeper);
  server_.streams.push_back({{}, absl::OkStatus()});
  Run({"submit", "--watch", "train.py"});
  EXPECT_FALSE(server_.connects.back().use_keeper);
  Run({"watch", "j-1"});
  EXPECT_FALSE(server_.connects.back().use_keeper);
  Run({"logs", "j-1"});
  EXPECT_FALSE(server_.connects.back().use_keeper);
}

TEST_F(CliTest, ServerComesFromTheEnvironmentThenTheFlag) {
  env_["DROVER_SERVER"] = "head:9000";
  ASSERT_EQ(Run({"list"}), 0);
  EXPECT_EQ(server_.connects.back().address, "head:9000");
  ASSERT_EQ(Run({"--server", "other:1", "list"}), 0);
  EXPECT_EQ(server_.connects.back().address, "other:1");
}

TEST_F(CliTest, GlobalFlagsWorkBeforeAndAfterTheCommand) {
  ASSERT_EQ(Run({"--server", "a:1", "--timeout", "5s", "list"}), 0);
  EXPECT_EQ(server_.connects.back().address, "a:1");
  EXPECT_EQ(server_.connects.back().timeout, absl::Seconds(5));
  ASSERT_EQ(Run({"list", "--server=b:2", "--timeout=2m", "--output", "json"}), 0);
  EXPECT_EQ(server_.connects.back().address, "b:2");
  EXPECT_EQ(server_.connects.back().timeout, absl::Minutes(2));
  EXPECT_EQ(out(), "[]\n");
  ASSERT_EQ(Run({"-o", "json", "list"}), 0);
  EXPECT_EQ(out(), "[]\n");
}

TEST_F(CliTest, MalformedServerAddressIsAUsageError) {
  EXPECT_EQ(Run({"--server", "localhost", "list"}), 2);
  ExpectOneErrorLine("--server: 'localhost' is not HOST:PORT");
  env_["DROVER_SERVER"] = "nohost";
  EXPECT_EQ(Run({"list"}), 2);
  ExpectOneErrorLine("DROVER_SERVER: 'nohost'");
  EXPECT_THAT(server_.connects, IsEmpty());
  ASSERT_EQ(Run({"--server", "unix:/run/drover.sock", "list"}), 0);
  ASSERT_EQ(Run({"--server", "[::1]:7070", "list"}), 0);
}

TEST_F(CliTest, SeveralDroverdsAreOneListEachEntryChecked) {
  ASSERT_EQ(Run({"--server", "head-a:7070,head-b:7070", "list"}), 0);
  EXPECT_EQ(server_.connects.back().address, "head-a:7070,head-b:7070");
  ASSERT_EQ(Run({"--server", "[fd00::1]:7070,[fd00::2]:7070", "list"}), 0);
  size_t connects = server_.connects.size();
  for (const char* bad : {"head-a:7070,", ",head-a:7070", "head-a:7070,,head-b:7070",
                          "head-a:7070, head-b:7070", "head-a:7070,head-b", "head-a,head-b:7070"}) {
    EXPECT_EQ(Run({"--server", bad, "list"}), 2) << bad;
    ExpectOneErrorLine(absl::StrCat("--server: '", bad, "' is not HOST:PORT"));
  }
  EXPECT_EQ(server_.connects.size(), connects) << "nothing connected with a bad list";
}

// ---- list

TEST_F(CliTest, ListShowsATableNewestFirst) {
  server_.Add(v1::JobStatus::COMPLETED, "old");
  server_.Add(v1::JobStatus::QUEUED, "new");
  ASSERT_EQ(Run({"list"}), 0) << err();
  std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0], StartsWith("ID   NAME  EXPERIMENT  STATE"));
  EXPECT_THAT(lines[1], StartsWith("j-2  new"));
  EXPECT_THAT(lines[2], StartsWith("j-1  old"));
  EXPECT_THAT(lines[1], HasSubstr("1m"));  // created 99 s before "now"
}

TEST_F(CliTest, ListPassesFilters) {
  ASSERT_EQ(Run({"list", "--state", "queued,Running", "--state", "FAILED", "--experiment", "e",
                 "--tag", "team=cv"}),
            0)
      << err();
  const v1::ListJobsRequest& request = server_.lists.back();
  EXPECT_THAT(request.states(), ElementsAre(v1::JobStatus::QUEUED, v1::JobStatus::RUNNING,
                                            v1::JobStatus::FAILED));
  EXPECT_EQ(request.experiment(), "e");
  EXPECT_EQ(request.tag(), "team=cv");
  EXPECT_EQ(request.page_size(), 50);
}

TEST_F(CliTest, ListRejectsUnknownStatesLocally) {
  EXPECT_EQ(Run({"list", "--state", "done"}), 2);
  ExpectOneErrorLine("--state: 'done' is not a job state; use one of QUEUED");
  EXPECT_EQ(Run({"list", "--limit", "0"}), 2);
  EXPECT_EQ(Run({"list", "extra"}), 2);
  EXPECT_THAT(server_.lists, IsEmpty());
}

TEST_F(CliTest, ListLimitStopsEarlyAndSaysThereIsMore) {
  for (int i = 0; i < 7; ++i) server_.Add(v1::JobStatus::QUEUED);
  ASSERT_EQ(Run({"list", "--limit", "3"}), 0);
  std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_THAT(lines[1], StartsWith("j-7"));
  EXPECT_THAT(lines[3], StartsWith("j-5"));
  EXPECT_THAT(err(), HasSubstr("--all"));
}

TEST_F(CliTest, ListAllFollowsEveryPage) {
  for (int i = 0; i < 2500; ++i) server_.Add(v1::JobStatus::QUEUED);
  ASSERT_EQ(Run({"list", "--all", "-o", "json"}), 0) << err();
  EXPECT_EQ(server_.lists.size(), 3u);
  EXPECT_EQ(server_.lists[1].page_token(), "1000");
  std::vector<std::string> lines = absl::StrSplit(out(), '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 2502u);  // [ ... ]
  EXPECT_EQ(lines.front(), "[");
  EXPECT_EQ(lines.back(), "]");
  EXPECT_THAT(lines[1], HasSubstr("\"id\":\"j-2500\""));
  EXPECT_THAT(lines[1], ::testing::EndsWith(","));
  EXPECT_THAT(err(), IsEmpty());
}

// ---- show

TEST_F(CliTest, ShowPrintsSectionsOrJson) {
  server_.Add(v1::JobStatus::QUEUED, "bert");
  ASSERT_EQ(Run({"show", "j-1"}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("id:         j-1\n"));
  EXPECT_THAT(out(), HasSubstr("status:\n  state:"));
  ASSERT_EQ(Run({"show", "1", "--output", "json"}), 0) << err();
  EXPECT_THAT(out(), HasSubstr("\"id\": \"j-1\""));
  EXPECT_THAT(out(), HasSubstr("\"entry_script\": \"train.py\""));
  EXPECT_EQ(server_.gets.back().job_id(), "j-1");
}

TEST_F(CliTest, ShowOfAnUnknownJobExits4) {
  EXPECT_EQ(Run({"show", "j-99"}), 4);
  ExpectOneErrorLine("j-99");
}

TEST_F(CliTest, ShowChecksTheJobIdLocally) {
  EXPECT_EQ(Run({"show", "job-x"}), 2);
  ExpectOneErrorLine("'job-x' is not a job id");
  EXPECT_EQ(Run({"show"}), 2);
  ExpectOneErrorLine("missing JOB");
  EXPECT_EQ(Run({"show", "j-1", "j-2"}), 2);
  EXPECT_THAT(server_.gets, IsEmpty());
}

// ---- cancel

TEST_F(CliTest, CancelPrintsTheNewState) {
  server_.Add(v1::JobStatus::QUEUED);
  server_.Add(v1::JobStatus::RUNNING);
  ASSERT_EQ(Run({"cancel", "j-1", "--reason", "wrong lr"}), 0) << err();
  EXPECT_EQ(out(), "j-1 CANCELED\n");
  EXPECT_EQ(server_.cancels.back().reason(), "wrong lr");
  ASSERT_EQ(Run({"cancel", "j-2"}), 0);
  EXPECT_EQ(out(), "j-2 CANCEL_REQUESTED\n");
}

TEST_F(CliTest, CancelOfAFinishedJobExits5) {
  server_.Add(v1::JobStatus::COMPLETED);
  EXPECT_EQ(Run({"cancel", "j-1"}), 5);
  ExpectOneErrorLine("already ended");
}

// ---- tag

TEST_F(CliTest, TagSetsAndRemovesTagsAndPrintsThemAll) {
  v1::Job& job = server_.Add(v1::JobStatus::RUNNING);
  (*job.mutable_spec()->mutable_tags())["stage"] = "draft";
  ASSERT_EQ(Run({"tag", "j-1", "lr=0.01", "note=a=b", "--remove", "stage"}), 0) << err();
  EXPECT_EQ(out(), "j-1 lr=0.01 note=a=b\n");
  const v1::UpdateJobTagsRequest& sent = server_.tag_updates.back();
  EXPECT_EQ(sent.job_id(), "j-1");
  EXPECT_THAT(sent.set(), ::testing::UnorderedElementsAre(::testing::Pair("lr", "0.01"),
                                                          ::testing::Pair("note", "a=b")));
  EXPECT_THAT(sent.remove(), ElementsAre("stage"));
  ASSERT_EQ(Run({"tag", "1", "--remove", "lr", "--remove", "note"}), 0) << err();
  EXPECT_EQ(out(), "j-1 (no tags)\n");
}

TEST_F(CliTest, TagChecksItsArgumentsLocally) {
  server_.Add(v1::JobStatus::QUEUED);
  EXPECT_EQ(Run({"tag", "j-1"}), 2);
  ExpectOneErrorLine("nothing to change");
  EXPECT_EQ(Run({"tag", "j-1", "stage"}), 2);
  ExpectOneErrorLine("'stage': write KEY=VALUE");
  EXPECT_EQ(Run({"tag", "j-1", "=x"}), 2);
  EXPECT_EQ(Run({"tag"}), 2);
  ExpectOneErrorLine("missing JOB");
  EXPECT_THAT(server_.tag_updates, IsEmpty());
}

TEST_F(CliTest, TagOfAnUnknownJobExitsWithTheServersMessage) {
  EXPECT_EQ(Run({"tag", "j-9", "a=b"}), 4);
  ExpectOneErrorLine("job 'j-9' not found");
}

// ---- watch

TEST(ExitCodeTest, MapsServerCodesToWhatScriptsDoNext) {
  EXPECT_EQ(ExitCodeForServerStatus(absl::InvalidArgumentError("")), 3);
  EXPECT_EQ(ExitCodeForServerStatus(absl::NotFoundError("")), 4);
  EXPECT_EQ(ExitCodeForServerStatus(absl::AlreadyExistsError("")), 5);
  EXPECT_EQ(ExitCodeForServerStatus(absl::FailedPreconditionError("")), 5);
  EXPECT_EQ(ExitCodeForServerStatus(absl::AbortedError("")), 5);
  EXPECT_EQ(ExitCodeForServerStatus(absl::UnavailableError("")), 6);
  EXPECT_EQ(ExitCodeForServerStatus(absl::DeadlineExceededError("")), 6);
  EXPECT_EQ(ExitCodeForServerStatus(absl::InternalError("")), 1);
  EXPECT_EQ(ExitCodeForServerStatus(absl::UnknownError("")), 1);
}

TEST_F(CliTest, HelpOfEveryCommandExits0AndListsItsFlags) {
  struct Case {
    std::string command;
    std::vector<std::string> flags;
  } cases[] = {
      {"submit", {"--file", "--name", "--tag", "--memory", "--backend", "--watch", "--server"}},
      {"list", {"--state", "--experiment", "--tag", "--limit", "--all", "--output"}},
      {"show", {"--output", "--server"}},
      {"cancel", {"--reason"}},
      {"tag", {"--remove", "KEY=VALUE"}},
      {"watch", {"--output", "--timeout"}},
      {"logs", {"--follow", "--rank", "--stdout", "--stderr", "--all-streams", "--attempt"}},
      {"download", {"--dest"}},
      {"nodes", {"--output"}},
      {"node", {"cordon", "uncordon", "drain", "--server"}},
      {"target", {"create", "list", "delete"}},
      {"image", {"import", "list", "delete"}},
      {"datastore", {"create", "list", "delete"}},
      {"version", {"--server"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.command);
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{c.command, "--help"}, {"help", c.command}, {c.command, "-h"}}) {
      EXPECT_EQ(Run(args), 0);
      EXPECT_THAT(out(), StartsWith("Usage: drover " + c.command));
      EXPECT_THAT(out(), HasSubstr("Examples:"));
      EXPECT_THAT(out(), HasSubstr("Exit codes:"));
      for (const std::string& flag : c.flags) EXPECT_THAT(out(), HasSubstr(flag));
    }
  }
  EXPECT_THAT(server_.connects, IsEmpty());
}

TEST_F(CliTest, HelpOfAnActionListsItsFlags) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"help", "node", "cordon"}, {"node", "cordon", "--help"}}) {
    EXPECT_EQ(Run(args), 0) << err();
    EXPECT_THAT(out(), StartsWith("Usage: drover node cordon [flags] NODE"));
    EXPECT_THAT(out(), HasSubstr("--reason"));
  }
  EXPECT_EQ(Run({"help", "target", "create"}), 0);
  EXPECT_THAT(out(), HasSubstr("--selector"));
  EXPECT_EQ(Run({"help", "list", "extra"}), 2);
  EXPECT_THAT(server_.connects, IsEmpty());
}

TEST_F(CliTest, TopLevelHelpListsCommandsAndExitCodes) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, {"help"}, {"-h"}}) {
    EXPECT_EQ(Run(args), 0);
    for (const char* word : {"submit", "list", "show", "cancel", "watch", "logs", "download",
                             "nodes", "node", "target", "image", "datastore", "version",
                             "--server", "DROVER_SERVER",
                             "Exit codes:", "11"}) {
      EXPECT_THAT(out(), HasSubstr(word));
    }
  }
}

TEST_F(CliTest, NoCommandOrUnknownCommandIsAUsageError) {
  EXPECT_EQ(Run({}), 2);
  EXPECT_THAT(err(), HasSubstr("Usage: drover"));
  EXPECT_EQ(Run({"frobnicate"}), 2);
  ExpectOneErrorLine("unknown command 'frobnicate'");
  EXPECT_EQ(Run({"help", "frobnicate"}), 2);
  EXPECT_EQ(Run({"--bogus", "list"}), 2);
  ExpectOneErrorLine("unknown flag --bogus");
}

TEST_F(CliTest, VersionPrintsTheVersion) {
  EXPECT_EQ(Run({"version"}), 0);
  EXPECT_EQ(out(), absl::StrCat("drover ", DroverVersion(), "\n"));
}

TEST(RandomIdempotencyKeyTest, IsFreshEachTime) {
  absl::StatusOr<std::string> a = RandomIdempotencyKey();
  absl::StatusOr<std::string> b = RandomIdempotencyKey();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(a->size(), 7u + 32u);
}

}  // namespace
}  // namespace drover::cli
