// The built `drover` binary against a real droverd (started per test on a kernel-picked
// port with its own state folder): what a user sees on stdout, stderr and in exit codes.
#include <fstream>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "drover/v1/job.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/subprocess.h"

namespace drover::cli {
namespace {

using ::drover::testing::CommandResult;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

v1::Job ParseJob(const std::string& json) {
  v1::Job job;
  auto status = google::protobuf::util::JsonStringToMessage(json, &job);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
  return job;
}

class CliE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<testing::DroverdProcess>> droverd =
        testing::DroverdProcess::Start(dir_.path() + "/state");
    ASSERT_TRUE(droverd.ok()) << droverd.status();
    droverd_ = *std::move(droverd);
  }

  // Runs `drover --server ADDRESS ARGS...` with DROVER_SERVER unset unless `env` sets it.
  CommandResult Drover(std::vector<std::string> args, std::vector<std::string> env = {},
                       bool with_server = true) {
    std::vector<std::string> argv = {testing::ProgramPath("DROVER_CLI", DROVER_CLI_PATH)};
    if (with_server) {
      argv.push_back("--server");
      argv.push_back(droverd_->address());
    }
    argv.insert(argv.end(), args.begin(), args.end());
    env.insert(env.begin(), "DROVER_SERVER=");
    absl::StatusOr<CommandResult> result = testing::RunCommand(argv, env);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return CommandResult{};
    return *std::move(result);
  }

  // Submits `args` and returns the printed job id.
  std::string Submit(std::vector<std::string> args) {
    args.insert(args.begin(), "submit");
    CommandResult r = Drover(args);
    EXPECT_EQ(r.exit_code, 0) << r.err << "\ndroverd log:\n" << droverd_->ReadLog();
    EXPECT_THAT(r.out, MatchesRegex("j-[0-9]+\n"));
    return std::string(absl::StripTrailingAsciiWhitespace(r.out));
  }

  std::string WriteFile(absl::string_view name, absl::string_view contents) {
    std::string path = absl::StrCat(dir_.path(), "/", name);
    std::ofstream(path) << contents;
    return path;
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::DroverdProcess> droverd_;
};

TEST_F(CliE2eTest, SubmitPrintsOnlyTheNewJobId) {
  CommandResult r = Drover({"submit", "--name", "mnist", "train.py", "--epochs", "3"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, MatchesRegex("j-[0-9]+\n"));
  EXPECT_THAT(r.err, IsEmpty());
}

TEST_F(CliE2eTest, ListShowsJobsNewestFirstInAlignedColumns) {
  std::string first = Submit({"--name", "a", "train.py"});
  std::string second = Submit({"--name", "a-much-longer-job-name", "--experiment", "vision",
                               "--nodes", "2", "--processes-per-node", "4", "--backend", "mpi",
                               "train.py"});
  std::string third = Submit({"--name", "c", "train.py"});

  CommandResult r = Drover({"list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u) << r.out;
  const std::string& header = lines[0];
  EXPECT_THAT(header, MatchesRegex("ID +NAME +EXPERIMENT +STATE +REASON +NODES +AGE"));
  EXPECT_THAT(lines[1], StartsWith(third + " "));
  EXPECT_THAT(lines[2], StartsWith(second + " "));
  EXPECT_THAT(lines[3], StartsWith(first + " "));
  // Every column starts at its header's offset on every row.
  size_t name_col = header.find("NAME");
  size_t state_col = header.find("STATE");
  size_t nodes_col = header.find("NODES");
  EXPECT_EQ(lines[2].substr(name_col, 22), "a-much-longer-job-name");
  EXPECT_EQ(lines[2].substr(nodes_col, 4), "2x4 ");
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].substr(state_col, 6), "QUEUED") << lines[i];
    EXPECT_NE(lines[i].back(), ' ');
  }
  EXPECT_THAT(lines[2], HasSubstr("vision"));
  EXPECT_THAT(lines[1], MatchesRegex(".* [0-9]+s"));
}

TEST_F(CliE2eTest, ListFiltersAndJsonOutput) {
  std::string a = Submit({"--experiment", "one", "--tag", "team=cv", "train.py"});
  std::string b = Submit({"--experiment", "two", "train.py"});
  CommandResult r = Drover({"list", "--experiment", "one", "--output", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(absl::StrCat("\"id\":\"", a, "\"")));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr(absl::StrCat("\"id\":\"", b, "\""))));
  EXPECT_THAT(r.out, StartsWith("["));

