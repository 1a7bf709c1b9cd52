// Job arrays: the parser of ArraySpec.indices (happy and hostile), the checks of the spec,
// the tasks one submit becomes, and the limit on running tasks that placement keeps.
#include "scheduler/job_array.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/job_queue.h"
#include "scheduler/job_spec.h"
#include "scheduler/node_registry.h"
#include "scheduler/placement.h"
#include "tests/scheduler/job_spec_test_util.h"

namespace drover::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

std::vector<int64_t> Parse(const std::string& text) {
  absl::StatusOr<std::vector<int64_t>> indices = ParseArrayIndices("spec.array.indices", text);
  EXPECT_TRUE(indices.ok()) << text << ": " << indices.status();
  return indices.ok() ? *indices : std::vector<int64_t>{};
}

std::string Refusal(const std::string& text) {
  absl::StatusOr<std::vector<int64_t>> indices = ParseArrayIndices("spec.array.indices", text);
  EXPECT_FALSE(indices.ok()) << "'" << text << "' was accepted";
  if (indices.ok()) return "";
  EXPECT_EQ(indices.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(indices.status().message(), HasSubstr("spec.array.indices"));
  return std::string(indices.status().message());
}

TEST(ParseArrayIndicesTest, RangesListsAndStepsAsSlurmWritesThem) {
  EXPECT_THAT(Parse("0-4"), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_THAT(Parse("1,3,7-9"), ElementsAre(1, 3, 7, 8, 9));
  EXPECT_THAT(Parse("0-20:5"), ElementsAre(0, 5, 10, 15, 20));
  EXPECT_THAT(Parse("0-99:5"), SizeIs(20));
  EXPECT_THAT(Parse("0-999"), SizeIs(1000));
  EXPECT_THAT(Parse("7"), ElementsAre(7));
  EXPECT_THAT(Parse("3-3"), ElementsAre(3));
  EXPECT_THAT(Parse("1-10:100"), ElementsAre(1));
  EXPECT_THAT(Parse("2147483647"), ElementsAre(2147483647));
}

TEST(ParseArrayIndicesTest, AnIndexListedTwiceIsOneTaskAndIndicesAscend) {
  EXPECT_THAT(Parse("5,1-3,2,5"), ElementsAre(1, 2, 3, 5));
}

TEST(ParseArrayIndicesTest, TheCapIsExactlyOneHundredThousandTasks) {
  EXPECT_THAT(Parse("0-99999"), SizeIs(kMaxArrayTasks));
  EXPECT_THAT(Refusal("0-100000"), HasSubstr("more than 100000 tasks"));
  // Counted before listing: a range of two billion indices is refused without allocating.
  EXPECT_THAT(Refusal("0-2147483647"), HasSubstr("more than 100000 tasks"));
  EXPECT_THAT(Refusal("0-99999,100000"), HasSubstr("split the work"));
}

TEST(ParseArrayIndicesTest, EmptyInvertedNegativeAndJunkAreRefusedSayingWhatToWrite) {
  EXPECT_THAT(Refusal(""), HasSubstr("is empty"));
  EXPECT_THAT(Refusal("9-3"), HasSubstr("inverted"));
  EXPECT_THAT(Refusal("-1"), HasSubstr("no first index"));
  EXPECT_THAT(Refusal("-5-3"), HasSubstr("no first index"));
  EXPECT_THAT(Refusal("1,,2"), HasSubstr("empty item"));
  EXPECT_THAT(Refusal("1,"), HasSubstr("empty item"));
  EXPECT_THAT(Refusal(",1"), HasSubstr("empty item"));
  EXPECT_THAT(Refusal("0-"), HasSubstr("no last index"));
  EXPECT_THAT(Refusal("a-b"), HasSubstr("not a number"));
  EXPECT_THAT(Refusal("1 - 3"), HasSubstr("not a number"));
  EXPECT_THAT(Refusal("0x10"), HasSubstr("not a number"));
  EXPECT_THAT(Refusal("1.5"), HasSubstr("not a number"));
  EXPECT_THAT(Refusal("+3"), HasSubstr("not a number"));
  EXPECT_THAT(Refusal(std::string("1\0002", 3)), HasSubstr("not a number"));
  EXPECT_THAT(Refusal("0-9:0"), HasSubstr("step 0"));
  EXPECT_THAT(Refusal("0-9:"), HasSubstr("no step"));
  EXPECT_THAT(Refusal("0-9:-1"), HasSubstr("not a number"));
  EXPECT_THAT(Refusal("5:2"), HasSubstr("a step needs a range"));
  EXPECT_THAT(Refusal("0-9%2"), HasSubstr("spec.array.max_running"));
  EXPECT_THAT(Refusal("1-2-3"), HasSubstr("not a number"));
  EXPECT_THAT(Refusal("0-9:2:3"), HasSubstr("not a number"));
  // Every refusal tells what to write.
  EXPECT_THAT(Refusal("x"), HasSubstr("'0-999', '1,3,7-9' or '0-99:5'"));
}

TEST(ParseArrayIndicesTest, NumbersThatWouldOverflowAreRefusedNotWrapped) {
  EXPECT_THAT(Refusal("2147483648"), HasSubstr("too large"));
  EXPECT_THAT(Refusal("99999999999999999999999999"), HasSubstr("too large"));
  EXPECT_THAT(Refusal("0-18446744073709551617"), HasSubstr("too large"));
  EXPECT_THAT(Refusal("0-10:99999999999999999999"), HasSubstr("too large"));
  EXPECT_THAT(Refusal(std::string(5000, '1')), HasSubstr("too long"));
}

v1::JobSpec ArraySpecOf(const std::string& indices, int32_t max_running) {
  v1::JobSpec spec = testing_util::MinimalSpec();
  spec.mutable_array()->set_indices(indices);
  spec.mutable_array()->set_max_running(max_running);
  ApplyJobSpecDefaults(&spec);
  return spec;
}

TEST(CheckJobArrayTest, ValidateJobSpecAcceptsAnArrayAndNamesEachBadField) {
  EXPECT_TRUE(ValidateJobSpec(ArraySpecOf("0-999", 50)).ok());
  EXPECT_TRUE(ValidateJobSpec(ArraySpecOf("1,3,7-9", 0)).ok());

  absl::Status bad = ValidateJobSpec(ArraySpecOf("9-1", 2));
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("spec.array.indices"));

  bad = ValidateJobSpec(ArraySpecOf("0-9", -1));
  EXPECT_THAT(bad.message(), HasSubstr("spec.array.max_running: -1 is out of range"));
  bad = ValidateJobSpec(ArraySpecOf("0-9", 100001));
  EXPECT_THAT(bad.message(), HasSubstr("spec.array.max_running: 100001 is out of range"));

  v1::JobSpec no_indices = ArraySpecOf("", 2);
  EXPECT_THAT(ValidateJobSpec(no_indices).message(), HasSubstr("spec.array.indices: is empty"));

  v1::JobSpec forged = testing_util::MinimalSpec();
  ApplyJobSpecDefaults(&forged);
  forged.mutable_array_task()->set_array_id("a-0000000000000001");
  EXPECT_THAT(ValidateJobSpec(forged).message(), HasSubstr("spec.array_task: is set by droverd"));

  v1::JobSpec tagged = ArraySpecOf("0-3", 0);
  (*tagged.mutable_tags())[kArrayTag] = "a-0000000000000001";
  EXPECT_THAT(ValidateJobSpec(tagged).message(), HasSubstr("spec.tags['drover.array']"));
  tagged.clear_array();  // not an array either: still droverd's key
  EXPECT_THAT(ValidateJobSpec(tagged).message(), HasSubstr("spec.tags['drover.array']"));
}

TEST(ArrayIdTest, FormatsSixteenHexDigitsAndRecognisesOnlyThat) {
  EXPECT_EQ(FormatArrayId(0x3f9c1b2e7d40aa01), "a-3f9c1b2e7d40aa01");
  EXPECT_EQ(FormatArrayId(1), "a-0000000000000001");
  EXPECT_TRUE(IsArrayId("a-3f9c1b2e7d40aa01"));
  EXPECT_FALSE(IsArrayId("j-42"));
  EXPECT_FALSE(IsArrayId("a-3F9C1B2E7D40AA01"));
  EXPECT_FALSE(IsArrayId("a-3f9c1b2e7d40aa0"));
  EXPECT_FALSE(IsArrayId("a-3f9c1b2e7d40aa0g"));
  EXPECT_FALSE(IsArrayId(""));
}

v1::Job ArrayJob(const std::string& indices, int32_t max_running, const std::string& key = "") {
  v1::Job job;
  *job.mutable_spec() = ArraySpecOf(indices, max_running);
  job.mutable_spec()->set_idempotency_key(key);
  job.set_owner("alice");
  job.mutable_status()->set_state(v1::JobStatus::QUEUED);
  job.mutable_status()->set_reason("WAITING_FOR_NODES need=1 free=0");
  job.mutable_status()->set_version(1);
  return job;
}

TEST(MakeArrayTasksTest, OneTaskPerIndexEachKnowingItsArrayAndIndex) {
  v1::Job array = ArrayJob("1,3,7-9", 2, "retry-me");
  std::vector<v1::Job> tasks = MakeArrayTasks(array, "a-00000000000000aa", {1, 3, 7, 8, 9});
  ASSERT_THAT(tasks, SizeIs(5));
  for (size_t k = 0; k < tasks.size(); ++k) {
    const v1::Job& task = tasks[k];
    EXPECT_FALSE(task.spec().has_array());
    EXPECT_EQ(task.spec().array_task().array_id(), "a-00000000000000aa");
    EXPECT_EQ(task.spec().array_task().size(), 5);
    EXPECT_EQ(task.spec().array_task().max_running(), 2);
    EXPECT_EQ(task.spec().tags().at(kArrayTag), "a-00000000000000aa");
    EXPECT_EQ(task.owner(), "alice");
    EXPECT_EQ(task.spec().entry_script(), array.spec().entry_script());
  }
  EXPECT_EQ(tasks[0].spec().array_task().index(), 1);
  EXPECT_EQ(tasks[4].spec().array_task().index(), 9);
  // Per-task keys, so that a retried submit finds each task it made.
  EXPECT_EQ(tasks[0].spec().idempotency_key(), "retry-me/1");
  EXPECT_EQ(tasks[3].spec().idempotency_key(), "retry-me/8");
  // The first max_running wait for nodes; the others say the array's limit holds them.
  EXPECT_EQ(tasks[1].status().reason(), "WAITING_FOR_NODES need=1 free=0");
  EXPECT_EQ(tasks[2].status().reason(), "ARRAY_LIMIT array=a-00000000000000aa max_running=2");
}

TEST(MakeArrayTasksTest, NoKeyStaysNoKey) {
  std::vector<v1::Job> tasks = MakeArrayTasks(ArrayJob("0-1", 0), "a-0000000000000001", {0, 1});
  EXPECT_EQ(tasks[1].spec().idempotency_key(), "");
  EXPECT_EQ(tasks[1].status().reason(), "WAITING_FOR_NODES need=1 free=0");
}

// --- The limit, as placement keeps it ---

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

v1::NodeInfo Node(const std::string& name, double cpus) {
  v1::NodeInfo info;
  info.set_name(name);
  info.add_addresses("10.0.0.1");
  info.mutable_capacity()->set_cpus(cpus);
  info.mutable_capacity()->set_memory_mib(1 << 20);
  return info;
}

// The tasks of `array_id` as the queue holds them after a submit: ids j-<first>...
std::vector<v1::Job> Tasks(const std::string& array_id, int first_seq, int count,
                           int32_t max_running) {
  v1::Job array = ArrayJob(absl::StrCat("0-", count - 1), max_running);
  array.mutable_spec()->mutable_resources()->set_cpus(1);
  array.mutable_spec()->mutable_resources()->set_memory_mib(1);
  std::vector<int64_t> indices;
  for (int i = 0; i < count; ++i) indices.push_back(i);
  std::vector<v1::Job> tasks = MakeArrayTasks(array, array_id, indices);
  for (int i = 0; i < count; ++i) tasks[i].set_id(absl::StrCat("j-", first_seq + i));
  return tasks;
}

// Marks the placed jobs PREPARING in the queue, as the core's Assign does.
void Start(JobQueue& queue, const PlacementRound& round) {
  for (const Placement& p : round.placed) {
    v1::Job job = *queue.Find(p.job_id);
    job.mutable_status()->set_state(v1::JobStatus::PREPARING);
    job.mutable_status()->set_version(job.status().version() + 1);
    queue.Update(job);
  }
}

void End(JobQueue& queue, const std::string& id, v1::JobStatus::State state) {
  v1::Job job = *queue.Find(id);
  job.mutable_status()->set_state(state);
  job.mutable_status()->set_version(job.status().version() + 1);
  queue.Update(job);
}

std::vector<std::string> PlacedIds(const PlacementRound& round) {
  std::vector<std::string> ids;
  for (const Placement& p : round.placed) ids.push_back(p.job_id);
  return ids;
}

TEST(ArrayLimitTest, PlacesAtMostMaxRunningTasksOfAnArrayAndTheRestWaitSayingWhy) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(Node("n1", 64), kT0).ok());
  JobQueue queue;
  for (const v1::Job& task : Tasks("a-0000000000000001", 1, 6, 2)) queue.Update(task);

  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  EXPECT_THAT(PlacedIds(round), ElementsAre("j-1", "j-2"));
  EXPECT_EQ(round.waiting["j-3"], "ARRAY_LIMIT array=a-0000000000000001 max_running=2");
  EXPECT_EQ(round.waiting["j-6"], "ARRAY_LIMIT array=a-0000000000000001 max_running=2");
  Start(queue, round);
  EXPECT_EQ(queue.ArrayActive("a-0000000000000001"), 2);

  // Room for 64 tasks, but the array is at its limit: nothing more.
  EXPECT_THAT(PlacedIds(PlaceQueuedJobs(queue, nodes, {}, kT0)), ::testing::IsEmpty());

  // RUNNING and FINALIZING still count; an ended task frees its place.
  End(queue, "j-1", v1::JobStatus::RUNNING);
  End(queue, "j-2", v1::JobStatus::FINALIZING);
  EXPECT_THAT(PlacedIds(PlaceQueuedJobs(queue, nodes, {}, kT0)), ::testing::IsEmpty());
  End(queue, "j-1", v1::JobStatus::COMPLETED);
  EXPECT_EQ(queue.ArrayActive("a-0000000000000001"), 1);
  round = PlaceQueuedJobs(queue, nodes, {}, kT0);
  EXPECT_THAT(PlacedIds(round), ElementsAre("j-3"));
  Start(queue, round);
  End(queue, "j-2", v1::JobStatus::FAILED);
  End(queue, "j-3", v1::JobStatus::CANCELED);
  EXPECT_THAT(PlacedIds(PlaceQueuedJobs(queue, nodes, {}, kT0)), ElementsAre("j-4", "j-5"));
}

