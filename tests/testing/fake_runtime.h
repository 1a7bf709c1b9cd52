// A ContainerRuntime for unit tests of the code that runs containers (environment builds,
// attempts), without runc: each container's life is played by the test. `play(spec)` runs
// when the container starts (Run, or Create then Start) and does what its processes would
// (write files, ...) and returns their exit code; Wait() gives that code once `release`
// (when set) is notified; Signal() kills it (Wait then reports SIGKILL). Every started spec
// is kept (`started()`). Exec is not supported. Thread-safe.
#ifndef DROVER_TESTS_TESTING_FAKE_RUNTIME_H_
#define DROVER_TESTS_TESTING_FAKE_RUNTIME_H_

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/runtime/container_runtime.h"

namespace drover::testing {

class FakeRuntime : public agent::ContainerRuntime {
 public:
  // What the container's processes do; their exit code. Default: nothing, exit 0.
  std::function<int(const agent::ContainerSpec&)> play = [](const agent::ContainerSpec&) {
    return 0;
  };
  // Containers started so far.
  std::atomic<int> runs{0};
  // When set, containers end (for Wait) only once it is notified.
  absl::Notification* release = nullptr;
  // What Wait() says an ended container used (ContainerExit::usage). Default: unknown.
  agent::ContainerStats usage{.cpu_ns = -1, .memory_bytes = -1, .memory_peak_bytes = -1};

  absl::Status Create(const agent::ContainerSpec& spec) override;
  absl::Status Start(absl::string_view id) override;
  absl::Status Run(const agent::ContainerSpec& spec) override;
  absl::StatusOr<pid_t> Pid(absl::string_view) override { return 1; }
  absl::StatusOr<agent::ContainerState> Inspect(absl::string_view id) override;
  absl::StatusOr<agent::ContainerStats> Stats(absl::string_view) override {
    return agent::ContainerStats{};
  }
  absl::StatusOr<int> Exec(absl::string_view, const std::vector<std::string>&,
                           const std::function<void(bool, absl::string_view)>&,
                           const std::function<bool()>&) override {
    return absl::UnimplementedError("FakeRuntime: exec");
  }
  absl::Status Signal(absl::string_view id, int signal, bool all) override;
  absl::StatusOr<agent::ContainerExit> Wait(absl::string_view id, int timeout_ms) override;
  absl::Status Delete(absl::string_view id) override;
  absl::StatusOr<std::vector<agent::ContainerInfo>> List() override;

  // The specs of every container started, in order.
  std::vector<agent::ContainerSpec> started() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, agent::ContainerSpec, std::less<>> created_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int, std::less<>> running_ ABSL_GUARDED_BY(mu_);  // id -> exit code
  std::set<std::string, std::less<>> killed_ ABSL_GUARDED_BY(mu_);
  std::vector<agent::ContainerSpec> started_ ABSL_GUARDED_BY(mu_);
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_FAKE_RUNTIME_H_
