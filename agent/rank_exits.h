// RankExits: how the ranks of one node of an attempt ended, from the files drover-init left
// in the job folder (read through launcher/init_files_read.h, beside their writer) and the
// container's own end: each rank's exit, the rank that failed first, and what to tell the
// user when the launcher (drover-init itself, or mpirun) failed. Pure apart from reading
// those files; any thread.
#ifndef DROVER_AGENT_RANK_EXITS_H_
#define DROVER_AGENT_RANK_EXITS_H_

#include <string>
#include <vector>

#include "agent/runtime/container_runtime.h"
#include "drover/v1/agent.pb.h"

namespace drover::agent {

struct RankExits {
  std::vector<v1::RankExit> exits;  // one per rank of the node, in rank order
  int first_failed_rank = -1;       // -1: none failed
  // Why the launcher failed ("on <node>: drover-init: ...", "mpirun on <node> exited with
  // code 1; ..."); empty when it did not.
  std::string launcher_message;
};

// The ranks of node `assignment.node_rank()` of the attempt, whose container ended as
// `exit`, from the files in `job_dir`/logs. A rank without an exit file (killed before
// drover-init could write it, or under MPI never started, or the job wrote something else
// there) ended by the container's signal, SIGKILL when it had none.
RankExits ReadRankExits(const std::string& job_dir, const v1::AssignAttempt& assignment,
                        const std::string& node_name, const ContainerExit& exit);

}  // namespace drover::agent

#endif  // DROVER_AGENT_RANK_EXITS_H_