  r = Drover({"list", "--tag", "team=cv"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(a + " "));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr(b + " ")));

  r = Drover({"list", "--state", "canceled"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 1u) << r.out;  // the header only
}

TEST_F(CliE2eTest, ListLimitAndAllFollowPages) {
  for (int i = 0; i < 5; ++i) Submit({"train.py"});
  CommandResult r = Drover({"list", "--limit", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(r.out, '\n', absl::SkipEmpty())).size(), 3u);
  r = Drover({"list", "--all"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(r.out, '\n', absl::SkipEmpty())).size(), 6u);
}

TEST_F(CliE2eTest, ShowJsonRoundTripsTheSubmittedJob) {
  CommandResult submitted = Drover(
      {"submit", "--output", "json", "--name", "bert", "--tag", "team=nlp", "--env", "SEED=7",
       "--pip", "torch==2.1.0", "--memory", "16Gi", "--max-run-duration", "2h", "train.py",
       "--lr", "0.1", "ds://corpus/wiki?mode=download"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  v1::Job job = ParseJob(submitted.out);
  ASSERT_THAT(job.id(), StartsWith("j-"));

  CommandResult shown = Drover({"show", job.id(), "--output", "json"});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  EXPECT_THAT(shown.out, HasSubstr("\"entry_script\""));  // proto field names
  v1::Job again = ParseJob(shown.out);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(job, again))
      << job.DebugString() << "\n----\n" << again.DebugString();
  EXPECT_EQ(again.spec().resources().memory_mib(), 16384);
  EXPECT_EQ(again.spec().max_run_duration().seconds(), 7200);
  ASSERT_EQ(again.spec().arguments_size(), 3);
  EXPECT_EQ(again.spec().arguments(2).data().datastore(), "corpus");
  EXPECT_EQ(again.spec().arguments(2).data().mode(), v1::DataReference::DOWNLOAD);

  CommandResult page = Drover({"show", job.id()});
  ASSERT_EQ(page.exit_code, 0) << page.err;
  EXPECT_THAT(page.out, HasSubstr(absl::StrCat("id:         ", job.id(), "\n")));
  EXPECT_THAT(page.out, HasSubstr("name:       bert\n"));
  EXPECT_THAT(page.out, HasSubstr("state:"));
  EXPECT_THAT(page.out, HasSubstr("ds://corpus/wiki?mode=download"));
  EXPECT_THAT(page.out, HasSubstr("memory: 16Gi"));
}

TEST_F(CliE2eTest, SpecFileWithLowercaseEnumsAndFlagOverrides) {
  std::string path = WriteFile("job.json", R"({
    "name": "from-file",
    "entry_script": "train.py",
    "nodeCount": 2,
    "process_count_per_node": 2,
    "distributed_backend": "pytorch",
    "arguments": [{"value": "--epochs"}, {"value": "5"}]
  })");
  CommandResult r = Drover({"submit", "-f", path, "--name", "from-flag", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::Job job = ParseJob(r.out);
  EXPECT_EQ(job.spec().name(), "from-flag");
  EXPECT_EQ(job.spec().node_count(), 2);
  EXPECT_EQ(job.spec().distributed_backend(), v1::JobSpec::PYTORCH);
  EXPECT_EQ(job.spec().arguments_size(), 2);
}

TEST_F(CliE2eTest, CancelOfAQueuedJobCancelsAndASecondCancelSucceeds) {
  std::string id = Submit({"train.py"});
  CommandResult r = Drover({"cancel", id, "--reason", "wrong data"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat(id, " CANCELED\n"));
  r = Drover({"cancel", id});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, absl::StrCat(id, " CANCELED\n"));
}

TEST_F(CliE2eTest, WatchOfACanceledJobExits11) {
  std::string id = Submit({"train.py"});
  ASSERT_EQ(Drover({"cancel", id}).exit_code, 0);
  CommandResult r = Drover({"watch", id});
  EXPECT_EQ(r.exit_code, 11) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_FALSE(lines.empty());
  EXPECT_THAT(lines.back(), MatchesRegex(absl::StrCat("[0-9T:+-]+ ", id, " CANCELED.*")));

  r = Drover({"watch", id, "--output", "json"});
  EXPECT_EQ(r.exit_code, 11) << r.err;
  EXPECT_EQ(ParseJob(std::string(absl::StripTrailingAsciiWhitespace(r.out))).status().state(),
            v1::JobStatus::CANCELED);
}

TEST_F(CliE2eTest, InvalidSpecExits3WithOneLineNamingTheField) {
  CommandResult r = Drover({"submit", "--nodes", "5000", "--backend", "mpi", "train.py"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "drover: spec.node_count: 5000 is out of range; use 1 to 1024\n");
  EXPECT_THAT(r.out, IsEmpty());
  r = Drover({"list"});
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(r.out, '\n', absl::SkipEmpty())).size(), 1u);
}

TEST_F(CliE2eTest, UnknownJobExits4) {
  for (const char* command : {"show", "cancel", "watch"}) {
    CommandResult r = Drover({command, "j-999999"});
    EXPECT_EQ(r.exit_code, 4) << command << ": " << r.err;
    EXPECT_THAT(r.err, StartsWith("drover: "));
    EXPECT_THAT(r.err, HasSubstr("j-999999"));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST_F(CliE2eTest, SameIdempotencyKeyGivesTheSameJob) {
  std::string a = Submit({"--idempotency-key", "run-2024-01", "train.py"});
  std::string b = Submit({"--idempotency-key", "run-2024-01", "train.py"});
  EXPECT_EQ(a, b);
  CommandResult r = Drover({"submit", "--idempotency-key", "run-2024-01", "other.py"});
  EXPECT_EQ(r.exit_code, 5) << r.err;
}

TEST_F(CliE2eTest, UnreachableServerExits6WithAReadableLine) {
  // Port 1 on loopback: nothing listens there, so the connection is refused.
  CommandResult r = Drover({"--server", "127.0.0.1:1", "list"}, {}, /*with_server=*/false);
  EXPECT_EQ(r.exit_code, 6);
  EXPECT_EQ(r.err,
            "drover: cannot reach droverd at 127.0.0.1:1 (connection refused); is it running? "
            "set --server or DROVER_SERVER\n");
  EXPECT_THAT(r.out, IsEmpty());
}

TEST_F(CliE2eTest, DroverServerVariableNamesTheServer) {
  std::string id = Submit({"train.py"});
  CommandResult r =
      Drover({"show", id}, {absl::StrCat("DROVER_SERVER=", droverd_->address())}, /*with_server=*/false);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(id));
}

TEST_F(CliE2eTest, HelpOfEveryCommandExits0AndListsItsFlags) {
  struct Case {
    std::string command;
    std::vector<std::string> flags;
  } cases[] = {
      {"submit", {"--file", "--name", "--experiment", "--tag", "--target", "--image", "--pip",
                  "--conda", "--env", "--gpu", "--nodes", "--processes-per-node", "--backend",
                  "--cpus", "--memory", "--gpus", "--shm", "--max-run-duration", "--priority",
                  "--max-retries", "--snapshot", "--idempotency-key", "--watch"}},
      {"list", {"--state", "--experiment", "--tag", "--limit", "--all"}},
      {"show", {"--output"}},
      {"cancel", {"--reason"}},
      {"watch", {"--output"}},
      {"help", {}},
      {"version", {}},
  };
  for (const Case& c : cases) {
    CommandResult r = Drover({c.command, "--help"}, {}, /*with_server=*/false);
    EXPECT_EQ(r.exit_code, 0) << c.command << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr("Usage: drover")) << c.command;
    for (const std::string& flag : c.flags) EXPECT_THAT(r.out, HasSubstr(flag)) << c.command;
    for (const char* global : {"--server", "--output", "--timeout"}) {
      EXPECT_THAT(r.out, HasSubstr(global)) << c.command;
    }
  }
}

}  // namespace
}  // namespace drover::cli
