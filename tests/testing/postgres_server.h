// A throw-away PostgreSQL server for tests, from Debian's `postgresql` package: initdb into
// a fresh folder under /tmp, started with pg_ctl on a Unix socket in that folder and no TCP
// port (listen_addresses=''), stopped and removed when the process ends (or Stop() is
// called). PostgreSQL refuses to run as root, so a root test runs it as `nobody`.
//
// One server per test process (Shared()), or one per test run: when $DROVER_TEST_PG_DIR
// names the folder of a server started by `drover-test-postgres start` (deploy/run-tests.sh
// does, for the whole ctest run), Shared() uses that server instead of starting one (initdb
// and a start cost ~3 s per test process). Each test gets its own database
// (CreateDatabase(), named after the process so that concurrent test processes never
// collide). Without the server's binaries Shared() fails with a message that names the
// package to install: the PostgreSQL tests fail, they never skip.
//
// Thread-compatible: the tests of one process call it from their main thread.
#ifndef DROVER_TESTS_TESTING_POSTGRES_SERVER_H_
#define DROVER_TESTS_TESTING_POSTGRES_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace drover::testing {

class PostgresServer {
 public:
  // The server of this process, started on the first call. The error (binaries missing,
  // initdb or start failing, with the server's log) is returned to every later call too.
  static absl::StatusOr<PostgresServer*> Shared();
  // Starts a server of its own (Shared() is one of these, kept until the process exits).
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Start();
  // The running server started in `dir` by another process (Detach()); not stopped by this
  // object. FAILED_PRECONDITION when `dir` holds no running server.
  static absl::StatusOr<std::unique_ptr<PostgresServer>> Attach(const std::string& dir);
  // Leaves the server running when this object goes (for another process to Attach() to and
  // StopAt() later); its folder.
  std::string Detach();
  // Stops the server started in `dir` and removes the folder (what Stop() does for a server
  // this process started).
  static void StopAt(const std::string& dir);
  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Creates a new, empty database and returns its name ("d3").
  absl::StatusOr<std::string> CreateDatabase();
  // The libpq URI of database `name` on this server, as droverd --store takes it
  // ("postgresql:///d3?host=/tmp/drover-pg-XXXX&user=drover").
  std::string Uri(const std::string& name) const;
  // Runs SQL (no parameters) on database `name` with psql, for tests that reach past the
  // store (an old schema version, raw bytes at rest); psql's output.
  absl::StatusOr<std::string> Psql(const std::string& name, const std::string& sql) const;

  // Stops the server (immediately: a test server keeps nothing) and removes its folder.
  void Stop();

 private:
  PostgresServer(std::string bin, std::string dir) : bin_(std::move(bin)), dir_(std::move(dir)) {}
  std::string bin_;  // the folder of initdb and pg_ctl
  std::string dir_;  // data in dir_/data, the socket in dir_
  int databases_ = 0;
  mutable int psql_calls_ = 0;  // names Psql()'s output files
  bool running_ = false;
  bool owned_ = true;  // false: Attach()ed or Detach()ed, another process stops it
};

}  // namespace drover::testing

#endif  // DROVER_TESTS_TESTING_POSTGRES_SERVER_H_
