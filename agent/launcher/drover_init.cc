// drover-init: PID 1 of every job container. Starts the node's ranks of one attempt, sends
// each rank's stdout and stderr to files, reaps every child (orphans too), writes each rank's
// exit status, and stops the other ranks when one fails (coordinated failure).
//
//   drover-init --log-dir DIR --first-rank N --count P [--rank-env NAME]...
//               [--local-rank-env NAME]... [--grace-seconds S] [--exit-file PATH]
//               [--launcher NAME] -- PROGRAM ARGS...
//   drover-init --log-dir DIR --count 0 [--grace-seconds S] [--exit-file PATH]
//   drover-init --log-dir DIR --rank-from-env VAR [--local-rank-from-env VAR]
//               [--rank-env NAME]... [--local-rank-env NAME]... -- PROGRAM ARGS...
//
// Modes, for the distributed backends (docs/containers.md):
//   --launcher NAME     the one process is a launcher (mpirun) rather than a rank: its output
//                       goes to rank-N's files, its exit status to DIR/NAME.exit, and no rank
//                       variables are set for it.
//   --count 0           idle PID 1 of a node whose ranks someone else starts (MPI's remote
//                       launches through `runc exec`): reaps them, and on SIGTERM stops every
//                       process of the container; exits 0.
//   --rank-from-env VAR a wrapper around one MPI rank (not PID 1): the rank comes from VAR
//                       (OMPI_COMM_WORLD_RANK), the local rank from --local-rank-from-env;
//                       writes that rank's files like PID 1 would, but no init.result or
//                       exit file, since several wrappers share the folder. Exits with the
//                       rank's exit code (128+signal), so the launcher sees the failure.
//
// Files it writes (see docs/containers.md):
//   DIR/rank-R.stdout, DIR/rank-R.stderr  each rank's output (O_APPEND, never a pipe)
//   DIR/rank-R.exit                       "exit_code=<n> signal=<s> end_time_ns=<t>" when
//                                         rank R ended (t: CLOCK_REALTIME, for ordering the
//                                         failures of several nodes)
//   DIR/init.result                       "first_failed_rank=<R> exit_code=<n> signal=<s>"
//   PATH (--exit-file)                    "exit_code=<n> signal=0": drover-init's own exit
//                                         code, so a watcher that is not our parent learns it
// The .exit, .result and exit files appear atomically (written to a temporary, renamed).
//
// Exit code: 0 when every rank exited 0, else the first failing rank's exit code (128+signal
// when a signal ended it); 127 on bad usage.
//
// Statically linked so it runs inside any image: plain C++ and libc only (no Abseil, nothing
// that needs NSS). Single threaded: every signal is blocked and taken with sigtimedwait(2).
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <string>
#include <vector>

#include "agent/launcher/init_files.h"

