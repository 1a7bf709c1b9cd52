// FakeClock: a Clock that moves only when the test says so. Thread-safe: the code under test
// reads it from its own threads.
#ifndef DROVER_TESTS_TESTING_FAKE_CLOCK_H_
#define DROVER_TESTS_TESTING_FAKE_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "common/clock.h"

namespace drover::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000)) : now_(start) {}
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration by) {
    absl::MutexLock lock(&mu_);
    now_ += by;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_FAKE_CLOCK_H_
