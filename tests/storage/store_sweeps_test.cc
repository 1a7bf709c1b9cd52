// The store conformance suite's sweeps (StoreTest, on SQLite and on PostgreSQL): a sweep and
// its trials are durable, a trial is stored with its job in one write and each index once.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/storage/store_test_util.h"

namespace drover::storage {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

v1::Sweep NewSweep(const std::string& id, const std::string& owner = "ada",
                   const std::string& key = "") {
  v1::Sweep sweep;
  sweep.set_id(id);
  sweep.set_owner(owner);
  v1::SweepSpec& spec = *sweep.mutable_spec();
  spec.set_name("lr-search");
  spec.mutable_trial_template()->set_entry_script("train.py");
  spec.set_primary_metric_name("accuracy");
  spec.set_primary_metric_goal(v1::MAXIMIZE);
  spec.set_max_total_trials(10);
  spec.set_max_concurrent_trials(2);
  (*spec.mutable_search_space())["lr"].mutable_uniform()->set_max(1);
  spec.set_idempotency_key(key);
  sweep.mutable_status()->set_state(v1::SweepStatus::QUEUED);
  *sweep.mutable_create_time() = google::protobuf::util::TimeUtil::SecondsToTimestamp(1700000000);
  return sweep;
}

// Trial `index` of sweep `sweep_id` and its job.
std::pair<v1::SweepTrial, v1::Job> NewTrial(const std::string& sweep_id, int64_t index) {
  v1::SweepTrial trial;
  trial.set_index(index);
  (*trial.mutable_parameters())["lr"].set_number(0.1 * static_cast<double>(index));
  v1::Job job = NewJob("default");
  job.set_owner("ada");
  job.mutable_spec()->mutable_sweep_trial()->set_sweep_id(sweep_id);
  job.mutable_spec()->mutable_sweep_trial()->set_index(index);
  return {trial, job};
}

absl::StatusOr<CreateSweepResult> CreateSweepSync(Store& store, v1::Sweep sweep) {
  absl::Notification done;
  absl::StatusOr<CreateSweepResult> out = absl::UnknownError("not called");
  store.CreateSweep(std::move(sweep), [&](absl::StatusOr<CreateSweepResult> result) {
    out = std::move(result);
    done.Notify();
  });
  done.WaitForNotification();
  return out;
}

absl::StatusOr<std::vector<CreateJobResult>> CreateTrialsSync(Store& store,
                                                              const std::string& sweep_id,
                                                              std::vector<int64_t> indices) {
  std::vector<v1::SweepTrial> trials;
  std::vector<v1::Job> jobs;
  for (int64_t index : indices) {
    auto [trial, job] = NewTrial(sweep_id, index);
    trials.push_back(std::move(trial));
    jobs.push_back(std::move(job));
  }
  absl::Notification done;
  absl::StatusOr<std::vector<CreateJobResult>> out = absl::UnknownError("not called");
  store.CreateTrials(sweep_id, std::move(trials), std::move(jobs),
                     [&](absl::StatusOr<std::vector<CreateJobResult>> result) {
                       out = std::move(result);
                       done.Notify();
                     });
  done.WaitForNotification();
  return out;
}

v1::SweepStatus Status(v1::SweepStatus::State state, const std::string& reason) {
  v1::SweepStatus status;
  status.set_state(state);
  status.set_reason(reason);
  return status;
}

std::vector<int64_t> TrialIndices(const v1::Sweep& sweep) {
  std::vector<int64_t> out;
  for (const v1::SweepTrial& trial : sweep.trials()) out.push_back(trial.index());
  return out;
}

TEST_P(StoreTest, ASweepIsStoredAndReadBackWithNoTrials) {
  auto store = OpenStore();
  auto created = CreateSweepSync(*store, NewSweep("s-00000000000000a1"));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(created->created);
  absl::StatusOr<v1::Sweep> read = store->GetSweep("s-00000000000000a1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->owner(), "ada");
  EXPECT_EQ(read->spec().primary_metric_name(), "accuracy");
  EXPECT_EQ(read->spec().trial_template().entry_script(), "train.py");
  EXPECT_EQ(read->status().state(), v1::SweepStatus::QUEUED);
  EXPECT_EQ(read->create_time().seconds(), 1700000000);
  EXPECT_EQ(read->trials_size(), 0);
  EXPECT_EQ(read->trial_count(), 0);
  EXPECT_EQ(store->GetSweep("s-00000000000000ff").status().code(), absl::StatusCode::kNotFound);
  // The same id twice is refused, not overwritten.
  auto twice = CreateSweepSync(*store, NewSweep("s-00000000000000a1", "bob"));
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kAlreadyExists) << twice.status();
  EXPECT_EQ(store->GetSweep("s-00000000000000a1")->owner(), "ada");
}

TEST_P(StoreTest, ASweepIdempotencyKeyIsTheOwnersAndNamesTheKeyWhenTheSpecDiffers) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSweepSync(*store, NewSweep("s-00000000000000a1", "ada", "k1")).ok());
  ASSERT_TRUE(CreateTrialsSync(*store, "s-00000000000000a1", {0}).ok());
  // A retry (same owner, key and spec, another id drawn) is the first sweep, trials and all.
  auto again = CreateSweepSync(*store, NewSweep("s-00000000000000a2", "ada", "k1"));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->sweep.id(), "s-00000000000000a1");
  EXPECT_THAT(TrialIndices(again->sweep), ElementsAre(0));
  // Another spec under the key: refused, naming the key and the sweep that holds it.
  v1::Sweep changed = NewSweep("s-00000000000000a3", "ada", "k1");
  changed.mutable_spec()->set_max_total_trials(11);
  auto refused = CreateSweepSync(*store, changed);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kAlreadyExists) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("sweep.idempotency_key: 'k1'"));
  EXPECT_THAT(refused.status().message(), HasSubstr("s-00000000000000a1"));
  // Another owner's key of the same text is theirs: a new sweep.
  auto bobs = CreateSweepSync(*store, NewSweep("s-00000000000000b1", "bob", "k1"));
  ASSERT_TRUE(bobs.ok()) << bobs.status();
  EXPECT_TRUE(bobs->created);
  EXPECT_EQ(store->GetSweep("s-00000000000000a3").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StoreTest, TrialsAreStoredWithTheirJobsInOneWriteAndTheSweepRuns) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSync(*store, NewJob()).ok());
  ASSERT_TRUE(CreateSweepSync(*store, NewSweep("s-00000000000000a1")).ok());
  auto started = CreateTrialsSync(*store, "s-00000000000000a1", {0, 1});
  ASSERT_TRUE(started.ok()) << started.status();
  ASSERT_EQ(started->size(), 2u);
  EXPECT_EQ((*started)[0].job.id(), "j-2");
  EXPECT_EQ((*started)[1].job.id(), "j-3");
  EXPECT_EQ((*started)[1].job.spec().sweep_trial().index(), 1);
  absl::StatusOr<v1::Sweep> read = store->GetSweep("s-00000000000000a1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->status().state(), v1::SweepStatus::RUNNING);
  ASSERT_THAT(TrialIndices(*read), ElementsAre(0, 1));
  EXPECT_EQ(read->trials(0).job_id(), "j-2");
  EXPECT_EQ(read->trials(1).job_id(), "j-3");
  EXPECT_DOUBLE_EQ(read->trials(1).parameters().at("lr").number(), 0.1);
  EXPECT_EQ(read->trial_count(), 2);
  absl::StatusOr<v1::Job> job = store->GetJob("j-3");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->spec().sweep_trial().sweep_id(), "s-00000000000000a1");
  EXPECT_EQ(job->owner(), "ada");
}

