#include "server/job_events.h"

namespace drover::server {

bool JobEventHub::Subscribe(const std::string& job_id, JobSubscriber* subscriber) {
  absl::MutexLock lock(&mu_);
  if (closed_) return false;
  subscribers_[job_id][subscriber] = true;
  return true;
}

void JobEventHub::Unsubscribe(const std::string& job_id, JobSubscriber* subscriber) {
  absl::MutexLock lock(&mu_);
  auto it = subscribers_.find(job_id);
  if (it == subscribers_.end()) return;
  it->second.erase(subscriber);
  if (it->second.empty()) subscribers_.erase(it);
}

void JobEventHub::Publish(const v1::Job& job) {
  absl::MutexLock lock(&mu_);
  auto it = subscribers_.find(job.id());
  if (it == subscribers_.end()) return;
  for (auto& [subscriber, unused] : it->second) subscriber->OnJobChanged(job);
}

void JobEventHub::Close(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (auto& [job_id, subscribers] : subscribers_) {
    for (auto& [subscriber, unused] : subscribers) subscriber->OnHubClosed(status);
  }
  subscribers_.clear();
}

}  // namespace drover::server
