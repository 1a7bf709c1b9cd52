// The rules of the attempts in flight on their own (scheduler/attempts.h): the launch
// barrier, reports, the first failure across nodes, retries and epochs, lost nodes, stops an
// agent missed while away, launch and run timeouts. No daemon, no gRPC, no clock: the test
// runs the effects the way droverd's core does (commits update the job queue, messages are
// collected by node) and moves time by hand.
#include "scheduler/attempts.h"

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "scheduler/job_state.h"

namespace drover::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using v1::AttemptReport;
using v1::JobStatus;

v1::RankExit Exit(int rank, int code, int signal = 0, int64_t end_seconds = 0) {
  v1::RankExit e;
  e.set_rank(rank);
  e.set_exit_code(code);
  e.set_signal(signal);
  if (end_seconds > 0) e.mutable_end_time()->set_seconds(end_seconds);
  return e;
}

// A message the rules had sent, as the node reads it.
struct Sent {
  std::string node;
  v1::SchedulerMessage message;
};

class AttemptsTest : public ::testing::Test {
 protected:
  AttemptsTest() : attempts_(AttemptsOptions{.stop_grace = absl::Seconds(7),
                                             .launch_timeout = absl::Minutes(15)}) {}

  // Queues a job needing `nodes` nodes and places attempt 1 of it on them at now_.
  std::string Place(std::vector<std::string> nodes, int max_retries = 0,
                    v1::JobSpec::DistributedBackend backend = v1::JobSpec::PYTORCH,
                    absl::Duration max_run = absl::ZeroDuration()) {
    v1::Job job;
    job.set_id(absl::StrCat("j-", ++jobs_made_));
    job.mutable_spec()->set_node_count(static_cast<int32_t>(nodes.size()));
    job.mutable_spec()->set_distributed_backend(backend);
    job.mutable_spec()->set_max_retries(max_retries);
    job.mutable_spec()->mutable_max_run_duration()->set_seconds(absl::ToInt64Seconds(max_run));
    job.mutable_status()->set_state(JobStatus::QUEUED);
    job.mutable_status()->set_version(1);
    jobs_.Update(job);
    PlaceAgain(job.id(), nodes);
    return job.id();
  }

  // Places the next attempt of queued job `id` on `nodes` at now_, as Core::Assign does.
  int64_t PlaceAgain(const std::string& id, const std::vector<std::string>& nodes) {
    v1::Job job = *jobs_.Find(id);
    const int64_t epoch = job.status().attempt() + 1;
    absl::StatusOr<JobStatus> next = Transition(job.status(), JobStatus::PREPARING, "ASSIGNED", now_);
    EXPECT_TRUE(next.ok()) << next.status();
    next->set_attempt(static_cast<int32_t>(epoch));
    next->clear_nodes();
    for (const std::string& node : nodes) next->add_nodes(node);
    *job.mutable_status() = *next;
    jobs_.Update(job);
    attempts_.Place(id, epoch, nodes, "token", 29500, "", now_);
    return epoch;
  }

  // Runs `effects` as droverd's core does.
  void Apply(AttemptEffects effects) {
    for (AttemptEffect& effect : effects) {
      switch (effect.kind) {
        case AttemptEffect::kCommit: {
          const v1::Job* job = jobs_.Find(effect.job_id);
          ASSERT_NE(job, nullptr) << "a commit of a finished job";
          EXPECT_EQ(effect.status.version(), job->status().version() + 1)
              << "each change follows the one before";
          v1::Job updated = *job;
          *updated.mutable_status() = effect.status;
          history_[effect.job_id].push_back(effect.status);
          jobs_.Update(updated);
          break;
        }
        case AttemptEffect::kSend:
          sent_.push_back({effect.node, effect.message});
          break;
        case AttemptEffect::kReassign:
          reassigned_.push_back(effect.node);
          break;
        case AttemptEffect::kFence:
          fenced_.push_back(effect.job_id);
          break;
        case AttemptEffect::kFinish:
          Finish(effect.job_id);
          break;
        case AttemptEffect::kFinishLater:
          posted_.push_back(effect.job_id);
          break;
        case AttemptEffect::kSchedule:
          ++schedules_;
          break;
      }
    }
  }

