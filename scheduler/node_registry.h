// NodeRegistry: droverd's view of the cluster's nodes and compute targets: who is connected,
// who may take work, what each node has free, which jobs hold what where, and which nodes
// are lost (their leases, and the pause of node-loss handling when most nodes vanish at
// once). Part of the scheduling core: owned by droverd's core loop, single-threaded, no I/O;
// time comes in as arguments so tests drive it with any clock.
#ifndef DROVER_SCHEDULER_NODE_REGISTRY_H_
#define DROVER_SCHEDULER_NODE_REGISTRY_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "drover/v1/agent.pb.h"
#include "drover/v1/node.pb.h"
#include "common/node_name.h"
#include "storage/store.h"

namespace drover::scheduler {

// Longest reason an administrator may give a node change (it shows in `drover nodes` and in
// the messages of the jobs it ends).
inline constexpr size_t kMaxNodeReasonBytes = 1024;

// Checks what an administrator's node call names: `name` a valid node name (1-63 characters
// of [a-z0-9-], starting with a letter or digit), `reason` at most kMaxNodeReasonBytes of
// one line of text. INVALID_ARGUMENT naming the field (`name`, `reason`) otherwise.
using ::drover::CheckNodeName;  // common/node_name.h
absl::Status CheckNodeReason(absl::string_view reason);

// Node-loss handling pauses only in clusters of at least this many nodes (see CheckLeases).
inline constexpr int kMinNodesForLossPause = 3;

// What NodeRegistry::CheckLeases found.
struct LeaseCheck {
  // Nodes that became DOWN in this check (their lease ran out).
  std::vector<std::string> down;
  // Nodes whose loss is to be handled now, each once: their attempts end NODE_LOST. Empty
  // while `paused`.
  std::vector<std::string> lost;
  // Handling of lost nodes is paused: too many nodes are silent at once.
  bool paused = false;
  // Nodes silent for more than half a lease (the lost ones included), out of `counted`:
  // every node except those whose loss was handled already.
  int silent = 0;
  int counted = 0;
  // DOWN nodes whose loss waits: for the pause to end, or, once it ended, for the lease
  // they were given then to run out.
  std::vector<std::string> pending;
};

class NodeRegistry {
 public:
  NodeRegistry();

  // An agent said hello. A new node becomes READY; a known one keeps what an administrator
  // set (cordon, drain) and is no longer DOWN. Capacity, addresses, labels and GPUs are taken
  // from `info`. INVALID_ARGUMENT for a malformed name or capacity (GPUs listed that are not
  // `capacity.gpus` in number).
  absl::StatusOr<v1::Node> Register(const v1::NodeInfo& info, absl::Time now);
  // Any message from the node's agent, on the stream it said hello on. A node DOWN while
  // node-loss handling was paused is back (nothing of it was ended). False for a node whose
  // loss was handled (its attempts were ended: its agent must say hello again so that the
  // stale ones are stopped) or that is unknown; the message then changes nothing.
  bool Seen(absl::string_view name, absl::Time now);
  // A node that attempts restored at droverd's start run on, before its agent said hello:
  // it is not listed and takes no work, but its lease runs from `now`, so that its attempts
  // end when it never comes back. Nothing for a node already known.
  void Expect(absl::string_view name, absl::Time now);
  // Nodes not heard from within `lease` become DOWN (they take no work). Their loss (every
  // DOWN node's whose loss was not handled yet) is returned in `lost`, once, unless too
  // many nodes are silent at once: some node's loss waits, the cluster counts at least
  // kMinNodesForLossPause nodes (every node but those whose loss was handled before the
  // pause) and more than `pause_fraction` of them have been silent for more than half a
  // lease. Then `paused` is set and the lost nodes wait, keeping their attempts, until
  // enough nodes speak again (a paused node that speaks is READY again, see Seen). When the
  // pause ends, the nodes still silent get one more lease from that moment (in `pending`
  // meanwhile) before their loss is returned. A `pause_fraction` of 0 never pauses.
  LeaseCheck CheckLeases(absl::Time now, absl::Duration lease, double pause_fraction = 0);
  // An administrator says node `name` is lost (also one only expected, never back since
  // the restart): it is DOWN until its agent says hello again, and its loss counts as
  // handled now, paused or not (the caller ends its attempts). NOT_FOUND for a node that is
  // neither known nor expected.
  absl::StatusOr<v1::Node> DeclareLost(absl::string_view name, absl::string_view reason,
                                       absl::Time now);
  // When the last CheckLeases paused node-loss handling; InfiniteFuture() when it did not.
  absl::Time loss_paused_since() const { return paused_since_; }
  // The pause as the last CheckLeases left it (and DeclareLost since), to be stored: when it
  // began and every node it counts. Empty when not paused.
  std::optional<storage::NodeLossPause> LossPause() const;
  // At droverd's start, before any agent says hello: the stored pause goes on. Its waiting
  // and declared-lost nodes are DOWN as they were (listed if they were), its silent ones
  // keep the last_seen they had (their lease runs out when it would have), the others are
  // expected back (as Expect, their lease running from `now`), so the next CheckLeases
  // counts the same nodes and stays paused since the same time.
  void RestoreLossPause(const storage::NodeLossPause& pause, absl::Time now);

