// Test helpers for real processes: temporary folders, running a command to completion with
// its output captured, and droverd started as a child process. Used from one test thread.
#ifndef DROVER_TESTS_TESTING_SUBPROCESS_H_
#define DROVER_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/temp_dir.h"

namespace drover::testing {

struct CommandResult {
  int exit_code = -1;  // -1 when killed by a signal or timed out
  std::string out;
  std::string err;
};

// Runs argv[0] (a path) with `argv` and extra `env` entries ("NAME=value", added to this
// process's environment; "NAME=" with an empty value removes NAME), feeding `input` on
// stdin. Kills it and returns DEADLINE_EXCEEDED after `timeout`.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::vector<std::string>& env = {},
                                         const std::string& input = "",
                                         absl::Duration timeout = absl::Seconds(60));

// Whether the test's droverds keep their state in PostgreSQL (DROVER_TEST_STORE=postgres,
// see DroverdProcess::Start): then their state folder holds no drover.db.
bool StateOnPostgres();

// droverd, started as a child process listening on 127.0.0.1 with a port the kernel
// picked. Its stderr goes to `<files_dir>/droverd.log`.
class DroverdProcess {
 public:
  // Starts the droverd built with the tests (or $DROVER_DROVERD) with `--state-dir
  // state_dir` plus `extra_args`, and waits up to 30 s until it listens. Its log and
  // address file go to `files_dir`, by default `state_dir` (a test that fills the state
  // disk keeps them elsewhere). droverd knows the test admin token (test_tls.h) unless
  // `extra_args` give --bootstrap-admin-token-file; its admin socket is
  // `<state_dir>/admin.sock`. With DROVER_TEST_STORE=postgres (and no --store in
  // `extra_args`) its state database is a PostgreSQL one on the process's test server
  // (postgres_server.h), the same database for every start on `state_dir`.
  // Whose certificate droverd serves: one from the test CA (test_tls.h), which every
  // client and agent of the test trusts, or droverd's own cluster CA in its state folder.
  enum class Tls { kTestCa, kOwnCa };
  static absl::StatusOr<std::unique_ptr<DroverdProcess>> Start(
      const std::string& state_dir, const std::vector<std::string>& extra_args = {},
      const std::string& files_dir = "", Tls tls = Tls::kTestCa);
  // Kills (SIGKILL) and reaps droverd if it still runs.
  ~DroverdProcess();

  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }
  // The CA certificate (PEM file) clients trust to reach this droverd.
  const std::string& ca_file() const { return ca_file_; }
  pid_t pid() const { return pid_; }
  std::string log_path() const;
  std::string ReadLog() const;

  // Sends `signal` to droverd (only to this child, by pid).
  void Signal(int signal);
  // Waits until droverd exits and returns its raw wait status; DEADLINE_EXCEEDED after
  // `timeout`.
  absl::StatusOr<int> Wait(absl::Duration timeout);

 private:
  DroverdProcess(pid_t pid, std::string files_dir, std::string address, std::string ca_file)
      : pid_(pid),
        files_dir_(std::move(files_dir)),
        address_(std::move(address)),
        ca_file_(std::move(ca_file)) {}
  pid_t pid_;
  bool reaped_ = false;
  std::string files_dir_;
  std::string address_;
  std::string ca_file_;
};

// drover-agent, started as a child process (as root: it runs runc) for node `node_name`
// with its work folder `work_dir`. Its stderr goes to `<work_dir>.log`.
class AgentProcess {
 public:
  // The agent stops its jobs when it stops (`--jobs-on-exit stop`) unless `extra_args` say
  // otherwise, and trusts the test CA (test_tls.h) unless they give `--ca`. `exec_prefix`, when not empty, goes before the agent's argv: e.g.
  // `TestHosts::ExecPrefix(k)` runs it on a test host. It must exec the agent in place so
  // that pid() is the agent's.
  static absl::StatusOr<std::unique_ptr<AgentProcess>> Start(
      const std::string& scheduler, const std::string& node_name, const std::string& work_dir,
      const std::vector<std::string>& extra_args = {},
      const std::vector<std::string>& exec_prefix = {});
  // SIGTERM, then SIGKILL after 20 s; reaps.
  ~AgentProcess();
  pid_t pid() const { return pid_; }
  std::string ReadLog() const;
  void Signal(int signal);
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // For failure messages: "running (state S)", "stopped (state T)", "exited with code N",
  // "killed by signal N (Killed)"; never reaps it.
  std::string Describe() const;

 private:
  AgentProcess(pid_t pid, std::string log) : pid_(pid), log_(std::move(log)) {}
  pid_t pid_;
  bool reaped_ = false;
  std::string log_;
};

// Starts `args` (args[0] a path) with stdin and stdout on /dev/null and stderr appended to
// `log_path`. Returns the child's pid.
absl::StatusOr<pid_t> SpawnDaemon(const std::vector<std::string>& args,
                                  const std::string& log_path);

// Path of a program built alongside the tests: the value of environment variable
// `env_override` if set, else `built_path`.
std::string ProgramPath(const char* env_override, const char* built_path);

// The OCI runtime the tests' containers run with: `$DROVER_TEST_RUNC` (a path, for example
// /usr/bin/crun) if set, else /usr/sbin/runc. Agents the tests start get it as `--runc`, the
// runtime tests open RuncRuntime with it, and the tests ask it what is left
// (docs/development.md, "Testing with crun").
std::string TestOciRuntime();

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_SUBPROCESS_H_