  void Finish(const std::string& id) {
    std::optional<FinishedAttempt> finished = attempts_.Finish(id, jobs_, now_);
    if (!finished.has_value()) return;
    released_.insert(released_.end(), finished->nodes.begin(), finished->nodes.end());
    Apply(std::move(finished->effects));
  }

  // What the loop runs after the event that posted it.
  void RunPosted() {
    while (!posted_.empty()) {
      std::string id = posted_.front();
      posted_.pop_front();
      Finish(id);
    }
  }

  void Report(const std::string& node, const std::string& id, int64_t epoch,
              AttemptReport::Phase phase, std::vector<v1::RankExit> exits = {},
              const std::string& reason = "") {
    AttemptReport report;
    report.mutable_attempt()->set_job_id(id);
    report.mutable_attempt()->set_epoch(epoch);
    report.set_phase(phase);
    report.set_reason(reason);
    for (const v1::RankExit& e : exits) *report.add_exits() = e;
    Apply(attempts_.Report(node, report, jobs_, now_));
  }

  void Tick() { Apply(attempts_.Tick(jobs_, now_)); }

  // The messages sent since the last call, then forgotten.
  std::vector<Sent> TakeSent() { return std::exchange(sent_, {}); }

  // "n1:start", "n2:stop PROCESS_FAILED": what was sent, in order, since the last call.
  std::vector<std::string> TakeSentSummary() {
    std::vector<std::string> summary;
    for (const Sent& s : TakeSent()) {
      if (s.message.has_start()) {
        summary.push_back(absl::StrCat(s.node, ":start"));
      } else if (s.message.has_stop()) {
        summary.push_back(
            absl::StrCat(s.node, ":stop ", JobStatus::Cause_Name(s.message.stop().cause())));
      } else {
        summary.push_back(absl::StrCat(s.node, ":other"));
      }
    }
    return summary;
  }

  // The job as its last committed status leaves it (also once finished).
  JobStatus Status(const std::string& id) {
    if (const v1::Job* job = jobs_.Find(id); job != nullptr) return job->status();
    return history_[id].back();
  }

  std::vector<JobStatus::State> States(const std::string& id) {
    std::vector<JobStatus::State> states;
    for (const JobStatus& s : history_[id]) states.push_back(s.state());
    return states;
  }

  absl::Time now_ = absl::FromUnixSeconds(1'000'000);
  JobQueue jobs_;
  Attempts attempts_;
  int jobs_made_ = 0;
  std::vector<Sent> sent_;
  std::map<std::string, std::vector<JobStatus>> history_;
  std::vector<std::string> reassigned_;
  std::vector<std::string> fenced_;
  std::vector<std::string> released_;
  std::deque<std::string> posted_;
  int schedules_ = 0;
};

TEST_F(AttemptsTest, TheGangStartsOnlyOnceEveryNodeIsReady) {
  std::string id = Place({"n1", "n2", "n3"});
  Report("n1", id, 1, AttemptReport::READY);
  Report("n3", id, 1, AttemptReport::READY);
  EXPECT_THAT(TakeSent(), IsEmpty()) << "two of three nodes ready: nobody starts";
  EXPECT_EQ(Status(id).state(), JobStatus::PREPARING);

  Report("n2", id, 1, AttemptReport::READY);
  EXPECT_THAT(TakeSentSummary(), ElementsAre("n1:start", "n2:start", "n3:start"));
  EXPECT_EQ(Status(id).state(), JobStatus::STARTING);
  EXPECT_TRUE(attempts_.Find(id)->started);

  now_ += absl::Seconds(3);
  Report("n2", id, 1, AttemptReport::RUNNING);
  EXPECT_EQ(Status(id).state(), JobStatus::RUNNING);
  EXPECT_EQ(Status(id).start_time().seconds(), absl::ToUnixSeconds(now_));
  Report("n1", id, 1, AttemptReport::RUNNING);
  EXPECT_THAT(States(id), ElementsAre(JobStatus::STARTING, JobStatus::RUNNING))
      << "a second RUNNING changes nothing";
}

TEST_F(AttemptsTest, AOneNodeAttemptStartsWhenReadyWithoutAStartMessage) {
  std::string id = Place({"n1"});
  EXPECT_TRUE(attempts_.Find(id)->StartsWhenReady());
  Report("n1", id, 1, AttemptReport::READY);
  EXPECT_THAT(TakeSent(), IsEmpty());
  EXPECT_EQ(Status(id).state(), JobStatus::STARTING);
}

