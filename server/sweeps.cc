#include "server/sweeps.h"

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/failpoint.h"
#include "common/log.h"
#include "google/protobuf/util/time_util.h"
#include "scheduler/job_queue.h"
#include "scheduler/sweep_policy.h"
#include "scheduler/sweep_spec.h"
#include "server/metric_records.h"

namespace drover::server {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& t) {
  return absl::FromUnixMicros(TimeUtil::TimestampToMicroseconds(t));
}

scheduler::ParameterAssignment ParametersOf(const v1::SweepTrial& trial) {
  return scheduler::ParameterAssignment(trial.parameters().begin(), trial.parameters().end());
}

// The best trial of a filled sweep (results set): the best result, the lower index on ties.
void SetBest(v1::Sweep& sweep) {
  sweep.clear_best_trial_index();
  sweep.clear_best_result();
  const bool maximize = sweep.spec().primary_metric_goal() == v1::MAXIMIZE;
  for (const v1::SweepTrial& trial : sweep.trials()) {
    if (!trial.has_result()) continue;
    if (!sweep.has_best_result() ||
        (maximize ? trial.result() > sweep.best_result() : trial.result() < sweep.best_result())) {
      sweep.set_best_result(trial.result());
      sweep.set_best_trial_index(trial.index());
    }
  }
}

}  // namespace

std::string FormatSweepId(uint64_t bits) { return absl::StrFormat("s-%016x", bits); }

bool IsSweepId(absl::string_view id) {
  if (id.size() != 18 || !absl::StartsWith(id, "s-")) return false;
  for (char c : id.substr(2)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && !(c >= 'a' && c <= 'f')) {
      return false;
    }
  }
  return true;
}

void PrimarySeries::Read(storage::LogStore& logs, int64_t epoch) {
  if (epoch != epoch_) {
    epoch_ = epoch;
    offset_ = 0;
    series_.clear();
  }
  if (epoch <= 0) return;
  const storage::LogStreamKey key{job_id_, epoch, 0, v1::METRICS};
  while (true) {
    absl::StatusOr<std::string> data = logs.Read(key, offset_, 1 << 20);
    if (!data.ok() || data->empty()) return;  // short of descriptors: the next poll reads
    size_t used = 0;
    while (true) {
      const size_t end = data->find('\n', used);
      if (end == std::string::npos) break;  // a line still arriving: read again next time
      std::optional<MetricRecord> record =
          ParseMetricRecord(absl::string_view(*data).substr(used, end - used));
      if (record.has_value() && record->name == metric_) series_[record->step] = record->value;
      used = end + 1;
    }
    if (used == 0) return;
    offset_ += static_cast<int64_t>(used);
  }
}

void FillSweep(storage::Store& store, storage::LogStore& logs, v1::Sweep& sweep) {
  for (v1::SweepTrial& trial : *sweep.mutable_trials()) {
    absl::StatusOr<v1::Job> job = store.GetJob(trial.job_id());
    if (!job.ok()) continue;
    trial.set_job_state(job->status().state());
    PrimarySeries metric(trial.job_id(), sweep.spec().primary_metric_name());
    metric.Read(logs, job->status().attempt());
    int64_t intervals = 0;
    for (const auto& [step, value] : metric.series()) intervals += std::isfinite(value) ? 1 : 0;
    trial.set_intervals(intervals);
    std::optional<double> best =
        scheduler::BestValue(metric.series(), sweep.spec().primary_metric_goal());
    if (best.has_value()) {
      trial.set_result(*best);
    } else {
      trial.clear_result();
    }
  }
  sweep.set_trial_count(sweep.trials_size());
  SetBest(sweep);
}

SweepRunner::SweepRunner(storage::Store& store, storage::LogStore& logs, Core& core,
                         CoreLoop& core_loop, const Clock& clock, absl::Duration poll)
    : store_(store),
      logs_(logs),
      core_(core),
      core_loop_(core_loop),
      clock_(clock),
      poll_(poll) {}

SweepRunner::~SweepRunner() { Stop(); }

void SweepRunner::Restore(std::vector<v1::Sweep> sweeps) {
  for (v1::Sweep& sweep : sweeps) {
    loop_.Post([this, sweep = std::move(sweep)]() mutable { AddOnLoop(std::move(sweep)); });
  }
}

void SweepRunner::Start() {
  loop_.Every(poll_, [this] { PollAll(); });
}

void SweepRunner::Stop() { loop_.Stop(); }

void SweepRunner::Add(v1::Sweep sweep) {
  loop_.Post([this, sweep = std::move(sweep)]() mutable {
    const std::string id = sweep.id();
    AddOnLoop(std::move(sweep));
    Drive(id);
  });
}

