#include "scheduler/node_registry.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace drover::scheduler {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

v1::NodeResources Add(v1::NodeResources a, const v1::NodeResources& b) {
  a.set_cpus(a.cpus() + b.cpus());
  a.set_memory_mib(a.memory_mib() + b.memory_mib());
  a.set_gpus(a.gpus() + b.gpus());
  return a;
}

}  // namespace

absl::Status CheckNodeReason(absl::string_view reason) {
  if (reason.size() > kMaxNodeReasonBytes) {
    return absl::InvalidArgumentError(absl::StrCat("reason: ", reason.size(),
                                                   " bytes is more than the ", kMaxNodeReasonBytes,
                                                   " allowed; give a shorter reason"));
  }
  for (char c : reason) {
    if (absl::ascii_iscntrl(c)) {
      return absl::InvalidArgumentError(
          "reason: has a control character (such as a line break); give one line of text");
    }
  }
  return absl::OkStatus();
}

std::string FormatResources(const v1::NodeResources& r) {
  return absl::StrCat("cpus=", r.cpus(), " memory=", r.memory_mib(), "Mi gpus=", r.gpus());
}

NodeRegistry::NodeRegistry() {
  v1::ComputeTarget all;
  all.set_name("default");
  targets_.emplace("default", all);
}

void NodeRegistry::Refresh(Entry& e) {
  v1::NodeResources allocated;
  e.node.clear_running_jobs();
  for (const auto& [job, resources] : e.allocations) {
    allocated = Add(allocated, resources);
    e.node.add_running_jobs(job);
  }
  *e.node.mutable_allocated() = allocated;
  if (e.node.state() == v1::Node::DOWN) return;
  auto admin = admin_.find(e.node.name());
  if (admin == admin_.end()) {
    e.node.set_state(v1::Node::READY);
    e.node.clear_reason();
    return;
  }
  if (admin->second.draining && e.allocations.empty()) admin->second.draining = false;
  const bool draining = admin->second.draining;
  const char* what = draining ? "DRAINING" : "CORDONED";
  e.node.set_state(draining ? v1::Node::DRAINING : v1::Node::CORDONED);
  e.node.set_reason(admin->second.reason.empty() ? what
                                                 : absl::StrCat(what, " ", admin->second.reason));
}

absl::StatusOr<v1::Node> NodeRegistry::Register(const v1::NodeInfo& info, absl::Time now) {
  if (!CheckNodeName(info.name()).ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "node.name: '", info.name(),
        "' is not a valid node name; use 1-63 characters of [a-z0-9-] (set --node-name)"));
  }
  if (!(info.capacity().cpus() > 0) || info.capacity().memory_mib() <= 0 ||
      info.capacity().gpus() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("node '", info.name(),
                                                   "': capacity must have cpus > 0 and "
                                                   "memory > 0; got ",
                                                   FormatResources(info.capacity())));
  }
  if (info.gpus_size() > 0 && info.gpus_size() != info.capacity().gpus()) {
    return absl::InvalidArgumentError(absl::StrCat("node '", info.name(), "': capacity.gpus ",
                                                   info.capacity().gpus(), " but ",
                                                   info.gpus_size(), " GPUs listed"));
  }
  auto [it, inserted] = nodes_.try_emplace(info.name());
  Entry& e = it->second;
  inserted = inserted || e.expected_only;
  e.expected_only = false;
  e.loss_pending = false;  // back in time: its attempts go on (the caller reconciles them)
  e.lost_at = absl::InfinitePast();
  if (inserted) *e.node.mutable_register_time() = ToProto(now);
  e.node.set_name(info.name());
  *e.node.mutable_addresses() = info.addresses();
  *e.node.mutable_capacity() = info.capacity();
  *e.node.mutable_labels() = info.labels();
  e.node.set_agent_version(info.agent_version());
  e.node.set_container_runtime(info.container_runtime());
  e.node.set_peer_endpoint(info.peer_endpoint());
  *e.node.mutable_gpus() = info.gpus();
  if (e.node.state() == v1::Node::DOWN || inserted) e.node.set_state(v1::Node::READY);
  e.last_seen = now;
  *e.node.mutable_last_seen_time() = ToProto(now);
  Refresh(e);
  return e.node;
}

