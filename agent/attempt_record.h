// What drover-agent keeps on disk of each attempt it was given, so that a later agent
// process (after a restart, SIGKILL included) can take the attempt over: the assignment as
// droverd sent it, and the attempt's last report (its phase, the GPUs it holds, and once it
// ended, the final report droverd may not have heard yet). One folder per attempt,
// `<work>/records/<job>-<epoch>/`, mode 0700: the assignment may hold datastore secrets.
//
// Files are replaced atomically (write, fsync, rename): a reader sees the old or the new
// one, never half of one. Used from the attempts' threads and at start-up.
//
// A record is written before the step it describes (intent first): the start intent is on
// disk before `runc start` (or `runc run`) is called, so a later agent never mistakes a
// container whose processes may have started for one that never ran (see takeover.h).
//
// Durability. An agent process that restarts (SIGKILL included) reads every file as it was
// last replaced, whatever was flushed: the page cache outlives the process. What a power cut
// or a kernel crash may undo is only what was not flushed, and after one no container of the
// attempt is left. So what a rebooted node needs to tell the truth is flushed to the disk:
// the assignment, the start intent (with its folder), the RUNNING report (with no container
// left, it is what says the processes ran, so they are not started again in the same epoch:
// takeover.h) and the ENDED report (how the attempt ended, which droverd may not have stored
// yet). The other reports (PREPARING with its reasons, READY, FINALIZING) are replaced
// without a flush: after a power cut the record may show the phase before, which takeover.h
// decides the same way (READY and PREPARING both mean "not started"; RUNNING, flushed
// before FINALIZING, already says "started"). Two fewer disk flushes per attempt, one of
// them (READY) between the assignment and the processes' start.
#ifndef DROVER_AGENT_ATTEMPT_RECORD_H_
#define DROVER_AGENT_ATTEMPT_RECORD_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "drover/v1/agent.pb.h"

namespace drover::agent {

struct AttemptRecord {
  v1::AssignAttempt assignment;
  // The last report written; phase PREPARING when none was.
  v1::AttemptReport report;
  // Whether the agent set out to start the attempt's processes (SaveStartIntent): they may
  // have started, even though no report says RUNNING yet.
  bool start_intended = false;
};

// Whether `attempt` may become part of a path or container id (`<job>-<epoch>` folders, the
// container `drover-<job>-<epoch>-...`): its job id is of droverd's form, "j-<number>", and
// its epoch not negative. droverd makes ids, but the agent does not trust what reaches it:
// INVALID_ARGUMENT naming the id otherwise.
absl::Status CheckAttemptRef(const v1::AttemptRef& attempt);

// `<work_dir>/records/<job>-<epoch>`.
std::string AttemptRecordDir(const std::string& work_dir, const v1::AttemptRef& attempt);

// Creates the attempt's record with its assignment. INVALID_ARGUMENT when CheckAttemptRef
// refuses its attempt (nothing is created); UNAVAILABLE when it cannot be written.
absl::Status SaveAssignment(const std::string& work_dir, const v1::AssignAttempt& assignment);
// Replaces the attempt's last report. UNAVAILABLE when it cannot be written.
absl::Status SaveReport(const std::string& work_dir, const v1::AttemptReport& report);
// Records that the attempt's processes are about to be started; called before the runtime is
// asked to start them, and nothing is started when it fails. UNAVAILABLE when it cannot be
// written (NOT_FOUND when the attempt has no record).
absl::Status SaveStartIntent(const std::string& work_dir, const v1::AttemptRef& attempt);
// Removes the attempt's record (droverd has its end).
void RemoveAttemptRecord(const std::string& work_dir, const v1::AttemptRef& attempt);

// Every record under `work_dir`, by job and epoch. A folder that cannot be read (no or a
// damaged assignment: the agent died while creating it) is removed and skipped.
std::vector<AttemptRecord> LoadAttemptRecords(const std::string& work_dir);

}  // namespace drover::agent

#endif  // DROVER_AGENT_ATTEMPT_RECORD_H_
