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
    if (it->second.status().state() == v1::JobStatus::QUEUED) order_.erase(KeyOf(it->second));
    CountArrayTask(it->second, -1);
    if (IsTerminal(job.status().state())) {
      jobs_.erase(it);
      return;
    }
    it->second = job;
  } else {
    if (IsTerminal(job.status().state())) return;
    it = jobs_.emplace(job.id(), job).first;
  }
  CountArrayTask(job, +1);
  if (job.status().state() == v1::JobStatus::QUEUED) order_.emplace(KeyOf(job), job.id());
}

void JobQueue::Reset(const v1::Job& job) {
  auto it = jobs_.find(job.id());
  if (it != jobs_.end()) {
    if (it->second.status().state() == v1::JobStatus::QUEUED) order_.erase(KeyOf(it->second));
    CountArrayTask(it->second, -1);
    jobs_.erase(it);
  }
  Update(job);
}

const v1::Job* JobQueue::Find(absl::string_view job_id) const {
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : &it->second;
}

std::vector<std::string> JobQueue::QueuedInOrder(size_t limit) const {
  std::vector<std::string> ids;
  ids.reserve(std::min(limit, order_.size()));
  for (const auto& [key, id] : order_) {
    if (ids.size() == limit) break;
    ids.push_back(id);
  }
  return ids;
}

void JobQueue::CountArrayTask(const v1::Job& job, int delta) {
  if (!job.spec().has_array_task() || !CountsAgainstArrayLimit(job.status().state())) return;
  const std::string& array_id = job.spec().array_task().array_id();
  int& count = array_active_[array_id];
  count += delta;
  if (count <= 0) array_active_.erase(array_id);
}

int JobQueue::ArrayActive(absl::string_view array_id) const {
  auto it = array_active_.find(array_id);
  return it == array_active_.end() ? 0 : it->second;
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

std::map<v1::JobStatus::State, int> JobQueue::CountByState() const {
  std::map<v1::JobStatus::State, int> counts;
  for (const auto& [id, job] : jobs_) ++counts[job.status().state()];
  return counts;
}

}  // namespace drover::scheduler
