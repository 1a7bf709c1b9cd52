#include "server/leader_lease.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace drover::server {

namespace {

// What a lease write answers, shared with its callback (which may come after Wait gave up).
struct Answer {
  absl::Mutex mu;
  std::optional<absl::StatusOr<storage::LeaderLease>> result ABSL_GUARDED_BY(mu);
};

}  // namespace

LeaseKeeper::LeaseKeeper(storage::Store& store, LeaseOptions options)
    : store_(store), options_(std::move(options)) {}

LeaseKeeper::~LeaseKeeper() { Stop(); }

absl::StatusOr<storage::LeaderLease> LeaseKeeper::Wait(
    absl::AnyInvocable<void(storage::Store::LeaseCallback)> write, absl::Duration limit) {
  auto answer = std::make_shared<Answer>();
  write([answer](absl::StatusOr<storage::LeaderLease> lease) {
    absl::MutexLock lock(&answer->mu);
    answer->result = std::move(lease);
  });
  absl::MutexLock lock(&answer->mu);
  auto arrived = [&answer]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(answer->mu) {
    return answer->result.has_value();
  };
  if (!answer->mu.AwaitWithTimeout(absl::Condition(&arrived), limit)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "the database did not answer the leader lease write within ", absl::FormatDuration(limit)));
  }
  return *answer->result;
}

absl::Status LeaseKeeper::Acquire(const absl::Notification* stop,
                                  const std::function<void(const std::string& leader)>& standing_by) {
  while (true) {
    if (stop != nullptr && stop->HasBeenNotified()) {
      return absl::CancelledError("stopped while standing by");
    }
    absl::Time now = absl::Now();
    acquired_at_ = now;
    absl::StatusOr<storage::LeaderLease> lease = Wait(
        [&](storage::Store::LeaseCallback done) {
          store_.AcquireLeaderLease(options_.holder, options_.address, now, options_.ttl,
                                    std::move(done));
        },
        options_.ttl);
    if (lease.ok()) {
      token_ = lease->token;
      return absl::OkStatus();
    }
    if (absl::IsInvalidArgument(lease.status())) return lease.status();
    // Another leads (FAILED_PRECONDITION), or the database is out of reach: stand by and try
    // again soon after the stored lease runs out, at least every third of the duration.
    std::string leader;
    absl::Duration wait = options_.ttl / 3;
    if (absl::StatusOr<std::optional<storage::LeaderLease>> stored = store_.LoadLeaderLease();
        stored.ok() && stored->has_value() && absl::IsFailedPrecondition(lease.status())) {
      leader = (*stored)->address;
      wait = std::clamp((*stored)->expire_time - absl::Now() + absl::Milliseconds(50),
                        absl::Milliseconds(50), options_.ttl / 3);
    } else if (!absl::IsFailedPrecondition(lease.status())) {
      Log(LogLevel::kWarning, "leader_lease_unavailable", {{"error", lease.status().message()}});
    }
    standing_by(leader);
    if (stop != nullptr) {
      if (stop->WaitForNotificationWithTimeout(wait)) continue;
    } else {
      absl::SleepFor(wait);
    }
  }
}

void LeaseKeeper::StartRenewing(absl::AnyInvocable<void(absl::Status) &&> on_lost) {
  on_lost_ = std::move(on_lost);
  renewer_ = std::thread([this] { RenewLoop(); });
}

void LeaseKeeper::RenewLoop() {
  // The lease stored by the last renewal that succeeded runs out at `issued + ttl` (by this
  // host's clock): this droverd stops before, with a fifth of the duration to spare.
  absl::Time issued = acquired_at_;
  const absl::Duration period = options_.ttl / 3;
  const absl::Duration stop_after = options_.ttl - options_.ttl / 5;
  absl::Time next = issued + period;
  absl::Status failure;
  while (true) {
    absl::Time deadline = issued + stop_after;
    {
      absl::MutexLock lock(&mu_);
      absl::Condition stopping(&stopping_);
      if (mu_.AwaitWithTimeout(stopping, std::min(next, deadline) - absl::Now())) return;
    }
    absl::Time now = absl::Now();
    if (now >= deadline) {
      failure = absl::UnavailableError(absl::StrCat(
          "the leader lease was not renewed for ", absl::FormatDuration(now - issued),
          " (the database out of reach, or this process paused); a standby may lead soon"));
      break;
    }
    next = now + period;
    absl::StatusOr<storage::LeaderLease> lease = Wait(
        [&](storage::Store::LeaseCallback done) {
          store_.RenewLeaderLease(options_.holder, token_, now, options_.ttl, std::move(done));
        },
        deadline - now);
    if (lease.ok()) {
      issued = now;
      continue;
    }
    if (absl::IsFailedPrecondition(lease.status())) {
      failure = lease.status();  // deposed
      break;
    }
    Log(LogLevel::kWarning, "leader_lease_renewal_failed", {{"error", lease.status().message()}});
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
  }
  std::move(on_lost_)(failure);
}

void LeaseKeeper::Stop(bool release) {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (renewer_.joinable()) renewer_.join();
  if (release && token_ != 0) {
    // Runs out a microsecond from now: a standby's next try takes it.
    absl::Time now = absl::Now();
    absl::StatusOr<storage::LeaderLease> lease = Wait(
        [&](storage::Store::LeaseCallback done) {
          store_.RenewLeaderLease(options_.holder, token_, now, absl::Microseconds(1),
                                  std::move(done));
        },
        absl::Seconds(2));
    if (!lease.ok()) {
      Log(LogLevel::kWarning, "leader_lease_release_failed", {{"error", lease.status().message()}});
    }
  }
}

}  // namespace drover::server
