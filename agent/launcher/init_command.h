// InitCommand: the argv of `drover-init` (drover_init.cc), built by drover-agent for a job
// container's PID 1. Header only, plain C++ (drover-init itself links no Abseil). Any thread.
#ifndef DROVER_AGENT_LAUNCHER_INIT_COMMAND_H_
#define DROVER_AGENT_LAUNCHER_INIT_COMMAND_H_

#include <cstdio>
#include <string>
#include <vector>

namespace drover::agent {

struct InitCommand {
  // drover-init as the container sees it (RuncRuntime binds the host binary at
  // RuncRuntime::kContainerInitPath).
  std::string init_path = "/run/drover/init";
  // Where drover-init writes its own exit status for a watcher that is not its parent
  // (RuncRuntime::kContainerExitFile); empty: not written.
  std::string exit_file = "/run/drover/state/init.exit";
  // Folder (container path) of the rank-R.{stdout,stderr,exit} files and init.result.
  std::string log_dir = "/job/logs";
  int first_rank = 0;
  int count = 1;
  // Variables set to the global rank (first_rank + i) and to the local rank (i).
  std::vector<std::string> rank_env = {"DROVER_RANK", "RANK"};
  std::vector<std::string> local_rank_env = {"DROVER_LOCAL_RANK", "LOCAL_RANK"};
  // Time between SIGTERM and SIGKILL when the ranks are stopped.
  double grace_seconds = 10;
  // PROGRAM ARGS... run once per rank (PATH is searched when PROGRAM has no slash). With
  // count 0 (idle PID 1 of an MPI node whose ranks `runc exec` starts) there is none.
  std::vector<std::string> program;
  // Non-empty: the one process is a launcher named so (mpirun), not a rank (--launcher).
  std::string launcher;

  // --rank-env, --local-rank-env and --grace-seconds, as both argvs have them.
  void AppendRankFlags(std::vector<std::string>* args) const {
    for (const std::string& name : rank_env) {
      args->push_back("--rank-env");
      args->push_back(name);
    }
    for (const std::string& name : local_rank_env) {
      args->push_back("--local-rank-env");
      args->push_back(name);
    }
    char grace[32];
    std::snprintf(grace, sizeof grace, "%g", grace_seconds);
    args->push_back("--grace-seconds");
    args->push_back(grace);
  }

  std::vector<std::string> ToArgs() const {
    std::vector<std::string> args = {
        init_path, "--log-dir",          log_dir, "--first-rank", std::to_string(first_rank),
        "--count", std::to_string(count)};
    AppendRankFlags(&args);
    if (!exit_file.empty()) {
      args.push_back("--exit-file");
      args.push_back(exit_file);
    }
    if (!launcher.empty()) {
      args.push_back("--launcher");
      args.push_back(launcher);
    }
    if (count == 0) return args;
    args.push_back("--");
    args.insert(args.end(), program.begin(), program.end());
    return args;
  }

  // The argv of drover-init wrapping one MPI rank, which the launcher starts (not PID 1):
  // the rank and local rank come from the launcher's variables `rank_from` and
  // `local_rank_from` (OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_LOCAL_RANK); `rank_env`,
  // `local_rank_env`, `log_dir` and `program` as for PID 1.
  std::vector<std::string> RankWrapperArgs(const std::string& rank_from,
                                           const std::string& local_rank_from) const {
    std::vector<std::string> args = {init_path,          "--log-dir",
                                     log_dir,            "--rank-from-env",
                                     rank_from,          "--local-rank-from-env",
                                     local_rank_from};
    AppendRankFlags(&args);
    args.push_back("--");
    args.insert(args.end(), program.begin(), program.end());
    return args;
  }
};

}  // namespace drover::agent

#endif  // DROVER_AGENT_LAUNCHER_INIT_COMMAND_H_
