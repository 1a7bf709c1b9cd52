#include "server/attempt_fences.h"

#include <algorithm>

namespace drover::server {

void AttemptFences::Set(const std::string& job_id, const scheduler::AttemptState* attempt,
                        const v1::Job* job) {
  absl::MutexLock lock(&mu_);
  if (attempt == nullptr) {
    fences_.erase(job_id);
    return;
  }
  Fence& fence = fences_[job_id];
  fence.epoch = attempt->epoch;
  fence.nodes.clear();
  fence.all.clear();
  for (const std::string& node : attempt->nodes) {
    if (!attempt->ended.contains(node)) fence.nodes.insert(node);
    fence.all.insert(node);
  }
  fence.order = attempt->nodes;
  fence.processes_per_node =
      job == nullptr ? 0 : std::max(1, job->spec().process_count_per_node());
  fence.blobs.clear();
  if (job != nullptr && !job->spec().source_snapshot().empty()) {
    fence.blobs.insert(job->spec().source_snapshot());
  }
  if (!attempt->image_digest.empty()) fence.blobs.insert(attempt->image_digest);
}

bool AttemptFences::HasStream(const std::string& node, const v1::AttemptRef& attempt,
                              int32_t rank, v1::LogStream stream) const {
  absl::MutexLock lock(&mu_);
  auto it = fences_.find(attempt.job_id());
  if (it == fences_.end() || it->second.epoch != attempt.epoch()) return false;
  const Fence& fence = it->second;
  if (fence.processes_per_node == 0) return true;  // the job is unknown here: no layout
  auto at = std::find(fence.order.begin(), fence.order.end(), node);
  if (at == fence.order.end()) return false;
  const int32_t node_rank = static_cast<int32_t>(at - fence.order.begin());
  if (stream == v1::PREPARE || stream == v1::SYSTEM_METRICS) return rank == node_rank;
  return rank >= node_rank * fence.processes_per_node &&
         rank < (node_rank + 1) * fence.processes_per_node;
}

bool AttemptFences::AcceptsLogs(const std::string& node, const v1::AttemptRef& attempt) const {
  absl::MutexLock lock(&mu_);
  auto it = fences_.find(attempt.job_id());
  return it != fences_.end() && it->second.epoch == attempt.epoch() &&
         it->second.nodes.contains(node);
}

bool AttemptFences::IsForeignAttempt(const std::string& node, const v1::AttemptRef& attempt) const {
  absl::MutexLock lock(&mu_);
  auto it = fences_.find(attempt.job_id());
  return it != fences_.end() && it->second.epoch == attempt.epoch() && !it->second.all.contains(node);
}

bool AttemptFences::RunsAnAttempt(const std::string& node) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [job_id, fence] : fences_) {
    if (fence.nodes.contains(node)) return true;
  }
  return false;
}

std::string AttemptFences::JobReadingBlob(const std::string& node, const std::string& digest) const {
  absl::MutexLock lock(&mu_);
  for (const auto& [job_id, fence] : fences_) {
    if (fence.nodes.contains(node) && fence.blobs.contains(digest)) return job_id;
  }
  return "";
}

bool AttemptFences::RunsPartOf(const std::string& node, const std::string& job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = fences_.find(job_id);
  return it != fences_.end() && it->second.nodes.contains(node);
}

absl::flat_hash_set<std::string> AttemptFences::BlobsInUse() const {
  absl::MutexLock lock(&mu_);
  absl::flat_hash_set<std::string> blobs;
  for (const auto& [job_id, fence] : fences_) blobs.insert(fence.blobs.begin(), fence.blobs.end());
  return blobs;
}

}  // namespace drover::server