bool NodeRegistry::Seen(absl::string_view name, absl::Time now) {
  Entry* e = Registered(name);
  if (e == nullptr) return false;
  if (e->node.state() == v1::Node::DOWN && !e->loss_pending) return false;
  e->last_seen = now;
  *e->node.mutable_last_seen_time() = ToProto(now);
  if (e->loss_pending) {
    // Lost while node-loss handling was paused: nothing of it was ended, so it simply is
    // back.
    e->loss_pending = false;
    e->node.set_state(v1::Node::READY);
    e->node.clear_reason();
    Refresh(*e);
  }
  return true;
}

void NodeRegistry::Expect(absl::string_view name, absl::Time now) {
  auto [it, inserted] = nodes_.try_emplace(std::string(name));
  if (!inserted) return;
  Entry& e = it->second;
  e.expected_only = true;
  e.node.set_name(std::string(name));
  e.node.set_state(v1::Node::READY);  // hidden until it registers
  e.last_seen = now;
}

LeaseCheck NodeRegistry::CheckLeases(absl::Time now, absl::Duration lease,
                                     double pause_fraction) {
  LeaseCheck check;
  for (auto& [name, e] : nodes_) {
    if (e.node.state() == v1::Node::DOWN || now - e.last_seen <= lease) continue;
    e.node.set_state(v1::Node::DOWN);
    e.node.set_reason(absl::StrCat("MISSED_LEASE last_seen=",
                                   absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", e.last_seen,
                                                    absl::UTCTimeZone())));
    e.loss_pending = true;
    check.down.push_back(name);
  }
  for (auto& [name, e] : nodes_) {
    // A node whose loss was handled no longer counts, unless that happened during the
    // pause (an administrator declared it lost): the pause is about the cluster as it was.
    if (e.node.state() == v1::Node::DOWN && !e.loss_pending && e.lost_at < paused_since_) {
      continue;
    }
    ++check.counted;
    e.silent = e.node.state() != v1::Node::DOWN && now - e.last_seen > lease / 2;
    if (now - e.last_seen > lease / 2) ++check.silent;
    if (e.loss_pending) check.pending.push_back(name);
  }
  check.paused = !check.pending.empty() && pause_fraction > 0 &&
                 check.counted >= kMinNodesForLossPause &&
                 check.silent > pause_fraction * check.counted;
  if (check.paused) {
    paused_since_ = std::min(paused_since_, now);
    return check;
  }
  // When a pause ends, the nodes still silent get one more lease from that moment, as
  // Kubernetes' node lifecycle controller resets its nodes' probe times when a zone leaves
  // full disruption: after a mass outage nodes come back seconds apart, and the last ones
  // must not be lost for speaking a moment after the others.
  if (paused_since_ != absl::InfiniteFuture()) resumed_at_ = now;
  paused_since_ = absl::InfiniteFuture();
  std::vector<std::string> pending = std::move(check.pending);
  check.pending.clear();
  for (std::string& name : pending) {
    Entry& e = nodes_.find(name)->second;
    if (now - std::max(e.last_seen, resumed_at_) <= lease) {
      check.pending.push_back(std::move(name));
      continue;
    }
    e.loss_pending = false;
    e.lost_at = now;
    check.lost.push_back(std::move(name));
  }
  return check;
}

absl::StatusOr<v1::Node> NodeRegistry::DeclareLost(absl::string_view name,
                                                   absl::string_view reason, absl::Time now) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "node '", name, "' is not known and runs no restored attempt; see drover nodes"));
  }
  Entry& e = it->second;
  if (e.node.state() != v1::Node::DOWN || e.loss_pending) e.lost_at = now;
  e.node.set_state(v1::Node::DOWN);
  e.node.set_reason(reason.empty() ? "DECLARED_LOST" : absl::StrCat("DECLARED_LOST ", reason));
  e.loss_pending = false;
  return e.node;
}

absl::Status NodeRegistry::CheckAdministrable(absl::string_view name) const {
  if (Registered(name) != nullptr || admin_.find(name) != admin_.end()) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat("node '", name, "' is not known; see drover nodes"));
}