TEST_P(StoreTest, ATrialIndexIsStartedAtMostOnceAndARefusedWriteStoresNoJob) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSweepSync(*store, NewSweep("s-00000000000000a1")).ok());
  ASSERT_TRUE(CreateTrialsSync(*store, "s-00000000000000a1", {0, 1}).ok());
  // Trial 2 is new but trial 1 was started: all or none, so neither is written.
  auto again = CreateTrialsSync(*store, "s-00000000000000a1", {2, 1});
  ASSERT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  EXPECT_THAT(again.status().message(), HasSubstr("trial 1 of sweep 's-00000000000000a1'"));
  // The same index twice in one call.
  auto doubled = CreateTrialsSync(*store, "s-00000000000000a1", {3, 3});
  EXPECT_EQ(doubled.status().code(), absl::StatusCode::kAlreadyExists) << doubled.status();
  EXPECT_THAT(TrialIndices(*store->GetSweep("s-00000000000000a1")), ElementsAre(0, 1));
  auto jobs = store->ListJobs({});
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->jobs.size(), 2u);
  // The store goes on: the next trial is stored.
  ASSERT_TRUE(CreateTrialsSync(*store, "s-00000000000000a1", {2}).ok());
  EXPECT_THAT(TrialIndices(*store->GetSweep("s-00000000000000a1")), ElementsAre(0, 1, 2));
}

