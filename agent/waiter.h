// Waiter: the agent's one way to wait. A thread waits until a condition holds or until a
// deadline on the agent's `Clock` passes; other threads call Notify() when what it waits for
// may have changed (a STOP, a connection, the agent stopping), which wakes it at once.
// Conditions nobody can notify (a process, a mount, a file) are checked again every
// `recheck` of real time.
//
// Deadlines are the clock's, so a test on a FakeClock decides when they pass: it moves the
// clock and calls Notify() (a waiting thread then sees the new time at once; without a
// Notify it sees it at its next recheck). The real time slept is never longer than the
// clock's time left, so on the real clock a deadline is met to the millisecond.
//
// Thread-safe; any number of threads may wait on one Waiter. `done` is called without the
// Waiter's lock held, so it may take the caller's own locks.
#ifndef DROVER_AGENT_WAITER_H_
#define DROVER_AGENT_WAITER_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace drover::agent {

class Waiter {
 public:
  // `clock` (not owned) outlives the Waiter.
  explicit Waiter(const Clock& clock) : clock_(clock) {}
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

  // Wakes every thread waiting now, to look at its condition and the clock again.
  void Notify();

  // Waits until `done()` is true (returns true) or the clock reaches `deadline` (returns
  // false; `done` is looked at once more first). `done` is called at the start, after each
  // Notify() and at least every `recheck` of real time.
  bool WaitUntil(absl::Time deadline, absl::FunctionRef<bool()> done,
                 absl::Duration recheck = absl::InfiniteDuration());
  // WaitUntil(clock.Now() + `pause`, ...): a pause ended early by `done`.
  bool WaitFor(absl::Duration pause, absl::FunctionRef<bool()> done,
               absl::Duration recheck = absl::InfiniteDuration());
  // A pause of `pause` on the clock (a retry's back-off): a Notify() only makes it look at
  // the clock again.
  void Pause(absl::Duration pause);

  const Clock& clock() const { return clock_; }

 private:
  const Clock& clock_;
  absl::Mutex mu_;
  uint64_t notified_ ABSL_GUARDED_BY(mu_) = 0;  // Notify() calls so far
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_WAITER_H_