TEST_F(AttemptsTest, PreparingReportsNameTheNodeInTheJobsReasonOnce) {
  std::string id = Place({"n1", "n2"});
  Report("n2", id, 1, AttemptReport::PREPARING, {}, "FETCHING_SNAPSHOT");
  EXPECT_EQ(Status(id).reason(), "FETCHING_SNAPSHOT node=n2");
  Report("n2", id, 1, AttemptReport::PREPARING, {}, "FETCHING_SNAPSHOT");
  EXPECT_EQ(history_[id].size(), 1u) << "the same reason again is not a change";
}

TEST_F(AttemptsTest, ANodeThatPreparedAgainAfterTheBarrierIsSentStartAgain) {
  std::string id = Place({"n1", "n2"});
  Report("n1", id, 1, AttemptReport::READY);
  Report("n2", id, 1, AttemptReport::READY);
  TakeSent();
  // n2's agent restarted before it had the START: it prepares again and says READY.
  Report("n2", id, 1, AttemptReport::READY);
  EXPECT_THAT(TakeSentSummary(), ElementsAre("n2:start"));
}

TEST_F(AttemptsTest, ARunningNodeBeforeTheBarrierMeansDroverdMissedItAndStartsTheOthers) {
  // droverd restarted after it sent START and before STARTING was stored.
  std::string id = Place({"n1", "n2"});
  Report("n1", id, 1, AttemptReport::RUNNING);
  EXPECT_THAT(TakeSentSummary(), ElementsAre("n1:start", "n2:start"));
  EXPECT_THAT(States(id), ElementsAre(JobStatus::STARTING, JobStatus::RUNNING));
}

TEST_F(AttemptsTest, EveryNodeEndingWellCompletesThroughTheStatesItsReportsSkipped) {
  std::string id = Place({"n1"});
  Report("n1", id, 1, AttemptReport::ENDED, {Exit(0, 0)});
  EXPECT_THAT(States(id), ElementsAre(JobStatus::STARTING, JobStatus::RUNNING,
                                      JobStatus::FINALIZING, JobStatus::COMPLETED));
  EXPECT_TRUE(history_[id][1].has_start_time());
  EXPECT_EQ(attempts_.Find(id), nullptr);
  EXPECT_THAT(released_, ElementsAre("n1"));
  EXPECT_EQ(schedules_, 1) << "its nodes came free";
  ASSERT_EQ(Status(id).exits_size(), 1);
  EXPECT_EQ(Status(id).exits(0).node(), "n1");
}

TEST_F(AttemptsTest, TheFirstFailureAcrossNodesStopsTheGangAndNamesTheJobsEnd) {
  std::string id = Place({"n1", "n2"});
  Report("n1", id, 1, AttemptReport::READY);
  Report("n2", id, 1, AttemptReport::READY);
  Report("n1", id, 1, AttemptReport::RUNNING);
  TakeSent();
  // n2's rank 3 failed at t=10; its report comes first, and only n1 is stopped.
  Report("n2", id, 1, AttemptReport::ENDED, {Exit(2, 0), Exit(3, 1, 0, 10)});
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].node, "n1");
  EXPECT_EQ(sent[0].message.stop().cause(), JobStatus::PROCESS_FAILED);
  EXPECT_EQ(sent[0].message.stop().grace().seconds(), 7);
  EXPECT_EQ(sent[0].message.stop().attempt().epoch(), 1);
  EXPECT_EQ(Status(id).state(), JobStatus::RUNNING) << "not over while n1 runs";
  // n1's ranks were killed by the stop, later.
  Report("n1", id, 1, AttemptReport::ENDED, {Exit(0, 0, 15, 20), Exit(1, 0, 15, 20)});
  JobStatus end = Status(id);
  EXPECT_EQ(end.state(), JobStatus::FAILED);
  EXPECT_EQ(end.cause(), JobStatus::PROCESS_FAILED);
  EXPECT_EQ(end.message(), "rank 3 on n2 exited with code 1");
  EXPECT_EQ(end.exits_size(), 4);
  EXPECT_THAT(TakeSent(), IsEmpty());
}

