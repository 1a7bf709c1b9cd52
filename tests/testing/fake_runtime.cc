#include "tests/testing/fake_runtime.h"

#include <csignal>

namespace drover::testing {

using agent::ContainerExit;
using agent::ContainerInfo;
using agent::ContainerSpec;
using agent::ContainerState;

absl::Status FakeRuntime::Create(const ContainerSpec& spec) {
  absl::MutexLock lock(&mu_);
  if (created_.contains(spec.id) || running_.contains(spec.id)) {
    return absl::AlreadyExistsError(spec.id);
  }
  created_[spec.id] = spec;
  return absl::OkStatus();
}

absl::Status FakeRuntime::Start(absl::string_view id) {
  ContainerSpec spec;
  {
    absl::MutexLock lock(&mu_);
    auto it = created_.find(id);
    if (it == created_.end()) return absl::NotFoundError(std::string(id));
    spec = it->second;
  }
  ++runs;
  int code = play(spec);
  absl::MutexLock lock(&mu_);
  started_.push_back(spec);
  running_[spec.id] = code;
  return absl::OkStatus();
}

absl::Status FakeRuntime::Run(const ContainerSpec& spec) {
  if (absl::Status created = Create(spec); !created.ok()) return created;
  return Start(spec.id);
}

absl::StatusOr<ContainerState> FakeRuntime::Inspect(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  if (running_.contains(id)) return ContainerState::kRunning;
  if (created_.contains(id)) return ContainerState::kCreated;
  return absl::NotFoundError(std::string(id));
}

absl::Status FakeRuntime::Signal(absl::string_view id, int, bool) {
  absl::MutexLock lock(&mu_);
  killed_.insert(std::string(id));
  return absl::OkStatus();
}

absl::StatusOr<ContainerExit> FakeRuntime::Wait(absl::string_view id, int timeout_ms) {
  bool killed;
  {
    absl::MutexLock lock(&mu_);
    killed = killed_.contains(id);
  }
  if (!killed && release != nullptr &&
      !release->WaitForNotificationWithTimeout(absl::Milliseconds(timeout_ms))) {
    return absl::DeadlineExceededError("running");
  }
  absl::MutexLock lock(&mu_);
  ContainerExit exit;
  auto it = running_.find(id);
  exit.exit_code = killed ? -1 : (it == running_.end() ? -1 : it->second);
  exit.signal = killed ? SIGKILL : 0;
  exit.usage = usage;
  return exit;
}

absl::Status FakeRuntime::Delete(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  if (auto it = created_.find(id); it != created_.end()) created_.erase(it);
  if (auto it = running_.find(id); it != running_.end()) running_.erase(it);
  if (auto it = killed_.find(id); it != killed_.end()) killed_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ContainerInfo>> FakeRuntime::List() {
  absl::MutexLock lock(&mu_);
  std::vector<ContainerInfo> list;
  for (const auto& [id, spec] : created_) {
    list.push_back({.id = id, .pid = 1, .running = running_.contains(id),
                    .bundle_dir = spec.bundle_dir});
  }
  return list;
}

std::vector<ContainerSpec> FakeRuntime::started() const {
  absl::MutexLock lock(&mu_);
  return started_;
}

}  // namespace drover::testing
