// Waiter: see waiter.h.
#include "agent/waiter.h"

#include <algorithm>

namespace drover::agent {

void Waiter::Notify() {
  absl::MutexLock lock(&mu_);
  ++notified_;
}

bool Waiter::WaitUntil(absl::Time deadline, absl::FunctionRef<bool()> done,
                       absl::Duration recheck) {
  while (true) {
    uint64_t seen;
    {
      absl::MutexLock lock(&mu_);
      seen = notified_;  // before `done`: a Notify() after it ends the wait below at once
    }
    if (done()) return true;
    const absl::Duration left = deadline - clock_.Now();
    if (left <= absl::ZeroDuration()) return false;
    const absl::Duration slice = std::min(left, recheck);
    absl::MutexLock lock(&mu_);
    auto notified = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return notified_ != seen; };
    mu_.AwaitWithTimeout(absl::Condition(&notified), slice);
  }
}

bool Waiter::WaitFor(absl::Duration pause, absl::FunctionRef<bool()> done,
                     absl::Duration recheck) {
  return WaitUntil(clock_.Now() + pause, done, recheck);
}

void Waiter::Pause(absl::Duration pause) {
  WaitFor(pause, [] { return false; });
}

}  // namespace drover::agent