TEST_F(AttemptsTest, AFailedAttemptIsRetriedUnderANewEpochAndOldReportsAreStopped) {
  std::string id = Place({"n1", "n2"}, /*max_retries=*/1);
  Report("n1", id, 1, AttemptReport::ENDED, {Exit(0, 2)});
  Report("n2", id, 1, AttemptReport::ENDED, {Exit(1, 0, 15)});
  EXPECT_EQ(Status(id).state(), JobStatus::QUEUED);
  EXPECT_EQ(Status(id).reason(), "RETRYING after attempt 1");
  EXPECT_EQ(Status(id).cause(), JobStatus::CAUSE_UNSPECIFIED);
  TakeSent();

  EXPECT_EQ(PlaceAgain(id, {"n2", "n3"}), 2);
  const size_t changes = history_[id].size();
  // n1 still speaks of attempt 1; n3 of epoch 1, which it never had.
  Report("n1", id, 1, AttemptReport::RUNNING);
  Report("n3", id, 1, AttemptReport::READY);
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 2u);
  for (const Sent& s : sent) {
    EXPECT_EQ(s.message.stop().attempt().epoch(), 1);
    EXPECT_EQ(s.message.stop().message(), "droverd does not know this attempt");
  }
  EXPECT_EQ(history_[id].size(), changes) << "nothing changed for them";
  EXPECT_FALSE(attempts_.Find(id)->ready.contains("n3"));
  // An old ENDED is dropped without an answer.
  Report("n1", id, 1, AttemptReport::ENDED, {Exit(0, 0)});
  EXPECT_THAT(TakeSent(), IsEmpty());

  Report("n2", id, 2, AttemptReport::ENDED, {Exit(0, 1)});
  Report("n3", id, 2, AttemptReport::ENDED, {Exit(1, 1)});
  EXPECT_EQ(Status(id).state(), JobStatus::FAILED) << "max_retries 1: no third attempt";
  EXPECT_EQ(Status(id).attempt(), 2);
}

TEST_F(AttemptsTest, UnderMpiNodeRankZeroEndingStopsTheOthersWithoutACause) {
  std::string id = Place({"n1", "n2"}, 0, v1::JobSpec::MPI);
  Report("n1", id, 1, AttemptReport::ENDED, {Exit(0, 0), Exit(1, 0)});
  EXPECT_THAT(TakeSentSummary(), ElementsAre("n2:stop CAUSE_UNSPECIFIED"));
  Report("n2", id, 1, AttemptReport::ENDED, {});
  EXPECT_EQ(Status(id).state(), JobStatus::COMPLETED) << "mpirun ending is no failure";
}

TEST_F(AttemptsTest, ALostNodeEndsItsPartStopsTheGangAndIsRefusedAfterwards) {
  std::string id = Place({"n1", "n2"}, /*max_retries=*/1);
  Report("n1", id, 1, AttemptReport::READY);
  Report("n2", id, 1, AttemptReport::READY);
  Report("n1", id, 1, AttemptReport::RUNNING);
  TakeSent();
  Apply(attempts_.NodeLost("n2", "node n2 stopped answering (no message for 15s)"));
  // Only n1 hears (n2 is told when it comes back); what n2 sends is no longer taken.
  EXPECT_THAT(TakeSentSummary(), ElementsAre("n1:stop NODE_LOST"));
  EXPECT_THAT(fenced_, ElementsAre(id));
  EXPECT_TRUE(attempts_.Find(id)->ended.contains("n2"));
  Report("n2", id, 1, AttemptReport::RUNNING);
  EXPECT_THAT(TakeSentSummary(), ElementsAre("n2:stop CAUSE_UNSPECIFIED"));

  Report("n1", id, 1, AttemptReport::ENDED, {Exit(0, 0, 15)});
  EXPECT_EQ(Status(id).state(), JobStatus::QUEUED) << "NODE_LOST is retried";
  EXPECT_EQ(Status(id).message(), "node n2 stopped answering (no message for 15s)");
}

TEST_F(AttemptsTest, LosingTheLastNodeOfAnAttemptFinishesItAtOnce) {
  std::string id = Place({"n1"});
  std::string other = Place({"n2"});
  Apply(attempts_.NodeLost("n1", "node n1 was declared lost by an administrator"));
  EXPECT_EQ(attempts_.Find(id), nullptr);
  EXPECT_EQ(Status(id).state(), JobStatus::FAILED);
  EXPECT_EQ(Status(id).cause(), JobStatus::NODE_LOST);
  EXPECT_NE(attempts_.Find(other), nullptr) << "n2's attempt is untouched";
  EXPECT_THAT(TakeSent(), IsEmpty());
}