void SweepRunner::AddOnLoop(v1::Sweep sweep) {
  if (sweeps_.contains(sweep.id())) return;
  Live& live = sweeps_[sweep.id()];
  for (const v1::SweepTrial& stored : sweep.trials()) {
    Trial trial{.driver = {.index = stored.index(),
                           .parameters = ParametersOf(stored),
                           .stopped = stored.has_stop()},
                .job_id = stored.job_id(),
                .metric = PrimarySeries(stored.job_id(), sweep.spec().primary_metric_name()),
                .stop_message = stored.stop().message()};
    live.trials.push_back(std::move(trial));
  }
  sweep.clear_trials();
  live.sweep = std::move(sweep);
  Log(LogLevel::kInfo, "sweep_resumed",
      {{"sweep", live.sweep.id()}, {"trials", live.trials.size()}});
}

void SweepRunner::PollAll() {
  std::vector<std::string> ids;
  for (const auto& [id, live] : sweeps_) ids.push_back(id);
  for (const std::string& id : ids) Drive(id);
}

void SweepRunner::Refresh(Live& live) {
  for (Trial& trial : live.trials) {
    if (scheduler::TrialEnded(trial.driver.job_state)) continue;  // final: read once at its end
    absl::StatusOr<v1::Job> job = store_.GetJob(trial.job_id);
    if (!job.ok()) continue;
    trial.driver.job_state = job->status().state();
    trial.metric.Read(logs_, job->status().attempt());
    trial.driver.series = trial.metric.series();
  }
}

void SweepRunner::Drive(const std::string& sweep_id) {
  auto it = sweeps_.find(sweep_id);
  if (it == sweeps_.end()) return;
  Live& live = it->second;
  if (live.busy) return;
  if (!live.cancels.empty()) {
    std::vector<SweepCallback> cancels = std::move(live.cancels);
    live.cancels.clear();
    for (SweepCallback& done : cancels) CancelOnLoop(sweep_id, std::move(done));
    return;
  }
  Refresh(live);
  // A stop stored whose cancel was not sent (droverd restarted in between): send it.
  for (Trial& trial : live.trials) {
    if (trial.driver.stopped && !trial.cancel_sent &&
        !scheduler::TrialEnded(trial.driver.job_state)) {
      CancelTrial(trial,
                  trial.stop_message.empty() ? "stopped early by the sweep's policy"
                                             : trial.stop_message,
                  v1::JobStatus::EARLY_TERMINATED);
    }
  }
  std::vector<scheduler::DriverTrial> trials;
  trials.reserve(live.trials.size());
  for (const Trial& trial : live.trials) trials.push_back(trial.driver);
  scheduler::SweepDecision decision =
      scheduler::DecideSweep(live.sweep.spec(), live.sweep.status().state(),
                             FromTimestamp(live.sweep.create_time()), trials, clock_.Now());
  for (const scheduler::EarlyStop& stop : decision.stop) StopTrial(sweep_id, live, stop);
  for (int64_t index : decision.cancel) {
    if (index < 0 || index >= static_cast<int64_t>(live.trials.size())) continue;
    Trial& trial = live.trials[static_cast<size_t>(index)];
    if (!trial.cancel_sent) {
      CancelTrial(trial, absl::StrCat("sweep ", sweep_id, " ran past its max_duration"),
                  v1::JobStatus::CANCELED_BY_USER);
    }
  }
  if (decision.end.has_value()) {
    EndSweep(sweep_id, live, *std::move(decision.end));
  } else if (!decision.start.empty()) {
    StartTrials(sweep_id, live, std::move(decision.start));
  }
}