namespace {

constexpr int kUsageExit = 127;
constexpr int kExecFailedExit = 127;

struct Options {
  std::string log_dir;
  long first_rank = 0;
  long count = -1;
  std::vector<std::string> rank_env;
  std::vector<std::string> local_rank_env;
  double grace_seconds = 10;
  std::string exit_file;
  std::string launcher;             // --launcher NAME
  bool wrapper = false;             // --rank-from-env given
  std::string local_rank_from_env;  // --local-rank-from-env
  std::vector<std::string> program;
};

struct Rank {
  long rank = 0;
  pid_t pid = 0;  // also its process group id
  bool running = false;
};

void PrintUsage() {
  fprintf(stderr,
          "usage: drover-init --log-dir DIR --first-rank N --count P [--rank-env NAME]...\n"
          "                   [--local-rank-env NAME]... [--grace-seconds S]\n"
          "                   [--exit-file PATH] [--launcher NAME] -- PROGRAM ARGS...\n"
          "       drover-init --log-dir DIR --count 0 [--grace-seconds S] [--exit-file PATH]\n"
          "       drover-init --log-dir DIR --rank-from-env VAR [--local-rank-from-env VAR]\n"
          "                   [--rank-env NAME]... [--local-rank-env NAME]... -- PROGRAM ARGS...\n");
}

bool ParseLong(const char* text, long* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = value;
  return true;
}

bool ParseDouble(const char* text, double* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  double value = strtod(text, &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(value)) return false;
  *out = value;
  return true;
}

bool ValidEnvName(const std::string& name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name) {
    bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

// Returns an empty string on success, else what is wrong with the command line.
std::string ParseArgs(int argc, char** argv, Options* options) {
  int i = 1;
  for (; i < argc; ++i) {
    std::string flag = argv[i];
    if (flag == "--") {
      ++i;
      break;
    }
    std::string value;
    size_t eq = flag.find('=');
    bool inline_value = flag.rfind("--", 0) == 0 && eq != std::string::npos;
    if (inline_value) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else {
      if (i + 1 >= argc) return "flag " + flag + " needs a value";
      value = argv[++i];
    }
    if (flag == "--log-dir") {
      options->log_dir = value;
    } else if (flag == "--first-rank") {
      if (!ParseLong(value.c_str(), &options->first_rank) || options->first_rank < 0) {
        return "--first-rank wants a number >= 0, got '" + value + "'";
      }
    } else if (flag == "--count") {
      if (!ParseLong(value.c_str(), &options->count) || options->count < 0 ||
          options->count > 4096) {
        return "--count wants a number from 0 to 4096, got '" + value + "'";
      }
    } else if (flag == "--rank-from-env") {
      const char* text = getenv(value.c_str());
      if (!ValidEnvName(value)) return flag + " wants a variable name, got '" + value + "'";
      if (!ParseLong(text, &options->first_rank) || options->first_rank < 0) {
        return "--rank-from-env " + value + ": the variable holds no rank (" +
               (text == nullptr ? std::string("unset") : "'" + std::string(text) + "'") + ")";
      }
      options->wrapper = true;
    } else if (flag == "--local-rank-from-env") {
      if (!ValidEnvName(value)) return flag + " wants a variable name, got '" + value + "'";
      options->local_rank_from_env = value;
    } else if (flag == "--launcher") {
      if (!ValidEnvName(value)) return flag + " wants a name of [A-Za-z0-9_], got '" + value + "'";
      options->launcher = value;
    } else if (flag == "--rank-env" || flag == "--local-rank-env") {
      if (!ValidEnvName(value)) return flag + " wants a variable name, got '" + value + "'";
      (flag == "--rank-env" ? options->rank_env : options->local_rank_env).push_back(value);
    } else if (flag == "--grace-seconds") {
      if (!ParseDouble(value.c_str(), &options->grace_seconds) || options->grace_seconds < 0 ||
          options->grace_seconds > 86400) {
        return "--grace-seconds wants seconds from 0 to 86400, got '" + value + "'";
      }
    } else if (flag == "--exit-file") {
      options->exit_file = value;
    } else {
      return "unknown flag '" + flag + "'";
    }
  }
  for (; i < argc; ++i) options->program.push_back(argv[i]);
  if (options->log_dir.empty()) return "--log-dir is required";
  if (options->wrapper) {
    if (options->count > 1) return "--rank-from-env runs one rank: --count must be 1";
    options->count = 1;
  }
  if (options->count < 0) return "--count is required";
  if (!options->launcher.empty() && options->count != 1) return "--launcher needs --count 1";
  if (options->count == 0 && !options->program.empty()) {
    return "--count 0 runs no program; drop the one after '--'";
  }
  if (options->count > 0 && options->program.empty()) return "no program given after '--'";
  return "";
}

// Writes `content` to `path` through a temporary in the same folder and rename(2), so a
// reader sees the whole file or none. Returns false (errno set) on failure.
bool WriteFileAtomically(const std::string& path, const std::string& content) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::string temp = dir + "/." + base + ".tmp";
  int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      close(fd);
      unlink(temp.c_str());
      errno = saved;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    unlink(temp.c_str());
    return false;
  }
  return rename(temp.c_str(), path.c_str()) == 0;
}

void WriteOrComplain(const std::string& path, const std::string& content) {
  if (!WriteFileAtomically(path, content)) {
    fprintf(stderr, "drover-init: cannot write %s: %s\n", path.c_str(), strerror(errno));
  }
}

double NowSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

std::string StatusLine(int exit_code, int signal) {
  return drover::agent::FormatExitRecord({.exit_code = exit_code, .signal = signal});
}

// A rank's .exit line: its status and when it ended (wall clock, comparable across nodes).
std::string RankStatusLine(int exit_code, int signal) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return drover::agent::FormatExitRecord(
      {.exit_code = exit_code,
       .signal = signal,
       .end_time_ns = static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec});
}

