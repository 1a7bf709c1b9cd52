#include "tests/testing/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/test_tls.h"

namespace drover::testing {
namespace {

extern "C" char** environ;

std::vector<std::string> MergedEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  for (const std::string& entry : extra) {
    std::string name = entry.substr(0, entry.find('='));
    std::erase_if(env, [&](const std::string& e) { return absl::StartsWith(e, name + "="); });
    if (entry.size() > name.size() + 1) env.push_back(entry);
  }
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::vector<std::string>& env,
                                         const std::string& input, absl::Duration timeout) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 ||
      pipe2(err_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  std::vector<std::string> args = argv;
  std::vector<std::string> environment = MergedEnvironment(env);
  std::vector<char*> c_args = CStrings(args);
  std::vector<char*> c_env = CStrings(environment);
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execve(c_args[0], c_args.data(), c_env.data());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  // Small inputs fit the pipe buffer; tests never feed more.
  if (!input.empty()) {
    ssize_t ignored = write(in_pipe[1], input.data(), input.size());
    (void)ignored;
  }
  close(in_pipe[1]);

  CommandResult result;
  absl::Time deadline = absl::Now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  bool timed_out = false;
  while (open_fds > 0) {
    int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (wait_ms <= 0) {
      timed_out = true;
      break;
    }
    if (poll(fds, 2, wait_ms) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[8192];
      ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buffer, n);
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  if (timed_out) kill(pid, SIGKILL);
  for (pollfd& fd : fds) {
    if (fd.fd >= 0) close(fd.fd);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        "'", argv[0], "' did not finish within ", absl::FormatDuration(timeout),
        "; stdout: ", result.out, " stderr: ", result.err));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string ProgramPath(const char* env_override, const char* built_path) {
  const char* from_env = getenv(env_override);
  return from_env != nullptr && *from_env != '\0' ? from_env : built_path;
}

std::string TestOciRuntime() { return ProgramPath("DROVER_TEST_RUNC", "/usr/sbin/runc"); }

absl::StatusOr<pid_t> SpawnDaemon(const std::vector<std::string>& args,
                                  const std::string& log_path) {
  std::vector<std::string> copy = args;
  std::vector<char*> c_args = CStrings(copy);
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("open ", log_path, ": ", strerror(errno)));
  }
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  if (pid == 0) {
    dup2(log_fd, 2);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    dup2(devnull, 1);
    execv(c_args[0], c_args.data());
    _exit(127);
  }
  close(log_fd);
  return pid;
}

absl::StatusOr<std::unique_ptr<AgentProcess>> AgentProcess::Start(
    const std::string& scheduler, const std::string& node_name, const std::string& work_dir,
    const std::vector<std::string>& extra_args, const std::vector<std::string>& exec_prefix) {
  std::vector<std::string> args = exec_prefix;
  args.insert(args.end(), {ProgramPath("DROVER_AGENT", DROVER_AGENT_PATH), "--scheduler",
                           scheduler, "--node-name", node_name, "--work-dir", work_dir,
                           "--log-level", "debug"});
  // Tests end their agents with SIGTERM and expect nothing left behind, unless they test
  // the default (keep) themselves.
  if (std::find(extra_args.begin(), extra_args.end(), "--jobs-on-exit") == extra_args.end()) {
    args.insert(args.end(), {"--jobs-on-exit", "stop"});
  }
  // droverd's certificate comes from the test CA (DroverdProcess) unless told otherwise,
  // and so does the node certificate, unless the test joins or gives its own.
  auto given = [&](const char* flag) {
    return std::find(extra_args.begin(), extra_args.end(), flag) != extra_args.end();
  };
  if (!given("--ca")) {
    args.insert(args.end(), {"--ca", TestCaFile()});
    if (!given("--node-cert") && !given("--join") && !given("--join-file")) {
      absl::StatusOr<NodeTlsFiles> node = IssueTestNodeTls(node_name);
      if (!node.ok()) return node.status();
      args.insert(args.end(),
                  {"--node-cert", node->certificate_file, "--node-key", node->key_file});
    }
  }
  if (!given("--runc")) args.insert(args.end(), {"--runc", TestOciRuntime()});
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::string log = work_dir + ".log";
  absl::StatusOr<pid_t> pid = SpawnDaemon(args, log);
  if (!pid.ok()) return pid.status();
  return std::unique_ptr<AgentProcess>(new AgentProcess(*pid, log));
}

AgentProcess::~AgentProcess() {
  if (reaped_) return;
  kill(pid_, SIGTERM);
  if (!Wait(absl::Seconds(20)).ok()) {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

std::string AgentProcess::ReadLog() const { return ReadFile(log_); }

std::string AgentProcess::Describe() const {
  if (reaped_) return "reaped";
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
      info.si_pid == pid_) {
    if (info.si_code == CLD_EXITED) return absl::StrCat("exited with code ", info.si_status);
    return absl::StrCat("killed by signal ", info.si_status, " (", strsignal(info.si_status), ")");
  }
  // /proc/PID/stat: "PID (comm) STATE ...", comm may hold spaces and parentheses.
  std::string stat = ReadFile(absl::StrCat("/proc/", pid_, "/stat"));
  size_t close = stat.rfind(')');
  std::string state = close == std::string::npos || close + 2 >= stat.size()
                          ? "?"
                          : stat.substr(close + 2, 1);
  return absl::StrCat("running (pid ", pid_, ", state ", state, ")");
}

void AgentProcess::Signal(int signal) {
  if (!reaped_) kill(pid_, signal);
}

absl::StatusOr<int> AgentProcess::Wait(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!reaped_) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return status;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat("drover-agent (pid ", pid_, ") still runs"));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::FailedPreconditionError("drover-agent was already reaped");
}

