#include "scheduler/node_registry.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace drover::scheduler {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp ToProto(absl::Time t) {
  return TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

bool ValidNodeName(absl::string_view name) {
  if (name.empty() || name.size() > 63 || !absl::ascii_isalnum(name[0])) return false;
  for (char c : name) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-')) return false;
  }
  return true;
}

v1::NodeResources Add(v1::NodeResources a, const v1::NodeResources& b) {
  a.set_cpus(a.cpus() + b.cpus());
  a.set_memory_mib(a.memory_mib() + b.memory_mib());
  a.set_gpus(a.gpus() + b.gpus());
  return a;
}

}  // namespace

std::string FormatResources(const v1::NodeResources& r) {
  return absl::StrCat("cpus=", r.cpus(), " memory=", r.memory_mib(), "Mi gpus=", r.gpus());
}

NodeRegistry::NodeRegistry() {
  v1::ComputeTarget all;
  all.set_name("default");
  targets_.emplace("default", all);
}

void NodeRegistry::Refresh(Entry& e) const {
  v1::NodeResources allocated;
  e.node.clear_running_jobs();
  for (const auto& [job, resources] : e.allocations) {
    allocated = Add(allocated, resources);
    e.node.add_running_jobs(job);
  }
  *e.node.mutable_allocated() = allocated;
  if (e.node.state() == v1::Node::DOWN) return;
  if (e.draining && e.allocations.empty()) {
    e.draining = false;
    e.cordoned = true;
  }
  if (e.draining) {
    e.node.set_state(v1::Node::DRAINING);
  } else if (e.cordoned) {
    e.node.set_state(v1::Node::CORDONED);
  } else {
    e.node.set_state(v1::Node::READY);
    e.node.clear_reason();
  }
}

absl::StatusOr<v1::Node> NodeRegistry::Register(const v1::NodeInfo& info, absl::Time now) {
  if (!ValidNodeName(info.name())) {
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
  if (inserted) *e.node.mutable_register_time() = ToProto(now);
  e.node.set_name(info.name());
  *e.node.mutable_addresses() = info.addresses();
  *e.node.mutable_capacity() = info.capacity();
  *e.node.mutable_labels() = info.labels();
  e.node.set_agent_version(info.agent_version());
  e.node.set_peer_endpoint(info.peer_endpoint());
  *e.node.mutable_gpus() = info.gpus();
  if (e.node.state() == v1::Node::DOWN || inserted) e.node.set_state(v1::Node::READY);
  e.last_seen = now;
  *e.node.mutable_last_seen_time() = ToProto(now);
  Refresh(e);
  return e.node;
}

void NodeRegistry::Seen(absl::string_view name, absl::Time now) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  it->second.last_seen = now;
  *it->second.node.mutable_last_seen_time() = ToProto(now);
}

std::vector<std::string> NodeRegistry::ExpireLeases(absl::Time now, absl::Duration lease) {
  std::vector<std::string> down;
  for (auto& [name, e] : nodes_) {
    if (e.node.state() == v1::Node::DOWN || now - e.last_seen <= lease) continue;
    e.node.set_state(v1::Node::DOWN);
    e.node.set_reason(absl::StrCat("MISSED_LEASE last_seen=",
                                   absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", e.last_seen,
                                                    absl::UTCTimeZone())));
    down.push_back(name);
  }
  return down;
}

absl::StatusOr<v1::Node> NodeRegistry::Cordon(absl::string_view name, absl::string_view reason) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) {
    return absl::NotFoundError(absl::StrCat("node '", name, "' is not known; see drover nodes"));
  }
  it->second.cordoned = true;
  it->second.draining = false;
  Refresh(it->second);
  if (it->second.node.state() != v1::Node::DOWN) {
    it->second.node.set_reason(reason.empty() ? "CORDONED" : absl::StrCat("CORDONED ", reason));
  }
  return it->second.node;
}

absl::StatusOr<v1::Node> NodeRegistry::Uncordon(absl::string_view name) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) {
    return absl::NotFoundError(absl::StrCat("node '", name, "' is not known; see drover nodes"));
  }
  it->second.cordoned = false;
  it->second.draining = false;
  Refresh(it->second);
  return it->second.node;
}

absl::StatusOr<v1::Node> NodeRegistry::Drain(absl::string_view name, absl::string_view reason) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) {
    return absl::NotFoundError(absl::StrCat("node '", name, "' is not known; see drover nodes"));
  }
  it->second.draining = true;
  Refresh(it->second);
  if (it->second.node.state() != v1::Node::DOWN) {
    std::string what = it->second.node.state() == v1::Node::DRAINING ? "DRAINING" : "CORDONED";
    it->second.node.set_reason(reason.empty() ? what : absl::StrCat(what, " ", reason));
  }
  return it->second.node;
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

const v1::Node* NodeRegistry::Find(absl::string_view name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : &it->second.node;
}

std::vector<v1::Node> NodeRegistry::List() const {
  std::vector<v1::Node> out;
  for (const auto& [name, e] : nodes_) out.push_back(e.node);
  return out;
}

bool NodeRegistry::TakesWork(absl::string_view name) const {
  const v1::Node* node = Find(name);
  return node != nullptr && node->state() == v1::Node::READY;
}

v1::NodeResources NodeRegistry::Free(absl::string_view name) const {
  v1::NodeResources free;
  const v1::Node* node = Find(name);
  if (node == nullptr) return free;
  free.set_cpus(node->capacity().cpus() - node->allocated().cpus());
  free.set_memory_mib(node->capacity().memory_mib() - node->allocated().memory_mib());
  free.set_gpus(node->capacity().gpus() - node->allocated().gpus());
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
