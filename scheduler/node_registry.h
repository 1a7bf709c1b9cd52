// NodeRegistry: droverd's view of the cluster's nodes and compute targets: who is connected,
// who may take work, what each node has free, which jobs hold what where. Part of the
// scheduling core: owned by droverd's core loop, single-threaded, no I/O; time comes in as
// arguments so tests drive it with any clock.
#ifndef DROVER_SCHEDULER_NODE_REGISTRY_H_
#define DROVER_SCHEDULER_NODE_REGISTRY_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "drover/v1/agent.pb.h"
#include "drover/v1/node.pb.h"

namespace drover::scheduler {

class NodeRegistry {
 public:
  NodeRegistry();

  // An agent said hello. A new node becomes READY; a known one keeps what an administrator
  // set (cordon, drain) and is no longer DOWN. Capacity, addresses, labels and GPUs are taken
  // from `info`. INVALID_ARGUMENT for a malformed name or capacity (GPUs listed that are not
  // `capacity.gpus` in number).
  absl::StatusOr<v1::Node> Register(const v1::NodeInfo& info, absl::Time now);
  // Any message from the node's agent.
  void Seen(absl::string_view name, absl::Time now);
  // Nodes not heard from within `lease` become DOWN; returns their names (only the ones
  // that changed now).
  std::vector<std::string> ExpireLeases(absl::Time now, absl::Duration lease);

  // Administration. NOT_FOUND for unknown nodes.
  absl::StatusOr<v1::Node> Cordon(absl::string_view name, absl::string_view reason);
  absl::StatusOr<v1::Node> Uncordon(absl::string_view name);
  absl::StatusOr<v1::Node> Drain(absl::string_view name, absl::string_view reason);

  // Records that `job_id` holds `resources` on node `name` (replacing what it held there).
  void Allocate(absl::string_view name, absl::string_view job_id,
                const v1::NodeResources& resources);
  // Frees what `job_id` held on `name`. A draining node with nothing left becomes CORDONED.
  void Release(absl::string_view name, absl::string_view job_id);

  // The node with its allocation and running jobs filled in; nullptr when unknown.
  const v1::Node* Find(absl::string_view name) const;
  // Every node, by name.
  std::vector<v1::Node> List() const;
  // READY: connected, not cordoned, draining or down.
  bool TakesWork(absl::string_view name) const;
  // capacity - allocated.
  v1::NodeResources Free(absl::string_view name) const;

  // Compute targets. "default" always exists, selects every node and cannot be deleted.
  absl::Status PutTarget(const v1::ComputeTarget& target);
  absl::Status DeleteTarget(absl::string_view name);
  const v1::ComputeTarget* FindTarget(absl::string_view name) const;
  std::vector<v1::ComputeTarget> ListTargets() const;
  // Whether node `name` belongs to `target` (its labels contain the selector).
  bool InTarget(const v1::ComputeTarget& target, absl::string_view name) const;

 private:
  struct Entry {
    v1::Node node;
    absl::Time last_seen;
    bool cordoned = false;  // by an administrator
    bool draining = false;
    std::map<std::string, v1::NodeResources> allocations;  // by job id
  };
  void Refresh(Entry& entry) const;  // recompute state, allocated and running_jobs

  std::map<std::string, Entry, std::less<>> nodes_;
  std::map<std::string, v1::ComputeTarget, std::less<>> targets_;
};

// Human-readable and machine-readable resource amounts: "cpus=2 memory=4096Mi gpus=0".
std::string FormatResources(const v1::NodeResources& resources);

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_NODE_REGISTRY_H_
