#include <string>
#include <vector>

#include "common/config.h"
#include "common/flags.h"
#include "common/job_id.h"
#include "common/log.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(JobIdTest, FormatsAndParsesBothSpellings) {
  EXPECT_EQ(FormatJobId(42), "j-42");
  EXPECT_EQ(*ParseJobId("j-42"), 42);
  EXPECT_EQ(*ParseJobId("42"), 42);
}

TEST(JobIdTest, RejectsMalformedIdsNamingTheField) {
  for (const char* bad : {"", "j-", "j-0", "j--3", "job-4", "j-4x", "j-99999999999999999999"}) {
    absl::StatusOr<int64_t> parsed = ParseJobId(bad, "job_id");
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(parsed.status().message(), HasSubstr("job_id"));
  }
}

TEST(FlagSetTest, ParsesLongShortInlineBoolAndRepeatedFlags) {
  std::string name = "default";
  int64_t count = 1;
  bool verbose = false;
  std::vector<std::string> tags;
  FlagSet flags("prog [flags]", "");
  flags.String("name,n", &name, "the name");
  flags.Int("count", &count, "how many");
  flags.Bool("verbose,v", &verbose, "talk more");
  flags.Repeated("tag", &tags, "a tag");
  std::vector<std::string> positional;
  ASSERT_TRUE(flags
                  .Parse({"-n", "x", "--count=3", "a", "--verbose", "--tag", "k=v", "--tag=z",
                          "--", "--not-a-flag"},
                         &positional)
                  .ok());
  EXPECT_EQ(name, "x");
  EXPECT_EQ(count, 3);
  EXPECT_TRUE(verbose);
  EXPECT_THAT(tags, ElementsAre("k=v", "z"));
  EXPECT_THAT(positional, ElementsAre("a", "--not-a-flag"));
}

TEST(FlagSetTest, StopsAtFirstPositionalWhenNotInterspersed) {
  bool verbose = false;
  FlagSet flags("prog", "");
  flags.Bool("verbose", &verbose, "");
  std::vector<std::string> positional;
  ASSERT_TRUE(flags.Parse({"script.py", "--verbose"}, &positional, false).ok());
  EXPECT_FALSE(verbose);
  EXPECT_THAT(positional, ElementsAre("script.py", "--verbose"));
}

TEST(FlagSetTest, BadInputNamesTheFlag) {
  int64_t count = 0;
  FlagSet flags("prog", "");
  flags.Int("count", &count, "");
  std::vector<std::string> positional;
  absl::Status s = flags.Parse({"--count", "many"}, &positional);
  EXPECT_THAT(s.message(), HasSubstr("--count"));
  s = flags.Parse({"--colour"}, &positional);
  EXPECT_THAT(s.message(), HasSubstr("unknown flag --colour"));
  s = flags.Parse({"--count"}, &positional);
  EXPECT_THAT(s.message(), HasSubstr("--count needs a value"));
}

TEST(FlagSetTest, HelpListsEveryFlagWithDefaults) {
  std::string listen = "127.0.0.1:7070";
  FlagSet flags("droverd [flags]", "The scheduler.");
  flags.String("listen", &listen, "Address to serve on", "HOST:PORT");
  std::string help = flags.Help();
  EXPECT_THAT(help, HasSubstr("Usage: droverd [flags]"));
  EXPECT_THAT(help, HasSubstr("--listen HOST:PORT"));
  EXPECT_THAT(help, HasSubstr("(default 127.0.0.1:7070)"));
  EXPECT_THAT(help, HasSubstr("--help"));
}

TEST(ConfigTest, CommandLineWinsOverFileAndErrorsNameTheLine) {
  std::string listen, dir;
  FlagSet flags("d", "");
  flags.String("listen", &listen, "");
  flags.String("state-dir", &dir, "");
  std::vector<std::string> positional;
  ASSERT_TRUE(flags.Parse({"--listen", "cli:1"}, &positional).ok());
  ASSERT_TRUE(ApplyConfigText("d.conf", "# comment\nlisten = file:2\nstate-dir = \"/var/x\"  # c\n",
                              &flags)
                  .ok());
  EXPECT_EQ(listen, "cli:1");
  EXPECT_EQ(dir, "/var/x");
  absl::Status s = ApplyConfigText("d.conf", "\nlisten\n", &flags);
  EXPECT_THAT(s.message(), HasSubstr("d.conf:2"));
  s = ApplyConfigText("d.conf", "colour = red\n", &flags);
  EXPECT_THAT(s.message(), HasSubstr("'colour' is not a known setting"));
}

TEST(ConfigTest, RepeatableSettingsMayAppearOnSeveralLines) {
  std::vector<std::string> labels;
  FlagSet flags("d", "");
  flags.Repeated("label", &labels, "");
  ASSERT_TRUE(ApplyConfigText("a.conf", "label = pool=gpu\nlabel = rack=r1\n", &flags).ok());
  EXPECT_THAT(labels, ElementsAre("pool=gpu", "rack=r1"));
}

TEST(ParseMibTest, AcceptsSuffixesAndRejectsGarbage) {
  int64_t mib = 0;
  ASSERT_TRUE(ParseMib("512", &mib).ok());
  EXPECT_EQ(mib, 512);
  ASSERT_TRUE(ParseMib("16Gi", &mib).ok());
  EXPECT_EQ(mib, 16 * 1024);
  ASSERT_TRUE(ParseMib("2G", &mib).ok());
  EXPECT_EQ(mib, 2048);
  EXPECT_FALSE(ParseMib("lots", &mib).ok());
  EXPECT_FALSE(ParseMib("-5", &mib).ok());
}

TEST(LogTest, QuotesValuesThatWouldBreakTheLine) {
  std::string line = FormatLogLine(LogLevel::kInfo, "job_submitted",
                                   {{"job", "j-1"}, {"name", "has space"}, {"n", 3}});
  EXPECT_THAT(line, HasSubstr(" INFO event=job_submitted job=j-1 name=\"has space\" n=3\n"));
}

}  // namespace
}  // namespace drover
