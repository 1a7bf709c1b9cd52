// How a new drover-agent process takes over an attempt an earlier one left: from what its
// record says (written before each step, see attempt_record.h) and what the node really
// shows (the container as runc sees it, the files of the job folder), it decides whether to
// watch the attempt's processes on, start them, or prepare the attempt again. The one rule:
// processes that may have started are never started again in the same epoch, and a
// container that may hold them is never deleted to make room for a new one. The decision
// is pure logic; JobLeftFiles is the one fact it reads from disk.
#ifndef DROVER_AGENT_TAKEOVER_H_
#define DROVER_AGENT_TAKEOVER_H_

#include <string>

#include "drover/v1/agent.pb.h"

namespace drover::agent {

// The container of the attempt, as the runtime shows it now.
enum class FoundContainer {
  kNone,     // the runtime has no such container
  kCreated,  // created, its processes not started
  kRunning,  // its processes were started and PID 1 runs
  kStopped,  // PID 1 has exited
};

struct TakeOverFacts {
  // The phase of the last report kept in the record (PREPARING when none was).
  v1::AttemptReport::Phase phase = v1::AttemptReport::PREPARING;
  // The record says the agent set out to start the processes (SaveStartIntent).
  bool start_intended = false;
  FoundContainer container = FoundContainer::kNone;
  // Something of the processes is in the job folder's logs/ (a rank's output or exit file,
  // drover-init's result, a metrics file): they ran, however briefly.
  bool processes_left_files = false;
};

enum class TakeOver {
  // Nothing of the attempt's processes ever ran: delete what exists and prepare again; the
  // node reports READY again (droverd sends START again when it already did).
  kPrepareAgain,
  // The container was created and the start was decided (droverd's START came, or the
  // attempt starts when ready) but its processes had not started: start them now, then
  // watch them. A `runc start` of the earlier agent still on its way cannot make them run
  // twice: a created container starts once.
  kStartAndWatch,
  // The processes started (and may have ended): adopt the container and watch it; when it
  // is gone, its exit files tell how the ranks ended.
  kWatch,
};

TakeOver DecideTakeOver(const TakeOverFacts& facts);

// TakeOverFacts::processes_left_files from the job folder's `logs_dir`, which the job could
// write: anything in it, or anything but a real folder where it should be (a symlink the
// job planted), counts as a trace of the processes, so that the job can never make itself
// look as if it never ran (it would be run again). Follows no symlink.
bool JobLeftFiles(const std::string& logs_dir);
std::string TakeOverName(TakeOver decision);

}  // namespace drover::agent

#endif  // DROVER_AGENT_TAKEOVER_H_