void SweepRunner::StartTrials(const std::string& sweep_id, Live& live,
                              std::vector<scheduler::SweepDecision::Start> starts) {
  const v1::SweepSpec& spec = live.sweep.spec();
  const absl::Time now = clock_.Now();
  std::vector<v1::SweepTrial> trials;
  std::vector<v1::Job> jobs;
  for (scheduler::SweepDecision::Start& start : starts) {
    v1::SweepTrial trial;
    trial.set_index(start.index);
    for (const auto& [name, value] : start.parameters) (*trial.mutable_parameters())[name] = value;
    *trial.mutable_create_time() = ToTimestamp(now);
    v1::Job job;
    *job.mutable_spec() = scheduler::MakeTrialSpec(spec, start.parameters);
    job.mutable_spec()->mutable_sweep_trial()->set_sweep_id(sweep_id);
    job.mutable_spec()->mutable_sweep_trial()->set_index(start.index);
    (*job.mutable_spec()->mutable_tags())[kSweepTag] = sweep_id;
    job.set_owner(live.sweep.owner());
    *job.mutable_create_time() = ToTimestamp(now);
    v1::JobStatus* status = job.mutable_status();
    status->set_state(v1::JobStatus::QUEUED);
    status->set_reason(scheduler::JobQueue::WaitingReason(job.spec(), 0));
    status->set_version(1);
    *status->mutable_update_time() = ToTimestamp(now);
    trials.push_back(std::move(trial));
    jobs.push_back(std::move(job));
  }
  live.busy = true;
  store_.CreateTrials(
      sweep_id, trials, std::move(jobs),
      [this, sweep_id, trials](absl::StatusOr<std::vector<storage::CreateJobResult>> results) {
        if (results.ok()) {
          // The core knows the jobs before anything of the runner (a stop, a cancel) may
          // reach it about them: both are posted to the core loop, this first.
          std::vector<v1::Job> created;
          for (const storage::CreateJobResult& result : *results) created.push_back(result.job);
          core_loop_.Post([this, created]() {
            for (const v1::Job& job : created) core_.JobCreated(job);
          });
        }
        loop_.Post([this, sweep_id, trials, results = std::move(results)]() mutable {
          auto it = sweeps_.find(sweep_id);
          if (it == sweeps_.end()) return;
          Live& live = it->second;
          live.busy = false;
          if (!results.ok()) {
            Log(LogLevel::kWarning, "sweep_trials_not_stored",
                {{"sweep", sweep_id}, {"error", results.status().ToString()}});
            if (absl::IsFailedPrecondition(results.status())) {
              sweeps_.erase(it);  // the sweep ended meanwhile
            } else if (absl::IsAlreadyExists(results.status())) {
              // Another writer stored trials of it: go on from the store.
              absl::StatusOr<v1::Sweep> stored = store_.GetSweep(sweep_id);
              sweeps_.erase(it);
              if (stored.ok()) AddOnLoop(*std::move(stored));
            }
            return;  // other errors (the disk): the next poll tries again
          }
          if (live.sweep.status().state() == v1::SweepStatus::QUEUED) {
            live.sweep.mutable_status()->set_state(v1::SweepStatus::RUNNING);
            live.sweep.mutable_status()->set_reason("RUNNING");
          }
          for (size_t i = 0; i < trials.size(); ++i) {
            v1::SweepTrial& stored = trials[i];
            stored.set_job_id((*results)[i].job.id());
            Trial trial{.driver = {.index = stored.index(), .parameters = ParametersOf(stored)},
                        .job_id = stored.job_id(),
                        .metric = PrimarySeries(stored.job_id(),
                                                live.sweep.spec().primary_metric_name())};
            live.trials.push_back(std::move(trial));
            Log(LogLevel::kInfo, "sweep_trial_started",
                {{"sweep", sweep_id}, {"trial", stored.index()}, {"job", stored.job_id()}});
          }
          Drive(sweep_id);
        });
      });
}

void SweepRunner::StopTrial(const std::string& sweep_id, Live& live,
                            const scheduler::EarlyStop& stop) {
  int64_t index = -1;
  if (!absl::SimpleAtoi(stop.trial_id, &index) || index < 0 ||
      index >= static_cast<int64_t>(live.trials.size())) {
    return;
  }
  Trial& trial = live.trials[static_cast<size_t>(index)];
  trial.driver.stopped = true;
  trial.stop_message = stop.message;
  v1::TrialStop record;
  record.set_rule(stop.rule);
  record.set_interval(stop.interval);
  record.set_step(stop.step);
  record.set_value(stop.value);
  record.set_threshold(stop.threshold);
  record.set_reference(stop.reference);
  record.set_compared(stop.compared);
  record.set_message(stop.message);
  *record.mutable_stop_time() = ToTimestamp(clock_.Now());
  Log(LogLevel::kInfo, "sweep_trial_stopped",
      {{"sweep", sweep_id}, {"trial", index}, {"job", trial.job_id}, {"rule", stop.rule}});
  // The stop is stored first: a restart in between sends the cancel (Drive).
  trial.cancel_sent = true;
  store_.PutTrialStop(
      sweep_id, index, std::move(record),
      [this, sweep_id, index, message = stop.message](absl::Status stored) {
        loop_.Post([this, sweep_id, index, message, stored]() {
          auto it = sweeps_.find(sweep_id);
          if (it == sweeps_.end() || index >= static_cast<int64_t>(it->second.trials.size())) {
            return;
          }
          Trial& trial = it->second.trials[static_cast<size_t>(index)];
          if (!stored.ok()) {
            Log(LogLevel::kWarning, "sweep_stop_not_stored",
                {{"sweep", sweep_id}, {"trial", index}, {"error", stored.ToString()}});
            trial.driver.stopped = false;  // decided again at the next poll
            trial.cancel_sent = false;
            return;
          }
          trial.cancel_sent = false;
          // Tests: droverd dies with the stop stored and its cancel not sent (Drive sends it
          // after the restart).
          Failpoint("sweep.after_stop_stored");
          CancelTrial(trial, message, v1::JobStatus::EARLY_TERMINATED);
        });
      });
}

