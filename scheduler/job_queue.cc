#include "scheduler/job_queue.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/job_id.h"
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
    if (IsTerminal(job.status().state())) {
      jobs_.erase(it);
      return;
    }
    it->second = job;
  } else {
    if (IsTerminal(job.status().state())) return;
    it = jobs_.emplace(job.id(), job).first;
  }
  if (job.status().state() == v1::JobStatus::QUEUED) order_.emplace(KeyOf(job), job.id());
}

void JobQueue::Reset(const v1::Job& job) {
  auto it = jobs_.find(job.id());
  if (it != jobs_.end()) {
    if (it->second.status().state() == v1::JobStatus::QUEUED) order_.erase(KeyOf(it->second));
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

std::string JobQueue::WaitingReason(const v1::JobSpec& spec, int free_nodes) {
  return absl::StrCat("WAITING_FOR_NODES need=", spec.node_count(), " free=", free_nodes);
}

std::map<v1::JobStatus::State, int> JobQueue::CountByState() const {
  std::map<v1::JobStatus::State, int> counts;
  for (const auto& [id, job] : jobs_) ++counts[job.status().state()];
  return counts;
}

}  // namespace drover::scheduler