TEST(ArrayLimitTest, AnArrayHeldAtItsLimitBlocksNoJobBehindIt) {
  // 5000 held tasks ahead of a plain job, with placement examining 1000 jobs a round: the
  // held tasks are passed over without counting, so the plain job still starts.
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(Node("n1", 64), kT0).ok());
  JobQueue queue;
  for (const v1::Job& task : Tasks("a-0000000000000002", 1, 5000, 1)) queue.Update(task);
  v1::Job plain;
  plain.set_id("j-5001");
  *plain.mutable_spec() = ArraySpecOf("0", 0);
  plain.mutable_spec()->clear_array();
  plain.mutable_spec()->mutable_resources()->set_cpus(1);
  plain.mutable_status()->set_state(v1::JobStatus::QUEUED);
  plain.mutable_status()->set_version(1);
  queue.Update(plain);
  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0, /*max_jobs=*/1000);
  EXPECT_THAT(PlacedIds(round), ElementsAre("j-1", "j-5001"));
}

TEST(ArrayLimitTest, AHeldArrayIsPassedInOneStepNotOnePerTask) {
  // A 20,000-task array at its limit ahead of a plain job: the walk visits the array's
  // tasks up to placement's depth, then passes the rest in one step (it used to visit
  // every one of them in every round).
  JobQueue queue;
  for (const v1::Job& task : Tasks("a-0000000000000007", 1, 20000, 1)) queue.Update(task);
  v1::Job plain = Tasks("a-unused", 20001, 1, 0)[0];
  plain.mutable_spec()->clear_array_task();
  queue.Update(plain);
  EXPECT_EQ(queue.queued_count(), 20001u);
  int visits = 0;
  std::vector<std::string> seen;
  queue.VisitQueued([&](const std::string& id, const QueuedJob& job) {
    ++visits;
    seen.push_back(id);
    return job.array_id != nullptr && visits >= 3 ? JobQueue::Visit::kPassArray
                                                  : JobQueue::Visit::kNext;
  });
  EXPECT_THAT(seen, ElementsAre("j-1", "j-2", "j-3", "j-20001"));

  // Placement with depth 1000 visits at most 1000 held tasks and still starts the plain job.
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(Node("n1", 64), kT0).ok());
  PlacementRound round = PlaceQueuedJobs(queue, nodes, {}, kT0, /*max_jobs=*/1000);
  EXPECT_THAT(PlacedIds(round), ElementsAre("j-1", "j-20001"));
  Start(queue, round);
  round = PlaceQueuedJobs(queue, nodes, {}, kT0, /*max_jobs=*/1000);
  EXPECT_THAT(PlacedIds(round), ::testing::IsEmpty());
  EXPECT_EQ(round.waiting.size(), 1000u);
}

