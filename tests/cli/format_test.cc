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

TEST(FormatJobTableTest, AJobArrayIsOneLineAmongTheJobsWithItsTasksCountedByState) {
  absl::Time now = absl::FromUnixSeconds(10'000);
  v1::Job newer = MakeJob("j-2000", 10'000 - 5, v1::JobStatus::QUEUED);
  v1::Job older = MakeJob("j-3", 10'000 - 7200, v1::JobStatus::COMPLETED);
  v1::ArraySummary array;
  array.set_array_id("a-3f9c1b2e7d40aa01");
  array.set_name("sweep");
  array.set_experiment("vision");
  array.set_size(1000);
  array.set_max_running(50);
  *array.mutable_first_task() = MakeJob("j-10", 10'000 - 60, v1::JobStatus::COMPLETED);
  for (auto [state, count] : std::vector<std::pair<v1::JobStatus::State, int>>{
           {v1::JobStatus::COMPLETED, 958}, {v1::JobStatus::QUEUED, 30},
           {v1::JobStatus::RUNNING, 12}}) {
    v1::ArraySummary::StateCount* entry = array.add_counts();
    entry->set_state(state);
    entry->set_count(count);
  }
  EXPECT_EQ(FormatArrayCounts(array), "12 running, 30 queued, 958 completed");
  std::vector<std::string> lines =
      absl::StrSplit(FormatJobTable({newer, older}, now, {array}), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_THAT(lines[1], ::testing::StartsWith("j-2000 "));
  EXPECT_THAT(lines[2], ::testing::StartsWith("a-3f9c1b2e7d40aa01  sweep  vision      ARRAY[1000%50]  "
                                              "12 running, 30 queued, 958 completed"));
  EXPECT_THAT(lines[2], ::testing::EndsWith("1m"));
  EXPECT_THAT(lines[3], ::testing::StartsWith("j-3 "));
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

TEST(FormatJobDetailsTest, SaysWhatRetentionRemovedAndWhen) {
  v1::Job job = MakeJob("j-7", 1'700'000'000, v1::JobStatus::COMPLETED);
  job.mutable_status()->set_outputs_digest("sha256:" + std::string(64, 'a'));
  job.mutable_status()->set_outputs_size(2048);
  job.mutable_status()->mutable_logs_removed_time()->set_seconds(1'700'000'000);
  job.mutable_status()->mutable_outputs_removed_time()->set_seconds(1'700'086'400);
  std::string page =
      FormatJobDetails(job, absl::FromUnixSeconds(1'700'172'800), absl::UTCTimeZone());
  EXPECT_THAT(page, HasSubstr("(2 KiB); removed by droverd's retention\n"));
  EXPECT_THAT(page, Not(HasSubstr("drover download")));
  EXPECT_THAT(page, HasSubstr("  removed: logs 2023-11-14 22:13:20 +0000 (2d ago)\n"
                              "           outputs 2023-11-15 22:13:20 +0000 (1d ago)\n"));
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

TEST(FormatMemoryTest, RoundsToOneDecimalInTheLargestUnit) {
  EXPECT_EQ(FormatMemory(0), "0");
  EXPECT_EQ(FormatMemory(512), "512Mi");
  EXPECT_EQ(FormatMemory(1024), "1Gi");
  EXPECT_EQ(FormatMemory(12800), "12.5Gi");
  EXPECT_EQ(FormatMemory(65536), "64Gi");
  EXPECT_EQ(FormatMemory(1048575), "1Ti");
  EXPECT_EQ(FormatMemory(1572864), "1.5Ti");
}

TEST(FormatCpusTest, DropsTrailingZeros) {
  EXPECT_EQ(FormatCpus(8), "8");
  EXPECT_EQ(FormatCpus(1.5), "1.5");
  EXPECT_EQ(FormatCpus(0.25), "0.25");
  EXPECT_EQ(FormatCpus(0), "0");
}

v1::Node MakeNode(const std::string& name, v1::Node::State state) {
  v1::Node node;
  node.set_name(name);
  node.set_state(state);
  return node;
}

TEST(FormatNodeTableTest, ShowsUsedOverTotalAndCutsLongCells) {
  v1::Node big = MakeNode("gpu-01", v1::Node::READY);
  big.mutable_capacity()->set_cpus(96);
  big.mutable_capacity()->set_memory_mib(1048576);
  big.mutable_capacity()->set_gpus(8);
  big.mutable_allocated()->set_cpus(40.5);
  big.mutable_allocated()->set_memory_mib(204800);
  big.mutable_allocated()->set_gpus(6);
  for (const char* id : {"j-10", "j-11", "j-12", "j-13", "j-14"}) big.add_running_jobs(id);
  (*big.mutable_labels())["zone"] = "eu-west-1b";
  (*big.mutable_labels())["accelerator"] = "nvidia-a100-80gb";
  (*big.mutable_labels())["pool"] = "training";
  big.mutable_last_seen_time()->set_seconds(1'700'000'000);
  v1::Node down = MakeNode("n2", v1::Node::DOWN);
  down.mutable_capacity()->set_cpus(4);
  down.mutable_capacity()->set_memory_mib(8192);
  down.mutable_last_seen_time()->set_seconds(1'700'000'000 - 7200);

  std::string table = FormatNodeTable({big, down}, absl::FromUnixSeconds(1'700'000'005));
  EXPECT_EQ(table,
            "NAME    STATE  CPUS     MEMORY     GPUS  JOBS               LABELS                                    LAST SEEN\n"
            "gpu-01  READY  40.5/96  200Gi/1Ti  6/8   j-10,j-11,j-12 +2  accelerator=nvidia-a100-80gb,pool=tra...  5s\n"
            "n2      DOWN   0/4      0/8Gi      -     -                  -                                         2h\n");
}

TEST(FormatNodeTableTest, EmptyClusterIsTheHeaderOnly) {
  EXPECT_EQ(FormatNodeTable({}, absl::UnixEpoch()),
            "NAME  STATE  CPUS  MEMORY  GPUS  JOBS  LABELS  LAST SEEN\n");
}

TEST(FormatTargetTableTest, ShowsEveryNodeAndNoLimitInWords) {
  v1::ComputeTarget all;
  all.set_name("default");
  v1::ComputeTarget gpu;
  gpu.set_name("gpu");
  (*gpu.mutable_selector())["acc"] = "a100";
  gpu.set_max_nodes(4);
  EXPECT_EQ(FormatTargetTable({all, gpu}),
            "NAME     SELECTOR      MAX NODES\n"
            "default  (every node)  no limit\n"
            "gpu      acc=a100      4\n");
}

v1::RankExit Exit(int rank, int code, int signal = 0, bool oom = false) {
  v1::RankExit exit;
  exit.set_rank(rank);
  exit.set_node("n1");
  exit.set_exit_code(code);
  exit.set_signal(signal);
  exit.set_oom_killed(oom);
  return exit;
}

TEST(FormatRankExitTest, SaysHowTheProcessEnded) {
  EXPECT_EQ(FormatRankExit(Exit(1, 3)), "rank 1 on n1 exited with code 3");
  EXPECT_EQ(FormatRankExit(Exit(0, -1, 9)), "rank 0 on n1 was killed by signal 9 (SIGKILL)");
  EXPECT_EQ(FormatRankExit(Exit(0, -1, 40)), "rank 0 on n1 was killed by signal 40");
  EXPECT_EQ(FormatRankExit(Exit(2, -1, 9, true)), "rank 2 on n1 was killed for running out of memory");
}

TEST(FormatJobEndTest, CompletedIsOneLine) {
  v1::Job job = MakeJob("j-42", 0, v1::JobStatus::COMPLETED);
  *job.mutable_status()->add_exits() = Exit(0, 0);
  EXPECT_EQ(FormatJobEnd(job), "j-42 COMPLETED\n");
}

TEST(FormatJobEndTest, FailedNamesTheFailingRanksAndCountsTheOthers) {
  v1::Job job = MakeJob("j-42", 0, v1::JobStatus::FAILED);
  job.mutable_status()->set_cause(v1::JobStatus::PROCESS_FAILED);
  job.mutable_status()->set_message("rank 1 on n1 exited with code 3");
  for (int rank = 0; rank < 4; ++rank) {
    *job.mutable_status()->add_exits() = rank == 1 ? Exit(1, 3) : rank == 2 ? Exit(2, -1, 15) : Exit(rank, 0);
  }
  EXPECT_EQ(FormatJobEnd(job),
            "j-42 FAILED: rank 1 on n1 exited with code 3\n"
            "  rank 1 on n1 exited with code 3\n"
            "  rank 2 on n1 was killed by signal 15 (SIGTERM)\n"
            "  the other 2 ranks exited with code 0\n");
}

TEST(FormatJobEndTest, NamesCausesOtherThanAProcessFailure) {
  v1::Job job = MakeJob("j-5", 0, v1::JobStatus::FAILED);
  job.mutable_status()->set_cause(v1::JobStatus::TIMEOUT);
  job.mutable_status()->set_message("ran longer than\nmax_run_duration 2h");
  EXPECT_EQ(FormatJobEnd(job), "j-5 FAILED TIMEOUT: ran longer than max_run_duration 2h\n");
}

TEST(FormatJobEndTest, ListsAtMostSixteenFailingRanks) {
  v1::Job job = MakeJob("j-5", 0, v1::JobStatus::FAILED);
  for (int rank = 0; rank < 20; ++rank) *job.mutable_status()->add_exits() = Exit(rank, 1);
  std::string text = FormatJobEnd(job);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1 + 16 + 1);
  EXPECT_THAT(text, HasSubstr("  and 4 more ranks that did not exit 0; see drover show j-5 --output json\n"));
}

TEST(FormatJobDetailsTest, ShowsNodesExitsAndOutputs) {
  v1::Job job = MakeJob("j-3", 1'700'000'000, v1::JobStatus::FAILED);
  job.mutable_status()->add_nodes("n1");
  *job.mutable_status()->add_exits() = Exit(0, 0);
  *job.mutable_status()->add_exits() = Exit(1, 2);
  job.mutable_status()->set_outputs_digest("sha256:ab");
  job.mutable_status()->set_outputs_size(1536);
  std::string page = FormatJobDetails(job, absl::FromUnixSeconds(1'700'000'300), absl::UTCTimeZone());
  EXPECT_THAT(page, HasSubstr("  nodes:   n1\n"));
  EXPECT_THAT(page, HasSubstr("  exits:   rank 0 on n1 exited with code 0\n"
                              "           rank 1 on n1 exited with code 2\n"));
  EXPECT_THAT(page, HasSubstr("  outputs: sha256:ab (1.5 KiB); fetch with drover download j-3\n"));
}

v1::Gpu MakeGpu(int index, const std::string& uuid) {
  v1::Gpu gpu;
  gpu.set_index(index);
  gpu.set_uuid(uuid);
  return gpu;
}

TEST(FormatJobDetailsTest, ShowsTheGpusEachNodeGave) {
  v1::Job job = MakeJob("j-4", 1'700'000'000, v1::JobStatus::RUNNING);
  job.mutable_status()->add_nodes("n1");
  job.mutable_status()->add_nodes("n2");
  v1::NodeGpus* n1 = job.mutable_status()->add_gpus();
  n1->set_node("n1");
  *n1->add_gpus() = MakeGpu(0, "GPU-8f6c");
  *n1->add_gpus() = MakeGpu(1, "GPU-03b1");
  v1::NodeGpus* n2 = job.mutable_status()->add_gpus();
  n2->set_node("n2");
  *n2->add_gpus() = MakeGpu(3, "GPU-77aa");
  std::string page = FormatJobDetails(job, absl::FromUnixSeconds(1'700'000'300), absl::UTCTimeZone());
  EXPECT_THAT(page, HasSubstr("  gpus:    n1: 0,1 (GPU-8f6c, GPU-03b1)\n"
                              "           n2: 3 (GPU-77aa)\n"));
}

TEST(FormatNodeDetailsTest, ShowsResourcesAndEveryGpu) {
  v1::Node node = MakeNode("gpu-01", v1::Node::READY);
  node.add_addresses("10.0.0.7");
  node.set_agent_version("0.5.0");
  node.set_container_runtime("crun 1.8.1");
  node.mutable_capacity()->set_cpus(32);
  node.mutable_capacity()->set_memory_mib(262144);
  node.mutable_capacity()->set_gpus(2);
  node.mutable_allocated()->set_gpus(1);
  node.add_running_jobs("j-4");
  v1::Gpu h100 = MakeGpu(0, "GPU-8f6c");
  h100.set_name("NVIDIA H100 80GB HBM3");
  h100.set_memory_mib(81559);
  *node.add_gpus() = h100;
  *node.add_gpus() = MakeGpu(1, "GPU-03b1");
  node.mutable_register_time()->set_seconds(1'700'000'000);
  EXPECT_EQ(FormatNodeDetails(node, absl::FromUnixSeconds(1'700'000'060), absl::UTCTimeZone()),
            "name:              gpu-01\n"
            "state:             READY\n"
            "reason:            -\n"
            "addresses:         10.0.0.7\n"
            "jobs:              j-4\n"
            "agent version:     0.5.0\n"
            "container runtime: crun 1.8.1\n"
            "\n"
            "resources (held by jobs / offered):\n"
            "  cpus:   0/32\n"
            "  memory: 0/256Gi\n"
            "  gpus:   1/2\n"
            "\n"
            "gpus:\n"
            "  0: GPU-8f6c  NVIDIA H100 80GB HBM3  79.6Gi\n"
            "  1: GPU-03b1\n"
            "\n"
            "times:\n"
            "  registered: 2023-11-14 22:13:20 +0000 (1m ago)\n"
            "  last seen:  -\n");
}

TEST(JsonArrayTest, OneItemPerLine) {
  EXPECT_EQ(JsonArray({}), "[]");
  EXPECT_EQ(JsonArray({"{}", "{\"a\":1}"}), "[\n{},\n{\"a\":1}\n]");
}

}  // namespace
}  // namespace drover::cli
