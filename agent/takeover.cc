#include "agent/takeover.h"

#include <filesystem>

namespace drover::agent {

namespace fs = std::filesystem;

TakeOver DecideTakeOver(const TakeOverFacts& facts) {
  const bool reported_started = facts.phase == v1::AttemptReport::RUNNING ||
                                facts.phase == v1::AttemptReport::FINALIZING ||
                                facts.phase == v1::AttemptReport::ENDED;
  switch (facts.container) {
    case FoundContainer::kRunning:
      // Whatever the record says: the processes run.
      return TakeOver::kWatch;
    case FoundContainer::kCreated:
      // The start was decided (a report saying RUNNING has it too) but `runc start` never
      // reached the processes.
      return facts.start_intended || reported_started ? TakeOver::kStartAndWatch
                                                      : TakeOver::kPrepareAgain;
    case FoundContainer::kStopped:
      // PID 1 ended. Without a start intent `runc start` was never called, so only runc's
      // own init died (nothing of the job ran); otherwise the processes may have run.
      if (reported_started || facts.start_intended || facts.processes_left_files) {
        return TakeOver::kWatch;
      }
      return TakeOver::kPrepareAgain;
    case FoundContainer::kNone:
      // Deleted at the attempt's end (the exit files tell how it ended), or never created.
      if (reported_started || facts.processes_left_files) return TakeOver::kWatch;
      // A start intended but no trace of the processes: `runc run` of a one-node attempt
      // died before it made the container.
      return TakeOver::kPrepareAgain;
  }
  return TakeOver::kWatch;
}

bool JobLeftFiles(const std::string& logs_dir) {
  std::error_code error;
  fs::file_status status = fs::symlink_status(logs_dir, error);
  if (error || status.type() == fs::file_type::not_found) return false;  // never made
  if (status.type() != fs::file_type::directory) return true;
  fs::directory_iterator entries(logs_dir, error);
  return error || entries != fs::directory_iterator();
}

std::string TakeOverName(TakeOver decision) {
  switch (decision) {
    case TakeOver::kPrepareAgain:
      return "prepare_again";
    case TakeOver::kStartAndWatch:
      return "start_and_watch";
    case TakeOver::kWatch:
      return "watch";
  }
  return "watch";
}

}  // namespace drover::agent