void SweepRunner::CancelTrial(Trial& trial, const std::string& reason,
                              v1::JobStatus::Cause cause) {
  trial.cancel_sent = true;
  core_loop_.Post([this, job_id = trial.job_id, reason, cause]() {
    core_.Cancel(
        job_id, reason,
        [job_id](absl::StatusOr<v1::Job> job) {
          if (!job.ok() && !absl::IsFailedPrecondition(job.status())) {
            Log(LogLevel::kWarning, "sweep_trial_cancel_failed",
                {{"job", job_id}, {"error", job.status().ToString()}});
          }
        },
        cause);
  });
}

void SweepRunner::EndSweep(const std::string& sweep_id, Live& live, v1::SweepStatus status) {
  live.busy = true;
  const std::string state = v1::SweepStatus::State_Name(status.state());
  const std::string reason = status.reason();
  store_.UpdateSweepStatus(sweep_id, std::move(status), [this, sweep_id, state,
                                                        reason](absl::Status stored) {
    loop_.Post([this, sweep_id, state, reason, stored]() {
      auto it = sweeps_.find(sweep_id);
      if (it == sweeps_.end()) return;
      it->second.busy = false;
      if (stored.ok() || absl::IsFailedPrecondition(stored) || absl::IsNotFound(stored)) {
        Log(LogLevel::kInfo, "sweep_ended",
            {{"sweep", sweep_id}, {"state", state}, {"reason", reason}});
        std::vector<SweepCallback> cancels = std::move(it->second.cancels);
        sweeps_.erase(it);
        for (SweepCallback& done : cancels) CancelOnLoop(sweep_id, std::move(done));
        return;
      }
      Log(LogLevel::kWarning, "sweep_end_not_stored",
          {{"sweep", sweep_id}, {"error", stored.ToString()}});
    });
  });
}

void SweepRunner::Cancel(const std::string& sweep_id, SweepCallback done) {
  loop_.Post([this, sweep_id, done = std::move(done)]() mutable {
    auto it = sweeps_.find(sweep_id);
    if (it != sweeps_.end() && it->second.busy) {
      it->second.cancels.push_back(std::move(done));  // after the write in flight
      return;
    }
    CancelOnLoop(sweep_id, std::move(done));
  });
}

void SweepRunner::CancelOnLoop(const std::string& sweep_id, SweepCallback done) {
  auto it = sweeps_.find(sweep_id);
  if (it == sweeps_.end()) {
    // Ended (or unknown): answered as stored.
    absl::StatusOr<v1::Sweep> stored = store_.GetSweep(sweep_id);
    if (stored.ok()) FillSweep(store_, logs_, *stored);
    std::move(done)(std::move(stored));
    return;
  }
  Live& live = it->second;
  v1::SweepStatus status;
  status.set_state(v1::SweepStatus::CANCELED);
  status.set_reason("CANCELED_BY_USER");
  status.set_message(absl::StrCat("canceled after ", live.trials.size(), " trials"));
  *status.mutable_update_time() = ToTimestamp(clock_.Now());
  *status.mutable_end_time() = status.update_time();
  live.busy = true;
  store_.UpdateSweepStatus(
      sweep_id, std::move(status),
      [this, sweep_id, done = std::move(done)](absl::Status stored) mutable {
        loop_.Post([this, sweep_id, stored, done = std::move(done)]() mutable {
          auto it = sweeps_.find(sweep_id);
          if (it != sweeps_.end()) {
            it->second.busy = false;
            if (!stored.ok() && !absl::IsFailedPrecondition(stored)) {
              std::move(done)(stored);  // the disk refused it: nothing changed
              return;
            }
            if (stored.ok()) {
              for (Trial& trial : it->second.trials) {
                if (!scheduler::TrialEnded(trial.driver.job_state) && !trial.cancel_sent) {
                  CancelTrial(trial, absl::StrCat("sweep ", sweep_id, " canceled"),
                              v1::JobStatus::CANCELED_BY_USER);
                }
              }
              Log(LogLevel::kInfo, "sweep_canceled", {{"sweep", sweep_id}});
            }
            std::vector<SweepCallback> cancels = std::move(it->second.cancels);
            sweeps_.erase(it);
            for (SweepCallback& other : cancels) CancelOnLoop(sweep_id, std::move(other));
          }
          absl::StatusOr<v1::Sweep> read = store_.GetSweep(sweep_id);
          if (read.ok()) FillSweep(store_, logs_, *read);
          std::move(done)(std::move(read));
        });
      });
}

}  // namespace drover::server
