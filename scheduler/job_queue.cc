#include "scheduler/job_queue.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/job_id.h"
#include "scheduler/job_array.h"
#include "scheduler/job_state.h"

namespace drover::scheduler {

v1::NodeResources QueuedJob::PerNode() const {
  v1::NodeResources need;
  need.set_cpus(cpus);
  need.set_memory_mib(memory_mib);
  need.set_gpus(gpus);
  return need;
}

JobQueue::JobQueue() = default;
JobQueue::~JobQueue() = default;
JobQueue::JobQueue(JobQueue&&) noexcept = default;
JobQueue& JobQueue::operator=(JobQueue&&) noexcept = default;

JobQueue::Packed::Packed(std::string id, std::unique_ptr<Held> held)
    : id_(std::move(id)), held_(std::move(held)) {}
JobQueue::Packed::Packed(Packed&&) noexcept = default;
JobQueue::Packed& JobQueue::Packed::operator=(Packed&&) noexcept = default;
JobQueue::Packed::~Packed() = default;
v1::JobStatus::State JobQueue::Packed::state() const { return held_->state; }

std::unique_ptr<JobQueue::Held> JobQueue::MakeHeld(absl::string_view id,
                                                   const v1::JobSpec& spec,
                                                   const v1::JobStatus& status) {
  auto held = std::make_unique<Held>();
  held->version = status.version();
  held->state = status.state();
  absl::StatusOr<int64_t> seq = ParseJobId(id);
  held->sequence = seq.ok() ? *seq : 0;
  QueuedJob& summary = held->summary;
  summary.compute_target = spec.compute_target();
  summary.node_count = spec.node_count();
  summary.priority = spec.priority();
  summary.cpus = spec.resources().cpus();
  summary.memory_mib = spec.resources().memory_mib();
  summary.gpus = spec.resources().gpus();
  summary.max_run_duration = absl::Seconds(spec.max_run_duration().seconds()) +
                             absl::Nanoseconds(spec.max_run_duration().nanos());
  if (spec.has_array_task()) {
    held->array_id = spec.array_task().array_id();
    summary.array_id = &held->array_id;
    summary.array_max_running = spec.array_task().max_running();
    summary.array_index = spec.array_task().index();
  }
  return held;
}

absl::StatusOr<JobQueue::Packed> JobQueue::Pack(std::string id, const v1::JobSpec& spec,
                                                const v1::JobStatus& status, std::string wire) {
  std::unique_ptr<Held> held = MakeHeld(id, spec, status);
  if (held->state == v1::JobStatus::QUEUED) {
    held->wire = std::move(wire);
  } else {
    held->job = std::make_unique<v1::Job>();
    if (!held->job->ParseFromString(wire)) {
      return absl::DataLossError(absl::StrCat("job '", id, "' has an unreadable record"));
    }
    PointIntoJob(*held);
  }
  return Packed(std::move(id), std::move(held));
}

JobQueue::Packed JobQueue::Pack(const v1::Job& job) {
  std::unique_ptr<Held> held = MakeHeld(job.id(), job.spec(), job.status());
  if (held->state == v1::JobStatus::QUEUED) {
    job.SerializeToString(&held->wire);
  } else {
    held->job = std::make_unique<v1::Job>(job);
    PointIntoJob(*held);
  }
  return Packed(job.id(), std::move(held));
}

void JobQueue::Update(const v1::Job& job) { Record(job, /*even_if_older=*/false); }

void JobQueue::Reset(const v1::Job& job) { Record(job, /*even_if_older=*/true); }

void JobQueue::Record(const v1::Job& job, bool even_if_older) {
  auto it = jobs_.find(job.id());
  if (it != jobs_.end() && !even_if_older && job.status().version() < it->second->version) {
    return;  // stale
  }
  if (IsTerminal(job.status().state())) {
    if (it != jobs_.end()) {
      Leave(*it->second);
      unpacked_.erase(job.id());
      jobs_.erase(it);
    }
    return;
  }
  // The v1::Job a caller got from Find stays where it is and says what the job says now, as
  // when the queue held every job as a v1::Job (`job` may be that very object: it is moved
  // from owner to owner here, never destroyed).
  std::unique_ptr<v1::Job> object;
  if (it != jobs_.end()) {
    // First: what is held of the job may point into that object, which changes below.
    Leave(*it->second);
    if (it->second->job != nullptr) {
      object = std::move(it->second->job);
    } else if (auto copy = unpacked_.find(job.id()); copy != unpacked_.end()) {
      object = std::move(copy->second);
      unpacked_.erase(copy);
    }
  }
  if (object != nullptr && object.get() != &job) *object = job;
  std::unique_ptr<Held> held = MakeHeld(job.id(), job.spec(), job.status());
  if (held->state == v1::JobStatus::QUEUED) {
    job.SerializeToString(&held->wire);
    if (object != nullptr) unpacked_[job.id()] = std::move(object);
  } else {
    held->job = object != nullptr ? std::move(object) : std::make_unique<v1::Job>(job);
    PointIntoJob(*held);
  }
  if (it != jobs_.end()) {
    it->second = std::move(held);
  } else {
    it = jobs_.emplace(job.id(), std::move(held)).first;
  }
  Enter(it->first, *it->second);
}

void JobQueue::PointIntoJob(Held& held) {
  if (held.summary.array_id == nullptr) return;
  held.summary.array_id = &held.job->spec().array_task().array_id();
  held.array_id.clear();
  held.array_id.shrink_to_fit();
}

void JobQueue::Restore(Packed packed) {
  auto it = jobs_.find(packed.id_);
  if (it != jobs_.end() && packed.held_->version < it->second->version) return;  // stale
  if (IsTerminal(packed.held_->state)) {
    if (it != jobs_.end()) {
      Leave(*it->second);
      unpacked_.erase(packed.id_);
      jobs_.erase(it);
    }
    return;
  }
  unpacked_.erase(packed.id_);
  Put(std::move(packed.id_), std::move(packed.held_));
}

void JobQueue::Put(std::string id, std::unique_ptr<Held> held) {
  auto it = jobs_.find(id);
  if (it != jobs_.end()) {
    Leave(*it->second);
    it->second = std::move(held);
  } else {
    it = jobs_.emplace(std::move(id), std::move(held)).first;
  }
  Enter(it->first, *it->second);
}

void JobQueue::Enter(const std::string& id, Held& held) {
  ++by_state_[held.state];
  const bool queued = held.state == v1::JobStatus::QUEUED;
  if (queued) ++queued_count_;
  if (held.summary.array_id == nullptr) {
    if (queued) order_.emplace(KeyOf(held), Entry{id, false});
    return;
  }
  const bool counts = CountsAgainstArrayLimit(held.state);
  if (!queued && !counts) return;
  auto [array_it, inserted] = arrays_.try_emplace(*held.summary.array_id);
  if (queued) {
    // The queue's copy of the id from here on (the task's own is dropped).
    held.summary.array_id = &array_it->first;
    held.array_id.clear();
    held.array_id.shrink_to_fit();
  }
  ArrayState& array = array_it->second;
  if (counts) ++array.active;
  if (!queued) return;
  const OrderKey key = KeyOf(held);
  // The array stands in the order at its first queued task.
  if (array.queued.empty() || key < array.queued.begin()->first) {
    if (!array.queued.empty()) order_.erase(array.queued.begin()->first);
    order_.emplace(key, Entry{array_it->first, true});
  }
  array.queued.emplace(key, id);
}

void JobQueue::Leave(const Held& held) {
  if (auto it = by_state_.find(held.state); it != by_state_.end() && --it->second == 0) {
    by_state_.erase(it);
  }
  const bool queued = held.state == v1::JobStatus::QUEUED;
  if (queued) --queued_count_;
  if (held.summary.array_id == nullptr) {
    if (queued) order_.erase(KeyOf(held));
    return;
  }
  auto it = arrays_.find(*held.summary.array_id);
  if (it == arrays_.end()) return;
  const std::string array_id = it->first;
  ArrayState& array = it->second;
  if (CountsAgainstArrayLimit(held.state)) --array.active;
  if (queued) {
    const OrderKey key = KeyOf(held);
    if (!array.queued.empty() && array.queued.begin()->first == key) {
      order_.erase(key);
      array.queued.erase(array.queued.begin());
      if (!array.queued.empty()) order_.emplace(array.queued.begin()->first, Entry{array_id, true});
    } else {
      array.queued.erase(key);
    }
  }
  if (array.active <= 0 && array.queued.empty()) arrays_.erase(it);
}

const v1::Job* JobQueue::Find(absl::string_view job_id) const {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return nullptr;
  const Held& held = *it->second;
  if (held.job != nullptr) return held.job.get();
  std::unique_ptr<v1::Job>& copy = unpacked_[job_id];
  if (copy == nullptr) {
    copy = std::make_unique<v1::Job>();
    // Written by Pack from a job that parsed, or read from the store by a job that did.
    if (!copy->ParseFromString(held.wire)) copy->set_id(std::string(job_id));
  }
  return copy.get();
}

void JobQueue::ReleaseCopies() { unpacked_.clear(); }

void JobQueue::VisitQueued(
    absl::FunctionRef<Visit(const std::string& job_id, const QueuedJob& job)> visit) const {
  for (const auto& [key, entry] : order_) {
    if (!entry.array) {
      if (visit(entry.id, jobs_.find(entry.id)->second->summary) == Visit::kStop) return;
      continue;
    }
    for (const auto& [task_key, task_id] : arrays_.find(entry.id)->second.queued) {
      const Visit next = visit(task_id, jobs_.find(task_id)->second->summary);
      if (next == Visit::kStop) return;
      if (next == Visit::kPassArray) break;
    }
  }
}

std::vector<std::string> JobQueue::QueuedInOrder(size_t limit) const {
  std::vector<std::string> ids;
  ids.reserve(std::min(limit, queued_count_));
  if (limit == 0) return ids;
  VisitQueued([&ids, limit](const std::string& id, const QueuedJob&) {
    ids.push_back(id);
    return ids.size() == limit ? Visit::kStop : Visit::kNext;
  });
  return ids;
}

int JobQueue::ArrayActive(absl::string_view array_id) const {
  auto it = arrays_.find(array_id);
  return it == arrays_.end() ? 0 : it->second.active;
}

std::vector<std::string> JobQueue::TasksOfArray(absl::string_view array_id) const {
  std::vector<std::pair<int64_t, std::string>> tasks;
  for (const auto& [id, held] : jobs_) {
    if (held->summary.array_id != nullptr && *held->summary.array_id == array_id) {
      tasks.emplace_back(held->summary.array_index, id);
    }
  }
  std::sort(tasks.begin(), tasks.end());
  std::vector<std::string> ids;
  ids.reserve(tasks.size());
  for (auto& [index, id] : tasks) ids.push_back(std::move(id));
  return ids;
}

std::string JobQueue::WaitingReason(const v1::JobSpec& spec, int free_nodes) {
  return absl::StrCat("WAITING_FOR_NODES need=", spec.node_count(), " free=", free_nodes);
}

}  // namespace drover::scheduler