namespace {

// With DROVER_TEST_STORE=postgres every droverd of the test keeps its state in PostgreSQL
// (--store), on this process's throw-away server, one database per state folder: a droverd
// restarted on the same folder finds its database again. Empty: SQLite, droverd's default.
absl::StatusOr<std::string> StoreFor(const std::string& state_dir) {
  const char* engine = getenv("DROVER_TEST_STORE");
  if (engine == nullptr || *engine == '\0' || std::string(engine) == "sqlite") return "";
  if (std::string(engine) != "postgres") {
    return absl::InvalidArgumentError(
        absl::StrCat("DROVER_TEST_STORE='", engine, "': give postgres or sqlite"));
  }
  static std::map<std::string, std::string>* databases = new std::map<std::string, std::string>;
  auto it = databases->find(state_dir);
  if (it != databases->end()) return it->second;
  absl::StatusOr<PostgresServer*> server = PostgresServer::Shared();
  if (!server.ok()) return server.status();
  absl::StatusOr<std::string> database = (*server)->CreateDatabase();
  if (!database.ok()) return database.status();
  return (*databases)[state_dir] = (*server)->Uri(*database);
}

}  // namespace

bool StateOnPostgres() {
  const char* engine = getenv("DROVER_TEST_STORE");
  return engine != nullptr && std::string(engine) == "postgres";
}

absl::StatusOr<std::unique_ptr<DroverdProcess>> DroverdProcess::Start(
    const std::string& state_dir, const std::vector<std::string>& extra_args,
    const std::string& files_dir, Tls tls) {
  std::filesystem::create_directories(state_dir);
  const std::string& files = files_dir.empty() ? state_dir : files_dir;
  std::filesystem::create_directories(files);
  std::string address_file = files + "/droverd.address";
  std::filesystem::remove(address_file);
  std::string log_file = files + "/droverd.log";
  std::vector<std::string> args = {ProgramPath("DROVER_DROVERD", DROVER_DROVERD_PATH),
                                   "--listen",
                                   "127.0.0.1:0",
                                   "--state-dir",
                                   state_dir,
                                   "--address-file",
                                   address_file};
  // Every test client's channel carries the test admin token (cluster.h).
  if (std::find(extra_args.begin(), extra_args.end(), "--bootstrap-admin-token-file") ==
      extra_args.end()) {
    args.insert(args.end(), {"--bootstrap-admin-token-file", TestAdminTokenFile()});
  }
  if (std::find(extra_args.begin(), extra_args.end(), "--store") == extra_args.end()) {
    absl::StatusOr<std::string> store = StoreFor(state_dir);
    if (!store.ok()) return store.status();
    if (!store->empty()) args.insert(args.end(), {"--store", *store});
  }
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::string ca_file = state_dir + "/tls/ca.crt";  // droverd's own CA
  if (tls == Tls::kTestCa) {
    // The last --listen wins, as in droverd's own parsing.
    std::string listen = "127.0.0.1:0";
    for (size_t i = 0; i + 1 < args.size(); ++i) {
      if (args[i] == "--listen") listen = args[i + 1];
    }
    absl::StatusOr<ServerTlsFiles> tls_files =
        IssueTestServerTls(listen.substr(0, listen.rfind(':')));
    if (!tls_files.ok()) return tls_files.status();
    args.insert(args.end(), {"--tls-cert", tls_files->certificate_file, "--tls-key",
                             tls_files->key_file, "--tls-ca", tls_files->ca_file});
    ca_file = tls_files->ca_file;
  }
  absl::StatusOr<pid_t> spawned = SpawnDaemon(args, log_file);
  if (!spawned.ok()) return spawned.status();
  pid_t pid = *spawned;
  auto process = std::unique_ptr<DroverdProcess>(new DroverdProcess(pid, files, "", ca_file));
  absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    std::string address(absl::StripAsciiWhitespace(ReadFile(address_file)));
    if (!address.empty() && absl::EndsWith(ReadFile(address_file), "\n")) {
      process->address_ = address;
      return process;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      process->reaped_ = true;
      return absl::InternalError(
          absl::StrCat("droverd exited during start-up (status ", status, "); log:\n",
                       ReadFile(log_file)));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("droverd did not listen within 30s; log:\n", ReadFile(log_file)));
}

DroverdProcess::~DroverdProcess() {
  if (reaped_) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
}

std::string DroverdProcess::log_path() const { return files_dir_ + "/droverd.log"; }

std::string DroverdProcess::ReadLog() const { return ReadFile(log_path()); }

void DroverdProcess::Signal(int signal) {
  if (!reaped_) kill(pid_, signal);
}

absl::StatusOr<int> DroverdProcess::Wait(absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (!reaped_) {
    int status = 0;
    pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      reaped_ = true;
      return status;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("droverd (pid ", pid_, ") still runs after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::FailedPreconditionError("droverd was already reaped");
}

}  // namespace drover::testing
