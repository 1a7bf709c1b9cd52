// StopEscalation: how an attempt's STOP ends the processes of its running container.
// SIGTERM to PID 1 at once (drover-init forwards it to every rank and kills them after its
// own grace); when they have not ended `grace` and 2 s more after it, SIGKILL to every
// process of the container. Pure: the watch loop (Attempt::WatchContainer) asks it at each
// look at the container, with the time of the agent's Clock, and sends what it says. Only
// on the attempt's thread.
#ifndef DROVER_AGENT_STOP_ESCALATION_H_
#define DROVER_AGENT_STOP_ESCALATION_H_

#include "absl/time/time.h"

namespace drover::agent {

class StopEscalation {
 public:
  enum class Signal {
    kNone,
    kTerminate,  // SIGTERM to PID 1
    kKill,       // SIGKILL to every process of the container
  };

  // drover-init's grace is the STOP's; the agent waits this much more before it kills.
  static constexpr absl::Duration kKillMargin = absl::Seconds(2);

  // What to send at `now`, the container still running: `stopped` whether a STOP came,
  // `grace` its grace. Each signal is said once.
  Signal Next(absl::Time now, bool stopped, absl::Duration grace) {
    if (!stopped) return Signal::kNone;
    if (terminated_at_ == absl::InfiniteFuture()) {
      terminated_at_ = now;
      return Signal::kTerminate;
    }
    if (!killed_ && now - terminated_at_ > grace + kKillMargin) {
      killed_ = true;
      return Signal::kKill;
    }
    return Signal::kNone;
  }

  // When Next() says something again, with a STOP of `grace`: InfiniteFuture before a STOP
  // (a STOP wakes the watch loop itself) and once SIGKILL was said, else just past the
  // moment SIGKILL is due.
  absl::Time NextAt(absl::Duration grace) const {
    if (terminated_at_ == absl::InfiniteFuture() || killed_) return absl::InfiniteFuture();
    return terminated_at_ + grace + kKillMargin + absl::Milliseconds(1);
  }

 private:
  absl::Time terminated_at_ = absl::InfiniteFuture();
  bool killed_ = false;
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_STOP_ESCALATION_H_
