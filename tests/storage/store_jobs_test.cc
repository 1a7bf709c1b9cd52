#include "storage/sqlite_store.h"

#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/job_id.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/storage/store_test_util.h"

namespace drover::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST_P(StoreTest, AssignsIncreasingIdsAndReadsJobsBack) {
  auto store = OpenStore();
  auto first = CreateSync(*store, NewJob());
  auto second = CreateSync(*store, NewJob());
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->job.id(), "j-1");
  EXPECT_EQ(second->job.id(), "j-2");
  EXPECT_TRUE(first->created);
  absl::StatusOr<v1::Job> read = store->GetJob("j-2");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->spec().entry_script(), "train.py");
  EXPECT_EQ(read->status().state(), v1::JobStatus::QUEUED);
  EXPECT_EQ(read->create_time().seconds(), 1700000000);
}

TEST_P(StoreTest, UnknownAndMalformedIdsGiveClearErrors) {
  auto store = OpenStore();
  EXPECT_EQ(store->GetJob("j-99").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetJob("bogus").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StoreTest, SameIdempotencyKeyReturnsTheFirstJob) {
  auto store = OpenStore();
  auto first = CreateSync(*store, NewJob("default", "key-1"));
  auto again = CreateSync(*store, NewJob("default", "key-1"));
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->job.id(), first->job.id());
  auto page = store->ListJobs({});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->jobs.size(), 1u);
}

TEST_P(StoreTest, SameKeyWithDifferentSpecIsRefusedNamingTheKey) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSync(*store, NewJob("a", "key-1")).ok());
  auto other = CreateSync(*store, NewJob("b", "key-1"));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(other.status().message(), HasSubstr("spec.idempotency_key"));
  EXPECT_THAT(other.status().message(), HasSubstr("j-1"));
}

TEST_P(StoreTest, ARetryAfterTheTagsChangedStillReturnsTheFirstJob) {
  // A client retries its submit after someone (or its own script) changed the job's tags:
  // the tags are not what runs, so it is the same job; anything else that differs is not.
  auto store = OpenStore();
  v1::Job job = NewJob("a", "key-1");
  (*job.mutable_spec()->mutable_tags())["stage"] = "first";
  auto first = CreateSync(*store, job);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(UpdateTagsSync(*store, first->job.id(), {.set = {{"stage", "second"}}}).ok());
  auto again = CreateSync(*store, job);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->job.id(), first->job.id());
  EXPECT_EQ(again->job.spec().tags().at("stage"), "second");

  v1::Job changed = job;
  changed.mutable_spec()->set_entry_script("other.py");
  auto other = CreateSync(*store, changed);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kAlreadyExists) << other.status();
}

TEST_P(StoreTest, DuplicateKeysInOneBatchStillMakeOneJob) {
  auto store = OpenStore();
  constexpr int kWrites = 200;
  std::atomic<int> remaining{kWrites};
  std::atomic<int> created{0};
  absl::Notification done;
  std::vector<std::string> ids(kWrites);
  for (int i = 0; i < kWrites; ++i) {
    store->CreateJob(NewJob("default", absl::StrCat("key-", i % 10)),
                     [&, i](absl::StatusOr<CreateJobResult> result) {
                       ASSERT_TRUE(result.ok()) << result.status();
                       ids[i] = result->job.id();
                       if (result->created) created++;
                       if (--remaining == 0) done.Notify();
                     });
  }
  done.WaitForNotification();
  EXPECT_EQ(created.load(), 10);
  for (int i = 10; i < kWrites; ++i) EXPECT_EQ(ids[i], ids[i % 10]);
}


