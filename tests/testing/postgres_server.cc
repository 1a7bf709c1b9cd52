#include "tests/testing/postgres_server.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace drover::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kSuperuser[] = "drover";

// The folder holding initdb and pg_ctl: $DROVER_PG_BINDIR, else the newest
// /usr/lib/postgresql/<version>/bin (Debian's layout).
absl::StatusOr<std::string> FindBinaries() {
  if (const char* dir = std::getenv("DROVER_PG_BINDIR"); dir != nullptr && *dir != '\0') {
    if (fs::exists(fs::path(dir) / "initdb") && fs::exists(fs::path(dir) / "pg_ctl")) {
      return std::string(dir);
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "DROVER_PG_BINDIR='", dir, "' holds no initdb and pg_ctl: install Debian's 'postgresql' "
        "package (deploy/install-deps.sh does) and unset DROVER_PG_BINDIR, or point it at the "
        "folder that holds them"));
  }
  std::vector<std::pair<int, std::string>> found;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", error)) {
    fs::path bin = entry.path() / "bin";
    if (fs::exists(bin / "initdb") && fs::exists(bin / "pg_ctl")) {
      found.emplace_back(std::atoi(entry.path().filename().c_str()), bin.string());
    }
  }
  if (found.empty()) {
    return absl::FailedPreconditionError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin: "
        "install Debian's 'postgresql' package (deploy/install-deps.sh does), or set "
        "DROVER_PG_BINDIR to the folder that holds them");
  }
  std::sort(found.begin(), found.end());
  return found.back().second;
}

// Runs `argv` as `nobody` when this process is root (PostgreSQL refuses root), as itself
// otherwise, with stdout and stderr appended to `log`. Its exit code, or -1.
int RunAsServerUser(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (geteuid() == 0) {
      const passwd* nobody = getpwnam("nobody");
      if (nobody == nullptr || setgroups(0, nullptr) != 0 || setgid(nobody->pw_gid) != 0 ||
          setuid(nobody->pw_uid) != 0) {
        _exit(126);
      }
    }
    // Opened as the server's user: pg_ctl -l appends to the same file.
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The shared server, stopped when the process exits.
struct SharedHolder {
  std::unique_ptr<PostgresServer> server;
  absl::Status error = absl::OkStatus();
  bool tried = false;
  ~SharedHolder() {
    if (server != nullptr) server->Stop();
  }
};

// Destroyed when the process exits, whether its tests passed or failed.
SharedHolder& Holder() {
  static SharedHolder holder;
  return holder;
}

}  // namespace

absl::StatusOr<PostgresServer*> PostgresServer::Shared() {
  SharedHolder& h = Holder();
  if (!h.tried) {
    h.tried = true;
    const char* run_dir = std::getenv("DROVER_TEST_PG_DIR");
    absl::StatusOr<std::unique_ptr<PostgresServer>> server =
        run_dir != nullptr && *run_dir != '\0' ? Attach(run_dir) : Start();
    if (server.ok()) {
      h.server = *std::move(server);
    } else {
      h.error = server.status();
    }
  }
  if (h.server == nullptr) return h.error;
  return h.server.get();
}

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Start() {
  absl::StatusOr<std::string> bin = FindBinaries();
  if (!bin.ok()) return bin.status();
  // Short: a Unix socket's path has at most 107 bytes.
  char pattern[] = "/tmp/drover-pg-XXXXXX";
  if (mkdtemp(pattern) == nullptr) return absl::InternalError("mkdtemp failed");
  auto server = std::unique_ptr<PostgresServer>(new PostgresServer(*bin, pattern));
  const std::string& dir = server->dir_;
  if (geteuid() == 0) {
    const passwd* nobody = getpwnam("nobody");
    if (nobody == nullptr || chown(dir.c_str(), nobody->pw_uid, nobody->pw_gid) != 0) {
      server->Stop();
      return absl::FailedPreconditionError(
          "cannot hand the test server's folder to user 'nobody' (PostgreSQL refuses root)");
    }
  }
  const std::string log = dir + "/server.log";
  // The data of a test server need not survive a crash: no fsync, for speed.
  if (int rc = RunAsServerUser({*bin + "/initdb", "-D", dir + "/data", "-U", kSuperuser,
                                "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"},
                               log);
      rc != 0) {
    std::string text = ReadFile(log);
    server->Stop();
    return absl::InternalError(absl::StrCat("initdb failed (exit ", rc, "): ", text));
  }
  server->running_ = true;
  const std::string options = absl::StrCat(
      "-c listen_addresses='' -c unix_socket_directories='", dir,
      "' -c fsync=off -c full_page_writes=off -c max_connections=200");
  if (int rc = RunAsServerUser({*bin + "/pg_ctl", "-D", dir + "/data", "-l", log, "-w", "-t",
                                "60", "-o", options, "start"},
                               log);
      rc != 0) {
    std::string text = ReadFile(log);
    server->Stop();
    return absl::InternalError(absl::StrCat("pg_ctl start failed (exit ", rc, "): ", text));
  }
  return server;
}

