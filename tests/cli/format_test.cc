// Output formats of the drover CLI: ages, tables, the show page and watch lines.
#include "cli/format.h"

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace drover::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(FormatAgeTest, UsesTheLargestWholeUnit) {
  EXPECT_EQ(FormatAge(absl::ZeroDuration()), "0s");
  EXPECT_EQ(FormatAge(absl::Seconds(5)), "5s");
  EXPECT_EQ(FormatAge(absl::Seconds(59)), "59s");
  EXPECT_EQ(FormatAge(absl::Seconds(60)), "1m");
  EXPECT_EQ(FormatAge(absl::Minutes(3) + absl::Seconds(59)), "3m");
  EXPECT_EQ(FormatAge(absl::Minutes(59)), "59m");
  EXPECT_EQ(FormatAge(absl::Hours(2)), "2h");
  EXPECT_EQ(FormatAge(absl::Hours(23) + absl::Minutes(59)), "23h");
  EXPECT_EQ(FormatAge(absl::Hours(24)), "1d");
  EXPECT_EQ(FormatAge(absl::Hours(24 * 4 + 5)), "4d");
}

TEST(FormatAgeTest, ClockSkewShowsAsZero) { EXPECT_EQ(FormatAge(absl::Seconds(-3)), "0s"); }

TEST(FormatTableTest, AlignsColumnsWithoutTrailingSpaces) {
  std::string table = FormatTable({{"ID", "NAME", "AGE"}, {"j-10", "a", "5s"}, {"j-9", "longer", "3m"}});
  EXPECT_EQ(table,
            "ID    NAME    AGE\n"
            "j-10  a       5s\n"
            "j-9   longer  3m\n");
}

TEST(FormatTableTest, EmptyLastCellLeavesNoTrailingSpace) {
  EXPECT_EQ(FormatTable({{"A", "B"}, {"x", ""}}), "A  B\nx\n");
}

TEST(TruncateTest, CutsWithEllipsis) {
  EXPECT_EQ(Truncate("short", 10), "short");
  EXPECT_EQ(Truncate("exactly10!", 10), "exactly10!");
  EXPECT_EQ(Truncate("WAITING_FOR_NODES need=4 free=2", 12), "WAITING_F...");
}

TEST(StateNameTest, ParsesAnyCaseAndListsNamesOnError) {
  EXPECT_EQ(*ParseStateName("queued"), v1::JobStatus::QUEUED);
  EXPECT_EQ(*ParseStateName("Cancel_Requested"), v1::JobStatus::CANCEL_REQUESTED);
  absl::StatusOr<v1::JobStatus::State> bad = ParseStateName("done");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("QUEUED"));
  EXPECT_THAT(bad.status().message(), Not(HasSubstr("UNSPECIFIED")));
  EXPECT_FALSE(ParseStateName("state_unspecified").ok());
}

v1::Job MakeJob(const std::string& id, int64_t created, v1::JobStatus::State state) {
  v1::Job job;
  job.set_id(id);
  job.mutable_create_time()->set_seconds(created);
  job.mutable_status()->set_state(state);
  return job;
}

