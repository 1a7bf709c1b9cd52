// LeaseKeeper: the leader lease of a droverd that shares its database with other droverds
// (storage/store.h, LeaderLease; docs/operations.md#standby). Acquire() blocks while
// another droverd leads (the caller stands by meanwhile) and returns once this one holds
// the lease; from then on every write of the store is fenced by the lease's token. Renewing
// runs on a thread of its own, every third of the lease's duration, so that a busy core
// never lets the lease run out. When a renewal finds another holder (deposed), or no
// renewal succeeded for four fifths of the duration (the database is out of reach, so a
// standby may take over soon), `on_lost` is called once: the droverd must stop acting at
// once. Lease times are wall time (absl::Now()), compared across hosts: keep clocks in
// sync (NTP). Acquire() and the renewal thread each wait on one store write at a time.
#ifndef DROVER_SERVER_LEADER_LEASE_H_
#define DROVER_SERVER_LEADER_LEASE_H_

#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "storage/store.h"

namespace drover::server {

struct LeaseOptions {
  std::string holder;   // this droverd's stable id (kept across its restarts)
  std::string address;  // where clients and agents reach it, "HOST:PORT"
  absl::Duration ttl = absl::Seconds(5);
};

class LeaseKeeper {
 public:
  LeaseKeeper(storage::Store& store, LeaseOptions options);
  // Stops renewing (Stop()).
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Takes the lease, trying again until it succeeds: while another droverd holds it,
  // `standing_by` is called with that droverd's address (empty when the lease could not be
  // read) after each refused try. CANCELLED when `stop` (may be null) is notified first.
  absl::Status Acquire(const absl::Notification* stop,
                       const std::function<void(const std::string& leader)>& standing_by);
  // The fencing token held (after Acquire()).
  int64_t token() const { return token_; }

  // Renews the lease from now on until Stop(); `on_lost` as the header says, from the
  // renewal thread.
  void StartRenewing(absl::AnyInvocable<void(absl::Status) &&> on_lost);
  // Stops renewing. With `release`, the lease is then given up (it runs out at once), so that
  // a standby takes over without waiting for it to run out; up to 2 s. Idempotent.
  void Stop(bool release = false);

 private:
  // Runs one lease write (Acquire or Renew) and waits for its result, up to `limit`;
  // DEADLINE_EXCEEDED when it did not come (the write may still commit later).
  absl::StatusOr<storage::LeaderLease> Wait(
      absl::AnyInvocable<void(storage::Store::LeaseCallback)> write, absl::Duration limit);
  void RenewLoop();

  storage::Store& store_;
  const LeaseOptions options_;
  int64_t token_ = 0;
  absl::Time acquired_at_;  // the `now` the lease was taken with
  std::thread renewer_;
  absl::AnyInvocable<void(absl::Status) &&> on_lost_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace drover::server

#endif  // DROVER_SERVER_LEADER_LEASE_H_