TEST_P(StoreTest, AStatusCommittedUnflushedIsReadAndComparedAsAnyOther) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
  v1::JobStatus running;
  running.set_state(v1::JobStatus::RUNNING);
  running.set_version(2);
  auto updated = UpdateSync(*store, "j-1", 1, running, Store::Durability::kCommitted);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->status().state(), v1::JobStatus::RUNNING);
  absl::StatusOr<v1::Job> read = store->GetJob("j-1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->status().version(), 2);
  // Compare-and-set as a flushed write.
  EXPECT_EQ(UpdateSync(*store, "j-1", 1, running, Store::Durability::kCommitted).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(UpdateSync(*store, "j-9", 1, running, Store::Durability::kCommitted).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, StatusUpdateIsCompareAndSet) {
  auto store = OpenStore();
  auto created = CreateSync(*store, NewJob());
  ASSERT_TRUE(created.ok());
  v1::JobStatus canceled;
  canceled.set_state(v1::JobStatus::CANCELED);
  canceled.set_version(2);
  auto updated = UpdateSync(*store, "j-1", 1, canceled);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->status().state(), v1::JobStatus::CANCELED);
  EXPECT_EQ(updated->spec().entry_script(), "train.py");
  auto stale = UpdateSync(*store, "j-1", 1, canceled);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(UpdateSync(*store, "j-7", 1, canceled).status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, TagUpdateChangesOnlyTheTagsAndLeavesTheStatusVersionAlone) {
  auto store = OpenStore();
  v1::Job job = NewJob();
  (*job.mutable_spec()->mutable_tags())["team"] = "vision";
  (*job.mutable_spec()->mutable_tags())["stage"] = "draft";
  ASSERT_TRUE(CreateSync(*store, job).ok());
  auto updated = UpdateTagsSync(*store, "j-1", {.set = {{"stage", "final"}, {"lr", "0.1"}},
                                                .remove = {"team", "absent"}});
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_THAT(updated->spec().tags(), UnorderedElementsAre(Pair("stage", "final"),
                                                           Pair("lr", "0.1")));
  EXPECT_EQ(updated->status().version(), 1);
  EXPECT_EQ(updated->spec().entry_script(), "train.py");
  auto ids = [&](ListJobsQuery query) {
    std::vector<std::string> out;
    absl::StatusOr<ListJobsPage> page = store->ListJobs(query);
    EXPECT_TRUE(page.ok()) << page.status();
    if (page.ok()) {
      for (const v1::Job& listed : page->jobs) out.push_back(listed.id());
    }
    return out;
  };
  EXPECT_THAT(ids({.tag_key = "team"}), IsEmpty());
  EXPECT_THAT(ids({.tag_key = "stage", .tag_value = "draft"}), IsEmpty());
  EXPECT_THAT(ids({.tag_key = "stage", .tag_value = "final"}), ElementsAre("j-1"));
  EXPECT_THAT(ids({.tag_key = "lr"}), ElementsAre("j-1"));
  // A status write with the version read before the tag change still goes through.
  v1::JobStatus canceled;
  canceled.set_state(v1::JobStatus::CANCELED);
  canceled.set_version(2);
  auto after = UpdateSync(*store, "j-1", 1, canceled);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->spec().tags().at("stage"), "final");

  JobTagUpdate refused{.set = {{"x", "y"}}};
  refused.check = [](const google::protobuf::Map<std::string, std::string>& tags) {
    return tags.contains("x") ? absl::InvalidArgumentError("tags['x']: no") : absl::OkStatus();
  };
  EXPECT_EQ(UpdateTagsSync(*store, "j-1", std::move(refused)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(store->GetJob("j-1")->spec().tags().contains("x"));
  EXPECT_THAT(ids({.tag_key = "x"}), IsEmpty());
  EXPECT_EQ(UpdateTagsSync(*store, "j-9", {.set = {{"a", "b"}}}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, ListsNewestFirstWithFiltersAndPages) {
  auto store = OpenStore();
  for (int i = 0; i < 7; ++i) {
    v1::Job job = NewJob(i % 2 == 0 ? "even" : "odd");
    if (i == 3) (*job.mutable_spec()->mutable_tags())["team"] = "vision";
    if (i == 4) (*job.mutable_spec()->mutable_tags())["team"] = "nlp";
    ASSERT_TRUE(CreateSync(*store, job).ok());
  }
  auto ids = [](const ListJobsPage& page) {
    std::vector<std::string> out;
    for (const auto& job : page.jobs) out.push_back(job.id());
    return out;
  };
  auto first = store->ListJobs({.page_size = 3});
  ASSERT_TRUE(first.ok());
  EXPECT_THAT(ids(*first), ElementsAre("j-7", "j-6", "j-5"));
  auto second = store->ListJobs({.page_size = 3, .before_sequence = first->next_before_sequence});
  EXPECT_THAT(ids(*second), ElementsAre("j-4", "j-3", "j-2"));
  auto last = store->ListJobs({.page_size = 3, .before_sequence = second->next_before_sequence});
  EXPECT_THAT(ids(*last), ElementsAre("j-1"));
  EXPECT_EQ(last->next_before_sequence, 0);

  EXPECT_THAT(ids(*store->ListJobs({.experiment = "odd"})), ElementsAre("j-6", "j-4", "j-2"));
  EXPECT_THAT(ids(*store->ListJobs({.tag_key = "team"})), ElementsAre("j-5", "j-4"));
  EXPECT_THAT(ids(*store->ListJobs({.tag_key = "team", .tag_value = "nlp"})), ElementsAre("j-5"));

  v1::JobStatus canceled;
  canceled.set_state(v1::JobStatus::CANCELED);
  canceled.set_version(2);
  ASSERT_TRUE(UpdateSync(*store, "j-2", 1, canceled).ok());
  EXPECT_THAT(ids(*store->ListJobs({.states = {v1::JobStatus::CANCELED}})), ElementsAre("j-2"));
}

TEST_P(StoreTest, ReopenResumesExactlyTheUnfinishedJobs) {
  {
    auto store = OpenStore();
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
    v1::JobStatus canceled;
    canceled.set_state(v1::JobStatus::CANCELED);
    canceled.set_version(2);
    ASSERT_TRUE(UpdateSync(*store, "j-2", 1, canceled).ok());
  }
  auto store = OpenStore();
  auto unfinished = store->LoadUnfinishedJobs();
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 2u);
  EXPECT_EQ((*unfinished)[0].id(), "j-1");
  EXPECT_EQ((*unfinished)[1].id(), "j-3");
  // Ids keep growing after a restart.
  EXPECT_EQ(CreateSync(*store, NewJob())->job.id(), "j-4");
}

TEST_P(StoreTest, ATagUpdateKeepsSecretValuesSealedAndReadable) {
  v1::Job job = NewJob();
  (*job.mutable_spec()->mutable_environment()->mutable_env())["API_TOKEN"] = "tok-1a2b3c4d5e6f";
  job.mutable_spec()->mutable_environment()->add_secret_env("API_TOKEN");
  {
    auto store = OpenStore(&box_);
    ASSERT_TRUE(CreateSync(*store, job).ok());
    auto tagged = UpdateTagsSync(*store, "j-1", {.set = {{"stage", "final"}}});
    ASSERT_TRUE(tagged.ok()) << tagged.status();
    EXPECT_EQ(tagged->spec().environment().env().at("API_TOKEN"), "tok-1a2b3c4d5e6f");
  }
  EXPECT_THAT(BytesAtRest(), Not(HasSubstr("tok-1a2b3c4d5e6f")));
  auto store = OpenStore(&box_);
  absl::StatusOr<v1::Job> read = store->GetJob("j-1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->spec().environment().env().at("API_TOKEN"), "tok-1a2b3c4d5e6f");
  EXPECT_EQ(read->spec().tags().at("stage"), "final");
}

TEST_P(StoreTest, SecretEnvironmentValuesAreSealedAtRestAndReadBackInClear) {
  v1::Job job = NewJob("default", "key-1");
  auto& env = *job.mutable_spec()->mutable_environment()->mutable_env();
  env["API_TOKEN"] = "tok-9f8e7d6c5b4a";
  env["PLAIN"] = "visible-value-1234";
  job.mutable_spec()->mutable_environment()->add_secret_env("API_TOKEN");
  std::string id;
  {
    auto store = OpenStore(&box_);
    absl::StatusOr<CreateJobResult> created = CreateSync(*store, job);
    ASSERT_TRUE(created.ok()) << created.status();
    id = created->job.id();
    EXPECT_EQ(created->job.spec().environment().env().at("API_TOKEN"), "tok-9f8e7d6c5b4a");
    // The same submit again (a retried call) is the same job, though its stored bytes differ.
    absl::StatusOr<CreateJobResult> again = CreateSync(*store, job);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_FALSE(again->created);
    EXPECT_EQ(again->job.id(), id);
    EXPECT_EQ(again->job.spec().environment().env().at("API_TOKEN"), "tok-9f8e7d6c5b4a");
    // Another spec under the key is still refused.
    v1::Job different = job;
    (*different.mutable_spec()->mutable_environment()->mutable_env())["API_TOKEN"] = "other";
    EXPECT_EQ(CreateSync(*store, different).status().code(), absl::StatusCode::kAlreadyExists);
  }
  std::string bytes = BytesAtRest();
  EXPECT_THAT(bytes, Not(HasSubstr("tok-9f8e7d6c5b4a")));
  EXPECT_THAT(bytes, HasSubstr("visible-value-1234")) << "only secret values are sealed";
  auto store = OpenStore(&box_);
  absl::StatusOr<v1::Job> read = store->GetJob(id);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->spec().environment().env().at("API_TOKEN"), "tok-9f8e7d6c5b4a");
  absl::StatusOr<std::vector<v1::Job>> unfinished = store->LoadUnfinishedJobs();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status();
  ASSERT_EQ(unfinished->size(), 1u);
  EXPECT_EQ((*unfinished)[0].spec().environment().env().at("API_TOKEN"), "tok-9f8e7d6c5b4a");
}

TEST_P(StoreTest, ReadUnfinishedJobsGivesWhatGetJobGivesWithSecretsOpened) {
  // droverd's start reads rows, not v1::Jobs (issue 21): each row's wire form, spec and
  // status are the job exactly as GetJob reads it, sealed secret values opened.
  v1::Job secret = NewJob("default", "key-1");
  (*secret.mutable_spec()->mutable_environment()->mutable_env())["API_TOKEN"] = "tok-5e6f7a8b";
  secret.mutable_spec()->mutable_environment()->add_secret_env("API_TOKEN");
  secret.set_owner("alice");
  secret.mutable_spec()->set_priority(-7);
  secret.mutable_spec()->set_node_count(3);
  secret.mutable_spec()->set_compute_target("gpu");
  secret.mutable_spec()->mutable_resources()->set_cpus(2.5);
  secret.mutable_spec()->mutable_resources()->set_gpus(2);
  secret.mutable_spec()->mutable_max_run_duration()->set_seconds(3600);
  v1::Job task = NewJob();
  task.mutable_spec()->set_priority(12);
  task.mutable_spec()->mutable_array_task()->set_array_id("a-00112233445566ff");
  task.mutable_spec()->mutable_array_task()->set_index(99);
  task.mutable_spec()->mutable_array_task()->set_size(100);
  task.mutable_spec()->mutable_array_task()->set_max_running(4);
  (*task.mutable_spec()->mutable_environment()->mutable_env())["PLAIN"] = "shown";
  {
    auto store = OpenStore(&box_);
    ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
    ASSERT_TRUE(CreateSync(*store, secret).ok());
    ASSERT_TRUE(CreateSync(*store, task).ok());
    v1::JobStatus canceled;
    canceled.set_state(v1::JobStatus::CANCELED);
    canceled.set_version(2);
    ASSERT_TRUE(UpdateSync(*store, "j-1", 1, canceled).ok());
    v1::JobStatus placed;
    placed.set_state(v1::JobStatus::PREPARING);
    placed.set_version(2);
    placed.set_attempt(1);
    placed.add_nodes("n1");
    ASSERT_TRUE(UpdateSync(*store, "j-3", 1, placed).ok());
  }
  EXPECT_THAT(BytesAtRest(), Not(HasSubstr("tok-5e6f7a8b")));
  auto store = OpenStore(&box_);
  std::vector<std::string> ids;
  absl::Status read = store->ReadUnfinishedJobs([&](UnfinishedJobRow& row) {
    ids.push_back(row.id);
    absl::StatusOr<v1::Job> stored = store->GetJob(row.id);
    EXPECT_TRUE(stored.ok()) << stored.status();
    if (!stored.ok()) return stored.status();
    v1::Job from_wire;
    EXPECT_TRUE(from_wire.ParseFromString(row.wire)) << row.id;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(from_wire, *stored))
        << from_wire.DebugString() << " vs " << stored->DebugString();
    // Of the spec and status, what the queue reads (the rest is in the wire form).
    EXPECT_EQ(row.spec.compute_target(), stored->spec().compute_target());
    EXPECT_EQ(row.spec.node_count(), stored->spec().node_count());
    EXPECT_EQ(row.spec.priority(), stored->spec().priority());
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(row.spec.resources(),
                                                                   stored->spec().resources()));
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
        row.spec.max_run_duration(), stored->spec().max_run_duration()));
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(row.spec.array_task(),
                                                                   stored->spec().array_task()));
    EXPECT_EQ(row.status.state(), stored->status().state());
    EXPECT_EQ(row.status.version(), stored->status().version());
    row.wire.clear();  // what droverd's start does: it takes the wire form
    return absl::OkStatus();
  });
  ASSERT_TRUE(read.ok()) << read;
  EXPECT_THAT(ids, ElementsAre("j-2", "j-3"));
  absl::StatusOr<v1::Job> opened = store->GetJob("j-2");
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(opened->spec().environment().env().at("API_TOKEN"), "tok-5e6f7a8b");
  EXPECT_EQ(opened->owner(), "alice");
  // An error of the callee stops the read and comes back.
  int calls = 0;
  absl::Status stopped = store->ReadUnfinishedJobs([&](UnfinishedJobRow&) {
    ++calls;
    return absl::CancelledError("enough");
  });
  EXPECT_EQ(stopped.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 1);
}

