// Core: what administrators change through it: compute targets, cordon and drain of nodes
// (images and datastores: server/registries.h).
#include "server/core.h"

#include <algorithm>
#include <random>
#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/archive/sha256.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "google/protobuf/util/time_util.h"
#include "scheduler/job_spec.h"
#include "scheduler/job_state.h"
#include "scheduler/placement.h"
#include "server/server_metrics.h"

namespace drover::server {

using google::protobuf::util::TimeUtil;
using v1::JobStatus;

void Core::ChangeNodeAdmin(const std::string& node,
                           std::optional<storage::NodeAdminState> state,
                           absl::AnyInvocable<absl::StatusOr<v1::Node>()> apply,
                           NodeCallback done) {
  // Checked first, so that nothing invalid is stored; applied once durable, so that a
  // restarted droverd knows every change it acknowledged.
  absl::Status valid = scheduler::CheckNodeName(node);
  if (valid.ok() && state.has_value()) valid = scheduler::CheckNodeReason(state->reason);
  if (valid.ok()) valid = nodes_.CheckAdministrable(node);
  if (!valid.ok()) {
    std::move(done)(valid);
    return;
  }
  auto stored = [this, apply = std::move(apply),
                 done = std::move(done)](absl::Status s) mutable {
    loop_.Post([this, s, apply = std::move(apply), done = std::move(done)]() mutable {
      if (!s.ok()) {
        std::move(done)(s);
        return;
      }
      absl::StatusOr<v1::Node> result = apply();
      if (result.ok()) Schedule();
      std::move(done)(std::move(result));
    });
  };
  if (state.has_value()) {
    store_.PutNodeAdminState(*std::move(state), std::move(stored));
  } else {
    store_.DeleteNodeAdminState(node, std::move(stored));
  }
}

void Core::Cordon(const std::string& node, const std::string& reason, NodeCallback done) {
  ChangeNodeAdmin(
      node, storage::NodeAdminState{.node = node, .reason = reason, .set_time = clock_.Now()},
      [this, node, reason] { return nodes_.Cordon(node, reason); }, std::move(done));
}

void Core::Uncordon(const std::string& node, NodeCallback done) {
  ChangeNodeAdmin(
      node, std::nullopt, [this, node] { return nodes_.Uncordon(node); }, std::move(done));
}

void Core::Drain(const std::string& node, const std::string& reason, NodeCallback done) {
  ChangeNodeAdmin(node,
                  storage::NodeAdminState{
                      .node = node, .draining = true, .reason = reason, .set_time = clock_.Now()},
                  [this, node, reason] { return nodes_.Drain(node, reason); }, std::move(done));
}

void Core::PutTarget(const v1::ComputeTarget& target, StatusCallback done) {
  // Check first, so that nothing invalid is stored; apply once durable.
  scheduler::NodeRegistry check;
  if (absl::Status valid = check.PutTarget(target); !valid.ok()) {
    std::move(done)(valid);
    return;
  }
  store_.PutComputeTarget(target, [this, target, done = std::move(done)](absl::Status s) mutable {
    loop_.Post([this, target, s, done = std::move(done)]() mutable {
      if (s.ok()) {
        s = nodes_.PutTarget(target);
        target_names_.Set(nodes_.ListTargets());
        Schedule();
      }
      std::move(done)(s);
    });
  });
}

void Core::DeleteTarget(const std::string& name, StatusCallback done) {
  if (name == "default" || nodes_.FindTarget(name) == nullptr) {
    std::move(done)(nodes_.DeleteTarget(name));  // the registry's error
    return;
  }
  store_.DeleteComputeTarget(name, [this, name, done = std::move(done)](absl::Status s) mutable {
    loop_.Post([this, name, s, done = std::move(done)]() mutable {
      if (s.ok()) {
        s = nodes_.DeleteTarget(name);
        target_names_.Set(nodes_.ListTargets());
        Schedule();
      }
      std::move(done)(s);
    });
  });
}

}  // namespace drover::server
