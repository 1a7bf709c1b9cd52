// RankExits: see rank_exits.h.
#include "agent/rank_exits.h"

#include <signal.h>

#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/launcher/init_files_read.h"

namespace drover::agent {

RankExits ReadRankExits(const std::string& job_dir, const v1::AssignAttempt& assignment,
                        const std::string& node_name, const ContainerExit& exit) {
  RankExits out;
  for (int i = 0; i < assignment.spec().process_count_per_node(); ++i) {
    int rank = assignment.first_rank() + i;
    v1::RankExit e;
    e.set_rank(rank);
    std::optional<ExitRecord> record =
        ReadExitRecord(job_dir, absl::StrCat("logs/rank-", rank, ".exit"));
    int code = record.has_value() ? record->exit_code : -1;
    int sig = record.has_value() ? record->signal : (exit.signal != 0 ? exit.signal : SIGKILL);
    e.set_exit_code(code);
    e.set_signal(sig);
    e.set_oom_killed(exit.oom_killed && sig == SIGKILL);
    if (record.has_value() && record->end_time_ns > 0) {
      e.mutable_end_time()->set_seconds(record->end_time_ns / 1000000000);
      e.mutable_end_time()->set_nanos(static_cast<int32_t>(record->end_time_ns % 1000000000));
    }
    out.exits.push_back(e);
  }
  // drover-init knows which rank failed first when it started them; under MPI mpirun did,
  // and the rank that failed first is the one that ended first.
  std::optional<InitResult> result = ReadInitResult(job_dir, "logs/init.result");
  if (result.has_value() && result->first_failed_rank >= 0) {
    out.first_failed_rank = result->first_failed_rank;
  } else {
    const v1::RankExit* earliest = nullptr;
    for (const v1::RankExit& e : out.exits) {
      if (e.exit_code() == 0 && e.signal() == 0) continue;
      if (earliest == nullptr ||
          (e.has_end_time() && (!earliest->has_end_time() ||
                                std::make_pair(e.end_time().seconds(), e.end_time().nanos()) <
                                    std::make_pair(earliest->end_time().seconds(),
                                                   earliest->end_time().nanos())))) {
        earliest = &e;
      }
    }
    if (earliest != nullptr) out.first_failed_rank = earliest->rank();
  }
  if (!exit.last_message.empty() && absl::StartsWith(exit.last_message, "drover-init:")) {
    out.launcher_message = absl::StrCat("on ", node_name, ": ", exit.last_message);
  }
  // mpirun failing with no rank of this node failed: say so (a rank elsewhere may have).
  std::optional<ExitRecord> launcher = ReadExitRecord(job_dir, "logs/mpirun.exit");
  if (launcher.has_value() && (launcher->exit_code != 0 || launcher->signal != 0)) {
    out.launcher_message =
        launcher->signal != 0
            ? absl::StrCat("mpirun on ", node_name, " was killed by signal ", launcher->signal)
            : absl::StrCat("mpirun on ", node_name, " exited with code ", launcher->exit_code,
                           "; its messages are in rank ", assignment.first_rank(),
                           "'s stderr");
  }
  return out;
}

}  // namespace drover::agent