TEST_P(StoreTest, ReadUnfinishedJobsRefusesASealedValueWithoutTheKey) {
  v1::Job secret = NewJob();
  (*secret.mutable_spec()->mutable_environment()->mutable_env())["API_TOKEN"] = "tok-5e6f7a8b";
  secret.mutable_spec()->mutable_environment()->add_secret_env("API_TOKEN");
  {
    auto store = OpenStore(&box_);
    ASSERT_TRUE(CreateSync(*store, secret).ok());
  }
  auto store = OpenStore();  // no secrets key
  absl::Status read = store->ReadUnfinishedJobs([](UnfinishedJobRow&) {
    return absl::OkStatus();
  });
  EXPECT_EQ(read.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(read.message()), HasSubstr("API_TOKEN"));
}

TEST_P(StoreTest, JobsKeepTheirOwnerAndListByOwner) {
  auto store = OpenStore();
  v1::Job alice_job = NewJob();
  alice_job.set_owner("alice");
  v1::Job bob_job = NewJob();
  bob_job.set_owner("bob");
  auto a = CreateSync(*store, alice_job);
  auto b = CreateSync(*store, bob_job);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(store->GetJob(a->job.id())->owner(), "alice");
  ListJobsQuery query;
  query.owner = "bob";
  absl::StatusOr<ListJobsPage> page = store->ListJobs(query);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->jobs.size(), 1u);
  EXPECT_EQ(page->jobs[0].id(), b->job.id());
}

