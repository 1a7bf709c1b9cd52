// SweepRunner: droverd running hyperparameter sweeps (sweep.proto, docs/sweeps.md). It keeps
// every unfinished sweep, and on its own thread, every `poll` period and right after each
// change it makes, reads each sweep's trials (their jobs' states from the store, rank 0's
// primary metric from the log store), asks the pure driver (scheduler/sweep_driver.h) what
// to do, and does it:
//   - starts trials: each trial stored with its job in one write (Store::CreateTrials, an
//     index at most once), then handed to the core as a submitted job;
//   - stops trials the early-termination policy picks: the stop stored on the trial first
//     (Store::PutTrialStop), then the job canceled with cause EARLY_TERMINATED and the
//     policy's line as its message;
//   - cancels the running trials once max_duration passed, and ends the sweep (COMPLETED)
//     when no trial runs and none may start.
// A sweep has at most one write in flight, so that no decision is made on a state about to
// change. After a restart it goes on from the store alone: the same trials, the same
// decisions; a stop stored whose cancel was lost is sent again.
//
// Threads: every method may be called from any thread; the work runs on the runner's own
// thread, the core's methods on the core loop.
#ifndef DROVER_SERVER_SWEEPS_H_
#define DROVER_SERVER_SWEEPS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "drover/v1/sweep.pb.h"
#include "scheduler/sweep_driver.h"
#include "server/core.h"
#include "server/core_loop.h"
#include "storage/log_store.h"
#include "storage/store.h"

namespace drover::server {

// The tag every trial job carries: its sweep's id (`drover list --tag drover.sweep=ID`).
inline constexpr char kSweepTag[] = "drover.sweep";

// "s-" followed by 16 lowercase hex digits.
std::string FormatSweepId(uint64_t bits);
bool IsSweepId(absl::string_view id);

// A trial's primary metric as rank 0 of its job's attempt `epoch` logged it, read
// incrementally: Read adds what arrived since the last call.
class PrimarySeries {
 public:
  PrimarySeries(std::string job_id, std::string metric)
      : job_id_(std::move(job_id)), metric_(std::move(metric)) {}
  // Reads attempt `epoch`'s stream from where the last call stopped; a new epoch starts
  // the series again (a retried trial counts its last attempt).
  void Read(storage::LogStore& logs, int64_t epoch);
  const scheduler::MetricSeries& series() const { return series_; }

 private:
  std::string job_id_;
  std::string metric_;
  int64_t epoch_ = -1;
  int64_t offset_ = 0;
  scheduler::MetricSeries series_;
};

// Fills what droverd computes of a stored sweep (`sweep` as Store::GetSweep gives it): each
// trial's job state, result and intervals, the best trial and its result. Reads the store
// and the log store.
void FillSweep(storage::Store& store, storage::LogStore& logs, v1::Sweep& sweep);

class SweepRunner {
 public:
  using SweepCallback = absl::AnyInvocable<void(absl::StatusOr<v1::Sweep>) &&>;

  // All references must outlive the runner.
  SweepRunner(storage::Store& store, storage::LogStore& logs, Core& core, CoreLoop& core_loop,
              const Clock& clock, absl::Duration poll = absl::Milliseconds(500));
  ~SweepRunner();

  // At start, before Start: the unfinished sweeps (Store::LoadUnfinishedSweeps).
  void Restore(std::vector<v1::Sweep> sweeps);
  // Begins driving (the periodic poll).
  void Start();
  // Stops the runner's thread after what is posted; writes in flight still complete (their
  // callbacks post nowhere after this). Idempotent.
  void Stop();

  // A submitted sweep was stored: drive it from now on.
  void Add(v1::Sweep sweep);
  // CancelSweep: stores CANCELED ("CANCELED_BY_USER"), then cancels the running trials;
  // `done` gets the sweep as stored then. A sweep that ended already is answered as it is.
  void Cancel(const std::string& sweep_id, SweepCallback done);

 private:
  struct Trial {
    scheduler::DriverTrial driver;
    std::string job_id;
    PrimarySeries metric;
    bool cancel_sent = false;  // a cancel (stop, max_duration, sweep cancel) was sent
    std::string stop_message;  // the stored stop's line, when stopped
  };
  struct Live {
    v1::Sweep sweep;  // without trials
    std::vector<Trial> trials;
    bool busy = false;  // a write of it is in flight
    std::vector<SweepCallback> cancels;  // CancelSweep calls waiting for `busy`
  };

  void AddOnLoop(v1::Sweep sweep);
  void PollAll();
  void Drive(const std::string& sweep_id);
  void Refresh(Live& live);
  void StartTrials(const std::string& sweep_id, Live& live,
                   std::vector<scheduler::SweepDecision::Start> starts);
  void StopTrial(const std::string& sweep_id, Live& live, const scheduler::EarlyStop& stop);
  void CancelTrial(Trial& trial, const std::string& reason, v1::JobStatus::Cause cause);
  void EndSweep(const std::string& sweep_id, Live& live, v1::SweepStatus status);
  void CancelOnLoop(const std::string& sweep_id, SweepCallback done);

  storage::Store& store_;
  storage::LogStore& logs_;
  Core& core_;
  CoreLoop& core_loop_;
  const Clock& clock_;
  const absl::Duration poll_;
  std::map<std::string, Live> sweeps_;  // on loop_ only
  // Last: stops before the rest goes.
  CoreLoop loop_;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_SWEEPS_H_
