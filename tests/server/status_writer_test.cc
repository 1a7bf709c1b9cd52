// The status writer (server/status_writer.h) alone: a store in a fresh folder, wrapped so
// that a test can refuse its writes (tests/testing/fault_injecting_store.h), the loop and
// reader threads, and a fake clock; no droverd, no gRPC. Each test waits for the threads
// to finish what they were given (Settle), never for time to pass.
#include "server/status_writer.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "scheduler/job_state.h"
#include "storage/sqlite_store.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fault_injecting_store.h"
#include "tests/testing/subprocess.h"

namespace drover::server {
namespace {

using v1::JobStatus;

const absl::Status kDiskError = absl::UnavailableError("disk I/O error (injected)");

// What watchers of one job are told.
class Watcher : public JobSubscriber {
 public:
  void OnJobChanged(const v1::Job& job) override {
    absl::MutexLock lock(&mu_);
    states_.push_back(job.status().state());
  }
  void OnHubClosed(const absl::Status&) override {}
  std::vector<JobStatus::State> states() {
    absl::MutexLock lock(&mu_);
    return states_;
  }

 private:
  absl::Mutex mu_;
  std::vector<JobStatus::State> states_ ABSL_GUARDED_BY(mu_);
};

class StatusWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<storage::SqliteStore>> base =
        storage::SqliteStore::Open({.path = dir_.path() + "/drover.db"});
    ASSERT_TRUE(base.ok()) << base.status();
    store_ = std::make_unique<testing::FaultInjectingStore>(*std::move(base));
    writer_ = std::make_unique<StatusWriter>(*store_, loop_, reader_, jobs_, clock_, events_,
                                             /*metrics=*/nullptr, [this] { ++saved_; });
    v1::Job job;
    job.mutable_spec()->set_entry_script("train.py");
    job.mutable_status()->set_state(JobStatus::QUEUED);
    job.mutable_status()->set_version(1);
    absl::Notification created;
    store_->CreateJob(job, [&](absl::StatusOr<storage::CreateJobResult> result) {
      ASSERT_TRUE(result.ok()) << result.status();
      job_id_ = result->job.id();
      OnLoop([&, job = result->job] { jobs_.Update(job); });
      created.Notify();
    });
    created.WaitForNotification();
    events_.Subscribe(job_id_, &watcher_);
  }
  void TearDown() override {
    events_.Unsubscribe(job_id_, &watcher_);
    reader_.Stop();
    loop_.Stop();
    store_->Close();
  }

  // Runs `fn` on `loop` and waits for it.
  static void Run(CoreLoop& loop, absl::AnyInvocable<void() &&> fn) {
    absl::Notification done;
    loop.Post([&] {
      std::move(fn)();
      done.Notify();
    });
    done.WaitForNotification();
  }
  void OnLoop(absl::AnyInvocable<void() &&> fn) { Run(loop_, std::move(fn)); }
  // Waits until what the loop, the reader and the store were given is done, and what each
  // passed on to the next (a read, then a write, then its answer on the loop).
  void Settle() {
    for (int round = 0; round < 2; ++round) {
      OnLoop([] {});
      Run(reader_, [] {});
      OnLoop([] {});
      absl::Notification written;
      store_->Barrier([&](absl::Status) { written.Notify(); });
      written.WaitForNotification();
      OnLoop([] {});
    }
  }