TEST_P(StoreTest, TrialsOfAnEndedUnknownOrMismatchedSweepAreRefused) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSweepSync(*store, NewSweep("s-00000000000000a1")).ok());
  EXPECT_EQ(CreateTrialsSync(*store, "s-00000000000000ff", {0}).status().code(),
            absl::StatusCode::kNotFound);
  // A job that names another trial than the one it is stored with.
  auto [trial, job] = NewTrial("s-00000000000000a1", 4);
  trial.set_index(5);
  absl::Notification done;
  absl::Status mismatched;
  store->CreateTrials("s-00000000000000a1", {trial}, {job},
                      [&](absl::StatusOr<std::vector<CreateJobResult>> result) {
                        mismatched = result.status();
                        done.Notify();
                      });
  done.WaitForNotification();
  EXPECT_EQ(mismatched.code(), absl::StatusCode::kInvalidArgument) << mismatched;
  ASSERT_TRUE(Sync([&](Store::DoneCallback d) {
                store->UpdateSweepStatus("s-00000000000000a1",
                                         Status(v1::SweepStatus::CANCELED, "CANCELED_BY_USER"),
                                         std::move(d));
              }).ok());
  auto late = CreateTrialsSync(*store, "s-00000000000000a1", {0});
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition) << late.status();
  EXPECT_TRUE(store->ListJobs({})->jobs.empty());
}