TEST_P(StoreTest, AnIdempotencyKeyOfAnotherOwnerIsRefusedNotShared) {
  auto store = OpenStore();
  v1::Job first = NewJob("default", "key-1");
  first.set_owner("alice");
  ASSERT_TRUE(CreateSync(*store, first).ok());
  v1::Job second = first;
  second.set_owner("bob");
  auto other = CreateSync(*store, second);
  ASSERT_TRUE(absl::IsAlreadyExists(other.status())) << other.status();
  EXPECT_THAT(other.status().message(), ::testing::HasSubstr("another user"));
}

// --- CreateJobs: the tasks of a job array in one write ---

absl::StatusOr<std::vector<CreateJobResult>> CreateManySync(Store& store,
                                                            std::vector<v1::Job> jobs) {
  absl::Notification done;
  absl::StatusOr<std::vector<CreateJobResult>> out = absl::UnknownError("not called");
  store.CreateJobs(std::move(jobs), [&](absl::StatusOr<std::vector<CreateJobResult>> result) {
    out = std::move(result);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

std::vector<v1::Job> ArrayTasks(int count, const std::string& key = "") {
  std::vector<v1::Job> tasks;
  for (int i = 0; i < count; ++i) {
    v1::Job job = NewJob("default", key.empty() ? "" : absl::StrCat(key, "/", i));
    job.mutable_spec()->mutable_array_task()->set_array_id("a-00000000000000aa");
    job.mutable_spec()->mutable_array_task()->set_index(i);
    job.mutable_spec()->mutable_array_task()->set_size(count);
    (*job.mutable_spec()->mutable_tags())["drover.array"] = "a-00000000000000aa";
    tasks.push_back(std::move(job));
  }
  return tasks;
}

TEST_P(StoreTest, CreateJobsStoresEveryJobWithConsecutiveIdsInTheOrderGiven) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
  auto results = CreateManySync(*store, ArrayTasks(500));
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 500u);
  for (int i = 0; i < 500; ++i) {
    EXPECT_TRUE((*results)[i].created);
    EXPECT_EQ((*results)[i].job.id(), absl::StrCat("j-", i + 2));
    EXPECT_EQ((*results)[i].job.spec().array_task().index(), i);
  }
  absl::StatusOr<v1::Job> read = store->GetJob("j-501");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->spec().array_task().index(), 499);
  auto page = store->ListJobs(
      {.tag_key = "drover.array", .tag_value = "a-00000000000000aa", .page_size = 1000});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->jobs.size(), 500u);
}