// Runs in the child between fork and exec; the parent is single threaded, so the usual
// libc calls are safe here.
[[noreturn]] void ExecRank(const Options& options, long index) {
  setpgid(0, 0);
  long rank = options.first_rank + index;
  std::string prefix = options.log_dir + "/rank-" + std::to_string(rank);
  std::string out_path = prefix + ".stdout";
  std::string err_path = prefix + ".stderr";
  int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0 || err < 0) {
    fprintf(stderr, "drover-init: rank %ld: cannot open %s: %s\n", rank,
            out < 0 ? out_path.c_str() : err_path.c_str(), strerror(errno));
    _exit(kExecFailedExit);
  }
  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in >= 0) dup2(in, 0);
  dup2(out, 1);
  dup2(err, 2);

  std::string rank_text = std::to_string(rank);
  std::string local_text = std::to_string(index);
  if (!options.local_rank_from_env.empty()) {
    const char* local = getenv(options.local_rank_from_env.c_str());
    local_text = local != nullptr ? local : "0";
  }
  // A launcher is not a rank: its ranks get their variables from their own wrappers.
  if (options.launcher.empty()) {
    for (const std::string& name : options.rank_env) setenv(name.c_str(), rank_text.c_str(), 1);
    for (const std::string& name : options.local_rank_env) {
      setenv(name.c_str(), local_text.c_str(), 1);
    }
  }

  // Signals: back to defaults, nothing blocked (exec keeps the mask and ignored signals).
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    signal(sig, SIG_DFL);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);

  std::vector<char*> args;
  for (const std::string& arg : options.program) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  execvp(args[0], args.data());
  int saved = errno;
  dprintf(2, "drover-init: cannot execute '%s': %s\n", args[0], strerror(saved));
  _exit(kExecFailedExit);
}

class Init {
 public:
  explicit Init(Options options) : options_(std::move(options)) {}

  int Run() {
    if (mkdir(options_.log_dir.c_str(), 0755) != 0 && errno != EEXIST) {
      fprintf(stderr, "drover-init: cannot create log folder %s: %s\n", options_.log_dir.c_str(),
              strerror(errno));
      return kUsageExit;
    }
    // Every signal is taken synchronously; PID 1 of a PID namespace would otherwise ignore
    // the ones without a handler anyway.
    sigprocmask(SIG_SETMASK, &all_signals_, nullptr);
    // The handlers never run (the signals stay blocked and are taken by sigtimedwait), but
    // they show in /proc/1/status as caught: RuncRuntime::Signal waits for that before it
    // signals a just-started container, since PID 1 of a namespace drops a signal it neither
    // catches nor blocks, and sigtimedwait hides the blocked mask while it waits.
    struct sigaction action = {};
    action.sa_handler = [](int) {};
    sigemptyset(&action.sa_mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD}) {
      sigaction(sig, &action, nullptr);
    }