TEST_P(StoreTest, AnEndedSweepKeepsItsStateAndATrialKeepsItsFirstStop) {
  auto store = OpenStore();
  ASSERT_TRUE(CreateSweepSync(*store, NewSweep("s-00000000000000a1")).ok());
  ASSERT_TRUE(CreateTrialsSync(*store, "s-00000000000000a1", {0}).ok());
  v1::TrialStop stop;
  stop.set_rule("bandit");
  stop.set_interval(5);
  stop.set_message("bandit policy at interval 5");
  ASSERT_TRUE(Sync([&](Store::DoneCallback d) {
                store->PutTrialStop("s-00000000000000a1", 0, stop, std::move(d));
              }).ok());
  v1::TrialStop later = stop;
  later.set_rule("median_stopping");
  ASSERT_TRUE(Sync([&](Store::DoneCallback d) {
                store->PutTrialStop("s-00000000000000a1", 0, later, std::move(d));
              }).ok());
  EXPECT_EQ(Sync([&](Store::DoneCallback d) {
              store->PutTrialStop("s-00000000000000a1", 7, stop, std::move(d));
            }).code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(Sync([&](Store::DoneCallback d) {
                store->UpdateSweepStatus("s-00000000000000a1",
                                         Status(v1::SweepStatus::COMPLETED, "TRIAL_LIMIT"),
                                         std::move(d));
              }).ok());
  absl::Status after = Sync([&](Store::DoneCallback d) {
    store->UpdateSweepStatus("s-00000000000000a1",
                             Status(v1::SweepStatus::CANCELED, "CANCELED_BY_USER"), std::move(d));
  });
  EXPECT_EQ(after.code(), absl::StatusCode::kFailedPrecondition) << after;
  absl::StatusOr<v1::Sweep> read = store->GetSweep("s-00000000000000a1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->status().state(), v1::SweepStatus::COMPLETED);
  EXPECT_EQ(read->status().reason(), "TRIAL_LIMIT");
  EXPECT_EQ(read->trials(0).stop().rule(), "bandit");
  EXPECT_EQ(read->trials(0).stop().interval(), 5);
}

TEST_P(StoreTest, AReopenedStoreLoadsExactlyTheUnfinishedSweepsWithTheirTrials) {
  {
    auto store = OpenStore();
    for (const char* id : {"s-00000000000000a1", "s-00000000000000a2", "s-00000000000000a3"}) {
      ASSERT_TRUE(CreateSweepSync(*store, NewSweep(id)).ok());
    }
    ASSERT_TRUE(CreateTrialsSync(*store, "s-00000000000000a1", {0, 1, 2}).ok());
    ASSERT_TRUE(Sync([&](Store::DoneCallback d) {
                  store->UpdateSweepStatus("s-00000000000000a2",
                                           Status(v1::SweepStatus::FAILED, "TRIAL_NOT_STORED"),
                                           std::move(d));
                }).ok());
  }
  auto store = OpenStore();
  auto unfinished = store->LoadUnfinishedSweeps();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status();
  ASSERT_EQ(unfinished->size(), 2u);
  EXPECT_EQ((*unfinished)[0].id(), "s-00000000000000a1");
  EXPECT_EQ((*unfinished)[0].status().state(), v1::SweepStatus::RUNNING);
  EXPECT_THAT(TrialIndices((*unfinished)[0]), ElementsAre(0, 1, 2));
  EXPECT_EQ((*unfinished)[0].trials(2).job_id(), "j-3");
  EXPECT_EQ((*unfinished)[1].id(), "s-00000000000000a3");
  EXPECT_EQ((*unfinished)[1].trials_size(), 0);
  // After the restart a stored index is still refused and the next one is stored.
  EXPECT_EQ(CreateTrialsSync(*store, "s-00000000000000a1", {2}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(CreateTrialsSync(*store, "s-00000000000000a1", {3}).ok());
}

TEST_P(StoreTest, ASweepTemplatesSecretValuesAreSealedAtRestAndReadBackInClear) {
  v1::Sweep sweep = NewSweep("s-00000000000000a1", "ada", "k-secret");
  v1::Environment& env = *sweep.mutable_spec()->mutable_trial_template()->mutable_environment();
  (*env.mutable_env())["API_TOKEN"] = "tok-5e6f7a8b9c0d";
  env.add_secret_env("API_TOKEN");
  {
    auto store = OpenStore(&box_);
    auto created = CreateSweepSync(*store, sweep);
    ASSERT_TRUE(created.ok()) << created.status();
    EXPECT_EQ(created->sweep.spec().trial_template().environment().env().at("API_TOKEN"),
              "tok-5e6f7a8b9c0d");
    ASSERT_TRUE(Sync([&](Store::DoneCallback d) {
                  store->UpdateSweepStatus("s-00000000000000a1",
                                           Status(v1::SweepStatus::RUNNING, "RUNNING"),
                                           std::move(d));
                }).ok());
  }
  EXPECT_THAT(BytesAtRest(), Not(HasSubstr("tok-5e6f7a8b9c0d")));
  auto store = OpenStore(&box_);
  absl::StatusOr<v1::Sweep> read = store->GetSweep("s-00000000000000a1");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->spec().trial_template().environment().env().at("API_TOKEN"),
            "tok-5e6f7a8b9c0d");
  // A retried submit of the same spec is the same sweep, though the stored bytes differ.
  v1::Sweep retry = sweep;
  retry.set_id("s-00000000000000a2");
  auto again = CreateSweepSync(*store, retry);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->sweep.id(), "s-00000000000000a1");
}

TEST_P(StoreTest, SweepsListNewestFirstByOwnerAndStateInPages) {
  auto store = OpenStore();
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(CreateSweepSync(*store, NewSweep(absl::StrCat("s-00000000000000a", i),
                                                 i % 2 == 0 ? "bob" : "ada"))
                    .ok());
  }
  ASSERT_TRUE(CreateTrialsSync(*store, "s-00000000000000a3", {0, 1}).ok());
  auto ids = [](const ListSweepsPage& page) {
    std::vector<std::string> out;
    for (const v1::Sweep& sweep : page.sweeps) out.push_back(sweep.id());
    return out;
  };
  auto all = store->ListSweeps({});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(ids(*all), ElementsAre("s-00000000000000a5", "s-00000000000000a4",
                                     "s-00000000000000a3", "s-00000000000000a2",
                                     "s-00000000000000a1"));
  EXPECT_EQ(all->sweeps[2].trial_count(), 2);
  EXPECT_EQ(all->sweeps[2].trials_size(), 0);
  auto adas = store->ListSweeps({.owner = "ada", .page_size = 2});
  ASSERT_TRUE(adas.ok()) << adas.status();
  EXPECT_THAT(ids(*adas), ElementsAre("s-00000000000000a5", "s-00000000000000a3"));
  ASSERT_NE(adas->next_before_sequence, 0);
  auto next = store->ListSweeps(
      {.owner = "ada", .page_size = 2, .before_sequence = adas->next_before_sequence});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_THAT(ids(*next), ElementsAre("s-00000000000000a1"));
  EXPECT_EQ(next->next_before_sequence, 0);
  auto running = store->ListSweeps({.states = {v1::SweepStatus::RUNNING}});
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_THAT(ids(*running), ElementsAre("s-00000000000000a3"));
}

}  // namespace
}  // namespace drover::storage