TEST(ArrayLimitTest, AnArraysTasksStandTogetherAtItsFirstQueuedTask) {
  // Tasks j-2, j-4, j-6 of one array with plain jobs j-1, j-3, j-5 between them (ids are
  // consecutive within an array when one droverd writes; this is the general case): the
  // array stands at its first queued task, and moves on as that one is placed.
  JobQueue queue;
  std::vector<v1::Job> tasks = Tasks("a-0000000000000008", 0, 3, 0);
  for (int i = 0; i < 3; ++i) {
    tasks[i].set_id(absl::StrCat("j-", 2 * i + 2));
    queue.Update(tasks[i]);
    v1::Job plain = tasks[i];
    plain.set_id(absl::StrCat("j-", 2 * i + 1));
    plain.mutable_spec()->clear_array_task();
    queue.Update(plain);
  }
  EXPECT_THAT(queue.QueuedInOrder(), ElementsAre("j-1", "j-2", "j-4", "j-6", "j-3", "j-5"));
  EXPECT_THAT(queue.QueuedInOrder(3), ElementsAre("j-1", "j-2", "j-4"));
  End(queue, "j-2", v1::JobStatus::PREPARING);
  EXPECT_THAT(queue.QueuedInOrder(), ElementsAre("j-1", "j-3", "j-4", "j-6", "j-5"));
  EXPECT_EQ(queue.ArrayActive("a-0000000000000008"), 1);
  End(queue, "j-6", v1::JobStatus::CANCELED);
  End(queue, "j-4", v1::JobStatus::PREPARING);
  EXPECT_THAT(queue.QueuedInOrder(), ElementsAre("j-1", "j-3", "j-5"));
  EXPECT_EQ(queue.ArrayActive("a-0000000000000008"), 2);
  End(queue, "j-2", v1::JobStatus::COMPLETED);
  End(queue, "j-4", v1::JobStatus::COMPLETED);
  EXPECT_EQ(queue.ArrayActive("a-0000000000000008"), 0);
  EXPECT_EQ(queue.queued_count(), 3u);
  EXPECT_EQ(queue.unfinished_count(), 3u);

  // A task reset to QUEUED (a failed placement write) stands at its own place again.
  v1::Job back = tasks[1];
  queue.Reset(back);
  EXPECT_THAT(queue.QueuedInOrder(), ElementsAre("j-1", "j-3", "j-4", "j-5"));
}