  // Administration: cordon (no new work), drain (no new work, CORDONED once nothing runs
  // there), uncordon. A node changed so is kept so until uncordoned, also while it is DOWN
  // or away. They take a registered node or one restored with RestoreAdmin whose agent has
  // not said hello yet (it is then answered DOWN, reason NOT_CONNECTED); NOT_FOUND for any
  // other.
  absl::StatusOr<v1::Node> Cordon(absl::string_view name, absl::string_view reason);
  absl::StatusOr<v1::Node> Uncordon(absl::string_view name);
  absl::StatusOr<v1::Node> Drain(absl::string_view name, absl::string_view reason);
  // Whether Cordon, Uncordon and Drain take `name` (NOT_FOUND naming it otherwise).
  absl::Status CheckAdministrable(absl::string_view name) const;
  // At droverd's start: what an administrator set on a node before the restart. The node
  // is CORDONED or DRAINING from its agent's hello on (a draining one whose restored
  // attempts all ended, CORDONED).
  void RestoreAdmin(const storage::NodeAdminState& state);

  // Records that `job_id` holds `resources` on node `name` (replacing what it held there);
  // also on a node only expected, for an attempt restored at droverd's start.
  void Allocate(absl::string_view name, absl::string_view job_id,
                const v1::NodeResources& resources);
  // Frees what `job_id` held on `name`. A draining node with nothing left becomes CORDONED.
  void Release(absl::string_view name, absl::string_view job_id);

  // The node with its allocation and running jobs filled in; nullptr when unknown.
  const v1::Node* Find(absl::string_view name) const;
  // Every node, by name.
  std::vector<v1::Node> List() const;
  // Calls `visit` with every node, by name, without copying them. `visit` may not change
  // the registry.
  void ForEach(absl::FunctionRef<void(const v1::Node&)> visit) const;
  // READY: connected, not cordoned, draining or down.
  bool TakesWork(absl::string_view name) const;
  static bool TakesWork(const v1::Node& node) { return node.state() == v1::Node::READY; }
  // capacity - allocated.
  v1::NodeResources Free(absl::string_view name) const;
  static v1::NodeResources Free(const v1::Node& node);

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
    // Expected (Expect) but its agent has not said hello since droverd started: hidden.
    bool expected_only = false;
    // DOWN, and the loss of its attempts is not handled yet (paused).
    bool loss_pending = false;
    // Counted as silent (no message for half a lease) by the last CheckLeases, not DOWN yet.
    bool silent = false;
    // When its loss was handled.
    absl::Time lost_at = absl::InfinitePast();
    std::map<std::string, v1::NodeResources> allocations;  // by job id
  };
  // What an administrator set on a node (cordon, drain), by node name, registered or not.
  struct Admin {
    bool draining = false;  // else cordoned
    std::string reason;
  };
  // Recomputes state (from admin_), reason, allocated and running_jobs; a draining node
  // with nothing left becomes cordoned.
  void Refresh(Entry& entry);
  // What Cordon, Uncordon and Drain answer for node `name`.
  v1::Node AdminAnswer(absl::string_view name);
  // The entry of a registered node (not only expected); nullptr otherwise.
  Entry* Registered(absl::string_view name);
  const Entry* Registered(absl::string_view name) const;

  std::map<std::string, Entry, std::less<>> nodes_;
  std::map<std::string, v1::ComputeTarget, std::less<>> targets_;
  std::map<std::string, Admin, std::less<>> admin_;
  // Since when node-loss handling is paused; InfiniteFuture() when it is not.
  absl::Time paused_since_ = absl::InfiniteFuture();
  // When the last pause ended: the leases of nodes silent then run from it.
  absl::Time resumed_at_ = absl::InfinitePast();
};

// Human-readable and machine-readable resource amounts: "cpus=2 memory=4096Mi gpus=0".
std::string FormatResources(const v1::NodeResources& resources);

}  // namespace drover::scheduler

#endif  // DROVER_SCHEDULER_NODE_REGISTRY_H_