    for (long i = 0; i < options_.count; ++i) {
      Rank rank;
      rank.rank = options_.first_rank + i;
      pid_t pid = fork();
      if (pid < 0) {
        fprintf(stderr, "drover-init: fork for rank %ld: %s\n", rank.rank, strerror(errno));
        // This rank could not start (as if it could not be executed); the ranks started so
        // far are stopped.
        RecordRankExit(rank, kExecFailedExit, 0);
        BeginStop(SIGTERM);
        break;
      }
      if (pid == 0) ExecRank(options_, i);
      setpgid(pid, pid);  // also done by the child; whichever runs first wins the race
      rank.pid = pid;
      rank.running = true;
      ranks_.push_back(rank);
    }
    Loop();
    return Finish();
  }

 private:
  int RunningCount() const {
    int n = 0;
    for (const Rank& rank : ranks_) n += rank.running ? 1 : 0;
    return n;
  }

  // Whether the loop goes on: while ranks run; with --count 0 (idle), until a stop was asked
  // for and every process of the container is gone.
  bool KeepWaiting() const {
    if (options_.count == 0) return !stopping_ || has_children_;
    return RunningCount() > 0;
  }

  void Loop() {
    ReapChildren();
    while (KeepWaiting()) {
      timespec timeout = {1, 0};
      bool timed = false;
      if (stopping_ && !killed_) {
        double left = kill_deadline_ - NowSeconds();
        if (left <= 0) {
          KillAll();
          continue;
        }
        timed = true;
        timeout.tv_sec = static_cast<time_t>(left);
        timeout.tv_nsec = static_cast<long>((left - static_cast<double>(timeout.tv_sec)) * 1e9);
      }
      siginfo_t info;
      int sig = sigtimedwait(&all_signals_, &info, timed ? &timeout : nullptr);
      if (sig < 0) continue;  // EAGAIN (deadline) or EINTR: the loop re-checks
      if (sig == SIGCHLD) {
        ReapChildren();
      } else if (sig == SIGTERM || sig == SIGINT) {
        BeginStop(sig);
      } else if (sig == SIGHUP || sig == SIGQUIT || sig == SIGUSR1 || sig == SIGUSR2) {
        // Passed on to the ranks as is; they decide what it means.
        for (const Rank& rank : ranks_) {
          if (rank.running) kill(-rank.pid, sig);
        }
      }
      // Other signals (SIGPIPE, SIGALRM, ...) are dropped.
    }
  }

  void ReapChildren() {
    while (true) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) {  // 0: none ready; -1 ECHILD: no children left
        has_children_ = pid == 0;
        return;
      }
      for (Rank& rank : ranks_) {
        if (rank.pid != pid || !rank.running) continue;
        rank.running = false;
        if (WIFEXITED(status)) {
          RecordRankExit(rank, WEXITSTATUS(status), 0);
        } else if (WIFSIGNALED(status)) {
          RecordRankExit(rank, -1, WTERMSIG(status));
        }
        break;
      }
      // Orphans re-parented to us are reaped and forgotten.
    }
  }

  void RecordRankExit(const Rank& rank, int exit_code, int signal) {
    std::string name =
        options_.launcher.empty() ? "rank-" + std::to_string(rank.rank) : options_.launcher;
    WriteOrComplain(options_.log_dir + "/" + name + ".exit", RankStatusLine(exit_code, signal));
    if ((exit_code != 0 || signal != 0) && first_failed_rank_ < 0) {
      first_failed_rank_ = rank.rank;
      failed_exit_code_ = exit_code;
      failed_signal_ = signal;
      BeginStop(SIGTERM);
    }
  }

  // Sends `sig` to every running rank's process group and arms the SIGKILL deadline.
  void BeginStop(int sig) {
    if (stopping_) return;
    stopping_ = true;
    kill_deadline_ = NowSeconds() + options_.grace_seconds;
    for (const Rank& rank : ranks_) {
      if (rank.running) kill(-rank.pid, sig);
    }
    // Idle PID 1: the processes are whatever `runc exec` started (MPI's daemons and ranks).
    if (options_.count == 0 && getpid() == 1) kill(-1, sig);
  }

  void KillAll() {
    killed_ = true;
    for (const Rank& rank : ranks_) {
      if (rank.running) kill(-rank.pid, SIGKILL);
    }
    // As PID 1 of a container, also whatever left the ranks' process groups (kill(-1) from
    // PID 1 of a namespace spares only PID 1 itself). Never on the host.
    if (getpid() == 1) kill(-1, SIGKILL);
  }

  int Finish() {
    int code = 0;
    if (options_.wrapper) {
      // The rank's .exit file is written; init.result belongs to PID 1.
      return failed_signal_ != 0 ? 128 + failed_signal_ : failed_exit_code_;
    }
    if (first_failed_rank_ >= 0 && !options_.launcher.empty()) {
      // The launcher is not a rank: which rank failed is in the ranks' own .exit files.
      code = failed_signal_ != 0 ? 128 + failed_signal_ : failed_exit_code_;
      WriteOrComplain(options_.log_dir + "/init.result",
                      drover::agent::FormatInitResult({.first_failed_rank = -1,
                                                       .exit_code = failed_exit_code_,
                                                       .signal = failed_signal_}));
    } else if (first_failed_rank_ >= 0) {
      code = failed_signal_ != 0 ? 128 + failed_signal_ : failed_exit_code_;
      WriteOrComplain(options_.log_dir + "/init.result",
                      drover::agent::FormatInitResult(
                          {.first_failed_rank = static_cast<int>(first_failed_rank_),
                           .exit_code = failed_exit_code_,
                           .signal = failed_signal_}));
    } else {
      WriteOrComplain(options_.log_dir + "/init.result", drover::agent::FormatInitResult({}));
    }
    if (!options_.exit_file.empty()) WriteOrComplain(options_.exit_file, StatusLine(code, 0));
    return code;
  }

  Options options_;
  std::vector<Rank> ranks_;
  sigset_t all_signals_ = [] {
    sigset_t set;
    sigfillset(&set);
    return set;
  }();
  bool stopping_ = false;
  bool killed_ = false;
  bool has_children_ = false;
  double kill_deadline_ = 0;
  long first_failed_rank_ = -1;
  int failed_exit_code_ = 0;
  int failed_signal_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Options options;
  std::string problem = ParseArgs(argc, argv, &options);
  if (!problem.empty()) {
    PrintUsage();
    // Last, so that it is the line the agent quotes.
    fprintf(stderr, "drover-init: %s\n", problem.c_str());
    return kUsageExit;
  }
  return Init(std::move(options)).Run();
}
