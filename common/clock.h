// Clock: the one seam through which Drover reads the time, so tests can run on a fake clock.
// Implementations are thread-safe.
#ifndef DROVER_COMMON_CLOCK_H_
#define DROVER_COMMON_CLOCK_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace drover {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time now.
  virtual absl::Time Now() const = 0;
};

// The system clock.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  // A process-wide instance; it has no state.
  static const Clock& Get() {
    static const RealClock clock;
    return clock;
  }
};

}  // namespace drover

#endif  // DROVER_COMMON_CLOCK_H_
