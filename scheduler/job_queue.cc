#include "scheduler/job_queue.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/job_id.h"
#include "scheduler/job_array.h"
#include "scheduler/job_state.h"

namespace drover::scheduler {

JobQueue::OrderKey JobQueue::KeyOf(const v1::Job& job) {
  absl::StatusOr<int64_t> seq = ParseJobId(job.id());
  return {-job.spec().priority(), seq.ok() ? *seq : 0};
}

void JobQueue::Update(const v1::Job& job) {
  auto it = jobs_.find(job.id());
  if (it != jobs_.end()) {
    if (job.status().version() < it->second.status().version()) return;  // stale
    Leave(it->second);
    if (IsTerminal(job.status().state())) {
      jobs_.erase(it);
      return;
    }
    it->second = job;
  } else {
    if (IsTerminal(job.status().state())) return;
    jobs_.emplace(job.id(), job);
  }
  Enter(job);
}

void JobQueue::Reset(const v1::Job& job) {
  auto it = jobs_.find(job.id());
  if (it != jobs_.end()) {
    Leave(it->second);
    jobs_.erase(it);
  }
  Update(job);
}

void JobQueue::Enter(const v1::Job& job) {
  ++by_state_[job.status().state()];
  const bool queued = job.status().state() == v1::JobStatus::QUEUED;
  if (queued) ++queued_count_;
  if (!job.spec().has_array_task()) {
    if (queued) order_.emplace(KeyOf(job), Entry{job.id(), false});
    return;
  }
  const bool counts = CountsAgainstArrayLimit(job.status().state());
  if (!queued && !counts) return;
  const std::string& array_id = job.spec().array_task().array_id();
  ArrayState& array = arrays_[array_id];
  if (counts) ++array.active;
  if (!queued) return;
  const OrderKey key = KeyOf(job);
  // The array stands in the order at its first queued task.
  if (array.queued.empty() || key < array.queued.begin()->first) {
    if (!array.queued.empty()) order_.erase(array.queued.begin()->first);
    order_.emplace(key, Entry{array_id, true});
  }
  array.queued.emplace(key, job.id());
}

void JobQueue::Leave(const v1::Job& job) {
  if (auto it = by_state_.find(job.status().state()); it != by_state_.end() && --it->second == 0) {
    by_state_.erase(it);
  }
  const bool queued = job.status().state() == v1::JobStatus::QUEUED;
  if (queued) --queued_count_;
  if (!job.spec().has_array_task()) {
    if (queued) order_.erase(KeyOf(job));
    return;
  }
  const std::string& array_id = job.spec().array_task().array_id();
  auto it = arrays_.find(array_id);
  if (it == arrays_.end()) return;
  ArrayState& array = it->second;
  if (CountsAgainstArrayLimit(job.status().state())) --array.active;
  if (queued) {
    const OrderKey key = KeyOf(job);
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
  return it == jobs_.end() ? nullptr : &it->second;
}

void JobQueue::VisitQueued(
    absl::FunctionRef<Visit(const std::string& job_id, const v1::Job& job)> visit) const {
  for (const auto& [key, entry] : order_) {
    if (!entry.array) {
      if (visit(entry.id, jobs_.find(entry.id)->second) == Visit::kStop) return;
      continue;
    }
    for (const auto& [task_key, task_id] : arrays_.find(entry.id)->second.queued) {
      const Visit next = visit(task_id, jobs_.find(task_id)->second);
      if (next == Visit::kStop) return;
      if (next == Visit::kPassArray) break;
    }
  }
}

std::vector<std::string> JobQueue::QueuedInOrder(size_t limit) const {
  std::vector<std::string> ids;
  ids.reserve(std::min(limit, queued_count_));
  if (limit == 0) return ids;
  VisitQueued([&ids, limit](const std::string& id, const v1::Job&) {
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
  for (const auto& [id, job] : jobs_) {
    if (job.spec().has_array_task() && job.spec().array_task().array_id() == array_id) {
      tasks.emplace_back(job.spec().array_task().index(), id);
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
