// What the Agent (agent.h) keeps of attempts across its own restarts and after their end:
// the leftovers of an earlier agent process removed, its attempts taken over from their
// records, and ended attempts reduced to their last report until droverd has stored it.
#include <filesystem>
#include <set>

#include "agent/agent.h"
#include "agent/attempt_record.h"
#include "agent/rclone.h"
#include "common/log.h"

namespace drover::agent {

void Agent::RemoveLeftovers(const std::vector<v1::AttemptRef>& keep) {
  std::set<std::string> kept_containers, kept_dirs, kept_mounts;
  for (const v1::AttemptRef& ref : keep) {
    kept_containers.insert(Attempt::ContainerId(options_.work_dir, ref));
    kept_dirs.insert(Attempt::Dir(options_.work_dir, ref));
    kept_mounts.insert(AttemptMountDir(options_.work_dir, ref));
  }
  if (absl::StatusOr<std::vector<ContainerInfo>> left = runtime_.List(); left.ok()) {
    for (const ContainerInfo& container : *left) {
      if (kept_containers.contains(container.id)) continue;
      Log(LogLevel::kWarning, "stale_container_removed", {{"container", container.id}});
      (void)runtime_.Delete(container.id);
    }
  }
  // rclone mounts go first: the folders below are removed recursively, which would delete
  // through a mount still there. Their mount points are removed one by one, only if empty.
  // Attempts taken over keep theirs, which their rclone serves on (see
  // JobDataContext::recovering); a mount point must not even be removed while it is
  // mounted in another namespace (an earlier agent's), which would detach that mount.
  UnmountLeftoverRcloneMounts(RcloneTools{.clock = &clock_}, options_.work_dir, kept_mounts);
  std::error_code error;
  for (const auto& attempt :
       std::filesystem::directory_iterator(options_.work_dir + "/mounts", error)) {
    if (kept_mounts.contains(attempt.path().string())) continue;
    std::error_code ignored;
    for (const auto& mountpoint : std::filesystem::directory_iterator(attempt.path(), ignored)) {
      std::filesystem::remove(mountpoint.path(), ignored);
    }
    std::filesystem::remove(attempt.path(), ignored);
  }
  for (const auto& dir :
       std::filesystem::directory_iterator(options_.work_dir + "/attempts", error)) {
    if (kept_dirs.contains(dir.path().string())) continue;
    std::error_code ignored;
    std::filesystem::remove_all(dir.path(), ignored);
  }
  environments_.RemoveLeftovers();  // after the containers that built them are gone
}

void Agent::Recover() {
  std::vector<AttemptRecord> records = LoadAttemptRecords(options_.work_dir);
  std::vector<v1::AttemptRef> keep;
  for (const AttemptRecord& record : records) {
    if (record.report.phase() != v1::AttemptReport::ENDED) keep.push_back(record.assignment.attempt());
  }
  RemoveLeftovers(keep);
  absl::MutexLock lock(&mu_);
  for (AttemptRecord& record : records) {
    const v1::AttemptRef& ref = record.assignment.attempt();
    if (record.report.phase() == v1::AttemptReport::ENDED) {
      // Kept until droverd has surely had its end (see ForgetEnded).
      ended_[Key(ref)] = Ended{.report = record.report.SerializeAsString(), .since = clock_.Now()};
      continue;
    }
    Log(LogLevel::kInfo, "attempt_taken_over",
        {{"job", ref.job_id()}, {"epoch", ref.epoch()},
         {"phase", v1::AttemptReport::Phase_Name(record.report.phase())}});
    auto attempt = std::make_unique<Attempt>(MakeAttemptEnv(), record.assignment);
    attempt->Resume(record.report, record.start_intended);
    attempts_[Key(ref)] = std::move(attempt);
  }
}

std::vector<std::unique_ptr<Attempt>> Agent::CollectFinished() {
  std::vector<std::unique_ptr<Attempt>> finished;
  for (const std::string& key : finished_) {
    auto it = attempts_.find(key);
    if (it == attempts_.end()) continue;
    if (stored_.erase(key) > 0) {
      RemoveAttemptRecord(options_.work_dir, it->second->ref());
    } else {
      ended_[key] = Ended{.report = it->second->LastReport().SerializeAsString(),
                          .since = clock_.Now()};
    }
    finished.push_back(std::move(it->second));
    attempts_.erase(it);
  }
  finished_.clear();
  return finished;
}

void Agent::ForgetEnded(absl::Duration keep) {
  for (auto it = ended_.begin(); it != ended_.end();) {
    if (clock_.Now() - it->second.since <= keep) {
      ++it;
      continue;
    }
    v1::AttemptReport report;
    if (report.ParseFromString(it->second.report)) {
      RemoveAttemptRecord(options_.work_dir, report.attempt());
    }
    it = ended_.erase(it);
  }
}

}  // namespace drover::agent