TEST_F(AttemptsTest, ACancelWhileANodeIsAwayIsSentAgainWhenItSaysHello) {
  std::string id = Place({"n1", "n2"});
  Report("n1", id, 1, AttemptReport::READY);
  Report("n2", id, 1, AttemptReport::READY);
  TakeSent();
  // n2's stream is down: its stop is lost on the way.
  Apply(attempts_.Stop(id, JobStatus::CANCELED_BY_USER, "not needed"));
  EXPECT_THAT(TakeSentSummary(), ElementsAre("n1:stop CANCELED_BY_USER", "n2:stop CANCELED_BY_USER"));
  Apply(attempts_.Stop(id, JobStatus::TIMEOUT, "late"));
  TakeSent();
  EXPECT_EQ(attempts_.Find(id)->tally.cause, JobStatus::CANCELED_BY_USER) << "the first wins";

  Apply(attempts_.Reconnected("n2", {{id, 1}}, jobs_));
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].node, "n2");
  EXPECT_EQ(sent[0].message.stop().cause(), JobStatus::CANCELED_BY_USER);
  EXPECT_EQ(sent[0].message.stop().message(), "not needed");
  // An agent holding an older epoch of the job is not stopped for this one.
  Apply(attempts_.Reconnected("n1", {{id, 0}}, jobs_));
  EXPECT_THAT(TakeSent(), IsEmpty());
}

TEST_F(AttemptsTest, AnAssignmentSentWhileTheAgentWasAwayIsSentAgain) {
  std::string id = Place({"n1", "n2"});
  Apply(attempts_.Reconnected("n2", {}, jobs_));
  EXPECT_THAT(reassigned_, ElementsAre("n2"));
  EXPECT_THAT(TakeSent(), IsEmpty());
  EXPECT_FALSE(attempts_.Find(id)->ended.contains("n2"));
}

TEST_F(AttemptsTest, AStartedAttemptTheAgentNoLongerHasEndsAsLostAfterThePass) {
  std::string id = Place({"n1", "n2"});
  Report("n1", id, 1, AttemptReport::READY);
  Report("n2", id, 1, AttemptReport::READY);
  TakeSent();
  Apply(attempts_.Reconnected("n2", {}, jobs_));
  EXPECT_THAT(reassigned_, IsEmpty());
  EXPECT_THAT(TakeSentSummary(), ElementsAre("n1:stop NODE_LOST"));
  Apply(attempts_.Reconnected("n1", {}, jobs_));
  EXPECT_NE(attempts_.Find(id), nullptr) << "finished after what the loop holds, not during";
  RunPosted();
  EXPECT_EQ(Status(id).state(), JobStatus::FAILED);
  EXPECT_EQ(Status(id).cause(), JobStatus::NODE_LOST);
  EXPECT_EQ(Status(id).message(), "the agent on n2 no longer has the attempt");
}

TEST_F(AttemptsTest, ALaunchThatOutlastsItsTimeoutFailsNamingTheLateNode) {
  std::string id = Place({"n1", "n2"});
  Report("n1", id, 1, AttemptReport::READY);
  Report("n2", id, 1, AttemptReport::PREPARING, {}, "FETCHING_SNAPSHOT");
  now_ += absl::Minutes(15);
  Tick();
  EXPECT_THAT(TakeSent(), IsEmpty()) << "15 minutes is not over the limit";
  now_ += absl::Seconds(1);
  Tick();
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].message.stop().cause(), JobStatus::LAUNCH_FAILED);
  EXPECT_EQ(sent[0].message.stop().message(),
            "node n2 not ready within 15m (last: FETCHING_SNAPSHOT)");
  Tick();
  EXPECT_THAT(TakeSent(), IsEmpty()) << "stopped once";
  Report("n1", id, 1, AttemptReport::ENDED, {});
  Report("n2", id, 1, AttemptReport::ENDED, {});
  EXPECT_EQ(Status(id).state(), JobStatus::FAILED);
  EXPECT_EQ(Status(id).cause(), JobStatus::LAUNCH_FAILED);
}

