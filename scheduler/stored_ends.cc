#include "scheduler/stored_ends.h"

#include "scheduler/job_state.h"

namespace drover::scheduler {

bool StoredEnds::Settles(const v1::Job& job, int64_t epoch) {
  return IsTerminal(job.status().state()) || job.status().attempt() > epoch ||
         job.status().state() == v1::JobStatus::QUEUED;
}

bool StoredEnds::Reported(const std::string& node, const v1::AttemptRef& attempt,
                          const v1::Job* live) {
  // An attempt the job never had is no end to keep (nothing would ever settle it).
  if (live != nullptr && attempt.epoch() > live->status().attempt()) return false;
  pending_[attempt.job_id()].insert({node, attempt.epoch()});
  // The core decides on the job before it is stored: while the job it holds still runs
  // this attempt, the write that settles the end is ahead. Otherwise that write may be
  // done, in flight, or kept unsaved (a full disk): only the store knows.
  return live == nullptr || Settles(*live, attempt.epoch());
}

SettledEnds StoredEnds::Committed(const v1::Job& job) {
  return Take(job.id(), [&job](int64_t epoch) { return Settles(job, epoch); });
}

SettledEnds StoredEnds::StoredJob(const std::string& job_id, const v1::Job* stored) {
  return Take(job_id, [stored](int64_t epoch) {
    return stored == nullptr || Settles(*stored, epoch);
  });
}

size_t StoredEnds::pending() const {
  size_t n = 0;
  for (const auto& [job, ends] : pending_) n += ends.size();
  return n;
}

template <typename Pred>
SettledEnds StoredEnds::Take(const std::string& job_id, Pred settled) {
  SettledEnds out;
  auto it = pending_.find(job_id);
  if (it == pending_.end()) return out;
  for (auto end = it->second.begin(); end != it->second.end();) {
    if (!settled(end->second)) {
      ++end;
      continue;
    }
    v1::AttemptRef ref;
    ref.set_job_id(job_id);
    ref.set_epoch(end->second);
    out[end->first].push_back(std::move(ref));
    end = it->second.erase(end);
  }
  if (it->second.empty()) pending_.erase(it);
  return out;
}

}  // namespace drover::scheduler