TEST(FormatJobTableTest, ShowsEveryColumnInTheOrderGiven) {
  absl::Time now = absl::FromUnixSeconds(10'000);
  v1::Job newer = MakeJob("j-12", 10'000 - 5, v1::JobStatus::QUEUED);
  newer.mutable_spec()->set_name("resnet");
  newer.mutable_spec()->set_experiment("vision");
  newer.mutable_spec()->set_node_count(2);
  newer.mutable_spec()->set_process_count_per_node(8);
  newer.mutable_status()->set_reason(
      "WAITING_FOR_NODES need=2 free=0 target=gpu-pool-with-a-long-name");
  v1::Job older = MakeJob("j-3", 10'000 - 7200, v1::JobStatus::COMPLETED);
  older.mutable_spec()->set_experiment("default");

  std::vector<std::string> lines =
      absl::StrSplit(FormatJobTable({newer, older}, now), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "ID    NAME    EXPERIMENT  STATE      REASON                                    NODES  AGE");
  EXPECT_EQ(lines[1], "j-12  resnet  vision      QUEUED     WAITING_FOR_NODES need=2 free=0 targe...  2x8    5s");
  EXPECT_EQ(lines[2], "j-3   -       default     COMPLETED  -                                         1x1    2h");
}

TEST(FormatJobTableTest, EmptyListIsJustTheHeader) {
  EXPECT_EQ(FormatJobTable({}, absl::Now()), "ID  NAME  EXPERIMENT  STATE  REASON  NODES  AGE\n");
}

TEST(FormatWatchLineTest, TimeJobStateReason) {
  v1::Job job = MakeJob("j-4", 0, v1::JobStatus::QUEUED);
  job.mutable_status()->set_reason("WAITING_FOR_NODES need=4 free=2");
  job.mutable_status()->mutable_update_time()->set_seconds(1'700'000'000);
  EXPECT_EQ(FormatWatchLine(job, absl::UTCTimeZone()),
            "2023-11-14T22:13:20+00:00 j-4 QUEUED WAITING_FOR_NODES need=4 free=2");
}

TEST(FormatWatchLineTest, TerminalLineCarriesTheMessage) {
  v1::Job job = MakeJob("j-4", 0, v1::JobStatus::CANCELED);
  job.mutable_status()->set_message("canceled: wrong data");
  job.mutable_status()->mutable_update_time()->set_seconds(1'700'000'000);
  EXPECT_EQ(FormatWatchLine(job, absl::UTCTimeZone()),
            "2023-11-14T22:13:20+00:00 j-4 CANCELED -- canceled: wrong data");
}

TEST(FormatMibTest, PicksTheLargestExactUnit) {
  EXPECT_EQ(FormatMib(512), "512Mi");
  EXPECT_EQ(FormatMib(1024), "1Gi");
  EXPECT_EQ(FormatMib(16 * 1024), "16Gi");
  EXPECT_EQ(FormatMib(1536), "1536Mi");
  EXPECT_EQ(FormatMib(1024 * 1024), "1Ti");
  EXPECT_EQ(FormatMib(0), "0Mi");
}

TEST(FormatJobDetailsTest, ShowsSectionsWithKeyValueLines) {
  v1::Job job = MakeJob("j-7", 1'700'000'000, v1::JobStatus::QUEUED);
  v1::JobSpec& spec = *job.mutable_spec();
  spec.set_name("bert");
  spec.set_experiment("nlp");
  (*spec.mutable_tags())["team"] = "lang";
  spec.set_entry_script("train.py");
  spec.set_node_count(2);
  spec.set_process_count_per_node(4);
  spec.set_distributed_backend(v1::JobSpec::MPI);
  spec.add_arguments()->set_value("--epochs");
  spec.add_arguments()->mutable_data()->set_datastore("corpus");
  spec.mutable_environment()->set_image("host");
  (*spec.mutable_environment()->mutable_env())["A"] = "1";
  (*spec.mutable_environment()->mutable_env())["B"] = "2";
  spec.mutable_resources()->set_cpus(4);
  spec.mutable_resources()->set_memory_mib(16384);
  spec.mutable_max_run_duration()->set_seconds(5400);
  job.mutable_status()->set_reason("WAITING_FOR_NODES need=2 free=1");

  std::string page = FormatJobDetails(job, absl::FromUnixSeconds(1'700'000'300), absl::UTCTimeZone());
  EXPECT_THAT(page, HasSubstr("id:         j-7\n"));
  EXPECT_THAT(page, HasSubstr("tags:       team=lang\n"));
  EXPECT_THAT(page, HasSubstr("\nstatus:\n  state:   QUEUED\n  reason:  WAITING_FOR_NODES need=2 free=1\n"));
  EXPECT_THAT(page, HasSubstr("  nodes:            2 x 4 processes per node\n"));
  EXPECT_THAT(page, HasSubstr("  backend:          mpi\n"));
  EXPECT_THAT(page, HasSubstr("  max run duration: 1h30m\n"));
  EXPECT_THAT(page, HasSubstr("\narguments:\n  [0]: --epochs\n  [1]: ds://corpus\n"));
  EXPECT_THAT(page, HasSubstr("  variables: A=1\n             B=2\n"));
  EXPECT_THAT(page, HasSubstr("  memory: 16Gi\n"));
  EXPECT_THAT(page, HasSubstr("  created: 2023-11-14 22:13:20 +0000 (5m ago)\n"));
  EXPECT_THAT(page, HasSubstr("  started: -\n"));
}

TEST(JobToJsonTest, UsesProtoNamesAndOmitsDefaults) {
  v1::Job job = MakeJob("j-1", 0, v1::JobStatus::QUEUED);
  job.mutable_spec()->set_node_count(3);
  std::string json = JobToJson(job, /*pretty=*/false);
  EXPECT_THAT(json, HasSubstr("\"node_count\":3"));
  EXPECT_THAT(json, Not(HasSubstr("priority")));
  EXPECT_THAT(json, Not(HasSubstr("\n")));
  EXPECT_THAT(JobToJson(job, /*pretty=*/true), HasSubstr("\n"));
}

}  // namespace
}  // namespace drover::cli