TEST_F(AttemptsTest, ARestoredAttemptGetsTheFullLaunchTimeFromTheFirstTick) {
  v1::Job job;
  job.set_id("j-restored");
  job.mutable_spec()->set_node_count(2);
  job.mutable_status()->set_state(JobStatus::PREPARING);
  job.mutable_status()->set_attempt(3);
  job.mutable_status()->add_nodes("n1");
  job.mutable_status()->add_nodes("n2");
  job.mutable_status()->set_master_port(29517);
  jobs_.Update(job);
  attempts_.Restore(job, "token", "", now_);
  EXPECT_EQ(attempts_.Find("j-restored")->epoch, 3);
  EXPECT_EQ(attempts_.Find("j-restored")->master_port, 29517);
  now_ += absl::Hours(1);
  Tick();  // the first tick after the restart: the launch time counts from here
  now_ += absl::Minutes(15);
  Tick();
  EXPECT_THAT(TakeSent(), IsEmpty());
  now_ += absl::Seconds(1);
  Tick();
  EXPECT_THAT(TakeSentSummary(), ElementsAre("n1:stop LAUNCH_FAILED", "n2:stop LAUNCH_FAILED"));
  EXPECT_EQ(sent_.size(), 0u);
  Report("n1", "j-restored", 3, AttemptReport::ENDED, {});
  EXPECT_THAT(TakeSent(), IsEmpty());
}

TEST_F(AttemptsTest, AnAttemptRunningPastMaxRunDurationIsStoppedWithTimeout) {
  std::string id = Place({"n1"}, 0, v1::JobSpec::PYTORCH, absl::Minutes(10));
  Report("n1", id, 1, AttemptReport::READY);
  now_ += absl::Hours(1);  // preparing does not count
  Report("n1", id, 1, AttemptReport::RUNNING);
  now_ += absl::Minutes(10);
  Tick();
  EXPECT_THAT(TakeSent(), IsEmpty());
  now_ += absl::Seconds(1);
  Tick();
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].message.stop().cause(), JobStatus::TIMEOUT);
  EXPECT_EQ(sent[0].message.stop().message(), "max_run_duration 10m exceeded");
  Tick();
  EXPECT_THAT(TakeSent(), IsEmpty()) << "stopped once";
  Report("n1", id, 1, AttemptReport::ENDED, {Exit(0, 0, 15)});
  EXPECT_EQ(Status(id).state(), JobStatus::FAILED);
  EXPECT_EQ(Status(id).cause(), JobStatus::TIMEOUT);
}

TEST_F(AttemptsTest, ARestoredCancelRequestedAttemptIsStoppedWhenItsNodesSayHello) {
  v1::Job job;
  job.set_id("j-canceled");
  job.mutable_spec()->set_node_count(1);
  job.mutable_status()->set_state(JobStatus::CANCEL_REQUESTED);
  job.mutable_status()->set_message("user asked");
  job.mutable_status()->set_attempt(1);
  job.mutable_status()->add_nodes("n1");
  jobs_.Update(job);
  attempts_.Restore(job, "token", "", now_);
  Apply(attempts_.Reconnected("n1", {{"j-canceled", 1}}, jobs_));
  std::vector<Sent> sent = TakeSent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].message.stop().cause(), JobStatus::CANCELED_BY_USER);
  EXPECT_EQ(sent[0].message.stop().message(), "user asked");
  Report("n1", "j-canceled", 1, AttemptReport::ENDED, {Exit(0, 0, 15)});
  EXPECT_EQ(Status("j-canceled").state(), JobStatus::CANCELED);
  EXPECT_EQ(Status("j-canceled").cause(), JobStatus::CANCELED_BY_USER);
}

TEST_F(AttemptsTest, PlacementSeesRunningAttemptsWithTheirTimeLimits) {
  std::string id = Place({"n1"}, 0, v1::JobSpec::PYTORCH, absl::Minutes(10));
  EXPECT_EQ(attempts_.Running(jobs_).at(id).running_since, absl::InfiniteFuture());
  Report("n1", id, 1, AttemptReport::READY);
  Report("n1", id, 1, AttemptReport::RUNNING);
  RunningAttempt running = attempts_.Running(jobs_).at(id);
  EXPECT_EQ(running.running_since, now_);
  EXPECT_EQ(running.max_run_duration, absl::Minutes(10));
}

}  // namespace
}  // namespace drover::scheduler