TEST(ArrayLimitTest, ArraysCountSeparatelyAndNoLimitMeansNoLimit) {
  NodeRegistry nodes;
  ASSERT_TRUE(nodes.Register(Node("n1", 64), kT0).ok());
  JobQueue queue;
  for (const v1::Job& task : Tasks("a-0000000000000003", 1, 3, 1)) queue.Update(task);
  for (const v1::Job& task : Tasks("a-0000000000000004", 4, 3, 0)) queue.Update(task);
  EXPECT_THAT(PlacedIds(PlaceQueuedJobs(queue, nodes, {}, kT0)),
              ElementsAre("j-1", "j-4", "j-5", "j-6"));
}

TEST(ArrayLimitTest, TasksOfArrayListsTheUnfinishedByIndex) {
  JobQueue queue;
  for (const v1::Job& task : Tasks("a-0000000000000005", 10, 4, 0)) queue.Update(task);
  End(queue, "j-11", v1::JobStatus::CANCELED);
  EXPECT_THAT(queue.TasksOfArray("a-0000000000000005"), ElementsAre("j-10", "j-12", "j-13"));
  EXPECT_THAT(queue.TasksOfArray("a-0000000000000006"), ::testing::IsEmpty());
}

}  // namespace
}  // namespace drover::scheduler