absl::StatusOr<std::unique_ptr<PostgresServer>> PostgresServer::Attach(const std::string& dir) {
  absl::StatusOr<std::string> bin = FindBinaries();
  if (!bin.ok()) return bin.status();
  // pg_ctl's pid file is there while the server runs; its socket is the proof it listens.
  if (!fs::exists(fs::path(dir) / "data" / "postmaster.pid") ||
      !fs::exists(fs::path(dir) / ".s.PGSQL.5432")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "DROVER_TEST_PG_DIR='", dir, "' holds no running PostgreSQL server: start one with "
        "`drover-test-postgres start` (deploy/run-tests.sh does) or unset DROVER_TEST_PG_DIR"));
  }
  auto server = std::unique_ptr<PostgresServer>(new PostgresServer(*bin, dir));
  server->running_ = true;
  server->owned_ = false;
  return server;
}

std::string PostgresServer::Detach() {
  owned_ = false;
  return dir_;
}

void PostgresServer::StopAt(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<PostgresServer>> server = Attach(dir);
  if (server.ok()) {
    (*server)->owned_ = true;
    (*server)->Stop();
    return;
  }
  // Not running (or never started): the folder alone.
  std::error_code error;
  fs::remove_all(dir, error);
}

PostgresServer::~PostgresServer() { Stop(); }

void PostgresServer::Stop() {
  if (dir_.empty()) return;
  if (!owned_) {
    dir_.clear();
    return;
  }
  if (running_) {
    RunAsServerUser({bin_ + "/pg_ctl", "-D", dir_ + "/data", "-m", "immediate", "-w", "stop"},
                    "/dev/null");
    running_ = false;
  }
  std::error_code error;
  fs::remove_all(dir_, error);
  dir_.clear();
}

std::string PostgresServer::Uri(const std::string& name) const {
  return absl::StrCat("postgresql:///", name, "?host=", dir_, "&user=", kSuperuser);
}

absl::StatusOr<std::string> PostgresServer::Psql(const std::string& name,
                                                 const std::string& sql) const {
  // One file per call: test processes sharing a server run psql at the same time.
  const std::string out = absl::StrCat(dir_, "/psql-", getpid(), "-", ++psql_calls_, ".out");
  std::error_code error;
  fs::remove(out, error);
  int rc = RunAsServerUser({bin_ + "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-d", Uri(name), "-c", sql},
                           out);
  std::string text = ReadFile(out);
  fs::remove(out, error);
  if (rc != 0) return absl::InternalError(absl::StrCat("psql failed (exit ", rc, "): ", text));
  return text;
}

absl::StatusOr<std::string> PostgresServer::CreateDatabase() {
  // The name is built from the process id and a counter, never from outside input: test
  // processes sharing a server create databases at the same time.
  const std::string name = absl::StrCat("d", getpid(), "_", ++databases_);
  absl::StatusOr<std::string> out =
      Psql("postgres", absl::StrCat("CREATE DATABASE ", name, " STRATEGY = FILE_COPY"));
  if (!out.ok()) return out.status();
  return name;
}

}  // namespace drover::testing