  // The job as the loop holds it now, and as the store does.
  v1::Job InMemory() {
    v1::Job job;
    OnLoop([&] {
      if (const v1::Job* found = jobs_.Find(job_id_)) job = *found;
    });
    return job;
  }
  v1::Job Stored() {
    absl::StatusOr<v1::Job> job = store_->GetJob(job_id_);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *job : v1::Job();
  }
  // Moves the in-memory job to `to` through the writer; with `decide`, as a decision whose
  // answer is returned.
  absl::StatusOr<v1::Job> Change(JobStatus::State to, bool decide) {
    absl::Notification answered;
    absl::StatusOr<v1::Job> answer = absl::UnknownError("not a decision");
    OnLoop([&] {
      const v1::Job* job = jobs_.Find(job_id_);
      ASSERT_NE(job, nullptr);
      absl::StatusOr<JobStatus> next = scheduler::Transition(job->status(), to, "", clock_.Now());
      ASSERT_TRUE(next.ok()) << next.status();
      StatusWriter::JobCallback done;
      if (decide) {
        done = [&](absl::StatusOr<v1::Job> committed) {
          answer = std::move(committed);
          answered.Notify();
        };
      }
      writer_->Commit(*job, *std::move(next), std::move(done));
    });
    if (decide) answered.WaitForNotification();
    Settle();
    return answer;
  }
  // A fact (what an agent reported): no answer.
  void Report(JobStatus::State to) { Change(to, /*decide=*/false).IgnoreError(); }
  // A change stored behind the writer's back, as a cancel is.
  void StoreDirectly(JobStatus::State to) {
    v1::Job stored = Stored();
    absl::StatusOr<JobStatus> next =
        scheduler::Transition(stored.status(), to, "", clock_.Now());
    ASSERT_TRUE(next.ok()) << next.status();
    absl::Notification done;
    store_->UpdateJobStatus(job_id_, stored.status().version(), *next,
                            storage::Store::Durability::kFlushed,
                            [&](absl::StatusOr<v1::Job> committed) {
                              EXPECT_TRUE(committed.ok()) << committed.status();
                              done.Notify();
                            });
    done.WaitForNotification();
  }
  std::optional<absl::Status> UnsavedError() {
    std::optional<absl::Status> error;
    OnLoop([&] { error = writer_->UnsavedError(job_id_); });
    return error;
  }
  bool PlacementsPaused() {
    bool paused = false;
    OnLoop([&] { paused = writer_->PlacementsPaused(clock_.Now()); });
    return paused;
  }
  void SaveUnsaved() {
    OnLoop([&] { writer_->SaveUnsaved(); });
    Settle();
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  std::unique_ptr<testing::FaultInjectingStore> store_;
  scheduler::JobQueue jobs_;  // the loop's
  JobEventHub events_;
  Watcher watcher_;
  int saved_ = 0;  // the loop's
  CoreLoop loop_;
  CoreLoop reader_;
  std::unique_ptr<StatusWriter> writer_;
  std::string job_id_;
};

TEST_F(StatusWriterTest, ACommittedChangeIsStoredAndToldToWatchers) {
  absl::StatusOr<v1::Job> placed = Change(JobStatus::PREPARING, /*decide=*/true);
  ASSERT_TRUE(placed.ok()) << placed.status();
  EXPECT_EQ(placed->status().state(), JobStatus::PREPARING);
  EXPECT_EQ(Stored().status().state(), JobStatus::PREPARING);
  EXPECT_EQ(InMemory().status().version(), Stored().status().version());
  EXPECT_EQ(watcher_.states(), std::vector<JobStatus::State>{JobStatus::PREPARING});
  EXPECT_FALSE(PlacementsPaused());
}

TEST_F(StatusWriterTest, ADecisionTheDiskRefusesIsUndoneAndPausesPlacementsForASecond) {
  store_->FailNext("UpdateJobStatus", kDiskError);
  absl::StatusOr<v1::Job> placed = Change(JobStatus::PREPARING, /*decide=*/true);
  EXPECT_EQ(placed.status(), kDiskError);
  // Back to what the store holds, which never changed; nobody was told of it.
  EXPECT_EQ(InMemory().status().state(), JobStatus::QUEUED);
  EXPECT_EQ(Stored().status().state(), JobStatus::QUEUED);
  EXPECT_TRUE(watcher_.states().empty());
  EXPECT_EQ(UnsavedError(), std::nullopt);  // nothing left to store
  EXPECT_TRUE(PlacementsPaused());
  clock_.Advance(absl::Seconds(1));
  EXPECT_FALSE(PlacementsPaused());
}

TEST_F(StatusWriterTest, AFactTheDiskRefusesIsKeptAndStoredOnceTheDiskTakesIt) {
  ASSERT_TRUE(Change(JobStatus::PREPARING, /*decide=*/true).ok());
  store_->FailNext("UpdateJobStatus", kDiskError);
  Report(JobStatus::STARTING);
  // What the agents reported happened: the loop goes on with it, the store has not got it.
  EXPECT_EQ(InMemory().status().state(), JobStatus::STARTING);
  EXPECT_EQ(Stored().status().state(), JobStatus::PREPARING);
  EXPECT_EQ(UnsavedError(), kDiskError);
  EXPECT_TRUE(PlacementsPaused());
  // A later fact waits behind it; a decision is refused with its error.
  Report(JobStatus::RUNNING);
  EXPECT_EQ(Change(JobStatus::RUNNING, /*decide=*/true).status(), kDiskError);
  EXPECT_EQ(watcher_.states(), std::vector<JobStatus::State>{JobStatus::PREPARING});

  SaveUnsaved();
  EXPECT_EQ(Stored().status().state(), JobStatus::RUNNING);
  EXPECT_EQ(InMemory().status().version(), Stored().status().version());
  EXPECT_EQ(UnsavedError(), std::nullopt);
  EXPECT_FALSE(PlacementsPaused());
  EXPECT_EQ(saved_, 1);
  EXPECT_EQ(watcher_.states(),
            (std::vector<JobStatus::State>{JobStatus::PREPARING, JobStatus::RUNNING}));
}

TEST_F(StatusWriterTest, AfterSeveralKeptChangesAreStoredTheNextIsStoredAtOnce) {
  ASSERT_TRUE(Change(JobStatus::PREPARING, /*decide=*/true).ok());
  store_->FailNext("UpdateJobStatus", kDiskError);
  Report(JobStatus::STARTING);
  Report(JobStatus::RUNNING);
  SaveUnsaved();
  ASSERT_EQ(UnsavedError(), std::nullopt);
  // The loop's job follows the stored version, so the next write does not conflict.
  EXPECT_EQ(InMemory().status().version(), Stored().status().version());
  Report(JobStatus::FINALIZING);
  EXPECT_EQ(UnsavedError(), std::nullopt);
  EXPECT_EQ(Stored().status().state(), JobStatus::FINALIZING);
  EXPECT_FALSE(PlacementsPaused());
}

TEST_F(StatusWriterTest, UnsavedStatusesAreRetriedWhileTheDiskRefusesThem) {
  ASSERT_TRUE(Change(JobStatus::PREPARING, /*decide=*/true).ok());
  store_->FailAlways("UpdateJobStatus", kDiskError);
  Report(JobStatus::STARTING);
  SaveUnsaved();
  SaveUnsaved();
  EXPECT_EQ(store_->Failed("UpdateJobStatus"), 3);
  EXPECT_EQ(UnsavedError(), kDiskError);
  EXPECT_EQ(saved_, 0);
  store_->Heal("UpdateJobStatus");
  SaveUnsaved();
  EXPECT_EQ(Stored().status().state(), JobStatus::STARTING);
  EXPECT_EQ(UnsavedError(), std::nullopt);
}

TEST_F(StatusWriterTest, AFactThatConflictsWithAStoredCancelGivesWayToIt) {
  ASSERT_TRUE(Change(JobStatus::PREPARING, /*decide=*/true).ok());
  StoreDirectly(JobStatus::CANCEL_REQUESTED);
  // Written over the version the loop knew: ABORTED, kept.
  Report(JobStatus::STARTING);
  ASSERT_TRUE(UnsavedError().has_value());
  EXPECT_TRUE(absl::IsAborted(*UnsavedError())) << *UnsavedError();
  SaveUnsaved();
  // The cancel wins over a change that is not the job's end.
  EXPECT_EQ(InMemory().status().state(), JobStatus::CANCEL_REQUESTED);
  EXPECT_EQ(Stored().status().state(), JobStatus::CANCEL_REQUESTED);
  EXPECT_EQ(UnsavedError(), std::nullopt);
}

TEST_F(StatusWriterTest, AJobsEndKeptOverAStoredCancelIsStoredOverIt) {
  ASSERT_TRUE(Change(JobStatus::PREPARING, /*decide=*/true).ok());
  StoreDirectly(JobStatus::CANCEL_REQUESTED);
  Report(JobStatus::FAILED);
  ASSERT_TRUE(UnsavedError().has_value());
  SaveUnsaved();
  EXPECT_EQ(Stored().status().state(), JobStatus::FAILED);
  EXPECT_EQ(UnsavedError(), std::nullopt);
  EXPECT_EQ(watcher_.states(),
            (std::vector<JobStatus::State>{JobStatus::PREPARING, JobStatus::FAILED}));
}

}  // namespace
}  // namespace drover::server