absl::StatusOr<v1::Node> NodeRegistry::Cordon(absl::string_view name, absl::string_view reason) {
  if (absl::Status s = CheckAdministrable(name); !s.ok()) return s;
  admin_[std::string(name)] = Admin{.draining = false, .reason = std::string(reason)};
  return AdminAnswer(name);
}

absl::StatusOr<v1::Node> NodeRegistry::Uncordon(absl::string_view name) {
  if (absl::Status s = CheckAdministrable(name); !s.ok()) return s;
  admin_.erase(std::string(name));
  return AdminAnswer(name);
}

absl::StatusOr<v1::Node> NodeRegistry::Drain(absl::string_view name, absl::string_view reason) {
  if (absl::Status s = CheckAdministrable(name); !s.ok()) return s;
  admin_[std::string(name)] = Admin{.draining = true, .reason = std::string(reason)};
  return AdminAnswer(name);
}

v1::Node NodeRegistry::AdminAnswer(absl::string_view name) {
  if (Entry* e = Registered(name); e != nullptr) {
    Refresh(*e);
    return e->node;
  }
  // Not back since droverd's restart: what was set waits for its hello.
  auto expected = nodes_.find(name);
  if (expected != nodes_.end()) Refresh(expected->second);
  v1::Node away;
  away.set_name(std::string(name));
  away.set_state(v1::Node::DOWN);
  away.set_reason("NOT_CONNECTED its agent has not said hello since droverd started");
  return away;
}

void NodeRegistry::RestoreAdmin(const storage::NodeAdminState& state) {
  admin_[state.node] = Admin{.draining = state.draining, .reason = state.reason};
  if (Entry* e = Registered(state.node); e != nullptr) Refresh(*e);
}

std::optional<storage::NodeLossPause> NodeRegistry::LossPause() const {
  if (paused_since_ == absl::InfiniteFuture()) return std::nullopt;
  storage::NodeLossPause pause;
  pause.paused_since = paused_since_;
  using Role = storage::NodeLossPause::Role;
  for (const auto& [name, e] : nodes_) {
    // The nodes CheckLeases counts.
    const bool down = e.node.state() == v1::Node::DOWN;
    if (down && !e.loss_pending && e.lost_at < paused_since_) continue;
    storage::NodeLossPause::Member m;
    m.name = name;
    m.listed = !e.expected_only;
    m.last_seen = e.last_seen;
    if (e.loss_pending) {
      m.role = Role::kWaiting;
    } else if (down) {
      m.role = Role::kDeclaredLost;
      m.lost_at = e.lost_at;
    } else if (e.silent) {
      // Its silence is part of why handling paused: a restart must not forget it.
      m.role = Role::kSilent;
    } else {
      m.role = Role::kCounted;
    }
    if (m.role != Role::kCounted) {
      m.node = e.node;
      m.node.clear_allocated();
      m.node.clear_running_jobs();
    }
    pause.nodes.push_back(std::move(m));
  }
  return pause;
}

void NodeRegistry::RestoreLossPause(const storage::NodeLossPause& pause, absl::Time now) {
  using Role = storage::NodeLossPause::Role;
  paused_since_ = pause.paused_since;
  for (const storage::NodeLossPause::Member& m : pause.nodes) {
    Entry& e = nodes_[m.name];
    if (m.role == Role::kCounted) {
      // Heard from when the pause was stored: expected back like a node of a restored
      // attempt.
      e.expected_only = true;
      e.node.set_name(m.name);
      e.node.set_state(v1::Node::READY);
      e.last_seen = now;
      continue;
    }
    if (m.role == Role::kSilent) {
      // Silent when the pause was stored, part of why it paused: listed as it was, and
      // last heard from when it was, so that it counts as silent again and goes DOWN when
      // its lease would have run out.
      e.node = m.node;
      e.node.set_name(m.name);
      e.expected_only = !m.listed;
      e.last_seen = std::min(m.last_seen, now);
      Refresh(e);
      continue;
    }
    e.node = m.node;
    e.node.set_name(m.name);
    e.node.set_state(v1::Node::DOWN);
    e.expected_only = !m.listed;
    e.last_seen = m.last_seen;
    e.loss_pending = m.role == Role::kWaiting;
    if (m.role == Role::kDeclaredLost) e.lost_at = m.lost_at;
    Refresh(e);
  }
}