TEST_P(StoreTest, CreateJobsWritesNoneWhenOneFails) {
  // Task 3's key is held by another spec: the whole array is refused and nothing of it is
  // stored, so no half array ever runs.
  auto store = OpenStore();
  v1::Job holder = NewJob("other", "k/3");
  ASSERT_TRUE(CreateSync(*store, holder).ok());
  auto results = CreateManySync(*store, ArrayTasks(10, "k"));
  ASSERT_FALSE(results.ok());
  EXPECT_EQ(results.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(results.status().message(), HasSubstr("j-1"));
  auto page = store->ListJobs({});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->jobs.size(), 1u);
  EXPECT_EQ(page->jobs[0].id(), "j-1");
  // The store takes writes as before; the next array's ids are consecutive (PostgreSQL's
  // sequence may have skipped the ids the refused write had drawn).
  auto next = CreateManySync(*store, ArrayTasks(2, "fresh"));
  ASSERT_TRUE(next.ok()) << next.status();
  absl::StatusOr<int64_t> a = ParseJobId((*next)[0].job.id());
  absl::StatusOr<int64_t> b = ParseJobId((*next)[1].job.id());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_GT(*a, 1);
  EXPECT_EQ(*b, *a + 1);
}

TEST_P(StoreTest, ARetriedCreateJobsWithKeysReturnsTheSameJobsAndWritesNothing) {
  auto store = OpenStore();
  auto first = CreateManySync(*store, ArrayTasks(20, "array-key"));
  ASSERT_TRUE(first.ok()) << first.status();
  auto again = CreateManySync(*store, ArrayTasks(20, "array-key"));
  ASSERT_TRUE(again.ok()) << again.status();
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE((*again)[i].created);
    EXPECT_EQ((*again)[i].job.id(), (*first)[i].job.id());
  }
  auto page = store->ListJobs({.page_size = 1000});
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->jobs.size(), 20u);
}

TEST_P(StoreTest, CreateJobsOfNoJobsSucceedsWithNoResults) {
  auto store = OpenStore();
  auto results = CreateManySync(*store, {});
  ASSERT_TRUE(results.ok()) << results.status();
  EXPECT_TRUE(results->empty());
}

}  // namespace
}  // namespace drover::storage