void NodeRegistry::Allocate(absl::string_view name, absl::string_view job_id,
                            const v1::NodeResources& resources) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  it->second.allocations[std::string(job_id)] = resources;
  Refresh(it->second);
}

void NodeRegistry::Release(absl::string_view name, absl::string_view job_id) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  it->second.allocations.erase(std::string(job_id));
  Refresh(it->second);
}

NodeRegistry::Entry* NodeRegistry::Registered(absl::string_view name) {
  auto it = nodes_.find(name);
  return it == nodes_.end() || it->second.expected_only ? nullptr : &it->second;
}

const NodeRegistry::Entry* NodeRegistry::Registered(absl::string_view name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() || it->second.expected_only ? nullptr : &it->second;
}

const v1::Node* NodeRegistry::Find(absl::string_view name) const {
  const Entry* e = Registered(name);
  return e == nullptr ? nullptr : &e->node;
}

std::vector<v1::Node> NodeRegistry::List() const {
  std::vector<v1::Node> out;
  for (const auto& [name, e] : nodes_) {
    if (!e.expected_only) out.push_back(e.node);
  }
  return out;
}

void NodeRegistry::ForEach(absl::FunctionRef<void(const v1::Node&)> visit) const {
  for (const auto& [name, e] : nodes_) {
    if (!e.expected_only) visit(e.node);
  }
}

bool NodeRegistry::TakesWork(absl::string_view name) const {
  const v1::Node* node = Find(name);
  return node != nullptr && TakesWork(*node);
}

v1::NodeResources NodeRegistry::Free(absl::string_view name) const {
  const v1::Node* node = Find(name);
  return node == nullptr ? v1::NodeResources() : Free(*node);
}

v1::NodeResources NodeRegistry::Free(const v1::Node& node) {
  v1::NodeResources free;
  free.set_cpus(node.capacity().cpus() - node.allocated().cpus());
  free.set_memory_mib(node.capacity().memory_mib() - node.allocated().memory_mib());
  free.set_gpus(node.capacity().gpus() - node.allocated().gpus());
  return free;
}

absl::Status NodeRegistry::PutTarget(const v1::ComputeTarget& target) {
  const std::string& name = target.name();
  bool valid = !name.empty() && name.size() <= 63 && absl::ascii_isalnum(name[0]);
  for (char c : name) {
    valid = valid && (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' || c == '-');
  }
  if (!valid) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target.name: '", name, "' is not valid; use 1-63 characters of [a-z0-9_-]"));
  }
  if (name == "default" && (!target.selector().empty() || target.max_nodes() != 0)) {
    return absl::FailedPreconditionError(
        "the default target always selects every node; create a target with another name");
  }
  if (target.max_nodes() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "target.max_nodes: ", target.max_nodes(), " is negative; use 0 (no limit) or more"));
  }
  targets_[name] = target;
  return absl::OkStatus();
}

absl::Status NodeRegistry::DeleteTarget(absl::string_view name) {
  if (name == "default") {
    return absl::FailedPreconditionError("the default target cannot be deleted");
  }
  if (targets_.erase(std::string(name)) == 0) {
    return absl::NotFoundError(
        absl::StrCat("compute target '", name, "' does not exist; see drover target list"));
  }
  return absl::OkStatus();
}

const v1::ComputeTarget* NodeRegistry::FindTarget(absl::string_view name) const {
  auto it = targets_.find(name);
  return it == targets_.end() ? nullptr : &it->second;
}

std::vector<v1::ComputeTarget> NodeRegistry::ListTargets() const {
  std::vector<v1::ComputeTarget> out;
  for (const auto& [name, target] : targets_) out.push_back(target);
  return out;
}

bool NodeRegistry::InTarget(const v1::ComputeTarget& target, absl::string_view name) const {
  const v1::Node* node = Find(name);
  if (node == nullptr) return false;
  for (const auto& [key, value] : target.selector()) {
    auto it = node->labels().find(key);
    if (it == node->labels().end() || it->second != value) return false;
  }
  return true;
}

}  // namespace drover::scheduler
